package app_test

import (
	"context"
	"testing"

	"github.com/eventide/server/eventide"
)

func TestRegistrationFlow(t *testing.T) {
	e := newEnv(t)
	org := e.user(t, "Olga", eventide.RoleOrganizer)
	ann, bob := e.user(t, "Ann", eventide.RoleUser), e.user(t, "Bob", eventide.RoleUser)
	ev := e.event(t, org, 1)
	e.events.take()

	t.Run("OKConfirmedWhileSeatsRemain", func(t *testing.T) {
		reg, got, err := e.Registrations.Register(as(ann), ev.ID)
		must(t, err)
		if reg.Status != eventide.RegistrationConfirmed || got.ConfirmedCount != 1 {
			t.Fatalf("registration %+v, event counts %d/%d", reg, got.ConfirmedCount, got.WaitlistCount)
		}
		if pub := e.events.take(); len(pub) != 1 || pub[0].ConfirmedCount != 1 {
			t.Fatalf("eventUpdated got %v, want the event with 1 confirmed", pub)
		}
		if regs := e.regs.take(); len(regs) != 1 || regs[0].UserID != ann.ID {
			t.Fatalf("myRegistrations got %v, want Ann's", regs)
		}
	})
	t.Run("OKWaitlistedWhenFull", func(t *testing.T) {
		reg, got, err := e.Registrations.Register(as(bob), ev.ID)
		must(t, err)
		if reg.Status != eventide.RegistrationWaitlisted || got.WaitlistCount != 1 {
			t.Fatalf("registration %+v, event counts %d/%d", reg, got.ConfirmedCount, got.WaitlistCount)
		}
		e.events.take()
		e.regs.take()
	})
	t.Run("OKCancelPromotesAndTellsBoth", func(t *testing.T) {
		reg, got, err := e.Registrations.Cancel(as(ann), ev.ID)
		must(t, err)
		if reg.Status != eventide.RegistrationCancelled || got.ConfirmedCount != 1 || got.WaitlistCount != 0 {
			t.Fatalf("registration %+v, event counts %d/%d", reg, got.ConfirmedCount, got.WaitlistCount)
		}
		told := map[string]eventide.RegistrationStatus{}
		for _, r := range e.regs.take() {
			told[r.UserID] = r.Status
		}
		if told[ann.ID] != eventide.RegistrationCancelled || told[bob.ID] != eventide.RegistrationConfirmed {
			t.Fatalf("myRegistrations told %v; want Ann cancelled and Bob promoted", told)
		}
		if pub := e.events.take(); len(pub) != 1 || pub[0].ConfirmedCount != 1 || pub[0].WaitlistCount != 0 {
			t.Fatalf("eventUpdated got %v, want the event after the promotion", pub)
		}
	})
	t.Run("ErrNotFoundCancellingTwice", func(t *testing.T) {
		_, _, err := e.Registrations.Cancel(as(ann), ev.ID)
		if eventide.ErrorCode(err) != eventide.CodeNotFound {
			t.Fatalf("second cancel: %v, want NOT_FOUND", err)
		}
		if pub := e.events.take(); len(pub) != 0 {
			t.Fatalf("a refused cancel published %d messages", len(pub))
		}
	})
}

func TestRemoveRegistration(t *testing.T) {
	e := newEnv(t)
	org := e.user(t, "Olga", eventide.RoleOrganizer)
	other := e.user(t, "Otto", eventide.RoleOrganizer)
	admin := e.user(t, "Ada", eventide.RoleAdmin)
	ann, bob := e.user(t, "Ann", eventide.RoleUser), e.user(t, "Bob", eventide.RoleUser)
	ev := e.event(t, org, 5)
	a, _, err := e.Registrations.Register(as(ann), ev.ID)
	must(t, err)
	b, _, err := e.Registrations.Register(as(bob), ev.ID)
	must(t, err)
	e.notes.take()

	t.Run("ErrForbiddenForAnotherOrganizer", func(t *testing.T) {
		_, _, err := e.Registrations.Remove(as(other), a.ID, nil)
		wantErr(t, err, eventide.CodeForbidden, "only the event's organizer or an admin may remove a registration")
	})
	t.Run("ErrForbiddenForTheAttendee", func(t *testing.T) {
		_, _, err := e.Registrations.Remove(as(ann), a.ID, nil)
		wantErr(t, err, eventide.CodeForbidden, "only the event's organizer or an admin may remove a registration")
	})
	t.Run("ErrReasonTooLong", func(t *testing.T) {
		_, _, err := e.Registrations.Remove(as(org), a.ID, ptr(string(make([]rune, 10_001))))
		wantErr(t, err, eventide.CodeBadUserInput, "reason: must be at most 10000 characters")
	})
	t.Run("OKOrganizer", func(t *testing.T) {
		reg, got, err := e.Registrations.Remove(as(org), a.ID, ptr("  no-show "))
		must(t, err)
		if reg.Status != eventide.RegistrationCancelled || reg.CancelReason != "no-show" || got.ConfirmedCount != 1 {
			t.Fatalf("registration %+v, confirmed %d", reg, got.ConfirmedCount)
		}
		if n := e.notes.take(); len(n) != 0 {
			t.Fatalf("the organizer's own removal recorded %+v", n)
		}
	})
	t.Run("OKAdminIsRecorded", func(t *testing.T) {
		_, _, err := e.Registrations.Remove(as(admin), b.ID, nil)
		must(t, err)
		if n := e.notes.take(); len(n) != 1 || n[0].Message != `removeRegistration on event `+ev.ID+` ("Meetup") of organizer `+org.ID {
			t.Fatalf("notes %+v", n)
		}
	})
}

