package security

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventide/server/internal/redistest"
)

// newRedisClient returns a client of s closed at cleanup, with timeouts short enough for fault
// tests.
func newRedisClient(tb testing.TB, s *redistest.Server) redis.UniversalClient {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 500 * time.Millisecond, WriteTimeout: 500 * time.Millisecond, MaxRetries: 1})
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// run starts fn in a goroutine until the test ends.
func run(tb testing.TB, fn func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { fn(ctx) })
	tb.Cleanup(func() { cancel(); wg.Wait() })
}

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestRedisLimiter(t *testing.T) {
	s := redistest.Start(t)
	newLimiter := func() *RedisLimiter {
		// Timeout well above the default 100ms: a first call on a busy machine (dial, script
		// load) can take longer, and this test is about sharing a budget, not about the bound.
		l := NewRedisLimiter(newRedisClient(t, s), nil, RedisLimiterConfig{
			ProbeInterval: 50 * time.Millisecond, Timeout: time.Second, Logger: quietLogger})
		run(t, l.Run)
		return l
	}
	a, b := newLimiter(), newLimiter()
	ctx := context.Background()

	t.Run("SharedAcrossInstances", func(t *testing.T) {
		for i, l := range []*RedisLimiter{a, a, a, b, b} {
			d, err := l.Allow(ctx, "shared", 5, time.Minute)
			if err != nil || !d.Allowed || d.Remaining != 4-i {
				t.Fatalf("request %d: %+v, %v", i+1, d, err)
			}
		}
		for _, l := range []*RedisLimiter{a, b} {
			d, err := l.Allow(ctx, "shared", 5, time.Minute)
			if err != nil || d.Allowed {
				t.Fatalf("6th request allowed: %+v, %v", d, err)
			}
			if d.RetryAfter < 11*time.Second || d.RetryAfter > 12*time.Second {
				t.Fatalf("RetryAfter %s, want about 12s", d.RetryAfter)
			}
		}
		if a.OnMemory() || b.OnMemory() {
			t.Fatal("on memory while Redis is up")
		}
	})

	t.Run("RedisDownAnswersFromMemory", func(t *testing.T) {
		s.Stop()
		for i := range 20 {
			start := time.Now()
			d, err := a.Allow(ctx, "during-outage", 10, time.Minute)
			if took := time.Since(start); took > time.Second {
				t.Fatalf("request %d waited %s", i+1, took)
			}
			if err != nil || d.Allowed != (i < 10) {
				t.Fatalf("request %d: %+v, %v", i+1, d, err)
			}
		}
		if !a.OnMemory() {
			t.Fatal("not on memory with Redis down")
		}
		if v := metricValue(t, a.Collectors(), "eventide_security_limiter_fallback_switches_total", nil); v != 1 {
			t.Fatalf("switches %v, want 1", v)
		}
	})

	t.Run("BackOnRedisAfterRestart", func(t *testing.T) {
		s.Restart()
		eventually(t, 5*time.Second, "still on memory after Redis restarted", func() bool { return !a.OnMemory() })
		d, err := a.Allow(ctx, "after-restart", 5, time.Minute)
		if err != nil || !d.Allowed {
			t.Fatalf("%+v, %v", d, err)
		}
		n, err := newRedisClient(t, s).Exists(ctx, "rate:eventide:throttle:after-restart").Result()
		if err != nil || n != 1 {
			t.Fatalf("the limit is not kept in Redis: exists = %d, %v", n, err)
		}
		if v := metricValue(t, a.Collectors(), "eventide_security_limiter_fallback_active", nil); v != 0 {
			t.Fatalf("fallback gauge %v", v)
		}
	})
}

func BenchmarkAllowRedis(b *testing.B) {
	s := redistest.Start(b)
	l := NewRedisLimiter(newRedisClient(b, s), nil, RedisLimiterConfig{Logger: quietLogger})
	ctx := context.Background()
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("ip:10.0.", i/250, ".", i%250)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		l.Allow(ctx, keys[i%len(keys)], 300, time.Minute)
		i++
	}
	if l.OnMemory() {
		b.Fatal("fell back to memory during the benchmark")
	}
}
