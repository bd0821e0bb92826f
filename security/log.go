package security

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/pubsub"
	"github.com/prometheus/client_golang/prometheus"
)

// errTooManySubscribers is Subscribe's refusal when the log already feeds its maximum number of
// subscribers: a pubsub.ErrTooManySubscribers, RATE_LIMITED.
var errTooManySubscribers = &eventide.Error{Code: eventide.CodeRateLimited,
	Message: "too many security event subscribers; try again later", Err: pubsub.ErrTooManySubscribers}

// LogConfig sizes a Log. Zero fields take the defaults named beside them.
type LogConfig struct {
	MaxEvents        int              // SECURITY_MAX_EVENTS: events kept, over the three shares; default 1000
	MaxAge           time.Duration    // SECURITY_EVENT_MAX_AGE: older events are dropped; 0 keeps them until overwritten
	SweepInterval    time.Duration    // how often Run drops old events and closes repeat windows; default MaxAge/24, within 1s..1m
	MaxSubscribers   int              // live subscribers at most; default 100
	SubscriberBuffer int              // events a subscriber may fall behind before it is dropped; default 64
	RepeatWindow     time.Duration    // repeated ACCESS_DENIED are counted in one event per window (THROTTLE_TTL); default 1m
	MaxRepeatKeys    int              // open repeat windows at most (the oldest is closed first); default 10000
	Origin           string           // this replica's id in event IDs; default random
	Logger           *slog.Logger     // every event logged here is also one line on it (msg=security_event); nil: none
	Now              func() time.Time // the clock; default time.Now
}

func (c LogConfig) withDefaults() LogConfig {
	if c.MaxEvents <= 0 {
		c.MaxEvents = 1000
	}
	if c.MaxAge < 0 {
		c.MaxAge = 0
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = min(max(c.MaxAge/24, time.Second), time.Minute)
	}
	if c.MaxSubscribers <= 0 {
		c.MaxSubscribers = 100
	}
	if c.SubscriberBuffer <= 0 {
		c.SubscriberBuffer = 64
	}
	if c.RepeatWindow <= 0 {
		c.RepeatWindow = time.Minute
	}
	if c.MaxRepeatKeys <= 0 {
		c.MaxRepeatKeys = 10000
	}
	if c.Origin == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.Origin = hex.EncodeToString(b[:])
	}
	c.Origin = clip(c.Origin, 32)
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// The shares of the log. Each is a ring of its own, so an event only ever pushes out an older
// event of its own share: a flood of INFO/LOW events (failed sign-ins, forged tokens, throttling)
// cannot push out a MEDIUM one, and a flood of MEDIUM ones (ACCESS_DENIED from many throwaway
// accounts) cannot push out a HIGH or CRITICAL one (a brute-force alarm). The rarer, graver
// events get a quarter of SECURITY_MAX_EVENTS each, the routine ones the half that remains.
const (
	shareRoutine = iota // INFO, LOW
	shareMedium         // MEDIUM
	shareGrave          // HIGH, CRITICAL
	numShares
)

// shareOf is the share that events of severity s are kept in.
func shareOf(s Severity) int {
	switch {
	case s.AtLeast(SeverityHigh):
		return shareGrave
	case s.AtLeast(SeverityMedium):
		return shareMedium
	}
	return shareRoutine
}

// shareSizes splits maxEvents into the shares: a quarter each for MEDIUM and HIGH+, the rest
// for INFO/LOW, and at least one event each.
func shareSizes(maxEvents int) [numShares]int {
	var n [numShares]int
	n[shareGrave] = max(1, maxEvents/4)
	n[shareMedium] = max(1, maxEvents/4)
	n[shareRoutine] = max(1, maxEvents-n[shareGrave]-n[shareMedium])
	return n
}

