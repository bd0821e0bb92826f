package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eventide/server/config"
	"github.com/eventide/server/memstats"
)

// memorySample is the MemoryStats type as clients see it.
type memorySample struct {
	At               time.Time
	RSSBytes         int64 `json:"rssBytes"`
	HeapAllocBytes   int64
	HeapInuseBytes   int64
	HeapSysBytes     int64
	StackInuseBytes  int64
	TotalBytes       int64
	Goroutines       int
	GCCycles         int `json:"gcCycles"`
	LastGCPauseNs    int64
	MemoryLimitBytes *int64
	UsagePercent     *float64
}

const memoryFields = `at rssBytes heapAllocBytes heapInuseBytes heapSysBytes stackInuseBytes totalBytes
	goroutines gcCycles lastGcPauseNs memoryLimitBytes usagePercent`

// vmRSS reads this process's resident set size from /proc/self/status (VmRSS, in kB).
func vmRSS(t testing.TB) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// TestAdminMemoryQueries asks the real server (in this process) for its memory, pool and process,
// and compares the answers with what the kernel and the runtime say about the test process.
func TestAdminMemoryQueries(t *testing.T) {
	cfg := testConfig(t)
	ts := startServer(t, cfg)
	admin := ts.admin()
	user := ts.signUp("Curious")

	t.Run("MemoryStatsMatchesProcSelfStatus", func(t *testing.T) {
		// Queries get the latest sample while it is younger than memstats.MinInterval: wait that
		// long, so the answer is read now, not during start-up's growth.
		time.Sleep(memstats.MinInterval + 50*time.Millisecond)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before, gcBefore := vmRSS(t), ms.NumGC
		var out struct{ MemoryStats memorySample }
		ts.mustData(admin.Token, `{ memoryStats { `+memoryFields+` } }`, nil, &out)
		after := vmRSS(t)
		runtime.ReadMemStats(&ms)
		s := out.MemoryStats

		// RSS moves while the request runs (and a sample may be up to 250ms old): within 5% or
		// 4 MiB of what the kernel reported just before and after.
		lo, hi := min(before, after), max(before, after)
		slack := max(hi/20, 4<<20)
		if s.RSSBytes < lo-slack || s.RSSBytes > hi+slack {
			t.Errorf("rssBytes = %d, /proc/self/status VmRSS %d..%d", s.RSSBytes, lo, hi)
		}
		t.Logf("rssBytes %d, VmRSS %d..%d; heapAlloc %d (runtime %d); goroutines %d (runtime %d)",
			s.RSSBytes, before, after, s.HeapAllocBytes, ms.HeapAlloc, s.Goroutines, runtime.NumGoroutine())
		if s.HeapAllocBytes <= 0 || s.HeapAllocBytes > int64(ms.HeapSys) {
			t.Errorf("heapAllocBytes = %d, runtime HeapSys %d", s.HeapAllocBytes, ms.HeapSys)
		}
		if s.HeapInuseBytes < s.HeapAllocBytes || s.HeapSysBytes < s.HeapInuseBytes || s.TotalBytes < s.HeapSysBytes {
			t.Errorf("want heapAlloc <= heapInuse <= heapSys <= total: %+v", s)
		}
		if s.StackInuseBytes <= 0 || s.TotalBytes > int64(ms.Sys)+(64<<20) {
			t.Errorf("stackInuse %d, total %d (runtime Sys %d)", s.StackInuseBytes, s.TotalBytes, ms.Sys)
		}
		if s.Goroutines < 10 || s.Goroutines > 2*runtime.NumGoroutine()+50 {
			t.Errorf("goroutines = %d, runtime says %d", s.Goroutines, runtime.NumGoroutine())
		}
		if s.GCCycles > int(ms.NumGC) || s.GCCycles+50 < int(gcBefore) {
			t.Errorf("gcCycles = %d, runtime NumGC %d..%d", s.GCCycles, gcBefore, ms.NumGC)
		}
		if age := time.Since(s.At); age < -time.Second || age > 2*time.Second {
			t.Errorf("at = %v, %v ago", s.At, age)
		}
	})

	t.Run("MemoryHistoryOldestFirstAndBounded", func(t *testing.T) {
		// One history sample at start, then one per 5s (memstats.DefaultHistoryInterval).
		var h []memorySample
		deadline := time.Now().Add(3 * memstats.DefaultHistoryInterval)
		for len(h) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("history still has %d samples", len(h))
			}
			time.Sleep(250 * time.Millisecond)
			var out struct{ MemoryHistory []memorySample }
			ts.mustData(admin.Token, `{ memoryHistory(last: 100000) { at rssBytes goroutines } }`, nil, &out)
			h = out.MemoryHistory
		}
		if len(h) > memstats.DefaultHistorySize {
			t.Fatalf("%d samples, more than the ring's %d", len(h), memstats.DefaultHistorySize)
		}
		for i := 1; i < len(h); i++ {
			if !h[i].At.After(h[i-1].At) {
				t.Fatalf("not oldest first: [%d] %v then [%d] %v", i-1, h[i-1].At, i, h[i].At)
			}
		}
		for _, s := range h {
			if s.RSSBytes <= 0 || s.Goroutines <= 0 {
				t.Fatalf("empty sample %+v", s)
			}
		}
		var one struct{ MemoryHistory []memorySample }
		ts.mustData(admin.Token, `{ memoryHistory(last: 1) { at } }`, nil, &one)
		if len(one.MemoryHistory) != 1 || one.MemoryHistory[0].At.Before(h[len(h)-1].At) {
			t.Fatalf("last: 1 = %+v, newest of all %v", one.MemoryHistory, h[len(h)-1].At)
		}
		r := ts.mustCode("BAD_USER_INPUT", admin.Token, `{ memoryHistory(last: 0) { at } }`, nil)
		if !strings.Contains(r.Errors[0].Message, "last") {
			t.Fatalf("message %q does not name the argument", r.Errors[0].Message)
		}
	})

	t.Run("DatabaseStats", func(t *testing.T) {
		ts.mustData(user.Token, `{ me { id } }`, nil, nil) // a store query, whatever the cache holds
		var out struct {
			DatabaseStats struct {
				Connected        bool
				MaxPoolSize      int
				ConnectionsOpen  int
				ConnectionsInUse int
				LastEvent        *string
				LastEventAt      *time.Time
			}
		}
		ts.mustData(admin.Token, `{ databaseStats { connected maxPoolSize connectionsOpen connectionsInUse lastEvent lastEventAt } }`, nil, &out)
		d := out.DatabaseStats
		// The SQLite store's pools: 4 readers and the writer.
		if !d.Connected || d.MaxPoolSize != 5 || d.ConnectionsOpen <= 0 || d.ConnectionsInUse < 0 || d.ConnectionsInUse > d.ConnectionsOpen {
			t.Fatalf("databaseStats = %+v, want connected, maxPoolSize 5 (4 readers, 1 writer), connections open", d)
		}
		if d.LastEvent == nil || *d.LastEvent == "" || d.LastEventAt == nil || time.Since(*d.LastEventAt) > time.Minute {
			t.Fatalf("lastEvent %v at %v, want a recent one", d.LastEvent, d.LastEventAt)
		}
	})

	t.Run("ServerInfo", func(t *testing.T) {
		var out struct {
			ServerInfo struct {
				Pid         int
				StartedAt   time.Time
				Version     string
				GoVersion   string
				Environment string
				Restarts    int
			}
		}
		ts.mustData(admin.Token, `{ serverInfo { pid startedAt version goVersion environment restarts } }`, nil, &out)
		i := out.ServerInfo
		if i.Pid != os.Getpid() || i.Environment != "test" || i.GoVersion != runtime.Version() || i.Restarts != 0 ||
			i.Version == "" || i.StartedAt.After(time.Now()) || time.Since(i.StartedAt) > 5*time.Minute {
			t.Fatalf("serverInfo = %+v, want pid %d, environment test, goVersion %s, restarts 0",
				i, os.Getpid(), runtime.Version())
		}
	})

	queries := map[string]string{
		"memoryStats":   `{ memoryStats { rssBytes } }`,
		"memoryHistory": `{ memoryHistory { rssBytes } }`,
		"databaseStats": `{ databaseStats { connected } }`,
		"serverInfo":    `{ serverInfo { pid } }`,
	}
	t.Run("ErrForbidden", func(t *testing.T) {
		for name, q := range queries {
			r := ts.mustCode("FORBIDDEN", user.Token, q, nil)
			if len(r.Data) > 0 && string(r.Data) != "null" {
				t.Errorf("%s: a USER got data %s", name, r.Data)
			}
		}
	})
	t.Run("ErrUnauthenticated", func(t *testing.T) {
		for name, q := range queries {
			r := ts.mustCode("UNAUTHENTICATED", "", q, nil)
			if len(r.Data) > 0 && string(r.Data) != "null" {
				t.Errorf("%s: anonymous got data %s", name, r.Data)
			}
		}
	})
}

