package httpapi

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

// TestSessionsBounded: the registry holds a session only while its connection is open, so the
// connection caps bound it.
func TestSessionsBounded(t *testing.T) {
	s := NewSessions(SessionsOptions{})
	u := &eventide.User{ID: "u1", Role: eventide.RoleUser}
	var open []*session
	for range 50 {
		ss := &session{reg: s}
		ss.bind("Bearer x", u, time.Now().Add(time.Hour))
		open = append(open, ss)
	}
	other := &session{reg: s}
	other.bind("Bearer y", &eventide.User{ID: "u2", Role: eventide.RoleUser}, time.Now().Add(time.Hour))
	if n := s.Open(); n != 51 {
		t.Fatalf("Open = %d, want 51", n)
	}
	// Rebinding to another user moves the session.
	other.bind("Bearer z", u, time.Now().Add(time.Hour))
	if n := len(s.of("u1")); n != 51 {
		t.Fatalf("u1 has %d sessions, want 51", n)
	}
	for _, ss := range append(open, other) {
		ss.close()
	}
	if n := s.Open(); n != 0 {
		t.Fatalf("Open = %d after every connection closed, want 0", n)
	}
	if len(s.byUser) != 0 {
		t.Fatalf("byUser keeps %d users after every connection closed", len(s.byUser))
	}
	// A closed session does not come back.
	open[0].bind("Bearer x", u, time.Now().Add(time.Hour))
	if n := s.Open(); n != 0 {
		t.Fatalf("Open = %d after binding a closed session, want 0", n)
	}
}

// TestSessionApply: a new role ends exactly the subscriptions it no longer allows, with FORBIDDEN.
func TestSessionApply(t *testing.T) {
	s := NewSessions(SessionsOptions{})
	ss := &session{reg: s}
	defer ss.close()
	ss.bind("Bearer x", &eventide.User{ID: "u1", Role: eventide.RoleAdmin}, time.Now().Add(time.Hour))
	sub := func(need eventide.Role) context.Context {
		ctx, cancel := context.WithCancelCause(context.Background())
		if !ss.add(&liveSub{field: "f", need: need, cancel: cancel}) {
			t.Fatal("an open session refused a subscription")
		}
		return ctx
	}
	admin, organizer, anyone := sub(eventide.RoleAdmin), sub(eventide.RoleOrganizer), sub("")
	ss.apply(&eventide.User{ID: "u1", Role: eventide.RoleOrganizer})
	var e *eventide.Error
	if !errors.As(context.Cause(admin), &e) || e.Code != eventide.CodeForbidden {
		t.Fatalf("the ADMIN subscription ended with %v, want FORBIDDEN", context.Cause(admin))
	}
	if organizer.Err() != nil || anyone.Err() != nil {
		t.Fatalf("subscriptions the role still allows ended: %v, %v", organizer.Err(), anyone.Err())
	}
	if ss.cell.Load().Role != eventide.RoleOrganizer {
		t.Fatalf("viewer role = %s, want ORGANIZER", ss.cell.Load().Role)
	}
	ss.expire()
	if !errors.As(context.Cause(anyone), &e) || e.Code != eventide.CodeUnauthenticated {
		t.Fatalf("at expiry a subscription ended with %v, want UNAUTHENTICATED", context.Cause(anyone))
	}
	if ss.add(&liveSub{cancel: func(error) {}}) {
		t.Fatal("an ended session took a new subscription")
	}
	if ss.cell.Load() != nil {
		t.Fatal("an ended session still has a viewer")
	}
}
