package memstats

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventide/server/pubsub"
)

// Bounds and defaults of a Sampler.
const (
	MinInterval            = 250 * time.Millisecond // fastest sampling and subscription interval
	MaxInterval            = 60 * time.Second       // slowest
	DefaultHistorySize     = 720                    // samples kept: an hour at the default rate
	DefaultHistoryInterval = 5 * time.Second
	DefaultBuffer          = 8 // samples a subscriber may fall behind before it is dropped
	DefaultMaxSubscribers  = 1000
)

// ErrStopped is returned by Subscribe once Run has returned, and by a second Run.
var ErrStopped = errors.New("memstats: sampler stopped")

// Options configures a Sampler; zero values select the defaults.
type Options struct {
	HistorySize     int           // samples in the history ring; default DefaultHistorySize
	HistoryInterval time.Duration // one history sample per interval, clamped to MinInterval–MaxInterval
	Buffer          int           // per-subscriber buffer; default DefaultBuffer
	MaxSubscribers  int           // default DefaultMaxSubscribers
	LimitBytes      int64         // the memory limit in force, from ApplyMemoryLimit; 0 = none
	LogInterval     time.Duration // one "memory" log line per interval (MEMORY_LOG_INTERVAL); 0 = none
	Logger          *slog.Logger  // nil discards
	// ReadRSS returns the resident set size in bytes; nil reads /proc/self/statm. On error, or
	// where there is no /proc, samples report the runtime's mapped and unreleased memory instead.
	// The watchdog reads it too, so it must be safe for concurrent use.
	ReadRSS  func() (int64, error)
	Watchdog WatchdogOptions
}

// Sampler is the process's one memory sampler. A single goroutine (Run) takes samples, keeps the
// history and feeds every subscriber: it samples at the interval of the fastest subscriber, or at
// the history interval when that is faster or nobody listens. Its methods are safe for
// concurrent use.
type Sampler struct {
	opts         Options
	log          *slog.Logger
	now          func() time.Time
	freeOSMemory func()
	statm        *statm // nil when Options.ReadRSS was given

	readMu sync.Mutex
	reader *reader

	mu       sync.Mutex
	latest   Sample
	ring     []Sample
	head     int // where the next history sample goes
	filled   int
	lastPush time.Time
	state    int
	wake     chan struct{} // tells Run that the fastest interval may have changed

	subs *pubsub.Fanout[struct{}, due]
	// ivMu guards intervals alone: a subscriber leaving updates it under the fan-out's lock.
	ivMu      sync.Mutex
	intervals map[time.Duration]int // subscribers per interval: the fastest sets the rate

	// Watchdog state, touched only by Run's goroutine.
	over         int
	restartAsked bool

	samples, pressures, restarts atomic.Uint64
}

const (
	idle = iota
	running
	stopped
)

// due is what a tick offers the subscribers: each takes the sample when its own interval has
// elapsed, within slack.
type due struct {
	smp   Sample
	now   time.Time
	slack time.Duration
}

// New returns a sampler; nothing is sampled periodically until Run is called.
func New(opts Options) *Sampler {
	if opts.HistorySize <= 0 {
		opts.HistorySize = DefaultHistorySize
	}
	if opts.HistoryInterval <= 0 {
		opts.HistoryInterval = DefaultHistoryInterval
	}
	opts.HistoryInterval = clamp(opts.HistoryInterval)
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultBuffer
	}
	if opts.MaxSubscribers <= 0 {
		opts.MaxSubscribers = DefaultMaxSubscribers
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	opts.Watchdog = opts.Watchdog.withDefaults()
	s := &Sampler{
		opts:         opts,
		log:          opts.Logger,
		now:          time.Now,
		freeOSMemory: debug.FreeOSMemory,
		ring:         make([]Sample, opts.HistorySize),
		subs:         pubsub.NewFanout[struct{}, due](opts.Buffer, opts.MaxSubscribers),
		intervals:    make(map[time.Duration]int),
		wake:         make(chan struct{}, 1),
	}
	if s.opts.ReadRSS == nil {
		s.statm = &statm{}
		s.opts.ReadRSS = s.statm.read
	}
	s.reader = newReader(s.opts.ReadRSS)
	return s
}

