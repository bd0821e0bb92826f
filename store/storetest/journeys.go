package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

// The attendee's and the organizer's journeys: a user's list, an event's list, waitlist positions,
// removal by the organizer and an event's cancellation cascading to its registrations.

// userRegEvents lists every page of a user's registrations (per page size) as event ids.
func userRegEvents(t *testing.T, st Store, userID string, f eventide.RegistrationFilter, per int) []string {
	t.Helper()
	var out []string
	after := ""
	for range 100 {
		c, err := st.UserRegistrations(ctx, userID, f, eventide.Page{First: per, After: after})
		must(t, err)
		for _, r := range c.Items {
			if r.UserID != userID {
				t.Fatalf("another user's registration %+v in %s's list", r, userID)
			}
			out = append(out, r.EventID)
		}
		if !c.HasNextPage {
			n, err := st.CountUserRegistrations(ctx, userID, f)
			must(t, err)
			if n != len(out) {
				t.Fatalf("count %d, listed %d", n, len(out))
			}
			return out
		}
		after = c.EndCursor()
	}
	t.Fatalf("no end of pages: %v", out[:12])
	return nil
}

func (s *suite) userRegistrations(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	ann, bob := user(t, st, "Ann", eventide.RoleUser), user(t, st, "Bob", eventide.RoleUser)
	// Ann registers for three upcoming events (registered out of start order), one under way,
	// and two past ones (registered while they were open).
	mk := func(start time.Duration, capacity int) *eventide.Event {
		return event(t, st, now, ev{start: start, capacity: capacity, org: org.ID})
	}
	up3, up1, up2 := mk(3*time.Hour, 5), mk(time.Hour, 5), mk(2*time.Hour, 1)
	going := mk(-30*time.Minute, 5)
	past1, past2 := mk(-48*time.Hour, 5), mk(-24*time.Hour, 5)
	at := now.Add(-72 * time.Hour)
	for _, e := range []*eventide.Event{up3, up1, past1, going, past2} {
		_, _, err := st.Register(ctx, e.ID, ann.ID, at)
		must(t, err)
	}
	_, _, err := st.Register(ctx, up2.ID, bob.ID, at)
	must(t, err)
	r, _, err := st.Register(ctx, up2.ID, ann.ID, at)
	must(t, err)
	if r.Status != eventide.RegistrationWaitlisted {
		t.Fatalf("ann at the full event: %s", r.Status)
	}
	f := eventide.RegistrationFilter{Now: now}
	want := []string{going.ID, up1.ID, up2.ID, up3.ID, past2.ID, past1.ID}
	for _, per := range []int{1, 2, 4, 20} {
		if got := userRegEvents(t, st, ann.ID, f, per); !slices.Equal(got, want) {
			t.Fatalf("per %d: %v, want upcoming by start then past latest first %v", per, got, want)
		}
	}
	yes, no := true, false
	if got := userRegEvents(t, st, ann.ID, eventide.RegistrationFilter{Now: now, Upcoming: &yes}, 2); !slices.Equal(got, want[:4]) {
		t.Fatalf("upcoming: %v", got)
	}
	if got := userRegEvents(t, st, ann.ID, eventide.RegistrationFilter{Now: now, Upcoming: &no}, 1); !slices.Equal(got, want[4:]) {
		t.Fatalf("past: %v", got)
	}
	if got := userRegEvents(t, st, ann.ID, eventide.RegistrationFilter{Now: now, Status: eventide.RegistrationWaitlisted}, 3); !slices.Equal(got, []string{up2.ID}) {
		t.Fatalf("waitlisted: %v", got)
	}
	// A cancelled registration stays in the list, with its status; moving an event moves it.
	_, _, err = st.CancelRegistration(ctx, up1.ID, ann.ID, now)
	must(t, err)
	if got := userRegEvents(t, st, ann.ID, eventide.RegistrationFilter{Now: now, Status: eventide.RegistrationCancelled}, 3); !slices.Equal(got, []string{up1.ID}) {
		t.Fatalf("cancelled: %v", got)
	}
	_, err = st.UpdateEvent(ctx, up3.ID, func(e *eventide.Event) error {
		e.StartsAt, e.EndsAt = now.Add(10*time.Minute), now.Add(20*time.Minute)
		return nil
	})
	must(t, err)
	want = []string{going.ID, up3.ID, up1.ID, up2.ID, past2.ID, past1.ID}
	if got := userRegEvents(t, st, ann.ID, f, 2); !slices.Equal(got, want) {
		t.Fatalf("after moving up3 first: %v, want %v", got, want)
	}
	if got := userRegEvents(t, st, bob.ID, f, 2); !slices.Equal(got, []string{up2.ID}) {
		t.Fatalf("bob: %v", got)
	}
	// Bad cursors, another list's cursor and negative sizes are BAD_USER_INPUT.
	c, err := st.Attendees(ctx, up2.ID, eventide.Page{First: 1})
	must(t, err)
	for _, after := range []string{"junk", c.EndCursor()} {
		_, err = st.UserRegistrations(ctx, ann.ID, f, eventide.Page{First: 1, After: after})
		code(t, err, eventide.CodeBadUserInput, "cursor "+after)
	}
	_, err = st.UserRegistrations(ctx, ann.ID, f, eventide.Page{First: -1})
	code(t, err, eventide.CodeBadUserInput, "negative first")
	if got := userRegEvents(t, st, "0123456789abcdef01234567", f, 5); len(got) != 0 {
		t.Fatalf("an unknown user has %v", got)
	}
}

