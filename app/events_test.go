package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/eventide/server/app"
	"github.com/eventide/server/eventide"
)

func TestCreateEvent(t *testing.T) {
	e := newEnv(t)
	org := e.user(t, "Olga", eventide.RoleOrganizer)
	lisbon := e.venue(t, org, "Hall", "Lisbon", "Europe/Lisbon", ptr(50))

	t.Run("OK", func(t *testing.T) {
		in := e.input("  Go night  ", 40)
		in.Tags = []string{" Go ", "go", "", "Meetup"}
		in.VenueID = app.To(&lisbon.ID)
		ev, err := e.Events.Create(as(org), in)
		must(t, err)
		stored, err := e.store.EventByID(context.Background(), ev.ID)
		must(t, err)
		if stored.Status != eventide.EventDraft || stored.OrganizerID != org.ID || stored.Title != "Go night" ||
			stored.City != "Lisbon" || stored.TimeZone != "Europe/Lisbon" || len(stored.Tags) != 2 || stored.Tags[0] != "go" || stored.Tags[1] != "meetup" {
			t.Fatalf("stored %+v", stored)
		}
		if got := e.events.take(); len(got) != 0 {
			t.Fatalf("a new draft was published to %d eventUpdated messages", len(got))
		}
	})
	t.Run("OKOnlineWithItsZone", func(t *testing.T) {
		in := e.input("Stream", 10)
		in.Online, in.OnlineURL, in.TimeZone = ptr(true), ptr(" https://example.com/live "), ptr("Europe/Berlin")
		ev, err := e.Events.Create(as(org), in)
		must(t, err)
		if ev.OnlineURL != "https://example.com/live" || ev.TimeZone != "Europe/Berlin" {
			t.Fatalf("online event %+v", ev)
		}
	})

	for _, c := range []struct {
		name    string
		edit    func(*app.EventInput)
		message string
	}{
		{"ErrStartsInPast", func(in *app.EventInput) { in.StartsAt = ptr(e.now.Add(-time.Minute)) },
			"startsAt: a new event may not start in the past"},
		{"ErrEndsBeforeStart", func(in *app.EventInput) { in.EndsAt = in.StartsAt }, "endsAt: must be after startsAt"},
		{"ErrEmptyTitle", func(in *app.EventInput) { in.Title = ptr("   ") }, "title: must not be empty"},
		{"ErrTitleTooLong", func(in *app.EventInput) { in.Title = ptr(string(make([]rune, app.MaxTitle+1))) },
			"title: must be at most 200 characters"},
		{"ErrCapacityZero", func(in *app.EventInput) { in.Capacity = ptr(0) }, "capacity: must be between 1 and 1000000"},
		{"ErrCapacityOverVenue", func(in *app.EventInput) { in.Capacity, in.VenueID = ptr(51), app.To(&lisbon.ID) },
			"capacity: must be at most the venue's capacity (50)"},
		{"ErrNoSuchVenue", func(in *app.EventInput) { in.VenueID = app.To(ptr("0123456789abcdef01234567")) },
			`venueId: no venue with id "0123456789abcdef01234567"`},
		{"ErrZoneNotTheVenue's", func(in *app.EventInput) { in.VenueID, in.TimeZone = app.To(&lisbon.ID), ptr("Europe/Paris") },
			"timeZone: an event at a venue is in the venue's time zone (Europe/Lisbon)"},
		{"ErrOnlineWithoutZone", func(in *app.EventInput) { in.Online = ptr(true) },
			"timeZone: an online event without a venue must name its time zone"},
		{"ErrLinkOfAnOfflineEvent", func(in *app.EventInput) { in.OnlineURL = ptr("https://example.com") },
			"onlineUrl: only an online event has a link (set online: true)"},
		{"ErrLinkNotHTTP", func(in *app.EventInput) {
			in.Online, in.TimeZone, in.OnlineURL = ptr(true), ptr("UTC"), ptr("javascript:alert(1)")
		},
			"onlineUrl: must be an http or https URL of at most 2000 characters"},
		{"ErrTooManyTags", func(in *app.EventInput) { in.Tags = make([]string, app.MaxTags+1) }, "tags: at most 20 tags"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := e.input("Talk", 10)
			c.edit(&in)
			_, err := e.Events.Create(as(org), in)
			wantErr(t, err, eventide.CodeBadUserInput, c.message)
		})
	}
}

