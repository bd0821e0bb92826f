package security

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventide/server/eventide"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrTooManySubscribers is returned by Subscribe when the log already feeds its maximum number of
// subscribers.
var ErrTooManySubscribers = &eventide.Error{Code: eventide.CodeRateLimited,
	Message: "too many security event subscribers; try again later"}

// LogConfig sizes a Log. Zero fields take the defaults named beside them.
type LogConfig struct {
	MaxEvents        int              // SECURITY_MAX_EVENTS: events kept; default 1000
	MaxAge           time.Duration    // SECURITY_EVENT_MAX_AGE: older events are dropped; 0 keeps them until overwritten
	SweepInterval    time.Duration    // how often Run drops old events; default MaxAge/24, within 1s..1m
	MaxSubscribers   int              // live subscribers at most; default 100
	SubscriberBuffer int              // events a subscriber may fall behind before it is dropped; default 64
	Origin           string           // this replica's id in event IDs and on the Redis bridge; default random
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

// Log is the bounded security event log: a ring of the newest MaxEvents events, swept of events
// older than MaxAge, fanned out to live subscribers. Logging is O(1), allocates only the event's
// ID and never waits on a subscriber or on Redis. A Log is safe for concurrent use.
type Log struct {
	cfg LogConfig

	mu   sync.Mutex
	ring []Event // fixed length MaxEvents; the oldest event is overwritten
	head int     // where the next event goes
	n    int     // events held
	seq  uint64
	subs map[*subscriber]struct{}

	forward atomic.Pointer[func(Event)] // the Redis bridge's queue, when there is one

	loggedN, received, dropped atomic.Uint64

	loggedVec   *prometheus.CounterVec
	logged      [len(eventTypes)]prometheus.Counter
	invalid     prometheus.Counter
	receivedCtr prometheus.Counter
	droppedCtr  prometheus.Counter
	gauges      []prometheus.Collector
}

type subscriber struct {
	ch   chan Event
	min  Severity
	stop func() bool // releases the context.AfterFunc once the subscriber is gone
}

// NewLog returns an empty log sized by cfg. Run must run for the age sweep to happen.
func NewLog(cfg LogConfig) *Log {
	cfg = cfg.withDefaults()
	l := &Log{
		cfg:  cfg,
		ring: make([]Event, cfg.MaxEvents),
		subs: make(map[*subscriber]struct{}),
		loggedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: "events_logged_total",
			Help: "Security events logged on this replica, by type.",
		}, []string{"type"}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: "events_invalid_total",
			Help: "Security events refused for an unknown type.",
		}),
		receivedCtr: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: "events_received_total",
			Help: "Security events received from other replicas.",
		}),
		droppedCtr: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: "subscribers_dropped_total",
			Help: "Security event subscribers dropped for falling behind.",
		}),
	}
	for i, t := range eventTypes {
		l.logged[i] = l.loggedVec.WithLabelValues(string(t))
	}
	l.gauges = []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "eventide", Subsystem: "security", Name: "events_stored",
			Help: "Security events held in the in-memory ring.",
		}, func() float64 { return float64(l.Stats().Events) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "eventide", Subsystem: "security", Name: "subscribers",
			Help: "Live security event subscribers.",
		}, func() float64 { return float64(l.Stats().Subscribers) }),
	}
	return l
}

// Origin is this replica's id: the suffix of the IDs it gives and its name on the Redis bridge.
func (l *Log) Origin() string { return l.cfg.Origin }

// Log records e and offers it to every subscriber whose minimum severity it meets, without
// waiting. It fills e.ID (unique, and increasing on this replica), e.At when zero and e.Severity
// when empty or unknown (the type's DefaultSeverity), cuts over-long strings, and returns the
// event as stored. An event of unknown type is not recorded: it is counted and the zero Event is
// returned.
func (l *Log) Log(e Event) Event {
	e, i := l.store(e, false)
	if i < 0 {
		return Event{}
	}
	l.loggedN.Add(1)
	l.logged[i].Inc()
	if f := l.forward.Load(); f != nil {
		(*f)(e)
	}
	return e
}

// receive records an event that another replica logged, keeping its ID, and fans it out here.
// It is not forwarded again.
func (l *Log) receive(e Event) bool {
	if _, i := l.store(e, true); i < 0 {
		return false
	}
	l.received.Add(1)
	l.receivedCtr.Inc()
	return true
}

