package security

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/eventide/server/internal/redistest"
	"github.com/redis/go-redis/v9"
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

func TestBridge(t *testing.T) {
	s := redistest.Start(t)
	newReplica := func(name string) (*Log, *Bridge) {
		l := NewLog(LogConfig{MaxEvents: 4000, Origin: name}) // 2000 INFO/LOW
		b := NewBridge(l, newRedisClient(t, s), BridgeConfig{RetryMax: 100 * time.Millisecond,
			HealthInterval: 200 * time.Millisecond, Logger: quietLogger})
		run(t, b.Run)
		return l, b
	}
	logA, bridgeA := newReplica("a")
	logB, bridgeB := newReplica("b")
	subscribed := func() bool { return bridgeA.Subscribed() && bridgeB.Subscribed() }
	eventually(t, 5*time.Second, "bridges not subscribed", subscribed)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	onB, err := logB.Subscribe(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	next := func(ch <-chan Event) Event {
		t.Helper()
		select {
		case e := <-ch:
			return e
		case <-time.After(5 * time.Second):
			t.Fatal("no event crossed over")
			return Event{}
		}
	}

	t.Run("EventReachesOtherReplica", func(t *testing.T) {
		sent := logA.Log(Event{Type: AccessDenied, IP: "198.51.100.1", UserID: "u1", Operation: "purgeCache", Message: "not an admin"})
		got := next(onB)
		if got.ID != sent.ID || got.Type != sent.Type || got.Severity != sent.Severity || !got.At.Equal(sent.At) ||
			got.IP != sent.IP || got.UserID != sent.UserID || got.Operation != sent.Operation || got.Message != sent.Message {
			t.Fatalf("got %+v\nsent %+v", got, sent)
		}
		if q := logB.Query(Filter{}, 10); len(q) != 1 || q[0].ID != sent.ID {
			t.Fatalf("B's ring: %+v", q)
		}
		// B's answer crosses back; A's own echo, which came first, was ignored.
		onA, _ := logA.Subscribe(ctx, "")
		back := logB.Log(Event{Type: LoginSucceeded, UserID: "u2"})
		if e := next(onA); e.ID != back.ID {
			t.Fatalf("A got %+v", e)
		}
		if st := logA.Stats(); st.Events != 2 || st.Logged != 1 || st.Received != 1 {
			t.Fatalf("A's stats %+v: want its own event once and B's", st)
		}
	})

	t.Run("RedisDownLoggingGoesOn", func(t *testing.T) {
		s.Stop()
		eventually(t, 5*time.Second, "bridges did not notice Redis gone", func() bool {
			return !bridgeA.Subscribed() && !bridgeB.Subscribed()
		})
		before := logA.Stats().Events
		done := make(chan struct{})
		go func() {
			for i := range 1000 {
				logA.Log(Event{Type: LoginFailed, Message: fmt.Sprint("outage ", i)})
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("logging blocked with Redis down")
		}
		if got := logA.Stats().Events - before; got != 1000 {
			t.Fatalf("%d of 1000 events logged locally", got)
		}
		if v := metricValue(t, bridgeA.Collectors(), "eventide_security_bridge_publish_dropped_total", nil); v == 0 {
			t.Fatal("no publish drops counted with Redis down and 1000 events")
		}
	})

	t.Run("ResubscribedAfterRestart", func(t *testing.T) {
		s.Restart()
		eventually(t, 10*time.Second, "bridges did not resubscribe", subscribed)
		// The events queued during the outage are published first; ours must find room.
		// (They overflowed onB, which nobody read meanwhile: a fresh subscriber watches for ours.)
		eventually(t, 5*time.Second, "outage queue not drained", func() bool { return len(bridgeA.queue) == 0 })
		fresh, err := logB.Subscribe(ctx, SeverityHigh)
		if err != nil {
			t.Fatal(err)
		}
		sent := logA.Log(Event{Type: BruteForceSuspected, Email: "victim@example.com"})
		deadline := time.After(5 * time.Second)
		for {
			select {
			case e, ok := <-fresh:
				if !ok {
					t.Fatal("B's subscriber dropped")
				}
				if e.ID == sent.ID {
					return
				}
			case <-deadline:
				t.Fatalf("event after restart did not cross over: published %v failed %v dropped %v; B %+v",
					metricValue(t, bridgeA.Collectors(), "eventide_security_bridge_published_total", nil),
					metricValue(t, bridgeA.Collectors(), "eventide_security_bridge_publish_failed_total", nil),
					metricValue(t, bridgeA.Collectors(), "eventide_security_bridge_publish_dropped_total", nil), logB.Stats())
			}
		}
	})
}

func TestBridgeIgnoresMalformed(t *testing.T) {
	s := redistest.Start(t)
	rdb := newRedisClient(t, s)
	l := NewLog(LogConfig{Origin: "me"})
	b := NewBridge(l, newRedisClient(t, s), BridgeConfig{Logger: quietLogger})
	run(t, b.Run)
	eventually(t, 5*time.Second, "not subscribed", b.Subscribed)
	ctx := context.Background()
	for _, payload := range []string{
		"not json",
		`{"origin":"other","type":"HACKED","id":"1"}`,
		`{"type":"LOGIN_FAILED","id":"1"}`, // no origin
	} {
		if err := rdb.Publish(ctx, "eventide:security", payload).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := rdb.Publish(ctx, "eventide:security", `{"origin":"other","type":"LOGIN_FAILED","id":"x-other"}`).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "valid event not received", func() bool { return l.Stats().Received == 1 })
	if v := metricValue(t, b.Collectors(), "eventide_security_bridge_malformed_total", nil); v != 3 {
		t.Fatalf("malformed %v, want 3", v)
	}
	if e := l.Query(Filter{}, 10); len(e) != 1 || e[0].Severity != SeverityLow || e[0].At.IsZero() {
		t.Fatalf("ring %+v", e)
	}
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
