package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

// venueUpdate: a venue keeps its zone (UTC when it names none); UpdateVenue changes it and its
// events take its new city and zone in the same write, so a city filter finds them there.
func (s *suite) venueUpdate(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	plain := &eventide.Venue{Name: "Plain", Address: "1 Street", City: "Nowhere", CreatedByID: org.ID}
	must(t, st.CreateVenue(ctx, plain))
	if plain.TimeZone != "UTC" {
		t.Fatalf("a venue without a zone: %q, want UTC", plain.TimeZone)
	}
	capy := 100
	v := &eventide.Venue{Name: "Hall", Address: "2 Street", City: "Lisbon", Capacity: &capy, CreatedByID: org.ID, TimeZone: "Europe/Lisbon"}
	must(t, st.CreateVenue(ctx, v))
	got, err := st.VenueByID(ctx, v.ID)
	must(t, err)
	if got.TimeZone != "Europe/Lisbon" {
		t.Fatalf("VenueByID zone %q", got.TimeZone)
	}
	e := event(t, st, now, ev{title: "At the hall", venue: v.ID, city: "Lisbon", start: time.Hour, org: org.ID})
	other := event(t, st, now, ev{title: "Elsewhere", city: "Lisbon", start: time.Hour, org: org.ID})

	_, err = st.UpdateVenue(ctx, "0123456789abcdef01234567", func(*eventide.Venue) error { return nil })
	code(t, err, eventide.CodeNotFound, "UpdateVenue of an unknown venue")
	refused := eventide.InvalidField("name", "no")
	_, err = st.UpdateVenue(ctx, v.ID, func(x *eventide.Venue) error { x.Name = "Changed"; return refused })
	code(t, err, eventide.CodeBadUserInput, "a change that fails")
	if got, _ := st.VenueByID(ctx, v.ID); got.Name != "Hall" {
		t.Fatalf("a failed change was stored: %q", got.Name)
	}

	up, err := st.UpdateVenue(ctx, v.ID, func(x *eventide.Venue) error {
		x.Name, x.City, x.TimeZone, x.Capacity = "Halle", "Berlin", "Europe/Berlin", nil
		return nil
	})
	must(t, err)
	if up.ID != v.ID || up.Name != "Halle" || up.City != "Berlin" || up.TimeZone != "Europe/Berlin" || up.Capacity != nil || up.CreatedByID != org.ID {
		t.Fatalf("UpdateVenue = %+v", up)
	}
	got, err = st.VenueByID(ctx, v.ID)
	must(t, err)
	if got.Name != "Halle" || got.City != "Berlin" || got.TimeZone != "Europe/Berlin" || got.Capacity != nil {
		t.Fatalf("after UpdateVenue, VenueByID = %+v", got)
	}
	ge, err := st.EventByID(ctx, e.ID)
	must(t, err)
	if ge.City != "Berlin" || ge.TimeZone != "Europe/Berlin" {
		t.Fatalf("the venue's event: city %q zone %q, want Berlin, Europe/Berlin", ge.City, ge.TimeZone)
	}
	if ge.Revision != e.Revision {
		t.Fatalf("a venue's change is not an edit of its events: revision %d -> %d", e.Revision, ge.Revision)
	}
	if titles := eventTitles(t, st, eventide.EventQuery{City: "berlin"}, 5); !slices.Equal(titles, []string{"At the hall"}) {
		t.Fatalf("events in Berlin: %v", titles)
	}
	if titles := eventTitles(t, st, eventide.EventQuery{City: "lisbon"}, 5); !slices.Equal(titles, []string{"Elsewhere"}) {
		t.Fatalf("events in Lisbon: %v", titles)
	}
	if go2, _ := st.EventByID(ctx, other.ID); go2.City != "Lisbon" {
		t.Fatalf("an event at no venue changed city: %q", go2.City)
	}
	if c, err := st.Venues(ctx, "berlin", eventide.Page{First: 5}); err != nil || len(c.Items) != 1 || c.Items[0].ID != v.ID {
		t.Fatalf("venues in Berlin: %+v, %v", c, err)
	}
}

