package httpapi

import (
	"context"
	"testing"
	"time"
)

// TestLeanBacklogWaiters: what waits for a socket's backlog is bounded by its subscriptions (each
// parked at most once) and let go when the backlog is under backlogLow, or when the socket is gone.
func TestLeanBacklogWaiters(t *testing.T) {
	c := &leanConn{ls: &LeanSockets{pool: newWorkerPool(1)}}
	defer c.ls.pool.stop()
	subs := []*leanSub{{c: c, ls: c.ls}, {c: c, ls: c.ls}, {c: c, ls: c.ls}}
	if c.park(subs[0]) {
		t.Fatal("parked with no backlog")
	}
	c.queued.Store(backlogHigh + 1)
	for range 5 { // a subscription signalled again while parked
		for _, s := range subs {
			if !c.park(s) {
				t.Fatal("not parked over backlogHigh")
			}
		}
	}
	if len(c.parked) != len(subs) {
		t.Fatalf("%d parked entries for %d subscriptions", len(c.parked), len(subs))
	}
	waited := make(chan struct{})
	go func() { c.waitRoom(context.Background()); close(waited) }()

	// The kernel takes bytes: nothing moves until the backlog is under backlogLow.
	c.mu.Lock() // taken must not need it (the event loop calls it under nbio's socket lock)
	c.taken(backlogHigh + 1 - backlogLow - 1)
	c.wmu.Lock()
	parked := len(c.parked)
	c.wmu.Unlock()
	if parked != len(subs) {
		t.Fatalf("%d parked over backlogLow, want %d", parked, len(subs))
	}
	c.taken(2)
	c.mu.Unlock()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("waitRoom still waits under backlogLow")
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if len(c.parked) != 0 || c.stalled != nil {
		t.Fatalf("after the backlog shrank: %d parked, stalled %v", len(c.parked), c.stalled != nil)
	}
	for _, s := range subs {
		if s.parked {
			t.Fatal("a released subscription is still marked parked")
		}
	}
}