// clamp bounds a sampling or subscription interval to MinInterval–MaxInterval.
func clamp(d time.Duration) time.Duration {
	return min(max(d, MinInterval), MaxInterval)
}

// sample takes a fresh sample stamped now and makes it the latest.
func (s *Sampler) sample(now time.Time) Sample {
	var smp Sample
	s.readMu.Lock()
	s.reader.read(&smp)
	s.readMu.Unlock()
	smp.At = now
	if limit := s.opts.LimitBytes; limit > 0 {
		smp.MemoryLimitBytes = limit
		smp.UsagePercent = 100 * float64(smp.RSSBytes) / float64(limit)
	}
	s.samples.Add(1)
	s.mu.Lock()
	if now.After(s.latest.At) {
		s.latest = smp
	}
	s.mu.Unlock()
	return smp
}

// Current returns the latest sample if it is younger than MinInterval, else a fresh one: queries
// see current figures, and a burst of them costs at most one sample per MinInterval.
func (s *Sampler) Current() Sample {
	now := s.now()
	s.mu.Lock()
	latest := s.latest
	s.mu.Unlock()
	if !latest.At.IsZero() && now.Sub(latest.At) < MinInterval {
		return latest
	}
	return s.sample(now)
}

// History returns up to the last n samples of the history ring, oldest first; n <= 0 means all.
// Samples are one per history interval, for as long as Run has run, up to the ring's size.
func (s *Sampler) History(n int) []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 || n > s.filled {
		n = s.filled
	}
	out := make([]Sample, n)
	start := s.head - n
	if start < 0 {
		start += len(s.ring)
	}
	k := copy(out, s.ring[start:min(start+n, len(s.ring))])
	copy(out[k:], s.ring[:n-k])
	return out
}

func (s *Sampler) pushLocked(smp Sample) {
	s.ring[s.head] = smp
	s.head = (s.head + 1) % len(s.ring)
	s.filled = min(s.filled+1, len(s.ring))
}

// Subscribe returns a channel that receives the current sample at once, then one sample per
// interval (clamped to MinInterval–MaxInterval), until ctx ends; one subscribed before Run starts
// gets its periodic samples once Run runs. The channel is closed when ctx
// ends, when Run returns, and when the subscriber falls more than the buffer behind (it is then
// dropped and counted). Errors: pubsub.ErrTooManySubscribers, ErrStopped, or ctx's error.
func (s *Sampler) Subscribe(ctx context.Context, interval time.Duration) (<-chan Sample, error) {
	return SubscribeAs(s, ctx, interval, func(smp Sample) Sample { return smp })
}

// SubscribeAs is Subscribe delivering convert(sample) instead: a GraphQL resolver gets a channel
// of its model type without a goroutine of its own to convert. convert runs on the sampler's
// goroutine (or the subscriber's, for the first sample), under the fan-out's lock: it must be
// quick and must not call the Sampler.
func SubscribeAs[T any](s *Sampler, ctx context.Context, interval time.Duration, convert func(Sample) T) (<-chan T, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	iv := clamp(interval)
	next := s.now().Add(iv) // when it is due a sample; only the fan-out's Publish reads it after
	sub := pubsub.Sub[due, T]{
		Want: func(d due) bool {
			if d.now.Before(next.Add(-d.slack)) {
				return false
			}
			// Keep the subscriber's own cadence, but never owe it a burst after a stall. Should
			// the sample not fit, the subscriber is dropped and next no longer matters.
			next = later(next.Add(iv), d.now.Add(iv-d.slack))
			return true
		},
		Convert: func(d due) T { return convert(d.smp) },
		First:   []due{{smp: s.Current()}},
		Leave:   func() { s.countInterval(iv, -1) },
	}
	// Counted before it is subscribed: it may leave (ctx done) before SubscribeAs returns.
	s.countInterval(iv, +1)
	// A lean websocket reads the channel only when told (pubsub.Notifier): no goroutine waits.
	ch, err := pubsub.SubscribeAs(s.subs, ctx, struct{}{}, sub)
	if err != nil {
		s.countInterval(iv, -1)
		return nil, err
	}
	return ch, nil
}

