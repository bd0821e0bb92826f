package cache

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/internal/syncbuf"

	"github.com/eventide/server/internal/redistest"
)

func newTestRedis(t *testing.T, srv *redistest.Server, prefix string) *Redis {
	t.Helper()
	r := NewRedis(RedisOptions{Addrs: []string{srv.Addr()}, Prefix: prefix, TTL: time.Minute})
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func TestRedisRoundTripWithTTL(t *testing.T) {
	srv := redistest.Start(t)
	r := newTestRedis(t, srv, "test:rt:")
	ctx := context.Background()
	if r.Mode() != "single" {
		t.Fatalf("mode %s", r.Mode())
	}

	if err := r.Set(ctx, []Item{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte{0, 255, 7}}}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	got, err := r.Get(ctx, []string{"a", "missing", "b"})
	if err != nil || string(got[0]) != "1" || got[1] != nil || !bytes.Equal(got[2], []byte{0, 255, 7}) {
		t.Fatalf("get %q %v", got, err)
	}
	// Every key carries the prefix and a TTL.
	ttl, err := r.client.TTL(ctx, "test:rt:a").Result()
	if err != nil || ttl <= 0 || ttl > 30*time.Second {
		t.Fatalf("TTL of a = %v, %v", ttl, err)
	}
	if err := r.Set(ctx, []Item{{Key: "d", Value: []byte("default ttl")}}, 0); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := r.client.TTL(ctx, "test:rt:d").Result(); ttl <= 30*time.Second || ttl > time.Minute {
		t.Fatalf("default TTL = %v, want CACHE_TTL (1m)", ttl)
	}

	added, err := r.AddOrGet(ctx, []Item{{Key: "a", Value: []byte("2")}, {Key: "c", Value: []byte("3")}}, time.Minute)
	if err != nil || string(added[0]) != "1" || string(added[1]) != "3" {
		t.Fatalf("add or get %q %v", added, err)
	}
	if ttl, _ := r.client.TTL(ctx, "test:rt:c").Result(); ttl <= 0 {
		t.Fatalf("added key has TTL %v", ttl)
	}
	if err := r.Delete(ctx, []string{"c"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := r.Get(ctx, []string{"c"}); got[0] != nil {
		t.Fatal("delete left c")
	}

	// Purge drops our keys only.
	if err := r.client.Set(ctx, "someone-else", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	n, err := r.Purge(ctx)
	if err != nil || n != 3 {
		t.Fatalf("purge dropped %d (%v), want 3", n, err)
	}
	if v, _ := r.client.Get(ctx, "someone-else").Result(); v != "x" {
		t.Fatal("purge dropped a key without the prefix")
	}
	if st := r.Stats(ctx); st.Backend != "redis" || st.Entries != 1 || st.TTLSeconds != 60 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSwitchFallsBackAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	r := NewRedis(RedisOptions{Addrs: []string{srv.Addr()}, Prefix: "test:sw:", TTL: time.Minute})
	sw := NewSwitch(context.Background(), r, NewMemory(MemoryOptions{MaxEntries: 100, TTL: time.Minute}), 50*time.Millisecond, log)
	t.Cleanup(func() { _ = sw.Close() })
	ctx := context.Background()
	if sw.Backend() != "redis" || sw.FallbackActive() {
		t.Fatalf("start: %s %v", sw.Backend(), sw.FallbackActive())
	}
	_ = sw.Set(ctx, []Item{{Key: "k", Value: []byte("before")}}, 0)

	srv.Stop()
	began := time.Now()
	got, err := sw.Get(ctx, []string{"k"})
	if err != nil {
		t.Fatalf("a caller saw the Redis failure: %v", err)
	}
	if got[0] != nil {
		t.Fatal("memory answered with a value it never had")
	}
	if d := time.Since(began); d > time.Second {
		t.Fatalf("the failing call took %v", d)
	}
	if !sw.FallbackActive() || sw.Backend() != "memory" || sw.Describe() != "memory (fallback)" {
		t.Fatalf("after the failure: %s %v", sw.Backend(), sw.FallbackActive())
	}
	// Memory serves while Redis is away, without touching it.
	_ = sw.Set(ctx, []Item{{Key: "k", Value: []byte("during")}}, 0)
	if got, _ := sw.Get(ctx, []string{"k"}); string(got[0]) != "during" {
		t.Fatalf("fallback get %q", got[0])
	}
	for range 3 {
		_, _ = sw.Get(ctx, []string{"k"})
	}
	if n := strings.Count(logs.String(), "falls back to memory"); n != 1 {
		t.Fatalf("%d fallback warnings, want 1:\n%s", n, logs.String())
	}

	// Redis comes back (empty, like a restarted one; a partitioned one would keep stale keys, and
	// the Switch empties it either way).
	srv.Restart()
	stale := NewRedis(RedisOptions{Addrs: []string{srv.Addr()}, Prefix: "test:sw:", TTL: time.Minute})
	defer stale.Close()
	_ = stale.Set(ctx, []Item{{Key: "k", Value: []byte("stale")}}, 0)
	waitFor(t, 5*time.Second, func() bool { return sw.Backend() == "redis" }, func() string { return "not back on redis" })
	if sw.FallbackActive() {
		t.Fatal("fallback still active")
	}
	if got, _ := sw.Get(ctx, []string{"k"}); got[0] != nil {
		t.Fatalf("recovered Redis serves %q, which may be stale", got[0])
	}
	if sw.Memory().Len() != 0 {
		t.Fatal("memory kept its entries after the switch back")
	}
	if sw.Fallbacks() != 1 || !strings.Contains(logs.String(), "back on redis") {
		t.Fatalf("fallbacks %d, logs:\n%s", sw.Fallbacks(), logs.String())
	}
}

// TestSetLocalWhileRedisServes: while Redis serves, another replica's write is not applied here:
// the writer changed Redis already, and memory is idle.
func TestSetLocalWhileRedisServes(t *testing.T) {
	srv := redistest.Start(t)
	r := newTestRedis(t, srv, "test:local:")
	sw := NewSwitch(context.Background(), r, NewMemory(MemoryOptions{MaxEntries: 100, TTL: time.Minute}), 50*time.Millisecond, nil)
	t.Cleanup(func() { _ = sw.Close() })
	ctx := context.Background()
	sw.SetLocal(ctx, []Item{{Key: "t", Value: []byte("new")}}, nil, time.Minute)
	r.SetLocal(ctx, []Item{{Key: "t", Value: []byte("new")}}, nil, time.Minute)
	if got, _ := sw.Get(ctx, []string{"t"}); sw.Backend() != "redis" || got[0] != nil || sw.Memory().Len() != 0 {
		t.Fatalf("backend %s: t=%q, memory %d entries; want nothing anywhere", sw.Backend(), got[0], sw.Memory().Len())
	}
}

func TestSwitchStartsInFallbackWhenRedisIsDown(t *testing.T) {
	srv := redistest.Start(t)
	addr := srv.Addr()
	srv.Stop()
	r := NewRedis(RedisOptions{Addrs: []string{addr}, Prefix: "test:down:", TTL: time.Minute})
	sw := NewSwitch(context.Background(), r, NewMemory(MemoryOptions{MaxEntries: 100, TTL: time.Minute}), 50*time.Millisecond, nil)
	t.Cleanup(func() { _ = sw.Close() })
	if !sw.FallbackActive() {
		t.Fatal("not in fallback")
	}
	srv.Restart()
	waitFor(t, 5*time.Second, func() bool { return sw.Backend() == "redis" }, func() string { return "not on redis after it started" })
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = syncbuf.Buffer
