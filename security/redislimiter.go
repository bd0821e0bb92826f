package security

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// RedisLimiterConfig tunes a RedisLimiter. Zero fields take the defaults named beside them.
type RedisLimiterConfig struct {
	Prefix        string        // key prefix inside redis_rate's "rate:"; default "eventide:throttle:"
	Timeout       time.Duration // the longest a request waits for Redis; default 100ms
	ProbeInterval time.Duration // how often Run pings Redis while on memory; default 1s
	Logger        *slog.Logger  // default slog.Default()
}

// RedisLimiter is a Limiter shared by every replica through Redis (redis_rate's GCRA script, so
// replicas share one budget per key). When a call to Redis fails or takes longer than Timeout,
// it switches to its memory fallback, logging one warning, and answers from there; Run pings
// Redis in the background and switches back, logging once, when Redis answers again. No request
// ever sees a Redis error or waits longer than Timeout. The fallback is per replica, so while on
// memory each replica allows the full limit on its own.
type RedisLimiter struct {
	rl       *redis_rate.Limiter
	rdb      redis.UniversalClient
	fallback *MemoryLimiter
	cfg      RedisLimiterConfig

	onMemory   atomic.Bool
	switches   prometheus.Counter
	gaugeOnMem prometheus.GaugeFunc
}

var _ Limiter = (*RedisLimiter)(nil)

// NewRedisLimiter returns a limiter on rdb that falls back to fallback (a new MemoryLimiter when
// nil). Run must run for the limiter to come back to Redis after a failure.
func NewRedisLimiter(rdb redis.UniversalClient, fallback *MemoryLimiter, cfg RedisLimiterConfig) *RedisLimiter {
	if cfg.Prefix == "" {
		cfg.Prefix = "eventide:throttle:"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 100 * time.Millisecond
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if fallback == nil {
		fallback = NewMemoryLimiter(MemoryLimiterConfig{})
	}
	l := &RedisLimiter{
		rl: redis_rate.NewLimiter(rdb), rdb: rdb, fallback: fallback, cfg: cfg,
		switches: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: "limiter_fallback_switches_total",
			Help: "Times the throttle limiter switched from Redis to its memory fallback.",
		}),
	}
	l.gaugeOnMem = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "eventide", Subsystem: "security", Name: "limiter_fallback_active",
		Help: "1 while the throttle limiter answers from memory because Redis is unavailable.",
	}, func() float64 {
		if l.onMemory.Load() {
			return 1
		}
		return 0
	})
	return l
}

type rateResult struct {
	res *redis_rate.Result
	err error
}

// Allow implements Limiter. It never returns an error: when Redis fails, the answer comes from
// memory.
func (l *RedisLimiter) Allow(ctx context.Context, key string, limit int, window time.Duration) (Decision, error) {
	if limit <= 0 || window <= 0 {
		return Decision{Allowed: true}, nil
	}
	if l.onMemory.Load() {
		return l.fallback.Allow(ctx, key, limit, window)
	}
	// The call runs in its own goroutine so that the wait is bounded by Timeout whatever the
	// client's own timeouts are (go-redis honours a context deadline only with
	// ContextTimeoutEnabled). A call left behind ends with the client's timeouts.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.Timeout)
	defer cancel()
	done := make(chan rateResult, 1)
	go func() {
		res, err := l.rl.Allow(cctx, l.cfg.Prefix+key, redis_rate.Limit{Rate: limit, Burst: limit, Period: window})
		done <- rateResult{res, err}
	}()
	var r rateResult
	select {
	case r = <-done:
	case <-cctx.Done():
		r.err = cctx.Err()
	case <-ctx.Done(): // the caller gave up: answer without blaming Redis
		return l.fallback.Allow(ctx, key, limit, window)
	}
	if r.err != nil {
		l.toMemory(r.err)
		return l.fallback.Allow(ctx, key, limit, window)
	}
	return Decision{
		Allowed:    r.res.Allowed > 0,
		Limit:      limit,
		Remaining:  max(r.res.Remaining, 0),
		RetryAfter: max(r.res.RetryAfter, 0),
		ResetAfter: max(r.res.ResetAfter, 0),
	}, nil
}

func (l *RedisLimiter) toMemory(err error) {
	if l.onMemory.CompareAndSwap(false, true) {
		l.switches.Inc()
		l.cfg.Logger.Warn("throttle: Redis unavailable, limiting from memory until it answers", "err", err)
	}
}

// Run pings Redis every ProbeInterval while the limiter is on memory, and switches it back to
// Redis when a ping succeeds. It returns when ctx ends.
func (l *RedisLimiter) Run(ctx context.Context) {
	t := time.NewTicker(l.cfg.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !l.onMemory.Load() {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, max(l.cfg.Timeout, time.Second))
		err := l.rdb.Ping(pctx).Err()
		cancel()
		if err == nil && l.onMemory.CompareAndSwap(true, false) {
			l.cfg.Logger.Info("throttle: Redis is back, limiting through Redis again")
		}
	}
}

// OnMemory reports whether the limiter is answering from its memory fallback.
func (l *RedisLimiter) OnMemory() bool { return l.onMemory.Load() }

// Collectors returns the limiter's Prometheus metrics, for the caller to register:
// eventide_security_limiter_fallback_active and eventide_security_limiter_fallback_switches_total.
func (l *RedisLimiter) Collectors() []prometheus.Collector {
	return []prometheus.Collector{l.gaugeOnMem, l.switches}
}
