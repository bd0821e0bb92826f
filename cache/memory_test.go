package cache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventide/server/internal/testutil"
)

func TestMemoryNeverHoldsMoreThanCapacity(t *testing.T) {
	m := NewMemory(MemoryOptions{MaxEntries: 10, TTL: time.Minute})
	t.Cleanup(m.Close)
	ctx := context.Background()
	for i := range 500 {
		if err := m.Set(ctx, []Item{{Key: fmt.Sprintf("k%d", i), Value: []byte("v")}}, 0); err != nil {
			t.Fatal(err)
		}
		if n := m.Len(); n > 10 {
			t.Fatalf("after %d sets the cache holds %d entries, capacity 10", i+1, n)
		}
	}
	// The least recently used went first: the last ten are there.
	got, _ := m.Get(ctx, []string{"k499", "k490", "k489", "k0"})
	if got[0] == nil || got[1] == nil || got[2] != nil || got[3] != nil {
		t.Fatalf("wrong survivors: %q", got)
	}
	// Evictions are counted (by ttlcache's asynchronous callback).
	waitFor(t, time.Second, func() bool { return m.Evictions() == 490 }, func() string {
		return fmt.Sprintf("evictions = %d, want 490", m.Evictions())
	})
	if st := m.Stats(ctx); st.Capacity != 10 || st.Entries != 10 || st.Backend != "memory" {
		t.Fatalf("stats %+v", st)
	}
}

func TestMemoryByteBudget(t *testing.T) {
	m := NewMemory(MemoryOptions{MaxEntries: 1000, MaxBytes: 10 * (1024 + entryOverhead + 4), TTL: time.Minute})
	t.Cleanup(m.Close)
	big := make([]byte, 1024)
	for i := range 100 {
		_ = m.Set(context.Background(), []Item{{Key: fmt.Sprintf("k%03d", i), Value: big}}, 0)
	}
	if n := m.Len(); n > 10 {
		t.Fatalf("%d entries of 1KiB in a 10KiB budget", n)
	}
}

func TestMemoryHardTTL(t *testing.T) {
	m := NewMemory(MemoryOptions{MaxEntries: 10, TTL: time.Minute})
	t.Cleanup(m.Close)
	ctx := context.Background()
	_ = m.Set(ctx, []Item{{Key: "k", Value: []byte("v")}}, 150*time.Millisecond)
	deadline := time.Now().Add(150 * time.Millisecond)
	// Reading does not extend the life of an entry.
	for time.Now().Before(deadline.Add(-30 * time.Millisecond)) {
		if got, _ := m.Get(ctx, []string{"k"}); got[0] == nil {
			t.Fatal("expired early")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(time.Until(deadline) + 20*time.Millisecond)
	if got, _ := m.Get(ctx, []string{"k"}); got[0] != nil {
		t.Fatal("reads extended the TTL")
	}
}

func TestMemoryAddOrGet(t *testing.T) {
	m := NewMemory(MemoryOptions{MaxEntries: 10, TTL: time.Minute})
	t.Cleanup(m.Close)
	ctx := context.Background()
	got, _ := m.AddOrGet(ctx, []Item{{Key: "a", Value: []byte("1")}}, 0)
	if string(got[0]) != "1" {
		t.Fatalf("add: %q", got)
	}
	got, _ = m.AddOrGet(ctx, []Item{{Key: "a", Value: []byte("2")}, {Key: "b", Value: []byte("3")}}, 0)
	if string(got[0]) != "1" || string(got[1]) != "3" {
		t.Fatalf("get or add: %q", got)
	}
	if n, _ := m.Purge(ctx); n != 2 {
		t.Fatalf("purge dropped %d", n)
	}
	if got, _ := m.Get(ctx, []string{"a"}); got[0] != nil {
		t.Fatal("purge left a")
	}
}

func waitFor(t *testing.T, d time.Duration, ok func() bool, msg func() string) {
	t.Helper()
	if !testutil.Within(d, ok) {
		t.Fatal(msg())
	}
}