// countInterval adds d subscribers of interval iv and wakes Run to recompute its rate.
func (s *Sampler) countInterval(iv time.Duration, d int) {
	s.ivMu.Lock()
	if s.intervals[iv] += d; s.intervals[iv] <= 0 {
		delete(s.intervals, iv)
	}
	s.ivMu.Unlock()
	s.signal()
}

// signal wakes Run to recompute its interval, without blocking.
func (s *Sampler) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// interval is the sampling interval now: the fastest subscriber's, or the history interval.
func (s *Sampler) interval() time.Duration {
	s.ivMu.Lock()
	defer s.ivMu.Unlock()
	d := s.opts.HistoryInterval
	for iv := range s.intervals { // distinct intervals: a handful
		d = min(d, iv)
	}
	return d
}

// tick takes one sample, adds it to the history when one is due and sends it to every subscriber
// whose own interval has elapsed, within half a sampling interval.
func (s *Sampler) tick(now time.Time) {
	smp := s.sample(now)
	slack := s.interval() / 2
	s.mu.Lock()
	if s.lastPush.IsZero() || !now.Before(s.lastPush.Add(s.opts.HistoryInterval-slack)) {
		s.pushLocked(smp)
		s.lastPush = now
	}
	s.mu.Unlock()
	for range s.subs.Publish(struct{}{}, due{smp: smp, now: now, slack: slack}) {
		s.log.Debug("memory subscriber dropped: it fell behind", "buffer", s.opts.Buffer)
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Subscribers returns the number of current subscribers.
func (s *Sampler) Subscribers() int {
	n, _, _ := s.subs.Stats()
	return n
}

// dropped is how many subscribers were dropped for falling behind.
func (s *Sampler) dropped() uint64 {
	_, _, dropped := s.subs.Stats()
	return dropped
}

// Run samples until ctx ends: at once, then at the fastest subscriber's interval or the history
// interval; it also writes the periodic log line and runs the watchdog when they are configured.
// When it returns, every subscriber's channel is closed and Subscribe fails with ErrStopped. It
// returns nil when ctx ends, and ErrStopped when called a second time.
func (s *Sampler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.state != idle {
		s.mu.Unlock()
		return ErrStopped
	}
	s.state = running
	s.mu.Unlock()
	defer s.shutdown()

	s.tick(s.now())
	interval := s.interval()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var logC, checkC <-chan time.Time
	if d := s.opts.LogInterval; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		logC = t.C
	}
	if s.opts.Watchdog.enabled() {
		t := time.NewTicker(s.opts.Watchdog.Interval)
		defer t.Stop()
		checkC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
			if d := s.interval(); d != interval {
				interval = d
				ticker.Reset(d)
			}
		case <-ticker.C:
			s.tick(s.now())
		case <-logC:
			s.logLine(ctx)
		case <-checkC:
			if s.check() {
				checkC = nil // the restart was asked for: once is enough
			}
		}
	}
}

func (s *Sampler) shutdown() {
	s.mu.Lock()
	s.state = stopped
	s.mu.Unlock()
	s.subs.Close(ErrStopped)
	if s.statm != nil {
		s.statm.close() // a later Current reopens it
	}
}

// logLine writes one structured line with the current figures.
func (s *Sampler) logLine(ctx context.Context) {
	c := s.Current()
	attrs := []slog.Attr{
		slog.Int64("rss_bytes", c.RSSBytes),
		slog.Int64("heap_alloc_bytes", c.HeapAllocBytes),
		slog.Int64("heap_inuse_bytes", c.HeapInuseBytes),
		slog.Int64("total_bytes", c.TotalBytes),
		slog.Int("goroutines", c.Goroutines),
		slog.Int("gc_cycles", c.GCCycles),
		slog.Duration("last_gc_pause", time.Duration(c.LastGCPauseNs)),
	}
	if c.MemoryLimitBytes > 0 {
		attrs = append(attrs,
			slog.Int64("limit_bytes", c.MemoryLimitBytes),
			slog.Float64("usage_percent", float64(int(c.UsagePercent*10))/10))
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "memory", attrs...)
}
