// Package storetest is the contract every implementation of eventide.Store passes: the SQLite
// store (store/sqlite) and the MongoDB store (store, over the in-process FerretDB in tests). Each
// store's own test calls Run with a function that opens an empty store.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

// Store is what the suite exercises: the domain store plus the batched look-up the cache reads
// through (storecache.Backing).
type Store interface {
	eventide.Store
	RegistrationsOf(ctx context.Context, userID string, eventIDs []string) ([]*eventide.Registration, error)
}

// Faults is implemented by a store under test that can fail a multi-step write partway, as a
// crash, a full disk or a store outage between two steps would.
type Faults interface {
	// FailWritesAfter lets the next n write steps succeed and fails every one after them, until
	// Heal.
	FailWritesAfter(n int)
	// Heal makes writes succeed again.
	Heal()
}

// Options tunes Run for one store.
type Options struct {
	// KnownFailures maps the names of subtests (as t.Name() under Run's test, e.g.
	// "crash/cancel-confirmed/after-1") that fail on this store today to the reason; they are
	// skipped with it, so they show in -v output and cannot be mistaken for passes.
	KnownFailures map[string]string
}

// Run runs the contract against fresh stores from open.
func Run(t *testing.T, open func(t *testing.T) Store) { RunWith(t, open, Options{}) }

// RunWith is Run with options.
func RunWith(t *testing.T, open func(t *testing.T) Store, o Options) {
	s := &suite{open: open, o: o, root: t.Name() + "/"}
	for _, c := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"users", s.users},
		{"user-list", s.userList},
		{"venues", s.venues},
		{"events", s.events},
		{"event-filters", s.eventFilters},
		{"next-event-end", s.nextEventEnd},
		{"drafts", s.drafts},
		{"pagination-stable", s.paginationStable},
		{"bad-input", s.badInput},
		{"register-race", s.registerRace},
		{"waitlist-order", s.waitlistOrder},
		{"capacity", s.capacity},
		{"register-refused", s.registerRefused},
		{"registrations-of", s.registrationsOf},
		{"user-registrations", s.userRegistrations},
		{"event-registrations", s.eventRegistrations},
		{"cancel-event-cascade", s.cancelEventCascade},
		{"noted-changes", s.notedChanges},
		{"crash", s.crash},
		{"venue-update", s.venueUpdate},
		{"event-zone-online-revision", s.eventZoneOnline},
		{"calendar-registrations", s.calendarRegistrations},
		{"calendar-secrets", s.calendarSecrets},
	} {
		t.Run(c.name, func(t *testing.T) {
			s.skipKnown(t)
			c.fn(t)
		})
	}
}

type suite struct {
	open func(t *testing.T) Store
	o    Options
	root string
}

func (s *suite) skipKnown(t *testing.T) {
	t.Helper()
	if why, ok := s.o.KnownFailures[strings.TrimPrefix(t.Name(), s.root)]; ok {
		t.Skip("known failure on this store: " + why)
	}
}

var ctx = context.Background()

// clock is a fixed "now" at millisecond precision; tests place events relative to it.
func clock() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