// ring is one share: a fixed array of size slots, the oldest overwritten. The array is made at
// the share's first event: a server that has logged none holds none (the three arrays are 0.2
// MiB of heap at the default 1 000 events, ~0.4 MiB of RSS; BENCHMARKS.md, "Idle RSS").
type ring struct {
	size  int
	slots []slot // nil until the first put, then size slots
	head  int    // where the next event goes
	n     int    // events held
}

// slot is a stored event and its arrival number on this replica, which orders events across
// shares (IDs do not: events from other replicas keep theirs).
type slot struct {
	e   Event
	seq uint64
}

// at is the i-th newest slot of r, 0 <= i < r.n.
func (r *ring) at(i int) *slot {
	size := len(r.slots)
	return &r.slots[(r.head-1-i+size)%size]
}

// put stores e at arrival seq, overwriting the oldest slot when full, and returns its index.
func (r *ring) put(e Event, seq uint64) int {
	if r.slots == nil {
		r.slots = make([]slot, r.size)
	}
	i := r.head
	r.slots[i] = slot{e: e, seq: seq}
	r.head++
	if r.head == len(r.slots) {
		r.head = 0
	}
	if r.n < len(r.slots) {
		r.n++
	}
	return i
}

// find returns the index of the slot that holds arrival seq, or -1.
func (r *ring) find(seq uint64) int {
	size := len(r.slots)
	for i := range r.n {
		j := (r.head - 1 - i + size) % size
		if r.slots[j].seq == seq {
			return j
		}
	}
	return -1
}

// sweep drops the events before cutoff, compacting in place, and returns how many it dropped.
func (r *ring) sweep(cutoff time.Time) int {
	if r.n == 0 {
		return 0
	}
	size := len(r.slots)
	tail := (r.head - r.n + size) % size
	kept := 0
	for i := range r.n {
		src := (tail + i) % size
		if r.slots[src].e.At.Before(cutoff) {
			continue
		}
		if dst := (tail + kept) % size; dst != src {
			r.slots[dst] = r.slots[src]
		}
		kept++
	}
	for i := kept; i < r.n; i++ {
		r.slots[(tail+i)%size] = slot{} // let the strings go
	}
	dropped := r.n - kept
	r.n = kept
	r.head = (tail + kept) % size
	return dropped
}

// Log is the bounded security event log: three shares by severity (INFO/LOW, MEDIUM, HIGH and
// CRITICAL), each a ring of its newest events, together at most MaxEvents, swept of events older
// than MaxAge and fanned out to live subscribers. Repeated ACCESS_DENIED for one user (or, when
// anonymous, one client address) and one refusal are counted in the event of the first, for
// RepeatWindow (see repeats.go). Every event logged here is also one structured line on Logger.
// Logging is O(1), allocates only a new event's ID (and the log line) and never waits on a
// subscriber or on Redis. A Log is safe for concurrent use.
type Log struct {
	cfg LogConfig

	mu      sync.Mutex
	shares  [numShares]ring
	arrival uint64 // arrival number of the newest stored event
	seq     uint64 // the last ID given
	repeats repeats

	// subs feeds the live subscribers; appendLocked publishes under mu, which no subscriber's
	// function takes.
	subs *pubsub.Fanout[struct{}, Event]

	forward atomic.Pointer[func(Event)] // publishes to the other replicas, once Share was called

	loggedN, received, repeated atomic.Uint64

	loggedVec   *prometheus.CounterVec
	logged      [len(eventTypes)]prometheus.Counter
	invalid     prometheus.Counter
	receivedCtr prometheus.Counter
	droppedCtr  prometheus.Collector
	repeatedCtr prometheus.Counter
	gauges      []prometheus.Collector
}