// positions returns the waitlist positions of the registrations of us at e, by user index (0
// when not waitlisted), with one batch.
func positions(t *testing.T, st Store, e *eventide.Event, us []*eventide.User) []int {
	t.Helper()
	ids := make([]string, len(us))
	for i, u := range us {
		r, err := st.RegistrationFor(ctx, e.ID, u.ID)
		must(t, err)
		ids[i] = r.ID
	}
	m, err := st.WaitlistPositions(ctx, append(ids, "0123456789abcdef01234567", "junk"))
	must(t, err)
	out := make([]int, len(us))
	for i, id := range ids {
		out[i] = m[id]
	}
	return out
}

func (s *suite) eventRegistrations(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	e := event(t, st, now, ev{start: time.Hour, capacity: 2, org: org.ID})
	us := users(t, st, 7)
	for i, u := range us {
		_, _, err := st.Register(ctx, e.ID, u.ID, now.Add(time.Duration(i)*time.Millisecond))
		must(t, err)
	}
	if got, want := positions(t, st, e, us), []int{0, 0, 1, 2, 3, 4, 5}; !slices.Equal(got, want) {
		t.Fatalf("positions %v, want %v", got, want)
	}
	// Positions move up as people ahead leave (waitlisted or confirmed, whose seat is taken by
	// the first in line); nobody behind moves for someone behind them leaving.
	_, _, err := st.CancelRegistration(ctx, e.ID, us[3].ID, now)
	must(t, err)
	_, _, err = st.CancelRegistration(ctx, e.ID, us[6].ID, now)
	must(t, err)
	if got, want := positions(t, st, e, us), []int{0, 0, 1, 0, 2, 3, 0}; !slices.Equal(got, want) {
		t.Fatalf("after two waitlisted left: %v, want %v", got, want)
	}
	// The organizer removes a confirmed attendee: the first in line is promoted.
	r0, err := st.RegistrationFor(ctx, e.ID, us[0].ID)
	must(t, err)
	got, ev2, err := st.RemoveRegistration(ctx, r0.ID, "no-show last time", now)
	must(t, err)
	if got.Status != eventide.RegistrationCancelled || got.CancelReason != "no-show last time" || got.ID != r0.ID {
		t.Fatalf("removed: %+v", got)
	}
	if ev2.ConfirmedCount != 2 || ev2.WaitlistCount != 2 {
		t.Fatalf("after the removal the event says %d/%d, want 2/2", ev2.ConfirmedCount, ev2.WaitlistCount)
	}
	r2, err := st.RegistrationFor(ctx, e.ID, us[2].ID)
	must(t, err)
	if r2.Status != eventide.RegistrationConfirmed {
		t.Fatalf("the first in line was not promoted: %s", r2.Status)
	}
	if got, want := positions(t, st, e, us), []int{0, 0, 0, 0, 1, 2, 0}; !slices.Equal(got, want) {
		t.Fatalf("after the removal: %v, want %v", got, want)
	}
	again, err := st.RegistrationByID(ctx, r0.ID)
	must(t, err)
	if again.CancelReason != "no-show last time" || again.Status != eventide.RegistrationCancelled {
		t.Fatalf("read back: %+v", again)
	}
	_, _, err = st.RemoveRegistration(ctx, r0.ID, "", now)
	code(t, err, eventide.CodeNotFound, "remove twice")
	for _, id := range []string{"0123456789abcdef01234567", "junk"} {
		_, _, err = st.RemoveRegistration(ctx, id, "", now)
		code(t, err, eventide.CodeNotFound, "remove "+id)
		_, err = st.RegistrationByID(ctx, id)
		code(t, err, eventide.CodeNotFound, "read "+id)
	}
	counts(t, st, e.ID, us)

	// The event's list: every status in arrival order, or one status, in pages.
	list := func(status eventide.RegistrationStatus, per int) []string {
		t.Helper()
		var out []string
		after := ""
		for {
			c, err := st.EventRegistrations(ctx, e.ID, status, eventide.Page{First: per, After: after})
			must(t, err)
			for _, r := range c.Items {
				if status != "" && r.Status != status {
					t.Fatalf("%s in the %s list", r.Status, status)
				}
				out = append(out, r.UserID)
			}
			if !c.HasNextPage {
				break
			}
			after = c.EndCursor()
		}
		n, err := st.CountEventRegistrations(ctx, e.ID, status)
		must(t, err)
		if n != len(out) {
			t.Fatalf("%s: count %d, listed %d", status, n, len(out))
		}
		return out
	}
	ids := func(is ...int) []string {
		var out []string
		for _, i := range is {
			out = append(out, us[i].ID)
		}
		return out
	}
	for _, per := range []int{1, 3, 50} {
		if got := list("", per); !slices.Equal(got, ids(0, 1, 2, 3, 4, 5, 6)) {
			t.Fatalf("every status per %d: %v", per, got)
		}
		if got := list(eventide.RegistrationWaitlisted, per); !slices.Equal(got, ids(4, 5)) {
			t.Fatalf("waitlisted per %d: %v", per, got)
		}
		if got := list(eventide.RegistrationCancelled, per); !slices.Equal(got, ids(0, 3, 6)) {
			t.Fatalf("cancelled per %d: %v", per, got)
		}
	}
	_, err = st.EventRegistrations(ctx, e.ID, "", eventide.Page{First: 1, After: "junk"})
	code(t, err, eventide.CodeBadUserInput, "bad cursor")
}