func code(t *testing.T, err error, want eventide.Code, what string) {
	t.Helper()
	if got := eventide.ErrorCode(err); got != want {
		t.Fatalf("%s: code %q (%v), want %q", what, got, err, want)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func user(t *testing.T, st Store, name string, role eventide.Role) *eventide.User {
	t.Helper()
	u := &eventide.User{Name: name, Email: strings.ToLower(name) + "@example.com", Role: role, PasswordHash: []byte("h")}
	must(t, st.CreateUser(ctx, u))
	return u
}

func users(t *testing.T, st Store, n int) []*eventide.User {
	t.Helper()
	out := make([]*eventide.User, n)
	for i := range out {
		out[i] = user(t, st, fmt.Sprintf("user%03d", i), eventide.RoleUser)
	}
	return out
}

type ev struct {
	title, desc, city, venue string
	tags                     []string
	start                    time.Duration // from now
	length                   time.Duration
	status                   eventide.EventStatus
	capacity                 int
	org                      string
}

func event(t *testing.T, st Store, now time.Time, e ev) *eventide.Event {
	t.Helper()
	if e.length == 0 {
		e.length = time.Hour
	}
	if e.status == "" {
		e.status = eventide.EventPublished
	}
	if e.capacity == 0 {
		e.capacity = 10
	}
	if e.title == "" {
		e.title = "Event"
	}
	x := &eventide.Event{Title: e.title, Description: e.desc, StartsAt: now.Add(e.start), EndsAt: now.Add(e.start + e.length),
		Status: e.status, Capacity: e.capacity, Tags: e.tags, City: e.city, VenueID: e.venue, OrganizerID: e.org}
	must(t, st.CreateEvent(ctx, x))
	if x.ID == "" || x.ConfirmedCount != 0 || x.CreatedAt.IsZero() {
		t.Fatalf("created event %+v", x)
	}
	return x
}

// ---- users ----

func (s *suite) users(t *testing.T) {
	st := s.open(t)
	ann := &eventide.User{Name: "Ann", Email: "  Ann@Example.COM ", Role: eventide.RoleOrganizer, PasswordHash: []byte("hash")}
	must(t, st.CreateUser(ctx, ann))
	if len(ann.ID) != 24 || ann.Email != "ann@example.com" {
		t.Fatalf("created %+v: want a 24-hex id and the email lower-cased", ann)
	}
	dup := &eventide.User{Name: "Ann 2", Email: "ANN@example.com", Role: eventide.RoleUser}
	err := st.CreateUser(ctx, dup)
	code(t, err, eventide.CodeBadUserInput, "duplicate email in another case")
	if e := err.(*eventide.Error); e.Field != "email" {
		t.Fatalf("duplicate email: field %q, want email", e.Field)
	}
	for _, q := range []string{"ann@example.com", "ANN@EXAMPLE.COM", " Ann@example.com"} {
		u, err := st.UserByEmail(ctx, q)
		must(t, err)
		if u.ID != ann.ID || string(u.PasswordHash) != "hash" {
			t.Fatalf("UserByEmail(%q) = %+v", q, u)
		}
	}
	_, err = st.UserByEmail(ctx, "nobody@example.com")
	code(t, err, eventide.CodeNotFound, "unknown email")
	u, err := st.UserByID(ctx, ann.ID)
	must(t, err)
	if u.Name != "Ann" || u.Role != eventide.RoleOrganizer || !u.CreatedAt.Equal(ann.CreatedAt) {
		t.Fatalf("UserByID = %+v, want %+v", u, ann)
	}
	for _, id := range []string{"0123456789abcdef01234567", "not-an-id", ""} {
		_, err = st.UserByID(ctx, id)
		code(t, err, eventide.CodeNotFound, "UserByID("+id+")")
	}
	bob := user(t, st, "Bob", eventide.RoleUser)
	got, err := st.UsersByIDs(ctx, []string{ann.ID, bob.ID, "0123456789abcdef01234567", "junk"})
	must(t, err)
	if len(got) != 2 {
		t.Fatalf("UsersByIDs: %d users, want 2", len(got))
	}
	u, err = st.SetUserRole(ctx, bob.ID, eventide.RoleAdmin)
	must(t, err)
	if u.Role != eventide.RoleAdmin || u.ID != bob.ID {
		t.Fatalf("SetUserRole = %+v", u)
	}
	_, err = st.SetUserRole(ctx, "0123456789abcdef01234567", eventide.RoleAdmin)
	code(t, err, eventide.CodeNotFound, "SetUserRole unknown")
	must(t, st.SetUserCredentials(ctx, bob.ID, []byte("new"), eventide.RoleUser))
	u, err = st.UserByEmail(ctx, "bob@example.com")
	must(t, err)
	if string(u.PasswordHash) != "new" || u.Role != eventide.RoleUser {
		t.Fatalf("after SetUserCredentials: %+v", u)
	}
	code(t, st.SetUserCredentials(ctx, "0123456789abcdef01234567", nil, eventide.RoleUser), eventide.CodeNotFound, "SetUserCredentials unknown")
	n, err := st.CountUsers(ctx)
	must(t, err)
	if n != 2 {
		t.Fatalf("CountUsers = %d, want 2", n)
	}
}

// UserLister is the listing of users (eventide.UserStore's Users and CountUsersMatching); the
// suite checks it on the stores that have it.
type UserLister interface {
	Users(ctx context.Context, q eventide.UserQuery, page eventide.Page) (*eventide.Conn[*eventide.User], error)
	CountUsersMatching(ctx context.Context, q eventide.UserQuery) (int, error)
}

func (s *suite) userList(t *testing.T) {
	st := s.open(t)
	l, ok := st.(UserLister)
	if !ok {
		t.Skip("this store does not list users yet")
	}
	var made []*eventide.User
	for _, u := range []struct {
		name, email string
		role        eventide.Role
	}{
		{"Ann Smith", "ann@example.com", eventide.RoleAdmin},
		{"Bob", "bob_100%@example.com", eventide.RoleUser},
		{"Cleo SMITHERS", "cleo@example.org", eventide.RoleOrganizer},
		{"Dan", "dan@smith.example", eventide.RoleUser},
		{"Eve", "eve@example.com", eventide.RoleUser},
	} {
		x := &eventide.User{Name: u.name, Email: u.email, Role: u.role, PasswordHash: []byte("secret")}
		must(t, st.CreateUser(ctx, x))
		made = append(made, x)
	}
	list := func(q eventide.UserQuery, per int) []string {
		t.Helper()
		var out []string
		after := ""
		for {
			c, err := l.Users(ctx, q, eventide.Page{First: per, After: after})
			must(t, err)
			for _, u := range c.Items {
				if u.PasswordHash != nil {
					t.Fatalf("Users returned %s's password hash", u.Name)
				}
				out = append(out, u.Name)
			}
			if !c.HasNextPage {
				break
			}
			after = c.EndCursor()
		}
		n, err := l.CountUsersMatching(ctx, q)
		must(t, err)
		if n != len(out) {
			t.Fatalf("CountUsersMatching(%+v) = %d, the pages hold %d", q, n, len(out))
		}
		return out
	}
	for _, c := range []struct {
		q    eventide.UserQuery
		want []string
	}{
		{eventide.UserQuery{}, []string{"Ann Smith", "Bob", "Cleo SMITHERS", "Dan", "Eve"}},
		{eventide.UserQuery{Search: "smith"}, []string{"Ann Smith", "Cleo SMITHERS", "Dan"}},
		{eventide.UserQuery{Search: "EXAMPLE.ORG"}, []string{"Cleo SMITHERS"}},
		{eventide.UserQuery{Search: "100%"}, []string{"Bob"}},
		{eventide.UserQuery{Search: "_"}, []string{"Bob"}},
		{eventide.UserQuery{Search: ".*"}, nil},
		{eventide.UserQuery{Role: eventide.RoleUser}, []string{"Bob", "Dan", "Eve"}},
		{eventide.UserQuery{Role: eventide.RoleUser, Search: "e"}, []string{"Bob", "Dan", "Eve"}},
		{eventide.UserQuery{Role: eventide.RoleAdmin, Search: "bob"}, nil},
	} {
		for _, per := range []int{1, 2, 50} {
			if got := list(c.q, per); !slices.Equal(got, c.want) {
				t.Fatalf("Users(%+v), %d per page: %v, want %v", c.q, per, got, c.want)
			}
		}
	}
	_, err := l.Users(ctx, eventide.UserQuery{}, eventide.Page{First: -1})
	code(t, err, eventide.CodeBadUserInput, "negative first")
	_, err = l.Users(ctx, eventide.UserQuery{}, eventide.Page{First: 5, After: "garbage"})
	code(t, err, eventide.CodeBadUserInput, "bad cursor")
}

// ---- venues ----

func (s *suite) venues(t *testing.T) {
	st := s.open(t)
	org := user(t, st, "Org", eventide.RoleOrganizer)
	capy := 300
	names := []struct{ name, city string }{{"Zeta Hall", "Lisbon"}, {"alpha room", "lisbon"}, {"Beta", "Porto"}, {"Gamma", "LISBON"}}
	ids := map[string]string{}
	for _, n := range names {
		v := &eventide.Venue{Name: n.name, Address: "1 Street", City: n.city, Capacity: &capy, CreatedByID: org.ID}
		must(t, st.CreateVenue(ctx, v))
		ids[n.name] = v.ID
	}
	v, err := st.VenueByID(ctx, ids["Beta"])
	must(t, err)
	if v.Name != "Beta" || v.City != "Porto" || v.Capacity == nil || *v.Capacity != 300 || v.CreatedByID != org.ID {
		t.Fatalf("VenueByID = %+v", v)
	}
	_, err = st.VenueByID(ctx, "0123456789abcdef01234567")
	code(t, err, eventide.CodeNotFound, "unknown venue")
	vs, err := st.VenuesByIDs(ctx, []string{ids["Beta"], ids["Gamma"], "junk"})
	must(t, err)
	if len(vs) != 2 {
		t.Fatalf("VenuesByIDs: %d", len(vs))
	}
	// Lisbon, any case, by name case-insensitively, two per page.
	var seen []string
	after := ""
	for {
		c, err := st.Venues(ctx, "Lisbon", eventide.Page{First: 2, After: after})
		must(t, err)
		for _, v := range c.Items {
			seen = append(seen, v.Name)
		}
		if !c.HasNextPage {
			break
		}
		after = c.EndCursor()
	}
	if want := []string{"alpha room", "Gamma", "Zeta Hall"}; !slices.Equal(seen, want) {
		t.Fatalf("venues in Lisbon: %v, want %v", seen, want)
	}
	for city, want := range map[string]int{"": 4, "lisbon": 3, "PORTO": 1, "Faro": 0} {
		n, err := st.CountVenues(ctx, city)
		must(t, err)
		if n != want {
			t.Fatalf("CountVenues(%q) = %d, want %d", city, n, want)
		}
	}
	c, err := st.Venues(ctx, "Faro", eventide.Page{First: 5})
	must(t, err)
	if len(c.Items) != 0 || c.HasNextPage {
		t.Fatalf("venues in Faro: %+v", c)
	}
}

// ---- events ----

func (s *suite) events(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	e := event(t, st, now, ev{title: "Jazz", desc: "Night", tags: []string{"music", "jazz"}, city: "Lisbon", start: time.Hour, capacity: 5, org: org.ID})
	got, err := st.EventByID(ctx, e.ID)
	must(t, err)
	if got.Title != "Jazz" || got.Description != "Night" || !got.StartsAt.Equal(e.StartsAt) || !got.EndsAt.Equal(e.EndsAt) ||
		got.Capacity != 5 || !slices.Equal(got.Tags, []string{"music", "jazz"}) || got.City != "Lisbon" ||
		got.OrganizerID != org.ID || got.Status != eventide.EventPublished {
		t.Fatalf("EventByID = %+v, want %+v", got, e)
	}
	_, err = st.EventByID(ctx, "0123456789abcdef01234567")
	code(t, err, eventide.CodeNotFound, "unknown event")
	_, err = st.EventByID(ctx, "nope")
	code(t, err, eventide.CodeNotFound, "malformed event id")
	evs, err := st.EventsByIDs(ctx, []string{e.ID, "junk", "0123456789abcdef01234567"})
	must(t, err)
	if len(evs) != 1 || evs[0].ID != e.ID {
		t.Fatalf("EventsByIDs = %v", evs)
	}
	up, err := st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error {
		x.Title, x.Tags, x.Status, x.CancelReason = "Jazz!", []string{"jazz"}, eventide.EventCancelled, "rain"
		return nil
	})
	must(t, err)
	if up.Title != "Jazz!" || up.Status != eventide.EventCancelled || up.CancelReason != "rain" || !slices.Equal(up.Tags, []string{"jazz"}) {
		t.Fatalf("UpdateEvent = %+v", up)
	}
	// change may read the store (the resolvers look the new venue up in it) without blocking.
	_, err = st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error {
		if _, err := st.EventByID(ctx, x.ID); err != nil {
			return err
		}
		_, err := st.UserByID(ctx, org.ID)
		return err
	})
	must(t, err)
	_, err = st.UpdateEvent(ctx, "0123456789abcdef01234567", func(*eventide.Event) error { return nil })
	code(t, err, eventide.CodeNotFound, "update unknown")
	// An error from change is returned and nothing is written.
	_, err = st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error {
		x.Title = "never"
		return eventide.InvalidField("title", "no")
	})
	code(t, err, eventide.CodeBadUserInput, "change refused")
	got, _ = st.EventByID(ctx, e.ID)
	if got.Title != "Jazz!" {
		t.Fatalf("a refused change was written: %q", got.Title)
	}
	// The tag "music" was removed: the tag filter must not find the event through it.
	n, err := st.CountEvents(ctx, eventide.EventQuery{Tag: "music"})
	must(t, err)
	if n != 0 {
		t.Fatalf("tag removed by an update still matches: %d", n)
	}
	n, err = st.CountEvents(ctx, eventide.EventQuery{Tag: "jazz"})
	must(t, err)
	if n != 1 {
		t.Fatalf("tag kept by an update: %d", n)
	}
	// The tag filter follows the event's new status and times.
	for _, c := range []struct {
		q    eventide.EventQuery
		want int
	}{
		{eventide.EventQuery{Tag: "jazz", Statuses: []eventide.EventStatus{eventide.EventPublished}}, 0},
		{eventide.EventQuery{Tag: "jazz", Statuses: []eventide.EventStatus{eventide.EventCancelled}}, 1},
	} {
		if got := eventTitles(t, st, c.q, 1); len(got) != c.want {
			t.Fatalf("after cancelling, %+v finds %v", c.q, got)
		}
	}
	_, err = st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error {
		x.StartsAt, x.EndsAt = now.Add(10*time.Hour), now.Add(11*time.Hour)
		return nil
	})
	must(t, err)
	from := now.Add(5 * time.Hour)
	q := eventide.EventQuery{Tag: "jazz", Statuses: []eventide.EventStatus{eventide.EventCancelled}, StartsFrom: &from, EndsAfter: &from}
	if got := eventTitles(t, st, q, 1); !slices.Equal(got, []string{"Jazz!"}) {
		t.Fatalf("after moving the event, %+v finds %v", q, got)
	}
}