// eventZoneOnline: an event keeps its zone, online flag and link; every UpdateEvent bumps its
// revision, registrations do not.
func (s *suite) eventZoneOnline(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	u := user(t, st, "Attendee", eventide.RoleUser)
	x := &eventide.Event{Title: "Webinar", StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour),
		Status: eventide.EventPublished, Capacity: 5, OrganizerID: org.ID, TimeZone: "America/New_York",
		Online: true, OnlineURL: "https://meet.example.com/abc?x=1"}
	must(t, st.CreateEvent(ctx, x))
	if x.Revision != 0 || x.TimeZone != "America/New_York" || !x.Online || x.OnlineURL != "https://meet.example.com/abc?x=1" {
		t.Fatalf("created %+v", x)
	}
	got, err := st.EventByID(ctx, x.ID)
	must(t, err)
	if got.Revision != 0 || got.TimeZone != "America/New_York" || !got.Online || got.OnlineURL != x.OnlineURL {
		t.Fatalf("EventByID %+v", got)
	}
	plain := event(t, st, now, ev{title: "Plain", start: time.Hour, org: org.ID})
	if plain.TimeZone != "UTC" || plain.Online || plain.OnlineURL != "" {
		t.Fatalf("an event without a zone: %q %v %q", plain.TimeZone, plain.Online, plain.OnlineURL)
	}

	_, _, err = st.Register(ctx, x.ID, u.ID, now)
	must(t, err)
	if got, _ := st.EventByID(ctx, x.ID); got.Revision != 0 {
		t.Fatalf("a registration bumped the revision to %d", got.Revision)
	}
	up, err := st.UpdateEvent(ctx, x.ID, func(e *eventide.Event) error {
		e.Title, e.TimeZone, e.OnlineURL = "Webinar 2", "Asia/Tokyo", "https://meet.example.com/def"
		return nil
	})
	must(t, err)
	if up.Revision != 1 || up.TimeZone != "Asia/Tokyo" || up.OnlineURL != "https://meet.example.com/def" || !up.Online {
		t.Fatalf("after one update: %+v", up)
	}
	up, err = st.UpdateEvent(ctx, x.ID, func(e *eventide.Event) error {
		e.Online, e.OnlineURL = false, ""
		return nil
	})
	must(t, err)
	got, err = st.EventByID(ctx, x.ID)
	must(t, err)
	if up.Revision != 2 || got.Revision != 2 || got.Online || got.OnlineURL != "" || got.Title != "Webinar 2" {
		t.Fatalf("after two updates: returned rev %d, read %+v", up.Revision, got)
	}
	_, err = st.UpdateEvent(ctx, x.ID, func(*eventide.Event) error { return eventide.InvalidField("title", "no") })
	code(t, err, eventide.CodeBadUserInput, "a refused change")
	if got, _ := st.EventByID(ctx, x.ID); got.Revision != 2 {
		t.Fatalf("a refused change bumped the revision to %d", got.Revision)
	}
}

// calendarRegistrations: a user's registrations in every status, newest first, bounded; other
// users' are left out.
func (s *suite) calendarRegistrations(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	us := users(t, st, 2)
	a := event(t, st, now, ev{title: "A", start: time.Hour, org: org.ID, capacity: 1})
	b := event(t, st, now, ev{title: "B", start: 2 * time.Hour, org: org.ID})
	c := event(t, st, now, ev{title: "C", start: 3 * time.Hour, org: org.ID})
	_, _, err := st.Register(ctx, a.ID, us[1].ID, now)
	must(t, err)
	for i, e := range []*eventide.Event{a, b, c} {
		_, _, err := st.Register(ctx, e.ID, us[0].ID, now.Add(time.Duration(i)*time.Millisecond))
		must(t, err)
		time.Sleep(2 * time.Millisecond) // distinct arrival times
	}
	_, _, err = st.CancelRegistration(ctx, b.ID, us[0].ID, now)
	must(t, err)
	regs, err := st.CalendarRegistrations(ctx, us[0].ID, 10)
	must(t, err)
	var got []string
	for _, r := range regs {
		if r.UserID != us[0].ID {
			t.Fatalf("another user's registration: %+v", r)
		}
		got = append(got, r.EventID+":"+string(r.Status))
	}
	want := []string{c.ID + ":CONFIRMED", b.ID + ":CANCELLED", a.ID + ":WAITLISTED"}
	if !slices.Equal(got, want) {
		t.Fatalf("CalendarRegistrations = %v, want %v", got, want)
	}
	if regs, err := st.CalendarRegistrations(ctx, us[0].ID, 1); err != nil || len(regs) != 1 || regs[0].EventID != c.ID {
		t.Fatalf("limit 1: %+v, %v", regs, err)
	}
	if regs, err := st.CalendarRegistrations(ctx, "junk", 10); err != nil || len(regs) != 0 {
		t.Fatalf("a bad id: %+v, %v", regs, err)
	}
}

// calendarSecrets: none at first; a set secret is read back and replaced by the next, per user.
func (s *suite) calendarSecrets(t *testing.T) {
	st := s.open(t)
	us := users(t, st, 2)
	if sec, err := st.CalendarSecret(ctx, us[0].ID); err != nil || sec != "" {
		t.Fatalf("before any: %q, %v", sec, err)
	}
	must(t, st.SetCalendarSecret(ctx, us[0].ID, "one"))
	must(t, st.SetCalendarSecret(ctx, us[1].ID, "other"))
	must(t, st.SetCalendarSecret(ctx, us[0].ID, "two"))
	for id, want := range map[string]string{us[0].ID: "two", us[1].ID: "other"} {
		if sec, err := st.CalendarSecret(ctx, id); err != nil || sec != want {
			t.Fatalf("secret of %s: %q, %v, want %q", id, sec, err, want)
		}
	}
	if sec, err := st.CalendarSecret(ctx, "junk"); err != nil || sec != "" {
		t.Fatalf("a bad id: %q, %v", sec, err)
	}
}