// NewLog returns an empty log sized by cfg. Run must run for the age sweep to happen and for
// repeat windows to be closed on time.
func NewLog(cfg LogConfig) *Log {
	cfg = cfg.withDefaults()
	l := &Log{
		cfg: cfg,
		// The resolver converts the log's events on a forwarding goroutine of its own, whose
		// channel, not the log's, a lean websocket reads: the log leaves its Notifier alone.
		subs:    pubsub.NewFanout[struct{}, Event](cfg.SubscriberBuffer, cfg.MaxSubscribers, pubsub.NoNotifier()),
		repeats: newRepeats(cfg.MaxRepeatKeys),
		loggedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: "events_logged_total",
			Help: "Security events logged on this replica, by type (repeats counted in an earlier event included).",
		}, []string{"type"}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: "events_invalid_total",
			Help: "Security events refused for an unknown type.",
		}),
		receivedCtr: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: "events_received_total",
			Help: "Security events received from other replicas.",
		}),
		repeatedCtr: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: "events_repeated_total",
			Help: "Security events counted in an earlier event of the same user (or client) and refusal instead of stored.",
		}),
	}
	l.droppedCtr = prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: "eventide", Subsystem: "security", Name: "subscribers_dropped_total",
		Help: "Security event subscribers dropped for falling behind.",
	}, func() float64 { _, _, dropped := l.subs.Stats(); return float64(dropped) })
	for i, n := range shareSizes(cfg.MaxEvents) {
		l.shares[i].size = n
	}
	for i, t := range eventTypes {
		l.logged[i] = l.loggedVec.WithLabelValues(string(t))
	}
	l.gauges = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "eventide", Subsystem: "security", Name: "events_stored",
			Help: "Security events held in the in-memory rings.",
		}, func() float64 { return float64(l.Stats().Events) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "eventide", Subsystem: "security", Name: "subscribers",
			Help: "Live security event subscribers.",
		}, func() float64 { return float64(l.Stats().Subscribers) }),
	}
	return l
}

// Origin is this replica's id: the suffix of the IDs it gives.
func (l *Log) Origin() string { return l.cfg.Origin }

// Log records e and offers it to every subscriber whose minimum severity it meets, without
// waiting. It fills e.ID (unique, and increasing on this replica), e.At when zero, e.Severity
// when empty or unknown (the type's DefaultSeverity) and e.Count (1), cuts over-long strings,
// writes the event's log line and returns the event as stored. An ACCESS_DENIED that repeats an
// open window's (same user, or client when anonymous, and same refusal) is not stored again: the
// window's event counts it, and that event, with its new Count, is returned; its subscribers and
// other replicas are not told again. An event of unknown type is not recorded: it is counted and
// the zero Event is returned.
func (l *Log) Log(e Event) Event {
	i := e.Type.index()
	if i < 0 {
		l.invalid.Inc()
		return Event{}
	}
	e = e.complete()
	l.loggedN.Add(1)
	l.logged[i].Inc()
	var tallies []tally
	l.mu.Lock()
	now := l.cfg.Now()
	if e.At.IsZero() {
		e.At = now
	}
	if e.Type.repeats() {
		var counted bool
		var stored Event
		stored, counted, tallies = l.countRepeatLocked(e, now, tallies)
		if counted {
			l.mu.Unlock()
			l.repeated.Add(1)
			l.repeatedCtr.Inc()
			l.writeTallies(tallies)
			return stored
		}
	}
	l.seq++
	e.ID = l.formatID(l.seq)
	share, pos, seq := l.appendLocked(e)
	if e.Type.repeats() {
		tallies = l.openRepeatLocked(e, now, share, pos, seq, tallies)
	}
	l.mu.Unlock()
	l.writeTallies(tallies)
	l.writeLine(e)
	if f := l.forward.Load(); f != nil {
		(*f)(e)
	}
	return e
}

// receive records an event that another replica logged, keeping its ID, and fans it out here.
// It is not forwarded again, nor written to this replica's log (its own replica wrote it), nor
// counted as a repeat (its own replica did).
func (l *Log) receive(e Event) bool {
	if !e.Type.Valid() {
		l.invalid.Inc()
		return false
	}
	e = e.complete()
	l.mu.Lock()
	if e.At.IsZero() {
		e.At = l.cfg.Now()
	}
	if e.ID == "" {
		l.seq++
		e.ID = l.formatID(l.seq)
	}
	l.appendLocked(e)
	l.mu.Unlock()
	l.received.Add(1)
	l.receivedCtr.Inc()
	return true
}