// eventTitles pages through q and returns the titles in order.
func eventTitles(t *testing.T, st Store, q eventide.EventQuery, per int) []string {
	t.Helper()
	var out []string
	var firstEnd time.Time
	after := ""
	for i := 0; ; i++ {
		c, err := st.Events(ctx, q, eventide.Page{First: per, After: after})
		must(t, err)
		if len(c.Items) != len(c.Cursors) {
			t.Fatalf("%d items, %d cursors", len(c.Items), len(c.Cursors))
		}
		for _, e := range c.Items {
			out = append(out, e.Title)
			if firstEnd.IsZero() || e.EndsAt.Before(firstEnd) {
				firstEnd = e.EndsAt
			}
		}
		if !c.HasNextPage {
			break
		}
		if i > 1000 {
			t.Fatal("paging does not end")
		}
		after = c.EndCursor()
	}
	n, err := st.CountEvents(ctx, q)
	must(t, err)
	if n != len(out) {
		t.Fatalf("CountEvents(%+v) = %d, the pages hold %d", q, n, len(out))
	}
	end, err := st.NextEventEnd(ctx, q)
	must(t, err)
	if !end.Equal(firstEnd) {
		t.Fatalf("NextEventEnd(%+v) = %v, the earliest end on the pages is %v", q, end, firstEnd)
	}
	return out
}

