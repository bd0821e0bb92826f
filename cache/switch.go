package cache

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Switch states.
const (
	stateMemory     int32 = iota // memory only: Redis is not configured
	stateRedis                   // Redis serves
	stateFallback                // Redis failed; memory serves; a probe waits for Redis
	stateRecovering              // Redis answers again: it is being emptied; writes go to both
)

// Switch is the Cache the rest of the server uses. With Redis configured, Redis is primary; the
// first Redis call that fails switches to the memory backend at once (the failed call is answered
// from memory, so no caller sees the error), logs one warning, and starts a probe. When Redis
// answers the probe, the Switch empties it (what it holds may have gone stale while writes only
// invalidated memory), sending writes to both while it does, then switches back and empties
// memory. Without Redis it is the memory backend.
//
// A Redis call never takes longer than the backend's op timeout, and while the fallback is active
// no request touches Redis at all.
type Switch struct {
	redis *Redis // nil without Redis
	mem   *Memory
	log   *slog.Logger
	probe time.Duration
	// fallbackTTL caps the lifetime of what memory takes in while Redis is configured but not
	// serving (CACHE_FALLBACK_TTL): replicas cannot tell each other about writes then, so this
	// bounds how long one serves what another has changed.
	fallbackTTL time.Duration

	state  atomic.Int32
	mu     sync.Mutex // serialises transitions
	trips  atomic.Int64
	closed chan struct{}
	// recovered hears of every return to Redis (the replica bus then sends what it held back);
	// one pending signal is enough.
	recovered chan struct{}
	wg        sync.WaitGroup
}

var _ Cache = (*Switch)(nil)

// NewSwitch returns a Switch over mem and, when r is not nil, Redis. It pings Redis once: when
// Redis does not answer, the Switch starts in the fallback, probing, rather than failing.
func NewSwitch(ctx context.Context, r *Redis, mem *Memory, probeEvery time.Duration, log *slog.Logger) *Switch {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if probeEvery <= 0 {
		probeEvery = 500 * time.Millisecond
	}
	s := &Switch{redis: r, mem: mem, log: log, probe: probeEvery, closed: make(chan struct{}), recovered: make(chan struct{}, 1)}
	if r == nil {
		s.state.Store(stateMemory)
		return s
	}
	s.state.Store(stateRedis)
	if err := r.Ping(ctx); err != nil {
		s.fail(err)
	}
	return s
}

// Close stops the probe and closes both backends.
func (s *Switch) Close() error {
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return nil
	default:
		close(s.closed)
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.mem.Close()
	if s.redis != nil {
		return s.redis.Close()
	}
	return nil
}

// Backend names where reads go now: "redis" or "memory".
func (s *Switch) Backend() string {
	if s.state.Load() == stateRedis {
		return "redis"
	}
	return "memory"
}

// FallbackActive reports whether Redis is configured but not serving.
func (s *Switch) FallbackActive() bool {
	st := s.state.Load()
	return st == stateFallback || st == stateRecovering
}

// SetFallbackTTL sets CACHE_FALLBACK_TTL (DefaultFallbackTTL when d <= 0). Call it before use.
func (s *Switch) SetFallbackTTL(d time.Duration) {
	if d <= 0 {
		d = DefaultFallbackTTL
	}
	s.fallbackTTL = d
}

// DefaultFallbackTTL is CACHE_FALLBACK_TTL's default.
const DefaultFallbackTTL = 2 * time.Second

// memTTL is the lifetime of an entry memory takes in now: ttl (0: the backend's default), capped
// at the fallback TTL while Redis is configured but not serving. Without Redis there is no
// shared cache to lose (and no replicas to keep in step), so ttl stands.
func (s *Switch) memTTL(ttl time.Duration) time.Duration {
	if s.redis == nil || s.state.Load() == stateRedis {
		return ttl
	}
	f := s.fallbackTTL
	if f <= 0 {
		f = DefaultFallbackTTL
	}
	if ttl <= 0 || ttl > f {
		return f
	}
	return ttl
}

// memSet writes items to memory with memTTL(ttl).
func (s *Switch) memSet(ctx context.Context, items []Item, ttl time.Duration) error {
	return s.mem.Set(ctx, items, s.memTTL(ttl))
}

// RedisConfigured reports whether a Redis backend exists.
func (s *Switch) RedisConfigured() bool { return s.redis != nil }

// Fallbacks counts the switches from Redis to memory since start.
func (s *Switch) Fallbacks() int64 { return s.trips.Load() }

