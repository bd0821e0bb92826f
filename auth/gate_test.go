package auth

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/eventide/server/internal/testutil"
)

// waitFor polls until cond holds: the goroutines it waits on block in channel operations, so
// there is nothing to be told by, only a state to reach.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, what, cond)
}

// TestGateBounds: at most concurrency holders, at most queue waiters, the next refused at once;
// a waiter whose context ends leaves the queue; a release lets the oldest state move on.
func TestGateBounds(t *testing.T) {
	g := newGate(2, 3)
	ctx := context.Background()
	for range 2 {
		if err := g.acquire(ctx); err != nil {
			t.Fatalf("free slot refused: %v", err)
		}
	}
	type waiter struct {
		cancel context.CancelFunc
		done   chan error
	}
	var ws []waiter
	for range 3 {
		wctx, cancel := context.WithCancel(ctx)
		w := waiter{cancel, make(chan error, 1)}
		go func() { w.done <- g.acquire(wctx) }()
		ws = append(ws, w)
	}
	waitFor(t, "three waiters queued", func() bool { return g.waiting() == 3 })

	t.Run("ErrBusyWhenQueueFull", func(t *testing.T) {
		if err := g.acquire(ctx); !errors.Is(err, ErrBusy) {
			t.Fatalf("acquire with a full queue = %v, want ErrBusy", err)
		}
		if g.running() != 2 || g.waiting() != 3 || g.refused.Load() != 1 {
			t.Fatalf("running %d waiting %d refused %d", g.running(), g.waiting(), g.refused.Load())
		}
	})
	t.Run("CancelledWaiterLeaves", func(t *testing.T) {
		ws[0].cancel()
		if err := <-ws[0].done; !errors.Is(err, ErrBusy) {
			t.Fatalf("cancelled waiter = %v, want ErrBusy", err)
		}
		waitFor(t, "the queue to shrink", func() bool { return g.waiting() == 2 })
		if g.running() != 2 {
			t.Fatalf("running %d", g.running())
		}
	})
	t.Run("ReleaseAdmitsAWaiter", func(t *testing.T) {
		g.release()
		waitFor(t, "a waiter to take the slot", func() bool { return g.waiting() == 1 && g.running() == 2 })
		g.release()
		waitFor(t, "the last waiter to take a slot", func() bool { return g.waiting() == 0 && g.running() == 2 })
		for _, w := range ws[1:] {
			if err := <-w.done; err != nil {
				t.Fatalf("admitted waiter = %v", err)
			}
			w.cancel()
		}
		g.release()
		g.release()
		if g.running() != 0 || g.waiting() != 0 {
			t.Fatalf("left behind: running %d waiting %d", g.running(), g.waiting())
		}
	})
}

// TestGateNoQueue: with no queue, a caller that finds every slot taken is refused at once.
func TestGateNoQueue(t *testing.T) {
	g := newGate(1, 0)
	if err := g.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := g.acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("got %v, want ErrBusy", err)
	}
	g.release()
	if err := g.acquire(context.Background()); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

// TestHashCounting: every bcrypt run is counted, through the slots or not; a caller refused a
// slot runs none.
func TestHashCounting(t *testing.T) {
	a, err := New(4, "0123456789abcdef0123456789abcdef", time.Hour, HashConcurrency(1), HashQueue(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := a.HashContext(ctx, "correct horse")
	if err != nil || a.Hashes() != 1 {
		t.Fatalf("HashContext: %v, %d hashes", err, a.Hashes())
	}
	if ok, err := a.VerifyContext(ctx, h, "correct horse"); !ok || err != nil || a.Hashes() != 2 {
		t.Fatalf("VerifyContext: %v %v, %d hashes", ok, err, a.Hashes())
	}
	// An unknown account costs a comparison too (the dummy hash): that is its point.
	if ok, err := a.VerifyContext(ctx, nil, "correct horse"); ok || err != nil || a.Hashes() != 3 {
		t.Fatalf("VerifyContext(nil): %v %v, %d hashes", ok, err, a.Hashes())
	}
	// Every slot taken, no queue: refused without hashing.
	if err := a.gate.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.HashContext(ctx, "correct horse"); !errors.Is(err, ErrBusy) {
		t.Fatalf("HashContext with no slot = %v", err)
	}
	if ok, err := a.VerifyContext(ctx, h, "correct horse"); ok || !errors.Is(err, ErrBusy) {
		t.Fatalf("VerifyContext with no slot = %v %v", ok, err)
	}
	a.gate.release()
	if a.Hashes() != 3 {
		t.Fatalf("refused calls hashed: %d", a.Hashes())
	}
}

// TestHashDefaults: one slot per CPU and QueuePerSlot waiters per slot unless told otherwise.
func TestHashDefaults(t *testing.T) {
	a, err := New(4, "0123456789abcdef0123456789abcdef", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if cap(a.gate.slots) != runtime.NumCPU() || cap(a.gate.queue) != QueuePerSlot*runtime.NumCPU() {
		t.Fatalf("slots %d queue %d", cap(a.gate.slots), cap(a.gate.queue))
	}
	b, _ := New(4, "0123456789abcdef0123456789abcdef", time.Hour, HashConcurrency(3), HashQueue(5))
	if cap(b.gate.slots) != 3 || cap(b.gate.queue) != 5 {
		t.Fatalf("slots %d queue %d", cap(b.gate.slots), cap(b.gate.queue))
	}
}