// memorySub is one graphql-transport-ws connection with a memoryStats subscription, opened without
// testing.T so that many can be opened from goroutines.
type memorySub struct {
	conn *websocket.Conn
}

// openMemorySub dials, authenticates with token, subscribes to memoryStats(intervalMs) and returns
// once the first message (the current sample) has arrived, with that message.
func openMemorySub(ctx context.Context, base, token string, intervalMs int) (*memorySub, map[string]any, error) {
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return nil, nil, err
	}
	s := &memorySub{conn: conn}
	fail := func(err error) (*memorySub, map[string]any, error) {
		_ = conn.CloseNow()
		return nil, nil, err
	}
	init := map[string]any{}
	if token != "" {
		init["Authorization"] = "Bearer " + token
	}
	if err := s.send(ctx, map[string]any{"type": "connection_init", "payload": init}); err != nil {
		return fail(err)
	}
	if m, err := s.next(ctx); err != nil {
		return fail(err)
	} else if m["type"] != "connection_ack" {
		return fail(fmt.Errorf("connection_init answered %v", m))
	}
	err = s.send(ctx, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($ms: Int){ memoryStats(intervalMs: $ms){ ` + memoryFields + ` } }`,
		"variables": map[string]any{"ms": intervalMs},
	}})
	if err != nil {
		return fail(err)
	}
	m, err := s.next(ctx)
	if err != nil {
		return fail(err)
	}
	return s, m, nil
}

func (s *memorySub) send(ctx context.Context, v any) error {
	b, _ := json.Marshal(v)
	return s.conn.Write(ctx, websocket.MessageText, b)
}

// next returns the next message other than a ping or pong, answering pings.
func (s *memorySub) next(ctx context.Context) (map[string]any, error) {
	for {
		_, b, err := s.conn.Read(ctx)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		switch m["type"] {
		case "ping":
			if err := s.send(ctx, map[string]any{"type": "pong"}); err != nil {
				return nil, err
			}
		case "pong", "ka":
		default:
			return m, nil
		}
	}
}

// sample decodes a "next" message carrying memoryStats.
func sampleOf(m map[string]any) (memorySample, error) {
	if m["type"] != "next" {
		return memorySample{}, fmt.Errorf("got %v, want a next message", m)
	}
	b, _ := json.Marshal(m["payload"])
	var p struct {
		Data   struct{ MemoryStats *memorySample }
		Errors []gqlError
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return memorySample{}, err
	}
	if len(p.Errors) > 0 || p.Data.MemoryStats == nil {
		return memorySample{}, fmt.Errorf("payload %s", b)
	}
	return *p.Data.MemoryStats, nil
}

// errorCode returns extensions.code of the first error of an "error" message, or of a "next"
// message's errors.
func errorCode(m map[string]any) string {
	b, _ := json.Marshal(m["payload"])
	var list []gqlError
	if m["type"] == "next" {
		var p struct{ Errors []gqlError }
		_ = json.Unmarshal(b, &p)
		list = p.Errors
	} else {
		_ = json.Unmarshal(b, &list)
	}
	if len(list) == 0 {
		return ""
	}
	c, _ := list[0].Extensions["code"].(string)
	return c
}

// TestMemoryStatsSubscription subscribes over graphql-transport-ws: the current sample at once,
// then one per interval, never faster than 250ms; admins only.
func TestMemoryStatsSubscription(t *testing.T) {
	ts := startServer(t, nil)
	admin := ts.admin()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// collect subscribes and returns the arrival times and samples of the first n messages.
	collect := func(t *testing.T, intervalMs, n int) ([]time.Time, []memorySample) {
		t.Helper()
		began := time.Now()
		s, first, err := openMemorySub(ctx, ts.base, admin.Token, intervalMs)
		if err != nil {
			t.Fatal(err)
		}
		defer s.conn.CloseNow()
		arrived := []time.Time{time.Now()}
		smp, err := sampleOf(first)
		if err != nil {
			t.Fatal(err)
		}
		if wait := arrived[0].Sub(began); wait > 2*time.Second {
			t.Errorf("the first sample took %v", wait)
		}
		if age := arrived[0].Sub(smp.At); age > 500*time.Millisecond {
			t.Errorf("the first sample is %v old, want the current one", age)
		}
		samples := []memorySample{smp}
		for len(samples) < n {
			m, err := s.next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			arrived = append(arrived, time.Now())
			smp, err := sampleOf(m)
			if err != nil {
				t.Fatal(err)
			}
			samples = append(samples, smp)
		}
		return arrived, samples
	}
	gaps := func(ts []time.Time) []time.Duration {
		var out []time.Duration
		for i := 1; i < len(ts); i++ {
			out = append(out, ts[i].Sub(ts[i-1]))
		}
		return out
	}
	sampled := func(s []memorySample) []time.Time {
		out := make([]time.Time, len(s))
		for i := range s {
			out[i] = s[i].At
		}
		return out
	}

	t.Run("CurrentAtOnceThenOnePerInterval", func(t *testing.T) {
		arrived, samples := collect(t, 250, 9)
		g := gaps(sampled(samples)[1:]) // the first is taken at subscription, off the ticker's beat
		var sum time.Duration
		for _, d := range g {
			sum += d
			// A tick handled late makes one gap longer and the next shorter: bounds, not equality.
			if d < 100*time.Millisecond || d > 2*time.Second {
				t.Errorf("samples %v apart, want about 250ms (all gaps %v)", d, g)
			}
		}
		if mean := sum / time.Duration(len(g)); mean < 225*time.Millisecond || mean > 400*time.Millisecond {
			t.Errorf("mean gap %v, want about 250ms", mean)
		}
		total := arrived[len(arrived)-1].Sub(arrived[0])
		if total < 7*200*time.Millisecond || total > 8*600*time.Millisecond {
			t.Errorf("9 messages took %v, want about 8 x 250ms", total)
		}
		t.Logf("gaps between samples: %v", g)
	})

	t.Run("IntervalClampedTo250ms", func(t *testing.T) {
		arrived, samples := collect(t, 10, 6)
		g := gaps(sampled(samples)[1:])
		for i, d := range g {
			if d < 100*time.Millisecond {
				t.Errorf("sample %d came %v after the previous one: intervalMs 10 must be clamped to 250", i+3, d)
			}
		}
		// Unclamped, 5 samples would come within 50ms.
		if span := samples[len(samples)-1].At.Sub(samples[1].At); span < 4*225*time.Millisecond {
			t.Errorf("5 periodic samples within %v (gaps %v), want 4 x 250ms or more", span, g)
		}
		if total := arrived[len(arrived)-1].Sub(arrived[1]); total < 4*200*time.Millisecond {
			t.Errorf("5 periodic samples arrived within %v", total)
		}
	})

	t.Run("NoLimitMeansNull", func(t *testing.T) {
		if memstats.CgroupMemoryLimit(memstats.DefaultCgroupRoot) > 0 || debug.SetMemoryLimit(-1) != math.MaxInt64 {
			t.Skip("this process runs under a memory limit (cgroup or GOMEMLIMIT)")
		}
		_, samples := collect(t, 250, 1)
		if samples[0].MemoryLimitBytes != nil || samples[0].UsagePercent != nil {
			t.Fatalf("memoryLimitBytes %v, usagePercent %v without a limit, want null", samples[0].MemoryLimitBytes, samples[0].UsagePercent)
		}
	})

	for _, tc := range []struct{ name, token, code string }{
		{"ErrForbidden", ts.signUp("Not admin").Token, "FORBIDDEN"},
		{"ErrUnauthenticated", "", "UNAUTHENTICATED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, m, err := openMemorySub(ctx, ts.base, tc.token, 250)
			if err != nil {
				t.Fatal(err)
			}
			defer s.conn.CloseNow()
			if code := errorCode(m); code != tc.code || (m["type"] != "error" && m["type"] != "next") {
				t.Fatalf("got %v, want an error with code %s", m, tc.code)
			}
			if m["type"] == "next" {
				if b, _ := json.Marshal(m["payload"]); strings.Contains(string(b), "rssBytes") {
					t.Fatalf("refused subscriber got data: %s", b)
				}
				if m, err = s.next(ctx); err != nil || m["type"] != "complete" {
					t.Fatalf("after the error: %v, %v; want complete", m, err)
				}
			}
		})
	}
}

// TestMemoryLimitReported starts a server with MEMORY_LIMIT: the runtime's soft limit is set, and
// samples carry the limit and RSS as a share of it.
func TestMemoryLimitReported(t *testing.T) {
	prev := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(prev) }) // the limit is process-wide; tests share it
	const limit = 4 << 30
	cfg := testConfig(t)
	cfg.MemoryLimit = limit
	ts := startServer(t, cfg)
	admin := ts.admin()
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Fatalf("runtime soft memory limit %d, want MEMORY_LIMIT %d", got, limit)
	}
	var out struct{ MemoryStats memorySample }
	ts.mustData(admin.Token, `{ memoryStats { rssBytes memoryLimitBytes usagePercent } }`, nil, &out)
	s := out.MemoryStats
	if s.MemoryLimitBytes == nil || *s.MemoryLimitBytes != limit || s.UsagePercent == nil {
		t.Fatalf("memoryLimitBytes %v, usagePercent %v, want %d and a percentage", s.MemoryLimitBytes, s.UsagePercent, limit)
	}
	if want := 100 * float64(s.RSSBytes) / limit; math.Abs(*s.UsagePercent-want) > 0.01 {
		t.Fatalf("usagePercent %v, want 100 x rssBytes / limit = %v", *s.UsagePercent, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, m, err := openMemorySub(ctx, ts.base, admin.Token, 250)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.conn.CloseNow()
	smp, err := sampleOf(m)
	if err != nil {
		t.Fatal(err)
	}
	if smp.MemoryLimitBytes == nil || *smp.MemoryLimitBytes != limit || smp.UsagePercent == nil || *smp.UsagePercent <= 0 {
		t.Fatalf("subscription sample: memoryLimitBytes %v, usagePercent %v", smp.MemoryLimitBytes, smp.UsagePercent)
	}
}

// goroutineSummary groups the live goroutines by their top function, largest groups first, for
// a failure message.
func goroutineSummary() string {
	buf := make([]byte, 64<<20)
	buf = buf[:runtime.Stack(buf, true)]
	counts := map[string]int{}
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		lines := strings.Split(string(g), "\n")
		key := ""
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "\t") && !strings.HasPrefix(l, "runtime.") && !strings.HasPrefix(l, "internal/") &&
				!strings.HasPrefix(l, "sync.") && !strings.HasPrefix(l, "time.Sleep") {
				key = l
				break
			}
		}
		counts[key]++
	}
	type kv struct {
		k string
		n int
	}
	var all []kv
	for k, n := range counts {
		all = append(all, kv{k, n})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n })
	var b strings.Builder
	for i, e := range all {
		if i == 15 {
			break
		}
		fmt.Fprintf(&b, "%6d %s\n", e.n, e.k)
	}
	return b.String()
}

// settledGoroutines waits until the goroutine count stops moving and returns it.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 20 {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}

// TestMemoryStatsSubscribersShareOneSampler holds many websocket subscribers on memoryStats at
// once: they share the one sampler (no ticker or goroutine of their own in it), the server's
// goroutines grow by gqlgen's per-connection cost only, and all of it goes away when they close.
func TestMemoryStatsSubscribersShareOneSampler(t *testing.T) {
	n := 1000
	if raceEnabled {
		n = 250 // the race detector allows 8128 live goroutines
	}
	if testing.Short() {
		n = 200
	}
	cfg := testConfig(t)
	cfg.WSMaxConnectionsPerClient = n + 10
	cfg.ThrottleLimit = 100 * n // each upgrade and each subscription is a request
	ts := startServer(t, cfg)
	admin := ts.admin()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	runtime.GC()
	base := settledGoroutines()

	// Open n idle subscribers (one sample a minute), 16 at a time.
	subs := make([]*memorySub, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range subs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			s, m, err := openMemorySub(ctx, ts.base, admin.Token, 60_000)
			if err == nil {
				_, err = sampleOf(m)
			}
			if err != nil {
				errs <- fmt.Errorf("subscriber %d: %w", i, err)
				return
			}
			subs[i] = s
		})
	}
	wg.Wait()
	close(errs)
	t.Cleanup(func() {
		for _, s := range subs {
			if s != nil {
				_ = s.conn.CloseNow()
			}
		}
	})
	for err := range errs {
		t.Fatal(err) // the first is enough
	}
	opened := time.Since(began)
	if got := ts.metric("eventide_memory_subscribers"); got != float64(n) {
		t.Fatalf("eventide_memory_subscribers = %v, want %d", got, n)
	}
	held := settledGoroutines()
	perSub := float64(held-base) / float64(n)
	t.Logf("%d subscribers opened in %v; goroutines %d -> %d: %.2f per subscriber", n, opened, base, held, perSub)
	// gqlgen's websocket per connection: the HTTP connection's own goroutine (its read loop), the
	// ping loop, the close-on-cancel watcher, and one per subscription. The lean transport holds
	// none for an idle one. The sampler adds none.
	if cfg.WSTransport == config.WSTransportGqlgen {
		if perSub < 2 || perSub > 6 {
			t.Errorf("%.2f goroutines per subscriber, want gqlgen's 4 or so\n%s", perSub, goroutineSummary())
		}
	} else if perSub > 0.05 {
		t.Errorf("%.2f goroutines per subscriber, want none (lean transport)\n%s", perSub, goroutineSummary())
	}

	// One more, fast subscriber: the sampler now ticks every 250ms for everyone, still once.
	fast, first, err := openMemorySub(ctx, ts.base, admin.Token, 250)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.conn.CloseNow()
	if _, err := sampleOf(first); err != nil {
		t.Fatal(err)
	}
	samplesBefore := ts.metric("eventide_memory_samples_total")
	const window = 2 * time.Second
	got := 0
	for deadline := time.Now().Add(window); time.Now().Before(deadline); got++ {
		m, err := fast.next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sampleOf(m); err != nil {
			t.Fatal(err)
		}
	}
	taken := ts.metric("eventide_memory_samples_total") - samplesBefore
	t.Logf("in %v with %d idle subscribers: %d samples delivered to the fast one, %v taken", window, n, got, taken)
	if got < 5 || got > 12 {
		t.Errorf("the 250ms subscriber got %d samples in %v", got, window)
	}
	if taken > 16 {
		t.Errorf("%v samples taken in %v: more than one sampler's worth", taken, window)
	}
	_ = fast.conn.Close(websocket.StatusNormalClosure, "")

	// Close them all, half with a close handshake, half by dropping the connection.
	for i, s := range subs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if i%2 == 0 {
				_ = s.conn.Close(websocket.StatusNormalClosure, "")
			} else {
				_ = s.conn.CloseNow()
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for {
		now, subsLeft := runtime.NumGoroutine(), ts.metric("eventide_memory_subscribers")
		fixed := 0 // the lean transport's workers and event loop stay, whatever its sockets
		if ts.app.LeanSockets() != nil {
			fixed = ts.app.LeanSockets().Goroutines()
		}
		if now <= base+5+fixed && subsLeft == 0 {
			t.Logf("back to %d goroutines (baseline %d)", now, base)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines and %v subscribers 30s after closing, baseline %d:\n%s", now, subsLeft, base, goroutineSummary())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