// nextEventEnd: NextEventEnd is the earliest endsAt among the events a query selects — not the
// end of the first to start — after EndsAfter strictly, under every filter, and it follows edits.
func (s *suite) nextEventEnd(t *testing.T) {
	st := s.open(t)
	now := clock()
	pub := []eventide.EventStatus{eventide.EventPublished}
	end := func(q eventide.EventQuery) time.Time {
		t.Helper()
		e, err := st.NextEventEnd(ctx, q)
		must(t, err)
		return e
	}
	if e := end(eventide.EventQuery{Statuses: pub, EndsAfter: &now}); !e.IsZero() {
		t.Fatalf("no events: %v, want the zero time", e)
	}
	org := user(t, st, "Org", eventide.RoleOrganizer).ID
	long := event(t, st, now, ev{title: "long", start: time.Hour, length: 10 * time.Hour, city: "Lisbon", tags: []string{"jazz"}, org: org})
	short := event(t, st, now, ev{title: "short", start: 2 * time.Hour, length: time.Hour, city: "Porto", tags: []string{"jazz"}, org: org})
	event(t, st, now, ev{title: "past", start: -2 * time.Hour, city: "Porto", tags: []string{"jazz"}, org: org})
	event(t, st, now, ev{title: "cancelled", start: 30 * time.Minute, length: time.Minute, status: eventide.EventCancelled, city: "Porto", org: org})
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	for _, c := range []struct {
		name string
		q    eventide.EventQuery
		want time.Time
	}{
		{"upcoming", eventide.EventQuery{Statuses: pub, EndsAfter: &now}, short.EndsAt},
		{"strictly after", eventide.EventQuery{Statuses: pub, EndsAfter: &short.EndsAt}, long.EndsAt},
		{"all ended", eventide.EventQuery{Statuses: pub, EndsAfter: at(100 * time.Hour)}, time.Time{}},
		{"city", eventide.EventQuery{Statuses: pub, EndsAfter: &now, City: "lisbon"}, long.EndsAt},
		{"tag", eventide.EventQuery{Statuses: pub, EndsAfter: &now, Tag: "jazz"}, short.EndsAt},
		{"cancelled", eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventCancelled}, EndsAfter: &now}, now.Add(31 * time.Minute)},
		{"no bound", eventide.EventQuery{Statuses: pub, City: "Porto"}, now.Add(-time.Hour)},
		{"none match", eventide.EventQuery{Statuses: pub, EndsAfter: &now, Tag: "nothing"}, time.Time{}},
	} {
		if got := end(c.q); !got.Equal(c.want) {
			t.Errorf("%s: NextEventEnd = %v, want %v", c.name, got, c.want)
		}
	}
	_, err := st.UpdateEvent(ctx, long.ID, func(e *eventide.Event) error {
		e.EndsAt = now.Add(90 * time.Minute)
		return nil
	})
	must(t, err)
	if got, want := end(eventide.EventQuery{Statuses: pub, EndsAfter: &now, Tag: "jazz"}), now.Add(90*time.Minute); !got.Equal(want) {
		t.Fatalf("after shortening an event: %v, want %v", got, want)
	}
}

func (s *suite) eventFilters(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	other := user(t, st, "Other", eventide.RoleOrganizer)
	hall := &eventide.Venue{Name: "Hall", City: "Lisbon", CreatedByID: org.ID}
	must(t, st.CreateVenue(ctx, hall))
	// Titles are in start order.
	event(t, st, now, ev{title: "a-past", desc: "old jazz", start: -3 * time.Hour, city: "Lisbon", tags: []string{"jazz"}, org: org.ID})
	event(t, st, now, ev{title: "b-running", desc: "Live JAZZ now", start: -30 * time.Minute, city: "Porto", tags: []string{"jazz", "live"}, org: other.ID})
	event(t, st, now, ev{title: "c-soon", desc: "100% fun_stuff", start: time.Hour, city: "lisbon", venue: hall.ID, tags: []string{"talk"}, org: org.ID})
	event(t, st, now, ev{title: "d-later", desc: "A café talk", start: 48 * time.Hour, city: "Faro", org: other.ID})
	event(t, st, now, ev{title: "e-cancelled", start: 2 * time.Hour, city: "Lisbon", status: eventide.EventCancelled, org: org.ID, tags: []string{"jazz"}})
	event(t, st, now, ev{title: "f-draft", start: 3 * time.Hour, city: "Lisbon", status: eventide.EventDraft, org: org.ID, tags: []string{"jazz"}})

	pub := []eventide.EventStatus{eventide.EventPublished}
	p := func(q eventide.EventQuery) eventide.EventQuery { q.Statuses = pub; return q }
	at := func(d time.Duration) *time.Time { x := now.Add(d); return &x }
	cases := []struct {
		name string
		q    eventide.EventQuery
		want []string
	}{
		{"all", eventide.EventQuery{}, []string{"a-past", "b-running", "c-soon", "e-cancelled", "f-draft", "d-later"}},
		{"published", p(eventide.EventQuery{}), []string{"a-past", "b-running", "c-soon", "d-later"}},
		{"upcoming", p(eventide.EventQuery{EndsAfter: &now}), []string{"b-running", "c-soon", "d-later"}},
		{"upcoming none", p(eventide.EventQuery{EndsAfter: at(1000 * time.Hour)}), nil},
		{"two statuses", eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventPublished, eventide.EventCancelled}, EndsAfter: &now},
			[]string{"b-running", "c-soon", "e-cancelled", "d-later"}},
		{"city", p(eventide.EventQuery{City: " LISBON "}), []string{"a-past", "c-soon"}},
		{"city none", p(eventide.EventQuery{City: "Madrid"}), nil},
		{"tag", p(eventide.EventQuery{Tag: "jazz"}), []string{"a-past", "b-running"}},
		{"tag upcoming", p(eventide.EventQuery{Tag: "jazz", EndsAfter: &now}), []string{"b-running"}},
		{"tag none", p(eventide.EventQuery{Tag: "opera"}), nil},
		{"tag from", p(eventide.EventQuery{Tag: "jazz", StartsFrom: at(-time.Hour)}), []string{"b-running"}},
		{"organizer", eventide.EventQuery{OrganizerID: other.ID}, []string{"b-running", "d-later"}},
		{"organizer none", eventide.EventQuery{OrganizerID: "0123456789abcdef01234567"}, nil},
		{"organizer malformed", eventide.EventQuery{OrganizerID: "x"}, nil},
		{"venue", p(eventide.EventQuery{VenueID: hall.ID}), []string{"c-soon"}},
		{"venue none", p(eventide.EventQuery{VenueID: "0123456789abcdef01234567"}), nil},
		{"from", p(eventide.EventQuery{StartsFrom: at(0)}), []string{"c-soon", "d-later"}},
		{"to", p(eventide.EventQuery{StartsTo: at(time.Hour)}), []string{"a-past", "b-running"}},
		{"from to", p(eventide.EventQuery{StartsFrom: at(-time.Hour), StartsTo: at(24 * time.Hour)}), []string{"b-running", "c-soon"}},
		{"range none", p(eventide.EventQuery{StartsFrom: at(100 * time.Hour), StartsTo: at(200 * time.Hour)}), nil},
		{"search title", eventide.EventQuery{Search: "RUNNING"}, []string{"b-running"}},
		{"search description", p(eventide.EventQuery{Search: "jazz"}), []string{"a-past", "b-running"}},
		{"search literal", p(eventide.EventQuery{Search: "100% fun_"}), []string{"c-soon"}},
		{"search non-ascii", p(eventide.EventQuery{Search: "café"}), []string{"d-later"}},
		{"search short", p(eventide.EventQuery{Search: "Ta"}), []string{"d-later"}},
		{"search regex chars", p(eventide.EventQuery{Search: ".*"}), nil},
		{"search quote", p(eventide.EventQuery{Search: `ja"zz`}), nil},
		{"search none", p(eventide.EventQuery{Search: "opera"}), nil},
		{"search with city", p(eventide.EventQuery{Search: "jazz", City: "porto"}), []string{"b-running"}},
		{"everything", p(eventide.EventQuery{City: "lisbon", Tag: "talk", OrganizerID: org.ID, VenueID: hall.ID,
			StartsFrom: at(0), StartsTo: at(10 * time.Hour), EndsAfter: &now, Search: "fun"}), []string{"c-soon"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, per := range []int{1, 2, 100} {
				if got := eventTitles(t, st, c.q, per); !slices.Equal(got, c.want) {
					t.Fatalf("%+v, %d per page: %v, want %v", c.q, per, got, c.want)
				}
			}
		})
	}
}

