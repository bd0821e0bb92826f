package storecache

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/eventide/server/eventide"
)

type fakeHealth struct {
	up   context.Context
	down context.CancelCauseFunc
}

func newFakeHealth() *fakeHealth {
	h := &fakeHealth{}
	h.up, h.down = context.WithCancelCause(context.Background())
	return h
}

func (h *fakeHealth) Up() context.Context { return h.up }

// hangingStore's EventByID waits for its context (a store that does not answer); UserByID is
// NOT_FOUND at once. Other methods panic (nil embedded interface).
type hangingStore struct {
	Backing
	started chan struct{}
	calls   atomic.Int64
}

func (s *hangingStore) EventByID(ctx context.Context, _ string) (*eventide.Event, error) {
	s.calls.Add(1)
	close(s.started)
	<-ctx.Done()
	return nil, &eventide.Error{Code: eventide.CodeUnavailable, Message: "request cancelled", Err: ctx.Err()}
}

func (s *hangingStore) UserByID(context.Context, string) (*eventide.User, error) {
	s.calls.Add(1)
	return nil, &eventide.Error{Code: eventide.CodeNotFound, Message: "no such user"}
}

// TestFailFast: a call in flight when the store goes down ends with the store's error; while it
// is down no call reaches the store; a call's own error is kept.
func TestFailFast(t *testing.T) {
	h := newFakeHealth()
	inner := &hangingStore{started: make(chan struct{})}
	g := FailFast(inner, h)
	down := &eventide.Error{Code: eventide.CodeUnavailable, Message: "the store is down"}

	var e *eventide.Error
	if _, err := g.UserByID(context.Background(), "u"); !errors.As(err, &e) || e.Code != eventide.CodeNotFound {
		t.Fatalf("UserByID while up: %v, want NOT_FOUND", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := g.EventByID(context.Background(), "e")
		done <- err
	}()
	<-inner.started
	h.down(down)
	if err := <-done; err != down {
		t.Fatalf("call in flight ended with %v, want the store's error", err)
	}
	before := inner.calls.Load()
	if _, err := g.UserByID(context.Background(), "u"); err != down {
		t.Fatalf("UserByID while down: %v", err)
	}
	if _, err := g.EventByID(context.Background(), "e"); err != down {
		t.Fatalf("EventByID while down: %v", err)
	}
	if n := inner.calls.Load() - before; n != 0 {
		t.Fatalf("%d calls reached the store while it was known down", n)
	}
}
