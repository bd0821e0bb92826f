package auth

import (
	"context"
	"errors"
	"sync/atomic"
)

// ErrBusy is returned when every hashing slot is taken and the queue for them is full, or when
// the caller's context ends while it waits: the caller answers RATE_LIMITED.
var ErrBusy = errors.New("auth: too many password checks in progress")

// gate bounds the password hashes that run at once: at most cap(slots) run, at most cap(queue)
// more wait for a slot, and the rest are refused at once. A waiter leaves the queue when it gets
// a slot or when its context ends, so neither channel grows past its capacity and nothing is
// kept after a hash returns.
type gate struct {
	slots chan struct{}
	queue chan struct{}

	refused atomic.Uint64
}

func newGate(concurrency, queue int) *gate {
	return &gate{slots: make(chan struct{}, max(concurrency, 1)), queue: make(chan struct{}, max(queue, 0))}
}

// acquire takes a slot, waiting in the queue while there is room in it; release gives it back.
func (g *gate) acquire(ctx context.Context) error {
	select {
	case g.slots <- struct{}{}:
		return nil
	default:
	}
	select {
	case g.queue <- struct{}{}:
	default:
		g.refused.Add(1)
		return ErrBusy
	}
	defer func() { <-g.queue }()
	select {
	case g.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		g.refused.Add(1)
		return ErrBusy
	}
}

func (g *gate) release() { <-g.slots }

// running and waiting are the hashes running now and the callers waiting for a slot.
func (g *gate) running() int { return len(g.slots) }
func (g *gate) waiting() int { return len(g.queue) }
