package seed

import (
	"bytes"
	"context"
	"log/slog"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/store"
	"github.com/eventide/server/store/embedded"
)

var testNow = time.Date(2026, time.March, 14, 15, 4, 5, 0, time.UTC)

var allowedTags = []string{"music", "tech", "food", "art", "sports", "workshop", "meetup", "family", "outdoor", "film", "talks", "wellness"}

func TestPlanIsDeterministic(t *testing.T) {
	a, b := newPlan(testNow), newPlan(testNow)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two plans for the same now differ")
	}
	// Relative to now: a later now shifts dates and keeps everything else.
	later := testNow.Add(7 * 24 * time.Hour)
	c := newPlan(later)
	for i := range a.events {
		if a.events[i].title != c.events[i].title || len(a.events[i].regs) != len(c.events[i].regs) {
			t.Fatalf("event %d differs between plans a week apart", i)
		}
	}
}

func TestPlanShape(t *testing.T) {
	for _, now := range []time.Time{testNow, time.Date(2026, time.July, 1, 23, 30, 0, 0, time.UTC), time.Date(2025, time.December, 31, 0, 15, 0, 0, time.UTC)} {
		t.Run(now.Format(time.DateOnly), func(t *testing.T) { checkPlan(t, newPlan(now), now) })
	}
}

func checkPlan(t *testing.T, p *plan, now time.Time) {
	t.Helper()
	// Users.
	if len(p.users) != 20 {
		t.Errorf("users = %d, want 20", len(p.users))
	}
	emailRE := regexp.MustCompile(`^[a-z]+\.[a-z]+@example\.com$`)
	seen := map[string]bool{}
	orgs := 0
	for _, u := range p.users {
		if !emailRE.MatchString(u.email) {
			t.Errorf("email %q is not firstname.lastname@example.com", u.email)
		}
		first, last, _ := strings.Cut(u.name, " ")
		if want := strings.ToLower(first + "." + last + "@example.com"); u.email != want {
			t.Errorf("email %q for %q, want %q", u.email, u.name, want)
		}
		if seen[u.email] {
			t.Errorf("duplicate email %q", u.email)
		}
		seen[u.email] = true
		if u.role == eventide.RoleOrganizer {
			orgs++
		} else if u.role != eventide.RoleUser {
			t.Errorf("user %q has role %q", u.email, u.role)
		}
	}
	if orgs != 6 {
		t.Errorf("organizers = %d, want 6", orgs)
	}
	if p.users[p.exampleOrganizer].role != eventide.RoleOrganizer || p.users[p.exampleUser].role != eventide.RoleUser {
		t.Error("example emails have the wrong roles")
	}

	// Venues.
	cities := map[string]bool{}
	noCap := 0
	for _, v := range p.venues {
		cities[v.city] = true
		if v.capacity == 0 {
			noCap++
		} else if v.capacity < 30 || v.capacity > 2000 {
			t.Errorf("venue %q capacity %d outside 30..2000", v.name, v.capacity)
		}
		if v.name == "" || v.address == "" || p.users[v.creator].role != eventide.RoleOrganizer || p.users[v.creator].city != v.city {
			t.Errorf("venue %+v is incomplete or created by the wrong organizer", v)
		}
	}
	if len(p.venues) < 12 || len(cities) < 5 || noCap < 1 || noCap > 2 {
		t.Errorf("venues = %d in %d cities, %d without capacity", len(p.venues), len(cities), noCap)
	}

	// Events.
	if len(p.events) != 60 {
		t.Errorf("events = %d, want 60", len(p.events))
	}
	count := map[eventide.EventStatus]int{}
	upcoming, ended, noVenue, small, full, regs, late := 0, 0, 0, 0, 0, 0, 0
	titles := map[string]bool{}
	for _, e := range p.events {
		count[e.status]++
		if titles[e.title] {
			t.Errorf("duplicate title %q", e.title)
		}
		titles[e.title] = true
		if strings.Contains(e.title+e.description, "{") {
			t.Errorf("unreplaced placeholder in %q", e.title)
		}
		if n := strings.Count(e.description, ". ") + 1; e.description == "" || n > 3 {
			t.Errorf("%q: description of %d sentences", e.title, n)
		}
		if p.users[e.organizer].role != eventide.RoleOrganizer {
			t.Errorf("%q organized by a plain user", e.title)
		}
		if len(e.tags) < 1 || len(e.tags) > 3 {
			t.Errorf("%q has %d tags", e.title, len(e.tags))
		}
		for _, tag := range e.tags {
			if !slices.Contains(allowedTags, tag) {
				t.Errorf("%q has tag %q", e.title, tag)
			}
		}
		d := e.endsAt.Sub(e.startsAt)
		if d < time.Hour || d > 8*time.Hour {
			t.Errorf("%q lasts %v", e.title, d)
		}
		if e.capacity <= 0 {
			t.Errorf("%q capacity %d", e.title, e.capacity)
		}
		if e.capacity <= 15 {
			small++
		}
		if e.venue < 0 {
			noVenue++
		} else if vc := p.venues[e.venue].capacity; vc > 0 && e.capacity > vc {
			t.Errorf("%q capacity %d above the venue's %d", e.title, e.capacity, vc)
		}
		switch {
		case e.startsAt.After(now) && e.startsAt.Before(now.Add(91*24*time.Hour)):
			upcoming++
		case e.endsAt.Before(now):
			ended++
			if e.status != eventide.EventPublished {
				t.Errorf("past event %q is %s", e.title, e.status)
			}
		default:
			t.Errorf("%q starts at %v, neither upcoming within 90 days nor ended", e.title, e.startsAt)
		}
		if (e.status == eventide.EventCancelled) != (e.cancelReason != "") {
			t.Errorf("%q: status %s with cancel reason %q", e.title, e.status, e.cancelReason)
		}
		if e.cancelledLate {
			late++
			if e.status != eventide.EventCancelled || len(e.regs) < 2 || len(e.cancels) > 0 {
				t.Errorf("%q, cancelled after registrations: status %s, %d registrations, %d cancellations", e.title, e.status, len(e.regs), len(e.cancels))
			}
		}
		if len(e.regs) > 0 && ((e.status != eventide.EventPublished && !e.cancelledLate) || !e.endsAt.After(now)) {
			t.Errorf("%q (%s, ends %v) has registrations", e.title, e.status, e.endsAt)
		}
		who := map[int]bool{}
		for k, r := range e.regs {
			if who[r.user] || r.user == e.organizer {
				t.Errorf("%q: user %d registers twice or is the organizer", e.title, r.user)
			}
			who[r.user] = true
			if !r.at.Before(now) || (k > 0 && !r.at.After(e.regs[k-1].at)) {
				t.Errorf("%q: registration %d at %v is out of order", e.title, k, r.at)
			}
		}
		for _, c := range e.cancels {
			if !who[c.user] || !c.at.After(e.regs[len(e.regs)-1].at) || !c.at.Before(now) {
				t.Errorf("%q: bad cancellation %+v", e.title, c)
			}
		}
		if e.full {
			full++
			if len(e.regs) <= e.capacity {
				t.Errorf("full event %q: %d registrations for %d seats", e.title, len(e.regs), e.capacity)
			}
		}
		regs += len(e.regs)
	}
	if count[eventide.EventPublished] < 48 || count[eventide.EventDraft] < 5 || count[eventide.EventCancelled] < 3 {
		t.Errorf("statuses = %v", count)
	}
	if late != 1 {
		t.Errorf("%d cancelled events with registrations, want 1", late)
	}
	if upcoming < 45 || ended < 4 || noVenue < 2 || small < 5 || full < 3 {
		t.Errorf("upcoming %d, ended %d, without venue %d, small %d, full %d", upcoming, ended, noVenue, small, full)
	}
	t.Logf("statuses %v, upcoming %d, ended %d, without venue %d, small %d, full %d, registrations %d",
		count, upcoming, ended, noVenue, small, full, regs)
}