func (s *suite) cancelEventCascade(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	e := event(t, st, now, ev{start: time.Hour, capacity: 2, org: org.ID})
	us := users(t, st, 5)
	for i, u := range us {
		_, _, err := st.Register(ctx, e.ID, u.ID, now.Add(time.Duration(i)*time.Millisecond))
		must(t, err)
	}
	_, _, err := st.CancelRegistration(ctx, e.ID, us[4].ID, now)
	must(t, err)
	before, err := st.RegistrationFor(ctx, e.ID, us[4].ID)
	must(t, err)
	ev2, err := st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error {
		x.Status, x.CancelReason = eventide.EventCancelled, "the hall flooded"
		return nil
	})
	must(t, err)
	if ev2.ConfirmedCount != 0 || ev2.WaitlistCount != 0 || ev2.Status != eventide.EventCancelled {
		t.Fatalf("cancelled event says %d/%d %s", ev2.ConfirmedCount, ev2.WaitlistCount, ev2.Status)
	}
	for i, u := range us {
		r, err := st.RegistrationFor(ctx, e.ID, u.ID)
		must(t, err)
		if r.Status != eventide.RegistrationCancelled {
			t.Fatalf("user %d still %s", i, r.Status)
		}
		if i < 4 && r.CancelReason != "the hall flooded" {
			t.Fatalf("user %d: reason %q", i, r.CancelReason)
		}
	}
	// One cancelled before keeps its own record.
	after, err := st.RegistrationFor(ctx, e.ID, us[4].ID)
	must(t, err)
	if after.CancelReason != "" || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("an earlier cancellation was rewritten: %+v, was %+v", after, before)
	}
	if c, _ := counts(t, st, e.ID, us); c != 0 {
		t.Fatalf("%d confirmed", c)
	}
	n, err := st.CountEventRegistrations(ctx, e.ID, eventide.RegistrationCancelled)
	must(t, err)
	if n != 5 {
		t.Fatalf("%d cancelled, want 5", n)
	}
	// Nothing can be cancelled again, and an ended event's registrations stay.
	_, _, err = st.CancelRegistration(ctx, e.ID, us[0].ID, now)
	code(t, err, eventide.CodeNotFound, "cancel at a cancelled event")
	past := event(t, st, now, ev{start: -2 * time.Hour, capacity: 2, org: org.ID})
	r, _, err := st.Register(ctx, past.ID, us[0].ID, now.Add(-3*time.Hour))
	must(t, err)
	_, _, err = st.CancelRegistration(ctx, past.ID, us[0].ID, now)
	code(t, err, eventide.CodeBadUserInput, "cancel after the event ended")
	_, _, err = st.RemoveRegistration(ctx, r.ID, "late", now)
	code(t, err, eventide.CodeBadUserInput, "remove after the event ended")
	r, err = st.RegistrationFor(ctx, past.ID, us[0].ID)
	must(t, err)
	if r.Status != eventide.RegistrationConfirmed {
		t.Fatalf("an ended event's registration became %s", r.Status)
	}
}

