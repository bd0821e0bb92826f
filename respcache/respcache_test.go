package respcache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// tokens is the shared cache's token space, as a map: real enough for the LRU and validation
// rules here; the whole path over the real cache is tested in the server's tests.
type tokens struct {
	mu   sync.Mutex
	m    map[string]string
	fail bool
	gets int
}

func (t *tokens) Get(_ context.Context, keys []string) ([][]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gets++
	if t.fail {
		return nil, errors.New("redis: connection refused")
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if v, ok := t.m[k]; ok {
			out[i] = []byte(v)
		}
	}
	return out, nil
}

func (t *tokens) set(k, v string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[k] = v
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newCache(t *testing.T, max int64) (*Cache, *tokens, *clock) {
	t.Helper()
	tk := &tokens{m: map[string]string{"tl:e": "1", "te:a": "1", "te:b": "1"}}
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	return New(tk, Options{MaxBytes: max, TTL: time.Minute, Now: clk.now}), tk, clk
}

func put(c *Cache, key, body string, deps ...string) bool {
	var keys []string
	var vals [][]byte
	for i := 0; i < len(deps); i += 2 {
		keys = append(keys, deps[i])
		vals = append(vals, []byte(deps[i+1]))
	}
	return c.Put(key, []byte(body), "application/json", "Op", keys, vals, 0)
}

func TestHitWhileTokensHold(t *testing.T) {
	c, tk, _ := newCache(t, 1<<20)
	ctx := context.Background()
	if c.Get(ctx, "q") != nil {
		t.Fatal("hit on an empty cache")
	}
	if !put(c, "q", `{"data":1}`, "tl:e", "1", "te:a", "1") {
		t.Fatal("Put refused a small entry")
	}
	e := c.Get(ctx, "q")
	if e == nil || string(e.Body) != `{"data":1}` || e.ContentType != "application/json" || e.Operation != "Op" {
		t.Fatalf("Get = %+v, want the kept response", e)
	}
	if tk.gets != 1 {
		t.Errorf("a hit read the tokens %d times, want once (one MGET on Redis)", tk.gets)
	}

	// A write elsewhere replaces one token: the entry is never served again.
	tk.set("te:a", "2")
	if e := c.Get(ctx, "q"); e != nil {
		t.Fatalf("served %q after its token changed", e.Body)
	}
	if st := c.Stats(); st.Stale != 1 || st.Hits != 1 {
		t.Errorf("stats after a stale look-up = %+v, want 1 stale, 1 hit", st)
	}
	if e, known := c.Lookup(ctx, "q"); e != nil || !known {
		t.Fatalf("Lookup of a dead entry = %v, %v: want nothing served, but the key known (so its rebuild is coalesced)", e, known)
	}
	if _, known := c.Lookup(ctx, "never-kept"); known {
		t.Fatal("a key never kept is known: its builds would be serialised for nothing")
	}
	put(c, "q", `{"data":2}`, "tl:e", "1", "te:a", "2")
	if e := c.Get(ctx, "q"); e == nil || string(e.Body) != `{"data":2}` {
		t.Fatalf("the rebuilt response replacing a dead one is not served: %v", e)
	}
}

func TestAbsentTokenIsAMiss(t *testing.T) {
	c, tk, _ := newCache(t, 1<<20)
	put(c, "q", "x", "te:b", "1")
	tk.mu.Lock()
	delete(tk.m, "te:b") // evicted or purged: an absent token is never trusted
	tk.mu.Unlock()
	if c.Get(context.Background(), "q") != nil {
		t.Fatal("served an entry whose token is gone")
	}
}

func TestTokenReadFailureIsAMiss(t *testing.T) {
	c, tk, _ := newCache(t, 1<<20)
	put(c, "q", "x", "te:a", "1")
	tk.fail = true
	if c.Get(context.Background(), "q") != nil {
		t.Fatal("served an entry whose tokens could not be read")
	}
	tk.fail = false
	if c.Get(context.Background(), "q") == nil {
		t.Fatal("a failed read dropped the entry; it should stay for when the tokens can be read")
	}
}

func TestExpiry(t *testing.T) {
	c, tk, clk := newCache(t, 1<<20)
	ctx := context.Background()
	until := clk.t.Add(10 * time.Second).UnixMilli()
	c.Put("timed", []byte("x"), "application/json", "", nil, nil, until)
	put(c, "ttl", "y", "te:a", "1")
	clk.t = clk.t.Add(9 * time.Second)
	if c.Get(ctx, "timed") == nil || c.Get(ctx, "ttl") == nil {
		t.Fatal("entries expired early")
	}
	clk.t = clk.t.Add(time.Second)
	if c.Get(ctx, "timed") != nil {
		t.Fatal("served a response past the instant its page stops being right")
	}
	if c.Get(ctx, "ttl") == nil {
		t.Fatal("the TTL entry expired at the other's instant")
	}

	// Past the TTL: the first request refreshes it, the others are served meanwhile.
	clk.t = clk.t.Add(time.Minute)
	if c.Get(ctx, "ttl") != nil {
		t.Fatal("the first request past the TTL was served instead of refreshing the entry")
	}
	release, waited := c.Begin(ctx, "ttl")
	if waited {
		t.Fatal("the refreshing request waited on itself")
	}
	if e := c.Get(ctx, "ttl"); e == nil || string(e.Body) != "y" {
		t.Fatal("a request during the refresh was not served the still exact entry")
	}
	tk.set("te:a", "2") // a write while refreshing: the old entry is dead at once
	if c.Get(ctx, "ttl") != nil {
		t.Fatal("served an expired entry whose token changed")
	}
	put(c, "ttl", "z", "te:a", "2")
	release()
	if e := c.Get(ctx, "ttl"); e == nil || string(e.Body) != "z" {
		t.Fatal("the refreshed entry is not served")
	}

	// Never served past twice the TTL, refreshing or not.
	release, _ = c.Begin(ctx, "ttl")
	defer release()
	clk.t = clk.t.Add(2 * time.Minute)
	if c.Get(ctx, "ttl") != nil {
		t.Fatal("served an entry past twice its TTL")
	}
	if c.Put("past", []byte("z"), "", "", nil, nil, clk.t.UnixMilli()-1) {
		t.Fatal("kept a response already past its instant")
	}
}

// TestBytesBound fills the cache with many times its budget: it never holds more than the
// budget, it evicts the least recently used first, and an entry over its share is refused.
func TestBytesBound(t *testing.T) {
	const max = 64 << 10
	c, _, _ := newCache(t, max)
	ctx := context.Background()
	body := string(make([]byte, 1000))
	for i := range 2000 {
		put(c, fmt.Sprintf("q%d", i), body, "te:a", "1")
		if i == 10 {
			if c.Get(ctx, "q0") == nil { // q0 is now the most recently used
				t.Fatal("q0 gone early")
			}
		}
		if st := c.Stats(); st.Bytes > max {
			t.Fatalf("after %d puts the cache holds %d bytes, over its %d", i+1, st.Bytes, max)
		}
	}
	st := c.Stats()
	if st.Evicted == 0 || st.Entries == 0 || st.Entries > max/1000 {
		t.Fatalf("stats = %+v: want evictions and at most %d entries", st, max/1000)
	}
	if c.Get(ctx, "q1999") == nil {
		t.Error("the newest entry was evicted")
	}
	if c.Get(ctx, "q1") != nil {
		t.Error("an old entry survived 2000 puts")
	}
	if put(c, "huge", string(make([]byte, max/MaxEntryFraction))) {
		t.Error("kept an entry larger than its share of the budget")
	}
	if n := c.Purge(); n != st.Entries {
		t.Errorf("Purge dropped %d, want %d", n, st.Entries)
	}
	if st := c.Stats(); st.Entries != 0 || st.Bytes != 0 {
		t.Errorf("after Purge: %+v", st)
	}
}

func TestDisabled(t *testing.T) {
	c, _, _ := newCache(t, 0)
	if put(c, "q", "x") {
		t.Fatal("a cache with no budget kept an entry")
	}
}

// TestConcurrent runs look-ups, puts and token changes at once (run with -race).
func TestConcurrent(t *testing.T) {
	c, tk, _ := newCache(t, 16<<10)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				key := fmt.Sprintf("q%d", (g*7+i)%40)
				if e := c.Get(ctx, key); e != nil && string(e.Body) != key {
					t.Errorf("key %s served %q", key, e.Body)
					return
				}
				put(c, key, key, "te:a", "1")
				if i%50 == 0 {
					tk.set("te:b", fmt.Sprint(i))
				}
			}
		}()
	}
	wg.Wait()
	if st := c.Stats(); st.Bytes > 16<<10 {
		t.Fatalf("holds %d bytes over its budget", st.Bytes)
	}
}