func (s *suite) drafts(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	other := user(t, st, "Other", eventide.RoleOrganizer)
	event(t, st, now, ev{title: "mine", start: time.Hour, status: eventide.EventDraft, org: org.ID})
	event(t, st, now, ev{title: "theirs", start: 2 * time.Hour, status: eventide.EventDraft, org: other.ID})
	event(t, st, now, ev{title: "public", start: 3 * time.Hour, org: other.ID})
	draft := []eventide.EventStatus{eventide.EventDraft}
	for _, c := range []struct {
		name string
		q    eventide.EventQuery
		want []string
	}{
		{"admin", eventide.EventQuery{Statuses: draft}, []string{"mine", "theirs"}},
		{"organizer", eventide.EventQuery{Statuses: draft, DraftsOf: org.ID}, []string{"mine"}},
		{"organizer and published", eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventDraft, eventide.EventPublished}, DraftsOf: org.ID}, []string{"mine", "public"}},
		{"anonymous", eventide.EventQuery{Statuses: draft, NoDrafts: true}, nil},
		{"anonymous any", eventide.EventQuery{NoDrafts: true}, []string{"public"}},
		{"organizer's own list, anonymous", eventide.EventQuery{OrganizerID: other.ID, NoDrafts: true}, []string{"public"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := eventTitles(t, st, c.q, 1); !slices.Equal(got, c.want) {
				t.Fatalf("%v, want %v", got, c.want)
			}
		})
	}
}

// paginationStable inserts events before, at and after the cursor between two pages: the second
// page starts strictly after the last item seen, so nothing is repeated or skipped.
func (s *suite) paginationStable(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	var want []string
	for i := range 10 {
		// Two events share each start time, so the id breaks ties.
		e := event(t, st, now, ev{title: fmt.Sprintf("e%02d", i), start: time.Duration(i/2+1) * time.Hour, org: org.ID})
		want = append(want, e.ID)
	}
	q := eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventPublished}, EndsAfter: &now}
	p1, err := st.Events(ctx, q, eventide.Page{First: 4})
	must(t, err)
	if !p1.HasNextPage || len(p1.Items) != 4 {
		t.Fatalf("first page: %d items, next %v", len(p1.Items), p1.HasNextPage)
	}
	var got []string
	for _, e := range p1.Items {
		got = append(got, e.ID)
	}
	last := p1.Items[3]
	// Before the cursor, at its instant, and after it.
	event(t, st, now, ev{title: "before", start: 30 * time.Minute, org: org.ID})
	at := event(t, st, now, ev{title: "same instant", start: last.StartsAt.Sub(now), org: org.ID})
	event(t, st, now, ev{title: "after", start: 100 * time.Hour, org: org.ID})
	after := p1.EndCursor()
	var extra []string
	for {
		c, err := st.Events(ctx, q, eventide.Page{First: 3, After: after})
		must(t, err)
		for _, e := range c.Items {
			if strings.HasPrefix(e.Title, "e") {
				got = append(got, e.ID)
			} else {
				extra = append(extra, e.Title)
			}
		}
		if !c.HasNextPage {
			break
		}
		after = c.EndCursor()
	}
	if !slices.Equal(got, wantInPageOrder(t, st, want)) {
		t.Fatalf("original events across the pages: %v, want %v", got, want)
	}
	// "same instant" sorts after the cursor only when its id is greater; new ids are.
	wantExtra := []string{"after"}
	if at.ID > last.ID {
		wantExtra = []string{"same instant", "after"}
	}
	if !slices.Equal(extra, wantExtra) {
		t.Fatalf("events inserted between pages seen on later pages: %v, want %v", extra, wantExtra)
	}
}

