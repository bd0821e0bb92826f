package store

import (
	"context"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

// TestRegistrationsOf checks the viewerRegistration loader's batch: one user's registrations at
// several events, those without one left out, malformed ids ignored.
func TestRegistrationsOf(t *testing.T) {
	st := startTestStore(t)
	ctx := context.Background()

	org := &eventide.User{Name: "Org", Email: "org@example.com", Role: eventide.RoleOrganizer}
	fan := &eventide.User{Name: "Fan", Email: "fan@example.com", Role: eventide.RoleUser}
	for _, u := range []*eventide.User{org, fan} {
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(time.Hour)
	ids := make([]string, 3)
	for i := range ids {
		e := &eventide.Event{Title: "E", Status: eventide.EventPublished, Capacity: 5, OrganizerID: org.ID,
			StartsAt: start, EndsAt: start.Add(time.Hour)}
		if err := st.CreateEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		ids[i] = e.ID
	}
	for _, id := range ids[:2] {
		if _, _, err := st.Register(ctx, id, fan.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	regs, err := st.RegistrationsOf(ctx, fan.ID, append(ids, "not-an-id"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, r := range regs {
		if r.UserID != fan.ID || r.Status != eventide.RegistrationConfirmed {
			t.Fatalf("registration %+v", r)
		}
		got[r.EventID] = true
	}
	if len(regs) != 2 || !got[ids[0]] || !got[ids[1]] {
		t.Fatalf("got %d registrations %v, want those at %v", len(regs), got, ids[:2])
	}
	if regs, err := st.RegistrationsOf(ctx, org.ID, ids); err != nil || len(regs) != 0 {
		t.Fatalf("organizer: %v %v", regs, err)
	}
	if regs, err := st.RegistrationsOf(ctx, "not-a-user", ids); err != nil || len(regs) != 0 {
		t.Fatalf("malformed user: %v %v", regs, err)
	}
}
