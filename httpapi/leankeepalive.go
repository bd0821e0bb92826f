package httpapi

import (
	"sync"
	"time"
)

// keepAliveWheel is the keep-alive of the lean sockets of one interval: one goroutine visits a
// ring of wheelSlots slots, one slot every interval/wheelSlots, so each socket in the ring is
// visited once per interval, and the sockets of a slot are pinged in one batch.
//
// It replaced a runtime timer per socket (time.AfterFunc, re-armed after every ping), which put
// the pings of sockets opened together in phase, started a goroutine for every ping, and kept a
// timer object per socket in the heap that every GC cycle marks (BENCHMARKS.md, "The events page
// beside 10 000 idle subscribers: where the time goes").
//
// A socket joins at its connection_ack and leaves at its close: the ring holds exactly the
// sockets in it (its bound is the open sockets, themselves bounded by the connection caps). New
// sockets are dealt round-robin over the slots from a quarter to the whole of a turn ahead, so
// sockets that open together are spread over most of the interval, and none is pinged sooner
// than a quarter of an interval after its ack. Dead-peer detection is the socket's own rule
// (leanConn.keepAlive): a visit finds no pong for two intervals and closes it; a visit comes no
// later than a ping did with the per-socket timer.
type keepAliveWheel struct {
	interval time.Duration
	visit    func(c *leanConn) // (*leanConn).keepAlive; tests replace it

	mu      sync.Mutex
	slots   [wheelSlots][]*leanConn
	cursor  int // the slot the next tick visits
	dealt   int // round-robin count of sockets dealt
	n       int // sockets in the ring
	stopped bool
	wake    chan struct{} // the ring is no longer empty, or stop
	batch   []*leanConn   // the slot being visited, outside the lock; cleared after
	done    chan struct{}
}

// wheelSlots is how many slots a turn has: with the 15 s keep-alive, a tick every 234 ms.
const wheelSlots = 64

func newKeepAliveWheel(interval time.Duration) *keepAliveWheel {
	w := &keepAliveWheel{interval: interval, visit: (*leanConn).keepAlive,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run()
	return w
}

// add puts c in the ring (once: a socket already in it stays where it is).
func (w *keepAliveWheel) add(c *leanConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || c.wheelSlot >= 0 {
		return
	}
	ahead := wheelSlots/4 + w.dealt%(wheelSlots-wheelSlots/4)
	w.dealt++
	s := (w.cursor + ahead) % wheelSlots
	c.wheelSlot, c.wheelPos = int32(s), int32(len(w.slots[s]))
	w.slots[s] = append(w.slots[s], c)
	w.n++
	if w.n == 1 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// remove takes c out of the ring, if it is in it.
func (w *keepAliveWheel) remove(c *leanConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c.wheelSlot < 0 {
		return
	}
	slot := w.slots[c.wheelSlot]
	last := len(slot) - 1
	if moved := slot[last]; moved != c {
		slot[c.wheelPos] = moved
		moved.wheelPos = c.wheelPos
	}
	slot[last] = nil
	slot = slot[:last]
	if cap(slot) > 64 && len(slot) < cap(slot)/4 { // a slot that emptied lets its array go
		slot = append([]*leanConn(nil), slot...)
	}
	w.slots[c.wheelSlot] = slot
	c.wheelSlot, c.wheelPos = -1, -1
	w.n--
}

// len is how many sockets the ring holds.
func (w *keepAliveWheel) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n
}

// run ticks while the ring holds sockets, and waits (no ticker) while it is empty.
func (w *keepAliveWheel) run() {
	defer close(w.done)
	tick := max(w.interval/wheelSlots, time.Millisecond)
	for {
		w.mu.Lock()
		empty, stopped := w.n == 0, w.stopped
		w.mu.Unlock()
		if stopped {
			return
		}
		if empty {
			<-w.wake
			continue
		}
		t := time.NewTicker(tick)
		for w.turn() {
			select {
			case <-t.C:
			case <-w.wake: // stop (add does not wake a ring that is not empty)
			}
		}
		t.Stop()
	}
}

// turn visits the slot under the cursor and moves it on; false when the ring is empty or stopped.
func (w *keepAliveWheel) turn() bool {
	w.mu.Lock()
	if w.stopped || w.n == 0 {
		w.mu.Unlock()
		return false
	}
	slot := w.slots[w.cursor]
	w.cursor = (w.cursor + 1) % wheelSlots
	w.batch = append(w.batch[:0], slot...)
	batch := w.batch
	w.mu.Unlock()
	for _, c := range batch {
		w.visit(c) // a write each: outside the lock, so sockets join and leave meanwhile
	}
	clear(batch) // the closed ones are not kept until the slot's next turn
	return true
}

// stop ends the goroutine; the sockets' own closes empty the ring.
func (w *keepAliveWheel) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	<-w.done
}

// keepAliveWheel is the wheel of interval, made with the first socket that needs it (one per
// interval: in practice one, keepAliveInterval).
func (ls *LeanSockets) keepAliveWheel(interval time.Duration) *keepAliveWheel {
	ls.wheelMu.Lock()
	defer ls.wheelMu.Unlock()
	for _, w := range ls.wheels {
		if w.interval == interval {
			return w
		}
	}
	if ls.wheelsStopped {
		return nil
	}
	w := newKeepAliveWheel(interval)
	ls.wheels = append(ls.wheels, w)
	return w
}

// Canned protocol messages, the bytes send would encode: the keep-alive's, and the pong and ping
// recognised without a JSON decode (onMessage; other spellings take the full decode).
var (
	pingMessage = []byte(`{"type":"ping"}`)
	pongMessage = []byte(`{"type":"pong"}`)
	kaMessage   = []byte(`{"type":"ka"}`)
)

// keepAlive is the wheel's visit: graphql-ws gets "ka"; graphql-transport-ws a ping, and is cut
// (as gqlgen's read deadline cuts it) when no pong came for two intervals.
func (c *leanConn) keepAlive() {
	if c.legacy {
		c.write(kaMessage)
		return
	}
	if time.Since(time.Unix(0, c.lastPong.Load())) > 2*c.t.keepAlive {
		c.nbc.CloseWithError(errNoPong)
		return
	}
	c.write(pingMessage)
}

// leaveWheel takes the socket out of its keep-alive (at its close).
func (c *leanConn) leaveWheel() {
	if w := c.wheel; w != nil {
		w.remove(c)
	}
}