// wantInPageOrder sorts ids by (startsAt, id) as the stores do.
func wantInPageOrder(t *testing.T, st Store, ids []string) []string {
	t.Helper()
	evs, err := st.EventsByIDs(ctx, ids)
	must(t, err)
	sort.Slice(evs, func(i, j int) bool {
		if !evs[i].StartsAt.Equal(evs[j].StartsAt) {
			return evs[i].StartsAt.Before(evs[j].StartsAt)
		}
		return evs[i].ID < evs[j].ID
	})
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func (s *suite) badInput(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	e := event(t, st, now, ev{start: time.Hour, org: org.ID})
	_, err := st.Events(ctx, eventide.EventQuery{}, eventide.Page{First: -1})
	code(t, err, eventide.CodeBadUserInput, "negative first")
	c, err := st.Events(ctx, eventide.EventQuery{}, eventide.Page{First: 1})
	must(t, err)
	venueCursor := ""
	must(t, st.CreateVenue(ctx, &eventide.Venue{Name: "V", City: "X", CreatedByID: org.ID}))
	vc, err := st.Venues(ctx, "", eventide.Page{First: 1})
	must(t, err)
	venueCursor = vc.EndCursor()
	for _, bad := range []string{"garbage", "!!!", "ZTox", venueCursor} {
		_, err = st.Events(ctx, eventide.EventQuery{}, eventide.Page{First: 5, After: bad})
		code(t, err, eventide.CodeBadUserInput, "events after "+bad)
		_, err = st.Attendees(ctx, e.ID, eventide.Page{First: 5, After: bad})
		code(t, err, eventide.CodeBadUserInput, "attendees after "+bad)
	}
	_, err = st.Venues(ctx, "", eventide.Page{First: 5, After: c.EndCursor()})
	code(t, err, eventide.CodeBadUserInput, "venues after an event cursor")
	_, err = st.Venues(ctx, "", eventide.Page{First: -1})
	code(t, err, eventide.CodeBadUserInput, "venues negative first")
	_, err = st.Attendees(ctx, e.ID, eventide.Page{First: -2})
	code(t, err, eventide.CodeBadUserInput, "attendees negative first")
	// First above the maximum is clamped, zero is an empty page.
	c, err = st.Events(ctx, eventide.EventQuery{}, eventide.Page{First: 0})
	must(t, err)
	if len(c.Items) != 0 || !c.HasNextPage {
		t.Fatalf("first 0: %d items, next %v", len(c.Items), c.HasNextPage)
	}
}

// ---- registrations ----

// counts reads an event and checks that its counters agree with the registrations of users and
// that nobody waits beside a free seat.
func counts(t *testing.T, st Store, eventID string, us []*eventide.User) (confirmed, waitlisted int) {
	t.Helper()
	e, err := st.EventByID(ctx, eventID)
	must(t, err)
	for _, u := range us {
		r, err := st.RegistrationFor(ctx, eventID, u.ID)
		if eventide.IsCode(err, eventide.CodeNotFound) {
			continue
		}
		must(t, err)
		switch r.Status {
		case eventide.RegistrationConfirmed:
			confirmed++
		case eventide.RegistrationWaitlisted:
			waitlisted++
		}
	}
	att := 0
	after := ""
	for {
		c, err := st.Attendees(ctx, eventID, eventide.Page{First: 7, After: after})
		must(t, err)
		att += len(c.Items)
		if !c.HasNextPage {
			break
		}
		after = c.EndCursor()
	}
	if e.ConfirmedCount != confirmed || e.WaitlistCount != waitlisted || att != confirmed {
		t.Fatalf("event says %d confirmed, %d waitlisted; the registrations say %d and %d; %d attendees listed",
			e.ConfirmedCount, e.WaitlistCount, confirmed, waitlisted, att)
	}
	if waitlisted > 0 && confirmed < e.Capacity {
		t.Fatalf("%d wait beside %d free seats", waitlisted, e.Capacity-confirmed)
	}
	return confirmed, waitlisted
}

func (s *suite) registerRace(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	e := event(t, st, now, ev{start: time.Hour, capacity: 10, org: org.ID})
	us := users(t, st, 40)
	var wg sync.WaitGroup
	regs := make([]*eventide.Registration, len(us))
	errs := make([]error, len(us))
	start := make(chan struct{})
	for i, u := range us {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			regs[i], _, errs[i] = st.Register(ctx, e.ID, u.ID, now)
		}()
	}
	close(start)
	wg.Wait()
	byStatus := map[eventide.RegistrationStatus]int{}
	for i := range us {
		must(t, errs[i])
		byStatus[regs[i].Status]++
	}
	if byStatus[eventide.RegistrationConfirmed] != 10 || byStatus[eventide.RegistrationWaitlisted] != 30 {
		t.Fatalf("40 racers for 10 seats: %v", byStatus)
	}
	if c, w := counts(t, st, e.ID, us); c != 10 || w != 30 {
		t.Fatalf("counts %d/%d", c, w)
	}
	// Registering again returns the same registration and changes nothing.
	for _, i := range []int{0, 39} {
		again, ev2, err := st.Register(ctx, e.ID, us[i].ID, now.Add(time.Minute))
		must(t, err)
		if again.ID != regs[i].ID || again.Status != regs[i].Status || !again.CreatedAt.Equal(regs[i].CreatedAt) {
			t.Fatalf("re-registering: %+v, want %+v", again, regs[i])
		}
		if ev2.ConfirmedCount != 10 || ev2.WaitlistCount != 30 {
			t.Fatalf("re-registering changed the counts: %d/%d", ev2.ConfirmedCount, ev2.WaitlistCount)
		}
	}
}