func TestChangeEventOwnership(t *testing.T) {
	e := newEnv(t)
	org := e.user(t, "Olga", eventide.RoleOrganizer)
	other := e.user(t, "Otto", eventide.RoleOrganizer)
	admin := e.user(t, "Ada", eventide.RoleAdmin)
	draft, err := e.Events.Create(as(org), e.input("Draft", 10))
	must(t, err)

	t.Run("ErrNotFoundForADraftOfAnother", func(t *testing.T) {
		_, err := e.Events.Update(as(other), draft.ID, app.EventInput{Title: ptr("Mine")})
		wantErr(t, err, eventide.CodeNotFound, `event "`+draft.ID+`" not found`)
	})
	t.Run("ErrNotFoundForAnonymous", func(t *testing.T) {
		_, err := e.Events.Publish(as(nil), draft.ID)
		wantErr(t, err, eventide.CodeNotFound, `event "`+draft.ID+`" not found`)
	})
	ev := e.event(t, org, 10)
	e.events.take()
	t.Run("ErrForbiddenForAnotherOrganizer", func(t *testing.T) {
		_, err := e.Events.Update(as(other), ev.ID, app.EventInput{Title: ptr("Mine")})
		wantErr(t, err, eventide.CodeForbidden, "only the organizer or an admin may change this event")
		if got := e.events.take(); len(got) != 0 {
			t.Fatalf("a refused change published %d messages", len(got))
		}
	})
	t.Run("OKOrganizerPublishesAndRecordsNothing", func(t *testing.T) {
		got, err := e.Events.Update(as(org), ev.ID, app.EventInput{Title: ptr("Renamed")})
		must(t, err)
		if pub := e.events.take(); len(pub) != 1 || pub[0].Title != "Renamed" || got.Title != "Renamed" {
			t.Fatalf("published %v, returned %+v", pub, got)
		}
		if n := e.notes.take(); len(n) != 0 {
			t.Fatalf("an organizer's own change recorded %+v", n)
		}
	})
	t.Run("OKAdminIsRecorded", func(t *testing.T) {
		_, err := e.Events.Update(as(admin), ev.ID, app.EventInput{Capacity: ptr(12)})
		must(t, err)
		n := e.notes.take()
		want := `updateEvent on event ` + ev.ID + ` ("Renamed") of organizer ` + org.ID
		if len(n) != 1 || n[0].Kind != app.NoteAdminAction || n[0].Message != want {
			t.Fatalf("notes %+v, want one ADMIN_ACTION %q", n, want)
		}
	})
	t.Run("ErrCancelledCannotChange", func(t *testing.T) {
		_, err := e.Events.Cancel(as(org), ev.ID, ptr(" rain "))
		must(t, err)
		_, err = e.Events.Update(as(org), ev.ID, app.EventInput{Title: ptr("Back")})
		wantErr(t, err, eventide.CodeBadUserInput, "id: a cancelled event cannot be changed")
		_, err = e.Events.Publish(as(admin), ev.ID)
		wantErr(t, err, eventide.CodeBadUserInput, "id: a cancelled event cannot be published")
	})
}

func TestEventQuery(t *testing.T) {
	e := newEnv(t)
	user := e.user(t, "Uma", eventide.RoleUser)
	admin := e.user(t, "Ada", eventide.RoleAdmin)
	draft := eventide.EventDraft

	for _, c := range []struct {
		name     string
		viewer   *eventide.User
		noDrafts bool
		draftsOf string
	}{
		{"AnonymousSeesNoDrafts", nil, true, ""},
		{"UserSeesOwnDrafts", user, false, user.ID},
		{"AdminSeesEveryDraft", admin, false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			q, err := e.Events.Query(as(c.viewer), app.EventFilter{Status: &draft})
			must(t, err)
			if q.NoDrafts != c.noDrafts || q.DraftsOf != c.draftsOf {
				t.Fatalf("query %+v", q)
			}
		})
	}
	t.Run("DefaultIsPublishedAndNotEnded", func(t *testing.T) {
		q, err := e.Events.Query(as(nil), app.EventFilter{Tag: ptr(" GoLang ")})
		must(t, err)
		if len(q.Statuses) != 1 || q.Statuses[0] != eventide.EventPublished || q.EndsAfter == nil || !q.EndsAfter.Equal(e.now) || q.Tag != "golang" {
			t.Fatalf("query %+v", q)
		}
	})
	t.Run("ErrRangeBackwards", func(t *testing.T) {
		_, err := e.Events.Query(as(nil), app.EventFilter{From: &e.now, To: ptr(e.now.Add(-time.Hour))})
		wantErr(t, err, eventide.CodeBadUserInput, "to: must be after from")
	})
	t.Run("ErrSearchTooLong", func(t *testing.T) {
		_, err := e.Events.Query(as(nil), app.EventFilter{Search: ptr(string(make([]rune, app.MaxSearch+1)))})
		wantErr(t, err, eventide.CodeBadUserInput, "search: must be at most 100 characters")
	})
}

// TestCityFilterFoldsAsTheStore: a city asked for in any case and spacing finds the events of
// the venue's city, in the store's filter and count alike.
func TestCityFilterFoldsAsTheStore(t *testing.T) {
	e := newEnv(t)
	org := e.user(t, "Olga", eventide.RoleOrganizer)
	v := e.venue(t, org, "Hall", "Lisbon", "Europe/Lisbon", nil)
	in := e.input("Fado", 10)
	in.VenueID = app.To(&v.ID)
	ev, err := e.Events.Create(as(org), in)
	must(t, err)
	_, err = e.Events.Publish(as(org), ev.ID)
	must(t, err)
	for _, city := range []string{"Lisbon", "  LISBON ", "lisbon"} {
		q, err := e.Events.Query(as(nil), app.EventFilter{City: &city})
		must(t, err)
		conn, err := e.store.Events(context.Background(), q, eventide.Page{First: 10})
		must(t, err)
		n, err := e.store.CountEvents(context.Background(), q)
		must(t, err)
		if len(conn.Items) != 1 || conn.Items[0].ID != ev.ID || n != 1 {
			t.Fatalf("city %q: %d events, count %d; want the Lisbon event", city, len(conn.Items), n)
		}
	}
}
