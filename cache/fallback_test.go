package cache

import (
	"context"
	"testing"
	"time"

	"github.com/eventide/server/internal/redistest"
)

// deadRedis is a Redis backend at an address where nothing listens.
func deadRedis(t *testing.T) *Redis {
	t.Helper()
	return NewRedis(RedisOptions{Addrs: []string{redistest.DeadAddr(t)}, TTL: time.Minute})
}

// TestFallbackTTLCapsMemory: while Redis is configured but down, what memory takes in lives at
// most CACHE_FALLBACK_TTL, whatever TTL the caller asked for; without Redis the caller's TTL stands.
func TestFallbackTTLCapsMemory(t *testing.T) {
	sw := NewSwitch(context.Background(), deadRedis(t), NewMemory(MemoryOptions{MaxEntries: 100, TTL: time.Hour}), time.Hour, nil)
	defer sw.Close()
	sw.SetFallbackTTL(3 * time.Second)
	if !sw.FallbackActive() {
		t.Fatal("a dead Redis at start-up should start the Switch in the fallback")
	}
	for _, c := range []struct{ ask, want time.Duration }{
		{0, 3 * time.Second},
		{time.Second, time.Second},
		{time.Hour, 3 * time.Second},
		{24 * time.Hour, 3 * time.Second},
	} {
		if got := sw.memTTL(c.ask); got != c.want {
			t.Errorf("fallback: memTTL(%v) = %v, want %v", c.ask, got, c.want)
		}
	}
	ctx := context.Background()
	if err := sw.Set(ctx, []Item{{Key: "k", Value: []byte("v")}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := sw.AddOrGet(ctx, []Item{{Key: "a", Value: []byte("v")}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k", "a"} {
		it := sw.mem.c.Get(k)
		if it == nil {
			t.Fatalf("%s not in memory", k)
		}
		if it.TTL() != 3*time.Second {
			t.Errorf("%s kept for %v during the fallback, want 3s", k, it.TTL())
		}
	}

	alone := NewSwitch(context.Background(), nil, NewMemory(MemoryOptions{MaxEntries: 100, TTL: time.Hour}), 0, nil)
	defer alone.Close()
	if got := alone.memTTL(time.Hour); got != time.Hour {
		t.Errorf("memory only: memTTL(1h) = %v, want 1h", got)
	}
}

// TestReadyReportsTheFallback: /readyz's cache check names the backend, and fails (not required)
// while Redis is configured but down.
func TestReadyReportsTheFallback(t *testing.T) {
	mem := NewSwitch(context.Background(), nil, NewMemory(MemoryOptions{MaxEntries: 100, TTL: time.Hour}), time.Hour, nil)
	defer mem.Close()
	if detail, err := mem.Ready(context.Background()); detail != "memory" || err != nil {
		t.Errorf("without Redis: Ready = %q, %v; want \"memory\", nil", detail, err)
	}
	down := NewSwitch(context.Background(), deadRedis(t), NewMemory(MemoryOptions{MaxEntries: 100, TTL: time.Hour}), time.Hour, nil)
	defer down.Close()
	if detail, err := down.Ready(context.Background()); detail != "memory (fallback)" || err == nil ||
		err.Error() != "redis unreachable; serving from memory" {
		t.Errorf("Redis down: Ready = %q, %v; want \"memory (fallback)\", redis unreachable; serving from memory", detail, err)
	}
}

// TestSetLocalOnlyWhereNotShared: another replica's write reaches what only this process holds:
// the Switch's memory while memory serves (here a fallback), never while Redis does, whose keys
// the writer has changed already; Redis alone takes nothing.
func TestSetLocalOnlyWhereNotShared(t *testing.T) {
	ctx := context.Background()
	items := []Item{{Key: "t", Value: []byte("new")}}
	down := NewSwitch(ctx, deadRedis(t), NewMemory(MemoryOptions{MaxEntries: 100, TTL: time.Hour}), time.Hour, nil)
	defer down.Close()
	_ = down.Set(ctx, []Item{{Key: "v", Value: []byte("old")}}, 0)
	down.SetLocal(ctx, items, []string{"v"}, time.Hour)
	if got, _ := down.Get(ctx, []string{"t", "v"}); string(got[0]) != "new" || got[1] != nil {
		t.Fatalf("fallback: memory holds t=%q v=%q after SetLocal, want new and nothing", got[0], got[1])
	}
	if n := down.Memory().Len(); n != 1 {
		t.Fatalf("fallback: memory holds %d entries, want 1", n)
	}
}