// complete fills what the log fills in every event but the time and the ID.
func (e Event) complete() Event {
	if !e.Severity.Valid() {
		e.Severity = e.Type.DefaultSeverity()
	}
	if e.Count < 1 {
		e.Count = 1
	}
	return e.bounded()
}

// formatID renders seq as 16 hex digits (so IDs sort as they were given) and the origin, which
// keeps IDs from different replicas apart. One allocation: the string.
func (l *Log) formatID(seq uint64) string {
	const digits = "0123456789abcdef"
	var b [16 + 1 + 32]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[seq&0xf]
		seq >>= 4
	}
	b[16] = '-'
	n := 17 + copy(b[17:], l.cfg.Origin)
	return string(b[:n])
}

// appendLocked puts e in its share, overwriting that share's oldest event when full, fans it out
// and returns where it went: the share, the slot and the arrival number.
func (l *Log) appendLocked(e Event) (share, pos int, seq uint64) {
	l.arrival++
	share = shareOf(e.Severity)
	pos = l.shares[share].put(e, l.arrival)
	l.subs.Publish(struct{}{}, e)
	return share, pos, l.arrival
}

// writeLine writes e as one structured line: INFO and LOW events at level INFO, MEDIUM and
// graver at WARN, so that a server logging at LOG_LEVEL=warn still keeps what matters.
func (l *Log) writeLine(e Event) {
	lg := l.cfg.Logger
	if lg == nil {
		return
	}
	level := slog.LevelInfo
	if e.Severity.AtLeast(SeverityMedium) {
		level = slog.LevelWarn
	}
	ctx := context.Background()
	if !lg.Enabled(ctx, level) {
		return
	}
	lg.LogAttrs(ctx, level, "security_event",
		slog.String("id", e.ID), slog.String("type", string(e.Type)), slog.String("severity", string(e.Severity)),
		slog.String("ip", e.IP), slog.String("user_id", e.UserID), slog.String("email", e.Email),
		slog.String("user_agent", e.UserAgent), slog.String("operation", e.Operation), slog.String("message", e.Message))
}

// Sweep drops every event older than MaxAge and returns how many it dropped; it also closes the
// repeat windows that have ended. Run calls it periodically. Events are compacted in place, so
// an event that arrived out of time order (from another replica) is dropped too.
func (l *Log) Sweep() int {
	l.mu.Lock()
	now := l.cfg.Now()
	dropped := 0
	if l.cfg.MaxAge > 0 {
		cutoff := now.Add(-l.cfg.MaxAge)
		for i := range l.shares {
			dropped += l.shares[i].sweep(cutoff)
		}
	}
	tallies := l.closeRepeatsLocked(func(r *repeat) bool { return l.windowOver(r, now) }, nil)
	l.mu.Unlock()
	l.writeTallies(tallies)
	return dropped
}

// Run sweeps every SweepInterval until ctx ends; then it closes every open repeat window, so
// that their counts reach the log before the process ends.
func (l *Log) Run(ctx context.Context) {
	t := time.NewTicker(l.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			l.mu.Lock()
			tallies := l.closeRepeatsLocked(func(*repeat) bool { return true }, nil)
			l.mu.Unlock()
			l.writeTallies(tallies)
			return
		case <-t.C:
			l.Sweep()
		}
	}
}

// Filter selects events in Query. Zero fields select everything.
type Filter struct {
	Types       []EventType // any of these types
	MinSeverity Severity    // at least this severe
	IP          string      // exactly this client address
	UserID      string      // exactly this user
	Since       time.Time   // at or after this time
}