// Redis is the Redis backend, nil when there is none.
func (s *Switch) Redis() *Redis { return s.redis }

// Memory is the memory backend.
func (s *Switch) Memory() *Memory { return s.mem }

// Describe is the one-word state for /readyz: "redis", "memory (fallback)" or "memory".
func (s *Switch) Describe() string {
	switch s.state.Load() {
	case stateRedis:
		return "redis"
	case stateFallback, stateRecovering:
		return "memory (fallback)"
	}
	return "memory"
}

// Ready is the cache's /readyz probe: Describe, with an error while Redis is configured but not
// serving (reads then go to memory: a replica serves on, so the check should not be required).
func (s *Switch) Ready(context.Context) (string, error) {
	if s.FallbackActive() {
		return s.Describe(), errors.New("redis unreachable; serving from memory")
	}
	return s.Describe(), nil
}

// readsRedis reports whether reads go to Redis now.
func (s *Switch) readsRedis() bool { return s.state.Load() == stateRedis }

// Serving reports whether Redis serves now (reads go to it).
func (s *Switch) Serving() bool { return s.readsRedis() }

// Accepting reports whether Redis takes writes now: it serves, or it answers again and is being
// emptied before it serves.
func (s *Switch) Accepting() bool {
	st := s.state.Load()
	return st == stateRedis || st == stateRecovering
}

// Recovered receives a signal each time Redis serves again after a failure (one pending signal
// is kept), for one listener: the replica bus, which then sends what it held back.
func (s *Switch) Recovered() <-chan struct{} { return s.recovered }

// Failed tells the Switch that a Redis call made outside it (a PUBLISH of the bus) failed: it
// falls back to memory as if one of its own calls had.
func (s *Switch) Failed(err error) { s.fail(err) }

// SetLocal implements Cache: while Redis serves, another replica's write is in Redis already and
// memory is idle; while memory serves (a fallback, or the end of one), memory takes it.
func (s *Switch) SetLocal(ctx context.Context, items []Item, deletes []string, ttl time.Duration) {
	if s.readsRedis() {
		return
	}
	_ = s.memSet(ctx, items, ttl)
	_ = s.mem.Delete(ctx, deletes)
}

// redisFailed handles an error from a Redis call made on behalf of ctx: the caller's own
// cancellation is returned as is; anything else is Redis's failure and switches to memory.
func (s *Switch) redisFailed(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.fail(err)
	return nil
}

// fail moves to the fallback: from stateRedis it empties memory first (what it holds is from an
// earlier fallback and may be stale) and only then lets reads reach it; from stateRecovering
// memory is still current and is kept.
func (s *Switch) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return
	default:
	}
	switch s.state.Load() {
	case stateRedis:
		_, _ = s.mem.Purge(context.Background())
		s.state.Store(stateFallback)
		s.trips.Add(1)
		s.log.Warn("redis unreachable: the cache falls back to memory until it answers again", "error", err)
		s.wg.Add(1)
		go s.probeLoop()
	case stateRecovering:
		s.state.Store(stateFallback)
		s.log.Warn("redis failed again while recovering; staying on memory", "error", err)
	}
}

// probeLoop pings Redis until it answers, then recovers. It exits on Close or after recovery.
func (s *Switch) probeLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.probe)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		if s.state.Load() != stateFallback {
			continue
		}
		if err := s.redis.Ping(context.Background()); err != nil {
			continue
		}
		if s.recover() {
			return
		}
	}
}

// recover empties Redis while writes go to both backends, then switches reads back to Redis. It
// reports whether Redis serves again.
func (s *Switch) recover() bool {
	s.mu.Lock()
	if s.state.Load() != stateFallback {
		s.mu.Unlock()
		return false
	}
	s.state.Store(stateRecovering)
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), purgeTimeout)
	n, err := s.redis.Purge(ctx)
	cancel()

	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil || s.state.Load() != stateRecovering {
		if s.state.Load() == stateRecovering {
			s.state.Store(stateFallback)
		}
		s.log.Warn("redis answered but could not be emptied; staying on memory", "error", err)
		return false
	}
	s.state.Store(stateRedis)
	_, _ = s.mem.Purge(context.Background())
	select {
	case s.recovered <- struct{}{}:
	default:
	}
	s.log.Info("redis answers again: the cache is back on redis", "stale_entries_dropped", n)
	return true
}

// Get implements Cache.
func (s *Switch) Get(ctx context.Context, keys []string) ([][]byte, error) {
	if s.readsRedis() {
		v, err := s.redis.Get(ctx, keys)
		if err == nil {
			return v, nil
		}
		if err := s.redisFailed(ctx, err); err != nil {
			return nil, err
		}
	}
	return s.mem.Get(ctx, keys)
}