func (s *suite) waitlistOrder(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	e := event(t, st, now, ev{start: time.Hour, capacity: 2, org: org.ID})
	us := users(t, st, 6)
	for i, u := range us {
		r, ev2, err := st.Register(ctx, e.ID, u.ID, now.Add(time.Duration(i)*time.Millisecond))
		must(t, err)
		want := eventide.RegistrationConfirmed
		if i >= 2 {
			want = eventide.RegistrationWaitlisted
		}
		if r.Status != want || r.EventID != e.ID || r.UserID != u.ID {
			t.Fatalf("registration %d: %+v, want %s", i, r, want)
		}
		if ev2.ConfirmedCount != min(i+1, 2) || ev2.WaitlistCount != max(0, i-1) {
			t.Fatalf("after %d registrations the event says %d/%d", i+1, ev2.ConfirmedCount, ev2.WaitlistCount)
		}
	}
	status := func(u *eventide.User) eventide.RegistrationStatus {
		r, err := st.RegistrationFor(ctx, e.ID, u.ID)
		must(t, err)
		return r.Status
	}
	// A waitlisted user leaving promotes nobody.
	r, ev2, err := st.CancelRegistration(ctx, e.ID, us[3].ID, now)
	must(t, err)
	if r.Status != eventide.RegistrationCancelled || ev2.ConfirmedCount != 2 || ev2.WaitlistCount != 3 {
		t.Fatalf("cancel waitlisted: %+v, event %d/%d", r, ev2.ConfirmedCount, ev2.WaitlistCount)
	}
	// A confirmed user leaving promotes the oldest waiting (us[2]), then us[4].
	_, ev2, err = st.CancelRegistration(ctx, e.ID, us[0].ID, now)
	must(t, err)
	if status(us[2]) != eventide.RegistrationConfirmed || status(us[4]) != eventide.RegistrationWaitlisted {
		t.Fatalf("after a seat was freed: us2 %s, us4 %s", status(us[2]), status(us[4]))
	}
	if ev2.ConfirmedCount != 2 || ev2.WaitlistCount != 2 {
		t.Fatalf("after promotion: %d/%d", ev2.ConfirmedCount, ev2.WaitlistCount)
	}
	_, _, err = st.CancelRegistration(ctx, e.ID, us[1].ID, now)
	must(t, err)
	if status(us[4]) != eventide.RegistrationConfirmed || status(us[5]) != eventide.RegistrationWaitlisted {
		t.Fatal("the second freed seat did not go to the next in line")
	}
	// Cancelling twice, or without registering, is NOT_FOUND.
	_, _, err = st.CancelRegistration(ctx, e.ID, us[0].ID, now)
	code(t, err, eventide.CodeNotFound, "cancel twice")
	_, _, err = st.CancelRegistration(ctx, e.ID, org.ID, now)
	code(t, err, eventide.CodeNotFound, "cancel without registering")
	_, _, err = st.CancelRegistration(ctx, "0123456789abcdef01234567", us[5].ID, now)
	code(t, err, eventide.CodeNotFound, "cancel at an unknown event")
	// Registering again after cancelling is a new arrival: at the back of the queue.
	r, _, err = st.Register(ctx, e.ID, us[0].ID, now.Add(time.Second))
	must(t, err)
	if r.Status != eventide.RegistrationWaitlisted || !r.CreatedAt.Equal(now.Add(time.Second)) {
		t.Fatalf("re-registering after cancelling: %+v", r)
	}
	_, _, err = st.CancelRegistration(ctx, e.ID, us[2].ID, now)
	must(t, err)
	if status(us[5]) != eventide.RegistrationConfirmed || status(us[0]) != eventide.RegistrationWaitlisted {
		t.Fatal("the returning user jumped the queue")
	}
	// Attendees in arrival order: us[4] (arrived 4ms), us[5] (5ms).
	c, err := st.Attendees(ctx, e.ID, eventide.Page{First: 10})
	must(t, err)
	var got []string
	for _, a := range c.Items {
		got = append(got, a.UserID)
	}
	if !slices.Equal(got, []string{us[4].ID, us[5].ID}) {
		t.Fatalf("attendees %v, want us4, us5", got)
	}
	_, err = st.RegistrationFor(ctx, e.ID, org.ID)
	code(t, err, eventide.CodeNotFound, "RegistrationFor without one")
	counts(t, st, e.ID, append(us, org))
}

func (s *suite) capacity(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	e := event(t, st, now, ev{start: time.Hour, capacity: 2, org: org.ID})
	us := users(t, st, 7)
	for i, u := range us {
		_, _, err := st.Register(ctx, e.ID, u.ID, now.Add(time.Duration(i)*time.Millisecond))
		must(t, err)
	}
	setCap := func(n int) (*eventide.Event, error) {
		return st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error { x.Capacity = n; return nil })
	}
	_, err := setCap(1)
	code(t, err, eventide.CodeBadUserInput, "capacity below the confirmed count")
	if e2, _ := st.EventByID(ctx, e.ID); e2.Capacity != 2 {
		t.Fatalf("a refused capacity was written: %d", e2.Capacity)
	}
	e2, err := setCap(4)
	must(t, err)
	if e2.Capacity != 4 || e2.ConfirmedCount != 4 || e2.WaitlistCount != 3 {
		t.Fatalf("raised to 4: %d/%d of %d", e2.ConfirmedCount, e2.WaitlistCount, e2.Capacity)
	}
	for i, u := range us {
		r, err := st.RegistrationFor(ctx, e.ID, u.ID)
		must(t, err)
		want := eventide.RegistrationConfirmed
		if i >= 4 {
			want = eventide.RegistrationWaitlisted
		}
		if r.Status != want {
			t.Fatalf("user %d is %s, want %s: promotions must go in arrival order", i, r.Status, want)
		}
	}
	e2, err = setCap(100)
	must(t, err)
	if e2.ConfirmedCount != 7 || e2.WaitlistCount != 0 {
		t.Fatalf("raised to 100: %d/%d", e2.ConfirmedCount, e2.WaitlistCount)
	}
	_, err = setCap(6)
	code(t, err, eventide.CodeBadUserInput, "lowering below confirmed")
	e2, err = setCap(7)
	must(t, err)
	if e2.Capacity != 7 {
		t.Fatalf("lowering to exactly the confirmed count: %d", e2.Capacity)
	}
	counts(t, st, e.ID, us)
}

func (s *suite) registerRefused(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	u := user(t, st, "U", eventide.RoleUser)
	cancelled := event(t, st, now, ev{start: time.Hour, status: eventide.EventCancelled, org: org.ID})
	past := event(t, st, now, ev{start: -2 * time.Hour, org: org.ID})
	draft := event(t, st, now, ev{start: time.Hour, status: eventide.EventDraft, org: org.ID})
	_, _, err := st.Register(ctx, cancelled.ID, u.ID, now)
	code(t, err, eventide.CodeBadUserInput, "register for a cancelled event")
	_, _, err = st.Register(ctx, past.ID, u.ID, now)
	code(t, err, eventide.CodeBadUserInput, "register for an ended event")
	_, _, err = st.Register(ctx, draft.ID, u.ID, now)
	code(t, err, eventide.CodeNotFound, "register for a draft")
	_, _, err = st.Register(ctx, "0123456789abcdef01234567", u.ID, now)
	code(t, err, eventide.CodeNotFound, "register for an unknown event")
	_, _, err = st.Register(ctx, "junk", u.ID, now)
	code(t, err, eventide.CodeNotFound, "register for a malformed id")
	for _, e := range []*eventide.Event{cancelled, past, draft} {
		counts(t, st, e.ID, []*eventide.User{u})
		if x, _ := st.EventByID(ctx, e.ID); x.ConfirmedCount+x.WaitlistCount != 0 {
			t.Fatalf("a refused registration counted: %+v", x)
		}
	}
}