// changes records what the stores report to NoteRegistrations.
func (s *suite) notedChanges(t *testing.T) {
	st := s.open(t)
	now := clock()
	org := user(t, st, "Org", eventide.RoleOrganizer)
	e := event(t, st, now, ev{start: time.Hour, capacity: 1, org: org.ID})
	us := users(t, st, 4)
	noted := func(do func(c ctxT)) []string {
		t.Helper()
		c, ch := eventide.WithRegistrationChanges(ctx)
		do(c)
		var out []string
		for _, r := range ch.Take() {
			out = append(out, fmt.Sprintf("%s:%s", userIndex(us, r.UserID), r.Status))
		}
		slices.Sort(out)
		return out
	}
	for i, u := range us {
		got := noted(func(c ctxT) {
			_, _, err := st.Register(c, e.ID, u.ID, now.Add(time.Duration(i)*time.Millisecond))
			must(t, err)
		})
		want := fmt.Sprintf("%d:WAITLISTED", i)
		if i == 0 {
			want = "0:CONFIRMED"
		}
		if !slices.Equal(got, []string{want}) {
			t.Fatalf("register %d noted %v", i, got)
		}
	}
	got := noted(func(c ctxT) {
		_, _, err := st.CancelRegistration(c, e.ID, us[0].ID, now)
		must(t, err)
	})
	if !slices.Equal(got, []string{"0:CANCELLED", "1:CONFIRMED"}) {
		t.Fatalf("cancel with promotion noted %v", got)
	}
	got = noted(func(c ctxT) {
		_, err := st.UpdateEvent(c, e.ID, func(x *eventide.Event) error { x.Capacity = 2; return nil })
		must(t, err)
	})
	if !slices.Equal(got, []string{"2:CONFIRMED"}) {
		t.Fatalf("capacity raise noted %v", got)
	}
	got = noted(func(c ctxT) {
		_, err := st.UpdateEvent(c, e.ID, func(x *eventide.Event) error { x.Status = eventide.EventCancelled; return nil })
		must(t, err)
	})
	if !slices.Equal(got, []string{"1:CANCELLED", "2:CANCELLED", "3:CANCELLED"}) {
		t.Fatalf("event cancellation noted %v", got)
	}
}

type ctxT = context.Context

func userIndex(us []*eventide.User, id string) string {
	for i, u := range us {
		if u.ID == id {
			return fmt.Sprint(i)
		}
	}
	return "?"
}