// TestDemoEmbedded seeds the real embedded store and checks what the store then holds.
func TestDemoEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := embedded.Start(ctx, embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(context.Background()); err != nil {
			t.Errorf("close embedded: %v", err)
		}
	})
	st, err := store.Open(ctx, store.Options{
		URI: srv.URI(), Database: "seedtest", PoolSize: 5,
		ConnectTimeout: 5 * time.Second, ServerSelectionTimeout: 5 * time.Second, MaxConnIdleTime: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	now := time.Now()
	hash := []byte("$2a$04$not-a-real-hash-but-bytes-all-the-same")

	start := time.Now()
	seeded, err := Demo(ctx, st, hash, now, log)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !seeded {
		t.Fatal("Demo on an empty store returned seeded=false")
	}
	t.Logf("seed took %v on the embedded store", took)
	t.Logf("log: %s", strings.TrimSpace(logs.String()))

	if got := strings.Count(logs.String(), "\n"); got != 1 {
		t.Errorf("Demo logged %d lines at INFO, want 1", got)
	}
	for _, want := range []string{DemoPassword, "sofia.almeida@example.com", "lucas.martin@example.com"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log does not mention %q", want)
		}
	}

	all := eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventDraft, eventide.EventPublished, eventide.EventCancelled}}
	counts := func() [3]int {
		t.Helper()
		u, err := st.CountUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		v, err := st.CountVenues(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		e, err := st.CountEvents(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		return [3]int{u, v, e}
	}
	before := counts()
	if before[0] < 20 || before[1] < 12 || before[2] < 60 {
		t.Errorf("users, venues, events = %v; want at least 20, 12, 60", before)
	}
	pub, err := st.CountEvents(ctx, eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventPublished}})
	if err != nil {
		t.Fatal(err)
	}
	if pub < 48 {
		t.Errorf("published events = %d, want at least 48", pub)
	}

	var events []*eventide.Event
	for page := (eventide.Page{First: eventide.MaxPageSize}); ; {
		c, err := st.Events(ctx, all, page)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, c.Items...)
		if !c.HasNextPage {
			break
		}
		page.After = c.EndCursor()
	}
	if len(events) != before[2] {
		t.Errorf("listed %d events, counted %d", len(events), before[2])
	}
	// The event cancelled after it took registrations: each one cancelled with it, with its
	// reason, and no seat counted.
	var late *plannedEvent
	for i, pe := range newPlan(now).events {
		if pe.cancelledLate {
			late = &newPlan(now).events[i]
		}
	}
	lateFound := false
	for _, e := range events {
		if late == nil || e.Title != late.title || e.Status != eventide.EventCancelled {
			continue
		}
		lateFound = true
		c, err := st.EventRegistrations(ctx, e.ID, "", eventide.Page{First: 50})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Items) != len(late.regs) || e.ConfirmedCount != 0 || e.WaitlistCount != 0 {
			t.Errorf("%q: %d registrations (planned %d), %d confirmed, %d waitlisted", e.Title, len(c.Items), len(late.regs), e.ConfirmedCount, e.WaitlistCount)
		}
		for _, r := range c.Items {
			if r.Status != eventide.RegistrationCancelled || r.CancelReason != late.cancelReason {
				t.Errorf("%q: a registration is %s (reason %q), want CANCELLED with %q", e.Title, r.Status, r.CancelReason, late.cancelReason)
			}
		}
	}
	if !lateFound {
		t.Error("no cancelled event with cancelled registrations in the demo data")
	}
	fullWithWaitlist, confirmed, waitlisted := 0, 0, 0
	for _, e := range events {
		if e.ConfirmedCount > e.Capacity || e.ConfirmedCount < 0 || e.WaitlistCount < 0 {
			t.Errorf("%q: %d confirmed, %d waitlisted for %d seats", e.Title, e.ConfirmedCount, e.WaitlistCount, e.Capacity)
		}
		if e.WaitlistCount > 0 && e.ConfirmedCount < e.Capacity {
			t.Errorf("%q: %d waitlisted while %d of %d seats are taken", e.Title, e.WaitlistCount, e.ConfirmedCount, e.Capacity)
		}
		if e.Status != eventide.EventPublished && e.ConfirmedCount+e.WaitlistCount > 0 {
			t.Errorf("%s event %q has registrations", e.Status, e.Title)
		}
		if e.Status == eventide.EventPublished && e.StartsAt.After(now) && e.ConfirmedCount == e.Capacity && e.WaitlistCount > 0 {
			fullWithWaitlist++
			att, err := st.Attendees(ctx, e.ID, eventide.Page{First: eventide.MaxPageSize})
			if err != nil {
				t.Fatal(err)
			}
			if len(att.Items) != e.ConfirmedCount {
				t.Errorf("%q: %d attendees listed, counter says %d", e.Title, len(att.Items), e.ConfirmedCount)
			}
		}
		confirmed += e.ConfirmedCount
		waitlisted += e.WaitlistCount
	}
	if fullWithWaitlist < 3 {
		t.Errorf("%d published upcoming events are full with a waitlist, want at least 3", fullWithWaitlist)
	}
	t.Logf("users %d, venues %d, events %d (published %d); %d confirmed, %d waitlisted; %d full with a waitlist",
		before[0], before[1], before[2], pub, confirmed, waitlisted, fullWithWaitlist)

	// The example organizer can be looked up and has the demo hash.
	u, err := st.UserByEmail(ctx, "sofia.almeida@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.Role != eventide.RoleOrganizer || !bytes.Equal(u.PasswordHash, hash) {
		t.Errorf("sofia: role %s, hash %q", u.Role, u.PasswordHash)
	}

	// A second run leaves a store with data alone.
	seeded, err = Demo(ctx, st, hash, now, log)
	if err != nil {
		t.Fatal(err)
	}
	if seeded {
		t.Error("a second Demo returned seeded=true")
	}
	if after := counts(); after != before {
		t.Errorf("counts after a second Demo = %v, want %v", after, before)
	}
}
