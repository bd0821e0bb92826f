package security

import (
	"context"
	"log/slog"
	"time"
)

// Repeats: an ordinary user who asks for an admin field a hundred times is one probe, not a
// hundred events. The first ACCESS_DENIED of a user (or, when anonymous, of a client address) for
// one refusal opens a window of RepeatWindow: the event is stored, logged and forwarded as any
// other, and every repeat within the window only adds one to its Count, in place (no new ID, no
// new ring slot, no subscriber message, no allocation). The refusal is the event's message,
// which the server writes ("Query.serverInfo needs the ADMIN role"), not the operation name,
// which the client chooses and could vary to dodge the count. When the window closes (Run's
// sweep, the next repeat after it, or the table being full) a count above one is written as one
// line msg=security_event_repeated naming the event's id, so the log keeps the total too. When
// the event has left its ring meanwhile, the next repeat opens a new window and a new event.
//
// Bound: at most MaxRepeatKeys windows are open. They all last RepeatWindow, so the order they
// opened in is the order they end in: a queue of their keys, oldest first, closes the expired
// ones in O(1) each and, when it holds MaxRepeatKeys, closes the oldest early. The queue grows
// only as windows open (a quiet server holds none) and is compacted in place rather than grown
// while closed entries lie at its head, so its capacity stays about twice MaxRepeatKeys at most.

// repeatKey names what repeats: the type, who (a user id, else a client address) and the refusal.
type repeatKey struct {
	typ      EventType
	user, ip string
	what     string
}

func keyOf(e *Event) repeatKey {
	k := repeatKey{typ: e.Type, user: e.UserID, what: e.Message}
	if k.user == "" {
		k.ip = e.IP
	}
	return k
}

// repeat is an open window: when it opened, where its event is and how many it has counted.
type repeat struct {
	gen   uint64 // which opening of its key this is
	start time.Time
	share int
	pos   int    // the event's slot when stored; checked against seq, as a sweep moves events
	seq   uint64 // the event's arrival number
	count int
	event Event // as first stored, for the closing line
}

// openedKey is an entry of the queue of windows in the order they opened; gen tells whether the
// window it names is still the one open under that key.
type openedKey struct {
	key repeatKey
	gen uint64
}

type repeats struct {
	open  map[repeatKey]*repeat
	order []openedKey // the queue: order[head:], oldest first
	head  int
	max   int
	gen   uint64
}

func newRepeats(max int) repeats {
	return repeats{open: make(map[repeatKey]*repeat), max: max}
}

// queued is how many entries the queue holds (some may name windows closed since).
func (rs *repeats) queued() int { return len(rs.order) - rs.head }

// push appends k's window to the queue, reusing the room of popped entries before growing.
func (rs *repeats) push(o openedKey) {
	if len(rs.order) == cap(rs.order) && rs.head > 0 {
		n := copy(rs.order, rs.order[rs.head:])
		clear(rs.order[n:])
		rs.order = rs.order[:n]
		rs.head = 0
	}
	rs.order = append(rs.order, o)
}

// repeats reports whether events of type t are counted in one event per window.
func (t EventType) repeats() bool { return t == AccessDenied }

// tally is a closed window's count, to be written once l.mu is released.
type tally struct {
	event Event
	count int
}

func (l *Log) windowOver(r *repeat, now time.Time) bool {
	return now.Sub(r.start) >= l.cfg.RepeatWindow
}

// countRepeatLocked counts e in the open window of its key, if any, and returns the window's
// event as stored now. It reports false when e opens a new window: none is open, the open one
// has ended (its tally is added to tallies) or its event is no longer held.
func (l *Log) countRepeatLocked(e Event, now time.Time, tallies []tally) (Event, bool, []tally) {
	k := keyOf(&e)
	r, ok := l.repeats.open[k]
	if !ok {
		return Event{}, false, tallies
	}
	sh := &l.shares[r.share]
	pos := r.pos
	if l.windowOver(r, now) || sh.slots[pos].seq != r.seq {
		if !l.windowOver(r, now) {
			pos = sh.find(r.seq) // a sweep moved it
		}
		if l.windowOver(r, now) || pos < 0 {
			delete(l.repeats.open, k)
			return Event{}, false, r.close(tallies)
		}
		r.pos = pos
	}
	r.count++
	s := &sh.slots[pos]
	s.e.Count = r.count
	return s.e, true, tallies
}

// openRepeatLocked opens a window for e, stored at share, pos and arrival seq. When the table is
// full, the oldest window is closed first.
func (l *Log) openRepeatLocked(e Event, now time.Time, share, pos int, seq uint64, tallies []tally) []tally {
	rs := &l.repeats
	if rs.queued() >= rs.max {
		tallies = l.popRepeatLocked(tallies)
	}
	k := keyOf(&e)
	rs.gen++
	rs.open[k] = &repeat{gen: rs.gen, start: now, share: share, pos: pos, seq: seq, count: 1, event: e}
	rs.push(openedKey{key: k, gen: rs.gen})
	return tallies
}

// popRepeatLocked takes the oldest entry off the queue and closes its window, if still open.
func (l *Log) popRepeatLocked(tallies []tally) []tally {
	rs := &l.repeats
	o := rs.order[rs.head]
	rs.order[rs.head] = openedKey{}
	rs.head++
	if rs.head == len(rs.order) { // empty: start over at the front
		rs.order = rs.order[:0]
		rs.head = 0
	}
	if r, ok := rs.open[o.key]; ok && r.gen == o.gen {
		delete(rs.open, o.key)
		tallies = r.close(tallies)
	}
	return tallies
}

// closeRepeatsLocked closes windows from the oldest while over says they are over.
func (l *Log) closeRepeatsLocked(over func(*repeat) bool, tallies []tally) []tally {
	rs := &l.repeats
	for rs.queued() > 0 {
		o := rs.order[rs.head]
		if r, ok := rs.open[o.key]; ok && r.gen == o.gen && !over(r) {
			break
		}
		tallies = l.popRepeatLocked(tallies)
	}
	return tallies
}

// close adds the window's tally when it counted repeats.
func (r *repeat) close(tallies []tally) []tally {
	if r.count > 1 {
		tallies = append(tallies, tally{event: r.event, count: r.count})
	}
	return tallies
}

// writeTallies writes each closed window's count: one line msg=security_event_repeated, at the
// level of its event's line, naming the event's id.
func (l *Log) writeTallies(tallies []tally) {
	lg := l.cfg.Logger
	if lg == nil {
		return
	}
	for _, t := range tallies {
		e := t.event
		level := slog.LevelInfo
		if e.Severity.AtLeast(SeverityMedium) {
			level = slog.LevelWarn
		}
		lg.LogAttrs(context.Background(), level, "security_event_repeated",
			slog.String("id", e.ID), slog.String("type", string(e.Type)), slog.String("severity", string(e.Severity)),
			slog.String("ip", e.IP), slog.String("user_id", e.UserID), slog.String("operation", e.Operation),
			slog.String("message", e.Message), slog.Int("count", t.count), slog.Time("since", e.At))
	}
}