func (s *suite) registrationsOf(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	fan := user(t, st, "Fan", eventide.RoleUser)
	ids := make([]string, 3)
	for i := range ids {
		ids[i] = event(t, st, now, ev{start: time.Hour, org: org.ID}).ID
	}
	for _, id := range ids[:2] {
		_, _, err := st.Register(ctx, id, fan.ID, now)
		must(t, err)
	}
	regs, err := st.RegistrationsOf(ctx, fan.ID, append(slices.Clone(ids), "not-an-id"))
	must(t, err)
	got := map[string]bool{}
	for _, r := range regs {
		if r.UserID != fan.ID || r.Status != eventide.RegistrationConfirmed {
			t.Fatalf("registration %+v", r)
		}
		got[r.EventID] = true
	}
	if len(regs) != 2 || !got[ids[0]] || !got[ids[1]] {
		t.Fatalf("got %v, want the registrations at %v", got, ids[:2])
	}
	if regs, err := st.RegistrationsOf(ctx, org.ID, ids); err != nil || len(regs) != 0 {
		t.Fatalf("organizer: %v %v", regs, err)
	}
	if regs, err := st.RegistrationsOf(ctx, "not-a-user", ids); err != nil || len(regs) != 0 {
		t.Fatalf("malformed user: %v %v", regs, err)
	}
}

// ---- a failure in the middle of each multi-step write ----

// crash fails each multi-step write after each of its steps in turn: whatever the store
// returns, the counters must agree with the registrations afterwards, nobody may wait beside a
// free seat, and the write must succeed once retried.
func (s *suite) crash(t *testing.T) {
	type op struct {
		name string
		// setup prepares the event: capacity 2, users registered in order.
		capacity, before int
		do               func(st Store, e *eventide.Event, us []*eventide.User, now time.Time) error
	}
	ops := []op{
		{name: "register-confirmed", capacity: 2, before: 1, do: func(st Store, e *eventide.Event, us []*eventide.User, now time.Time) error {
			_, _, err := st.Register(ctx, e.ID, us[1].ID, now.Add(time.Second))
			return err
		}},
		{name: "register-waitlisted", capacity: 2, before: 2, do: func(st Store, e *eventide.Event, us []*eventide.User, now time.Time) error {
			_, _, err := st.Register(ctx, e.ID, us[2].ID, now.Add(time.Second))
			return err
		}},
		{name: "cancel-confirmed", capacity: 2, before: 4, do: func(st Store, e *eventide.Event, us []*eventide.User, now time.Time) error {
			_, _, err := st.CancelRegistration(ctx, e.ID, us[0].ID, now)
			return err
		}},
		{name: "cancel-confirmed-nobody-waits", capacity: 2, before: 2, do: func(st Store, e *eventide.Event, us []*eventide.User, now time.Time) error {
			_, _, err := st.CancelRegistration(ctx, e.ID, us[0].ID, now)
			return err
		}},
		{name: "cancel-waitlisted", capacity: 2, before: 4, do: func(st Store, e *eventide.Event, us []*eventide.User, now time.Time) error {
			_, _, err := st.CancelRegistration(ctx, e.ID, us[3].ID, now)
			return err
		}},
		{name: "raise-capacity", capacity: 2, before: 5, do: func(st Store, e *eventide.Event, us []*eventide.User, now time.Time) error {
			_, err := st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error { x.Capacity = 4; return nil })
			return err
		}},
		{name: "remove-confirmed", capacity: 2, before: 4, do: func(st Store, e *eventide.Event, us []*eventide.User, now time.Time) error {
			r, err := st.RegistrationFor(ctx, e.ID, us[1].ID)
			if err != nil {
				return err
			}
			_, _, err = st.RemoveRegistration(ctx, r.ID, "removed", now)
			return err
		}},
		{name: "cancel-event", capacity: 2, before: 5, do: func(st Store, e *eventide.Event, us []*eventide.User, now time.Time) error {
			_, err := st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error {
				x.Status, x.CancelReason = eventide.EventCancelled, "called off"
				return nil
			})
			return err
		}},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			for steps := 0; steps <= 3; steps++ {
				t.Run(fmt.Sprintf("after-%d", steps), func(t *testing.T) {
					s.skipKnown(t)
					st := s.open(t)
					f, ok := st.(Faults)
					if !ok {
						t.Skip("this store cannot inject a failure between the steps of a write")
					}
					now := clock()
					org := user(t, st, "Org", eventide.RoleOrganizer)
					e := event(t, st, now, ev{start: time.Hour, capacity: o.capacity, org: org.ID})
					us := users(t, st, 5)
					for i := range o.before {
						_, _, err := st.Register(ctx, e.ID, us[i].ID, now.Add(time.Duration(i)*time.Millisecond))
						must(t, err)
					}
					f.FailWritesAfter(steps)
					err := o.do(st, e, us, now)
					f.Heal()
					if err != nil && eventide.ErrorCode(err) != eventide.CodeUnavailable && eventide.ErrorCode(err) != eventide.CodeInternal {
						t.Fatalf("the failed write returned %v; want UNAVAILABLE or INTERNAL", err)
					}
					counts(t, st, e.ID, us)
					cancelledWithEvent(t, st, e.ID, us)
					// Retried, it completes (or was complete) and the counts still agree.
					if err != nil {
						if rerr := o.do(st, e, us, now); rerr != nil && !eventide.IsCode(rerr, eventide.CodeNotFound) {
							t.Fatalf("retry after the failure: %v", rerr)
						}
						counts(t, st, e.ID, us)
						cancelledWithEvent(t, st, e.ID, us)
					}
				})
			}
		})
	}
}

// cancelledWithEvent fails when a cancelled event keeps an active registration.
func cancelledWithEvent(t *testing.T, st Store, eventID string, us []*eventide.User) {
	t.Helper()
	e, err := st.EventByID(ctx, eventID)
	must(t, err)
	if e.Status != eventide.EventCancelled {
		return
	}
	for i, u := range us {
		if r, err := st.RegistrationFor(ctx, eventID, u.ID); err == nil && r.Status != eventide.RegistrationCancelled {
			t.Fatalf("the event is cancelled but user %d is still %s", i, r.Status)
		}
	}
}