// TestBeginCoalesces: of many requests missing the same key at once, one builds and the others
// wait for it; none is left registered afterwards, and a waiter whose context ends stops waiting.
func TestBeginCoalesces(t *testing.T) {
	c, _, _ := newCache(t, 1<<20)
	ctx := context.Background()
	release, waited := c.Begin(ctx, "q")
	if waited || release == nil {
		t.Fatal("the first request to miss did not become the builder")
	}
	const n = 50
	var wg sync.WaitGroup
	results := make(chan *Entry, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, waited := c.Begin(ctx, "q")
			if !waited || rel != nil {
				t.Error("a second request became a builder while the first was building")
				return
			}
			results <- c.Get(ctx, "q")
		}()
	}
	for c.Stats().Coalesced < n { // every one is waiting
		time.Sleep(time.Millisecond)
	}
	if len(results) != 0 {
		t.Fatal("a waiter went on before the builder released")
	}
	put(c, "q", "built", "te:a", "1")
	release()
	wg.Wait()
	close(results)
	for e := range results {
		if e == nil || string(e.Body) != "built" {
			t.Fatalf("a waiter found %v, want the built response", e)
		}
	}
	if st := c.Stats(); st.Building != 0 {
		t.Fatalf("%d keys still registered as building", st.Building)
	}

	// A waiter whose request ends stops waiting.
	release, _ = c.Begin(ctx, "slow")
	defer release()
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Begin(cctx, "slow")
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a cancelled waiter kept waiting")
	}
}