// store completes e as Log describes (a new ID unless keepID and e has one) and appends it; it
// returns the event as stored and the index of its type, or -1, counted as invalid, for an
// unknown type, which is not stored.
func (l *Log) store(e Event, keepID bool) (Event, int) {
	i := e.Type.index()
	if i < 0 {
		l.invalid.Inc()
		return Event{}, -1
	}
	if !e.Severity.Valid() {
		e.Severity = e.Type.DefaultSeverity()
	}
	e = e.bounded()
	l.mu.Lock()
	if e.At.IsZero() {
		e.At = l.cfg.Now()
	}
	if !keepID || e.ID == "" {
		l.seq++
		e.ID = l.formatID(l.seq)
	}
	l.appendLocked(e)
	l.mu.Unlock()
	return e, i
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

// appendLocked puts e in the ring, overwriting the oldest event when full, and fans it out.
func (l *Log) appendLocked(e Event) {
	l.ring[l.head] = e
	l.head++
	if l.head == len(l.ring) {
		l.head = 0
	}
	if l.n < len(l.ring) {
		l.n++
	}
	for s := range l.subs {
		if !e.Severity.AtLeast(s.min) {
			continue
		}
		select {
		case s.ch <- e:
		default:
			l.removeLocked(s)
			l.dropped.Add(1)
			l.droppedCtr.Inc()
		}
	}
}

// Sweep drops every event older than MaxAge and returns how many it dropped. Run calls it
// periodically. Events are compacted in place, so an event that arrived out of time order (from
// another replica) is dropped too.
func (l *Log) Sweep() int {
	if l.cfg.MaxAge <= 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cutoff := l.cfg.Now().Add(-l.cfg.MaxAge)
	size := len(l.ring)
	tail := (l.head - l.n + size) % size
	kept := 0
	for i := range l.n {
		src := (tail + i) % size
		if l.ring[src].At.Before(cutoff) {
			continue
		}
		if dst := (tail + kept) % size; dst != src {
			l.ring[dst] = l.ring[src]
		}
		kept++
	}
	for i := kept; i < l.n; i++ {
		l.ring[(tail+i)%size] = Event{} // let the strings go
	}
	dropped := l.n - kept
	l.n = kept
	l.head = (tail + kept) % size
	return dropped
}

// Run sweeps old events every SweepInterval until ctx ends.
func (l *Log) Run(ctx context.Context) {
	if l.cfg.MaxAge <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(l.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
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

// Query returns at most last events that match f, newest first. Events older than MaxAge are
// left out even before the sweep drops them. last <= 0 returns none.
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
	out := make([]Event, 0, min(last, l.n))
	size := len(l.ring)
	for i := range l.n {
		e := &l.ring[(l.head-1-i+size)%size]
		if e.At.Before(cutoff) || !f.match(e) {
			continue
		}
		out = append(out, *e)
		if len(out) == last {
			break
		}
	}
	return out
}

// Subscribe returns a channel of the events logged from now on (here or, with a Bridge, on
// another replica) that are at least minSeverity ("" for all). The channel is closed when ctx
// ends, or when the subscriber falls more than SubscriberBuffer events behind: a slow reader is
// dropped, never waited for. Errors: ErrInvalidSeverity, ErrTooManySubscribers.
func (l *Log) Subscribe(ctx context.Context, minSeverity Severity) (<-chan Event, error) {
	if minSeverity != "" && !minSeverity.Valid() {
		return nil, ErrInvalidSeverity
	}
	s := &subscriber{ch: make(chan Event, l.cfg.SubscriberBuffer), min: minSeverity}
	l.mu.Lock()
	if len(l.subs) >= l.cfg.MaxSubscribers {
		l.mu.Unlock()
		return nil, ErrTooManySubscribers
	}
	l.subs[s] = struct{}{}
	// Set stop before anyone can remove s: AfterFunc may run at once if ctx is done, and it
	// takes l.mu, which we hold.
	s.stop = context.AfterFunc(ctx, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.removeLocked(s)
	})
	l.mu.Unlock()
	return s.ch, nil
}

// removeLocked unsubscribes s and closes its channel, once.
func (l *Log) removeLocked(s *subscriber) {
	if _, ok := l.subs[s]; !ok {
		return
	}
	delete(l.subs, s)
	close(s.ch)
	s.stop()
}

// LogStats is a snapshot of a Log.
type LogStats struct {
	Events             int    // held now
	Capacity           int    // MaxEvents
	Subscribers        int    // live now
	Logged             uint64 // logged on this replica since start
	Received           uint64 // received from other replicas since start
	SubscribersDropped uint64 // dropped for falling behind since start
}

// Stats returns a snapshot of the log's counters.
func (l *Log) Stats() LogStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return LogStats{
		Events:             l.n,
		Capacity:           len(l.ring),
		Subscribers:        len(l.subs),
		Logged:             l.loggedN.Load(),
		Received:           l.received.Load(),
		SubscribersDropped: l.dropped.Load(),
	}
}

// Collectors returns the log's Prometheus metrics, for the caller to register:
// eventide_security_events_logged_total{type}, _events_invalid_total, _events_received_total,
// _subscribers_dropped_total, and the gauges _events_stored and _subscribers.
func (l *Log) Collectors() []prometheus.Collector {
	return append([]prometheus.Collector{l.loggedVec, l.invalid, l.receivedCtr, l.droppedCtr}, l.gauges...)
}