func (f *Filter) match(e *Event) bool {
	return (len(f.Types) == 0 || slices.Contains(f.Types, e.Type)) &&
		e.Severity.AtLeast(f.MinSeverity) &&
		(f.IP == "" || e.IP == f.IP) &&
		(f.UserID == "" || e.UserID == f.UserID) &&
		(f.Since.IsZero() || !e.At.Before(f.Since))
}

// Query returns at most last events that match f, newest first (in the order they arrived here)
// across the shares. Events older than MaxAge are left out even before the sweep drops them.
// An event that counts repeats says how many in its message. last <= 0 returns none.
func (l *Log) Query(f Filter, last int) []Event {
	if last <= 0 {
		return []Event{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var cutoff time.Time
	if l.cfg.MaxAge > 0 {
		cutoff = l.cfg.Now().Add(-l.cfg.MaxAge)
	}
	held := 0
	for i := range l.shares {
		held += l.shares[i].n
	}
	out := make([]Event, 0, min(last, held))
	var next [numShares]int // per share, how many of its newest have been looked at
	for len(out) < last {
		best := -1
		for i := range l.shares {
			if next[i] < l.shares[i].n && (best < 0 || l.shares[i].at(next[i]).seq > l.shares[best].at(next[best]).seq) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		e := &l.shares[best].at(next[best]).e
		next[best]++
		if e.At.Before(cutoff) || !f.match(e) {
			continue
		}
		c := *e
		if c.Count > 1 {
			c.Message = fmt.Sprintf("%s (%d times)", c.Message, c.Count)
		}
		out = append(out, c)
	}
	return out
}

// Subscribe returns a channel of the events logged from now on (here or, once Shared, on
// another replica) that are at least minSeverity ("" for all). The channel is closed when ctx
// ends, or when the subscriber falls more than SubscriberBuffer events behind: a slow reader is
// dropped, never waited for. Errors: ErrInvalidSeverity, and RATE_LIMITED wrapping
// pubsub.ErrTooManySubscribers when the log feeds its maximum.
func (l *Log) Subscribe(ctx context.Context, minSeverity Severity) (<-chan Event, error) {
	if minSeverity != "" && !minSeverity.Valid() {
		return nil, ErrInvalidSeverity
	}
	ch, err := l.subs.Subscribe(ctx, struct{}{}, func(e Event) bool { return e.Severity.AtLeast(minSeverity) })
	if errors.Is(err, pubsub.ErrTooManySubscribers) {
		return nil, errTooManySubscribers
	}
	return ch, err
}

// LogStats is a snapshot of a Log.
type LogStats struct {
	Events             int    // held now, over all shares
	Capacity           int    // MaxEvents, over all shares
	RepeatWindows      int    // repeat windows open now
	Repeated           uint64 // events counted in an earlier one instead of stored, since start
	Subscribers        int    // live now
	Logged             uint64 // logged on this replica since start, repeats included
	Received           uint64 // received from other replicas since start
	SubscribersDropped uint64 // dropped for falling behind since start
}

// Stats returns a snapshot of the log's counters.
func (l *Log) Stats() LogStats {
	subscribers, _, dropped := l.subs.Stats()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := LogStats{
		RepeatWindows:      len(l.repeats.open),
		Repeated:           l.repeated.Load(),
		Subscribers:        subscribers,
		Logged:             l.loggedN.Load(),
		Received:           l.received.Load(),
		SubscribersDropped: dropped,
	}
	for i := range l.shares {
		st.Events += l.shares[i].n
		st.Capacity += l.shares[i].size
	}
	return st
}

// Collectors returns the log's Prometheus metrics, for the caller to register:
// eventide_security_events_logged_total{type}, _events_invalid_total, _events_received_total,
// _subscribers_dropped_total, _events_repeated_total, and the gauges _events_stored and
// _subscribers.
func (l *Log) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector{l.loggedVec, l.invalid, l.receivedCtr, l.droppedCtr, l.repeatedCtr}, l.gauges...)
}