// AddOrGet implements Cache.
func (s *Switch) AddOrGet(ctx context.Context, items []Item, ttl time.Duration) ([][]byte, error) {
	if s.readsRedis() {
		v, err := s.redis.AddOrGet(ctx, items, ttl)
		if err == nil {
			return v, nil
		}
		if err := s.redisFailed(ctx, err); err != nil {
			return nil, err
		}
	}
	return s.mem.AddOrGet(ctx, items, s.memTTL(ttl))
}

// Set implements Cache. While recovering, writes go to both backends so that an invalidation
// made during the purge of Redis is not lost.
func (s *Switch) Set(ctx context.Context, items []Item, ttl time.Duration) error {
	return s.write(ctx, func(c Cache) error {
		if c == Cache(s.mem) {
			return s.memSet(ctx, items, ttl)
		}
		return c.Set(ctx, items, ttl)
	})
}

// Delete implements Cache, like Set.
func (s *Switch) Delete(ctx context.Context, keys []string) error {
	return s.write(ctx, func(c Cache) error { return c.Delete(ctx, keys) })
}

func (s *Switch) write(ctx context.Context, do func(Cache) error) error {
	switch s.state.Load() {
	case stateRedis:
		err := do(s.redis)
		if err == nil {
			return nil
		}
		if err := s.redisFailed(ctx, err); err != nil {
			return err
		}
	case stateRecovering:
		if err := do(s.redis); err != nil {
			if err := s.redisFailed(ctx, err); err != nil {
				return err
			}
		}
	}
	return do(s.mem)
}

// Purge implements Cache: it empties both backends and returns what the serving one held.
func (s *Switch) Purge(ctx context.Context) (int, error) {
	mem, _ := s.mem.Purge(ctx)
	if s.redis == nil || !s.readsRedis() {
		return mem, nil
	}
	n, err := s.redis.Purge(ctx)
	if err != nil {
		if err := s.redisFailed(ctx, err); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Stats implements Cache for the backend that serves now.
func (s *Switch) Stats(ctx context.Context) Stats {
	var st Stats
	if s.readsRedis() {
		st = s.redis.Stats(ctx)
	} else {
		st = s.mem.Stats(ctx)
	}
	st.FallbackActive = s.FallbackActive()
	return st
}

// Options configures Open.
type Options struct {
	// UseRedis selects Redis as the primary backend; otherwise memory only.
	UseRedis bool
	Redis    RedisOptions
	// MaxEntries and MaxBytes bound the memory backend.
	MaxEntries int
	MaxBytes   int64
	TTL        time.Duration
	// ProbeEvery is how often Redis is probed during a fallback (500ms).
	ProbeEvery time.Duration
	// FallbackTTL caps what memory keeps during a fallback (CACHE_FALLBACK_TTL, 2s).
	FallbackTTL time.Duration
	Logger      *slog.Logger
	// Registerer receives the backend metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// Open builds the memory backend, Redis when asked, and the Switch over them. Redis unreachable
// is not an error: the Switch starts on memory and probes.
func Open(ctx context.Context, o Options) *Switch {
	if o.TTL <= 0 {
		o.TTL = 5 * time.Minute // every key has a TTL, whatever the caller forgot
	}
	mem := NewMemory(MemoryOptions{MaxEntries: o.MaxEntries, MaxBytes: o.MaxBytes, TTL: o.TTL})
	var r *Redis
	if o.UseRedis {
		ro := o.Redis
		ro.TTL = o.TTL
		r = NewRedis(ro)
	}
	sw := NewSwitch(ctx, r, mem, o.ProbeEvery, o.Logger)
	sw.SetFallbackTTL(o.FallbackTTL)
	if o.Registerer != nil {
		sw.register(o.Registerer)
	}
	return sw
}

func (s *Switch) register(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eventide_cache_fallback_active", Help: "1 while Redis is configured but unreachable and the in-memory cache serves.",
		}, func() float64 {
			if s.FallbackActive() {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "eventide_cache_fallbacks_total", Help: "Switches from Redis to the in-memory cache.",
		}, func() float64 { return float64(s.trips.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "eventide_cache_evictions_total", Help: "Entries the in-memory cache dropped to stay within its bounds.",
		}, func() float64 { return float64(s.mem.Evictions()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eventide_cache_memory_entries", Help: "Entries in the in-memory cache.",
		}, func() float64 { return float64(s.mem.Len()) }),
	)
}
