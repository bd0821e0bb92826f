package httpapi

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lesismal/nbio"
)

// socketBacklog is what one socket of the event loop has waiting for its peer beyond the
// kernel's buffer, and what waits for it to shrink: the backpressure and the write timeout that
// the lean websockets (leanConn) and the lean HTTP streams (leanStream) share.
//
// The backlog is queued (bytes handed to nbio) less written (bytes the kernel took, nbio's
// OnWrittenSize through taken). While it is over backlogHigh, the socket's subscriptions take no
// value (park; run's waitRoom), so their producer's bounded buffer fills and the producer drops
// them; they go on once it is under backlogLow. A backlog that does not empty within the write
// timeout calls the owner's timed-out function, which closes the socket.
type socketBacklog struct {
	queued, written atomic.Int64
	watched         atomic.Bool // something waits for the backlog to shrink or empty (wmu's state)
	wmu             sync.Mutex
	parked          []*leanSub    // subscriptions held back by the backlog: at most one entry each
	stalled         chan struct{} // closed when the backlog is under backlogLow: run's waits
	backlogSince    int64         // unix nanoseconds since the backlog is not empty; 0: empty
	slowTimer       *time.Timer   // the write timeout's
	shut            bool          // the socket is gone: nothing waits for it any more
}

// write hands p to conn, counting it; a backlog that begins arms the write timeout (timeout, then
// timedOut; none when timeout is 0).
func (b *socketBacklog) write(conn *nbio.Conn, p []byte, timeout time.Duration, timedOut func()) (int, error) {
	b.queued.Add(int64(len(p))) // before: the kernel may take it, and taken run, within Write
	n, err := conn.Write(p)
	if err != nil {
		b.queued.Add(-int64(len(p)))
		return n, err
	}
	if b.backlog() > 0 {
		b.wmu.Lock()
		if b.backlogSince == 0 && !b.shut && b.backlog() > 0 && timeout > 0 {
			b.backlogSince = time.Now().UnixNano()
			b.watched.Store(true)
			if b.slowTimer == nil {
				b.slowTimer = time.AfterFunc(timeout, timedOut)
			} else {
				b.slowTimer.Reset(timeout)
			}
		}
		b.wmu.Unlock()
	}
	return n, nil
}

func (b *socketBacklog) backlog() int64 { return b.queued.Load() - b.written.Load() }

// taken runs on the event loop (with nbio's lock of the socket: it takes no lock that is held
// while writing) when the kernel took n bytes of the socket's.
func (b *socketBacklog) taken(n int) {
	b.written.Add(int64(n))
	if !b.watched.Load() || b.backlog() > backlogLow {
		return
	}
	b.wmu.Lock()
	if b.backlog() <= 0 {
		b.backlogSince = 0
	}
	resume := b.releaseLocked()
	b.watched.Store(b.backlogSince != 0)
	b.wmu.Unlock()
	for _, s := range resume {
		s.schedule()
	}
}

// releaseLocked wakes what waits for the backlog to shrink and returns the subscriptions to
// schedule again.
func (b *socketBacklog) releaseLocked() []*leanSub {
	if b.stalled != nil {
		close(b.stalled)
		b.stalled = nil
	}
	resume := b.parked
	b.parked = nil
	for _, s := range resume {
		s.parked = false
	}
	return resume
}

// park holds s back while the backlog is over backlogHigh: false when there is room (or the
// socket is gone), else s is scheduled again once the backlog is under backlogLow.
func (b *socketBacklog) park(s *leanSub) bool {
	if b.backlog() <= backlogHigh {
		return false
	}
	b.wmu.Lock()
	defer b.wmu.Unlock()
	if b.shut || b.backlog() <= backlogHigh {
		return false
	}
	if !s.parked {
		s.parked = true
		b.parked = append(b.parked, s)
	}
	b.watched.Store(true)
	return true
}

// waitRoom blocks while the backlog is over backlogHigh, until it is under backlogLow, the
// socket is gone or ctx ends: run's backpressure.
func (b *socketBacklog) waitRoom(ctx context.Context) {
	for b.backlog() > backlogHigh {
		b.wmu.Lock()
		if b.shut || b.backlog() <= backlogHigh {
			b.wmu.Unlock()
			return
		}
		if b.stalled == nil {
			b.stalled = make(chan struct{})
		}
		ch := b.stalled
		b.watched.Store(true)
		b.wmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// expired reports whether the backlog has not emptied for timeout (the write timeout's timer
// fired); when it emptied meanwhile and began again, the timer is set for what is left.
func (b *socketBacklog) expired(timeout time.Duration) bool {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	since := b.backlogSince
	if since == 0 || b.shut {
		return false
	}
	if left := timeout - time.Since(time.Unix(0, since)); left > 0 {
		b.slowTimer.Reset(left)
		return false
	}
	return true
}

// shutdown is the socket's end: nothing waits for it any more, and the parked subscriptions run
// again (each ends: its context is done).
func (b *socketBacklog) shutdown() {
	b.wmu.Lock()
	b.shut = true
	if b.slowTimer != nil {
		b.slowTimer.Stop()
	}
	resume := b.releaseLocked()
	b.wmu.Unlock()
	for _, s := range resume {
		s.schedule()
	}
}