func TestListRegistrations(t *testing.T) {
	e := newEnv(t)
	org := e.user(t, "Olga", eventide.RoleOrganizer)
	admin := e.user(t, "Ada", eventide.RoleAdmin)
	ann, bob := e.user(t, "Ann", eventide.RoleUser), e.user(t, "Bob", eventide.RoleUser)
	ev := e.event(t, org, 5)
	_, _, err := e.Registrations.Register(as(ann), ev.ID)
	must(t, err)
	page := eventide.Page{First: 10}
	bad := eventide.RegistrationStatus("MAYBE")

	t.Run("ForUser", func(t *testing.T) {
		_, _, err := e.Registrations.ForUser(as(nil), ann, nil, nil, page)
		wantErr(t, err, eventide.CodeUnauthenticated, "sign in to see registrations")
		_, _, err = e.Registrations.ForUser(as(bob), ann, nil, nil, page)
		wantErr(t, err, eventide.CodeForbidden, "only that user and admins see a user's registrations")
		_, _, err = e.Registrations.ForUser(as(ann), ann, &bad, nil, page)
		wantErr(t, err, eventide.CodeBadUserInput, `status: unknown status "MAYBE"`)
		for _, v := range []*eventide.User{ann, admin} {
			conn, count, err := e.Registrations.ForUser(as(v), ann, nil, ptr(true), page)
			must(t, err)
			n, err := count(context.Background())
			must(t, err)
			if len(conn.Items) != 1 || conn.Items[0].EventID != ev.ID || n != 1 {
				t.Fatalf("%s lists %d of Ann's registrations (count %d), want 1", v.Name, len(conn.Items), n)
			}
		}
	})
	t.Run("ForEvent", func(t *testing.T) {
		_, _, err := e.Registrations.ForEvent(as(nil), ev, nil, page)
		wantErr(t, err, eventide.CodeUnauthenticated, "sign in to see registrations")
		_, _, err = e.Registrations.ForEvent(as(ann), ev, nil, page)
		wantErr(t, err, eventide.CodeForbidden, "only the organizer and admins see an event's registrations")
		_, _, err = e.Registrations.ForEvent(as(org), ev, &bad, page)
		wantErr(t, err, eventide.CodeBadUserInput, `status: unknown status "MAYBE"`)
		for _, v := range []*eventide.User{org, admin} {
			conn, count, err := e.Registrations.ForEvent(as(v), ev, nil, page)
			must(t, err)
			n, err := count(context.Background())
			must(t, err)
			if len(conn.Items) != 1 || conn.Items[0].UserID != ann.ID || n != 1 {
				t.Fatalf("%s lists %d registrations (count %d), want Ann's", v.Name, len(conn.Items), n)
			}
		}
	})
}

func TestAttendees(t *testing.T) {
	e := newEnv(t)
	org := e.user(t, "Olga", eventide.RoleOrganizer)
	ann := e.user(t, "Ann", eventide.RoleUser)
	ev := e.event(t, org, 5)
	_, _, err := e.Registrations.Register(as(ann), ev.ID)
	must(t, err)

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		_, err := e.Registrations.Attendees(as(nil), ev, eventide.Page{First: 10})
		wantErr(t, err, eventide.CodeUnauthenticated, "sign in to see who attends; attendeeCount is public")
	})
	t.Run("OKAnySignedInViewer", func(t *testing.T) {
		conn, err := e.Registrations.Attendees(as(e.user(t, "Bob", eventide.RoleUser)), ev, eventide.Page{First: 10})
		must(t, err)
		if len(conn.Items) != 1 || conn.Items[0].UserID != ann.ID {
			t.Fatalf("attendees %v, want Ann", conn.Items)
		}
	})
}
