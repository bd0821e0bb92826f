package memstats

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"github.com/eventide/server/internal/syncbuf"
	"github.com/eventide/server/internal/testutil"
	"github.com/eventide/server/pubsub"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeClock is a settable clock for driving Sampler.tick by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func newClockedSampler(opts Options) (*Sampler, *fakeClock) {
	s := New(opts)
	c := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.now = c.Now
	return s, c
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, what, cond)
}

// drain receives what is buffered in ch without blocking; closed reports a closed channel.
func drain[T any](ch <-chan T) (n int, closed bool) {
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return n, true
			}
			n++
		default:
			return n, false
		}
	}
}

// procStatusRSS reads VmRSS from /proc/self/status, independently of the code under test.
func procStatusRSS(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS line")
	return 0
}

func TestSample(t *testing.T) {
	t.Run("MatchesProcess", func(t *testing.T) {
		runtime.GC()
		s := New(Options{LimitBytes: 1 << 40})
		smp := s.Current()
		rss := procStatusRSS(t)
		goroutines := runtime.NumGoroutine()

		if lo, hi := rss*8/10, rss*12/10; smp.RSSBytes < lo || smp.RSSBytes > hi {
			t.Errorf("RSSBytes = %d, /proc/self/status VmRSS = %d: off by more than 20%%", smp.RSSBytes, rss)
		}
		if d := smp.Goroutines - goroutines; d < -3 || d > 3 {
			t.Errorf("Goroutines = %d, runtime.NumGoroutine() = %d", smp.Goroutines, goroutines)
		}
		if !(0 < smp.HeapAllocBytes && smp.HeapAllocBytes <= smp.HeapInuseBytes &&
			smp.HeapInuseBytes <= smp.HeapSysBytes && smp.HeapSysBytes < smp.TotalBytes) {
			t.Errorf("want 0 < heap alloc <= inuse <= sys < total: %+v", smp)
		}
		if smp.StackInuseBytes <= 0 || smp.GCCycles < 1 || smp.LastGCPauseNs <= 0 {
			t.Errorf("stack, GC cycles and last pause should be positive after a GC: %+v", smp)
		}
		if smp.MemoryLimitBytes != 1<<40 || smp.UsagePercent <= 0 || smp.UsagePercent > 1 {
			t.Errorf("limit %d, usage %.6f%%", smp.MemoryLimitBytes, smp.UsagePercent)
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		if d := float64(smp.HeapSysBytes) / float64(m.HeapSys); d < 0.8 || d > 1.2 {
			t.Errorf("HeapSysBytes = %d, MemStats.HeapSys = %d", smp.HeapSysBytes, m.HeapSys)
		}
	})
	t.Run("LastGCPauseFollowsNewCollections", func(t *testing.T) {
		s := New(Options{})
		s.sample(time.Now())
		before := s.sample(time.Now())
		runtime.GC()
		after := s.sample(time.Now())
		if after.GCCycles <= before.GCCycles || after.LastGCPauseNs <= 0 {
			t.Fatalf("before %+v after %+v", before, after)
		}
		if again := s.sample(time.Now()); again.GCCycles == after.GCCycles && again.LastGCPauseNs != after.LastGCPauseNs {
			t.Fatalf("without a collection the last pause should stay: %d then %d", after.LastGCPauseNs, again.LastGCPauseNs)
		}
	})
	t.Run("RSSFallback", func(t *testing.T) {
		s := New(Options{ReadRSS: func() (int64, error) { return 0, ErrNoRSS }})
		smp := s.Current()
		if smp.RSSBytes <= 0 || smp.RSSBytes > smp.TotalBytes {
			t.Fatalf("fallback RSS %d, total %d", smp.RSSBytes, smp.TotalBytes)
		}
	})
	t.Run("CurrentIsRateLimited", func(t *testing.T) {
		s, c := newClockedSampler(Options{})
		first := s.Current()
		c.Add(MinInterval / 2)
		if s.Current().At != first.At {
			t.Fatal("a sample younger than MinInterval was not reused")
		}
		c.Add(MinInterval)
		if s.Current().At == first.At {
			t.Fatal("a stale sample was reused")
		}
		if n := s.samples.Load(); n != 2 {
			t.Fatalf("samples taken = %d, want 2", n)
		}
	})
}

func TestReadRSS(t *testing.T) {
	rss, err := ReadRSS()
	if err != nil {
		t.Skip("no /proc:", err)
	}
	var st statm
	defer st.close()
	kept, err := st.read()
	if err != nil {
		t.Fatal(err)
	}
	if want := procStatusRSS(t); rss < want*8/10 || rss > want*12/10 || kept < want*8/10 || kept > want*12/10 {
		t.Fatalf("ReadRSS %d, kept-open %d, VmRSS %d", rss, kept, want)
	}
	// The kept-open descriptor sees growth: the kernel renders the file afresh on every read.
	// Pages mapped outside the Go heap grow RSS whatever the heap holds free.
	grow, err := syscall.Mmap(-1, 0, 64<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(grow)
	for i := 0; i < len(grow); i += 4096 {
		grow[i] = 1
	}
	grown, err := st.read()
	if err != nil {
		t.Fatal(err)
	}
	if grown < kept+48<<20 {
		t.Fatalf("after touching 64 MiB RSS went from %d to %d", kept, grown)
	}
}

func TestParseStatm(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		got, err := parseStatm([]byte("306800 567 409 172 0 10201 0\n"))
		if err != nil || got != 567*pageSize {
			t.Fatalf("got %d, %v", got, err)
		}
	})
	for _, in := range []string{"", "306800", "306800 x 1", "1 -5 2"} {
		t.Run("ErrNoRSS/"+in, func(t *testing.T) {
			if _, err := parseStatm([]byte(in)); !errors.Is(err, ErrNoRSS) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestHistory(t *testing.T) {
	t.Run("BoundedOldestFirst", func(t *testing.T) {
		s, c := newClockedSampler(Options{HistorySize: 10, HistoryInterval: time.Second})
		start := c.Now()
		for range 25 {
			s.tick(c.Now())
			c.Add(time.Second)
		}
		h := s.History(0)
		if len(h) != 10 {
			t.Fatalf("len = %d, want the ring size 10", len(h))
		}
		for i, smp := range h {
			if want := start.Add(time.Duration(15+i) * time.Second); !smp.At.Equal(want) {
				t.Fatalf("h[%d].At = %v, want %v", i, smp.At, want)
			}
		}
		if last := s.History(3); len(last) != 3 || !last[0].At.Equal(h[7].At) || !last[2].At.Equal(h[9].At) {
			t.Fatalf("History(3) = %v", last)
		}
		if len(s.History(1000)) != 10 {
			t.Fatal("History(1000) not capped")
		}
	})
	t.Run("PartlyFilled", func(t *testing.T) {
		s, c := newClockedSampler(Options{HistorySize: 10, HistoryInterval: time.Second})
		for range 3 {
			s.tick(c.Now())
			c.Add(time.Second)
		}
		if h := s.History(5); len(h) != 3 || !h[0].At.Before(h[2].At) {
			t.Fatalf("History(5) = %v", h)
		}
	})
	t.Run("OnePerHistoryIntervalWhileSamplingFaster", func(t *testing.T) {
		s, c := newClockedSampler(Options{HistorySize: 100, HistoryInterval: 5 * time.Second})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch, err := s.Subscribe(ctx, MinInterval)
		if err != nil {
			t.Fatal(err)
		}
		for range 80 { // 20 s at 250 ms
			s.tick(c.Now())
			c.Add(MinInterval)
			drain(ch)
		}
		h := s.History(0)
		if len(h) != 4 {
			t.Fatalf("history holds %d samples over 20 s at one per 5 s, want 4", len(h))
		}
		for i := 1; i < len(h); i++ {
			if d := h[i].At.Sub(h[i-1].At); d < 4750*time.Millisecond || d > 5250*time.Millisecond {
				t.Fatalf("history samples %v apart", d)
			}
		}
	})
}

func TestSubscribe(t *testing.T) {
	t.Run("RateFollowsFastestSubscriber", func(t *testing.T) {
		s, c := newClockedSampler(Options{HistoryInterval: 5 * time.Second, Buffer: 4})
		if d := s.interval(); d != 5*time.Second {
			t.Fatalf("idle interval %v, want the history interval", d)
		}
		fastCtx, cancelFast := context.WithCancel(context.Background())
		defer cancelFast()
		fast, err := s.Subscribe(fastCtx, 10*time.Millisecond) // clamped to 250 ms
		if err != nil {
			t.Fatal(err)
		}
		slowCtx, cancelSlow := context.WithCancel(context.Background())
		defer cancelSlow()
		slow, err := s.Subscribe(slowCtx, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if d := s.interval(); d != MinInterval {
			t.Fatalf("interval %v with a 250 ms subscriber", d)
		}
		var fastAt, slowAt []time.Time
		recv := func() {
			for {
				select {
				case smp := <-fast:
					fastAt = append(fastAt, smp.At)
				case smp := <-slow:
					slowAt = append(slowAt, smp.At)
				default:
					return
				}
			}
		}
		recv() // the current sample, at once
		if len(fastAt) != 1 || len(slowAt) != 1 {
			t.Fatalf("at subscribe: fast got %d, slow got %d, want 1 each", len(fastAt), len(slowAt))
		}
		for range 40 { // 10 s at the fast subscriber's rate
			s.tick(c.Add(MinInterval))
			recv()
		}
		if len(fastAt) != 41 {
			t.Fatalf("fast subscriber got %d samples in 10 s at 250 ms, want 1+40", len(fastAt))
		}
		if len(slowAt) != 3 {
			t.Fatalf("slow subscriber got %d samples in 10 s at 5 s, want 1+2: %v", len(slowAt), slowAt)
		}
		if d := slowAt[2].Sub(slowAt[1]); d != 5*time.Second {
			t.Fatalf("slow subscriber's samples %v apart", d)
		}

		cancelFast()
		waitFor(t, "the fast subscriber to leave", func() bool { return s.Subscribers() == 1 })
		if _, closed := drain(fast); !closed {
			t.Fatal("channel not closed after cancel")
		}
		if d := s.interval(); d != 5*time.Second {
			t.Fatalf("interval %v after the fast subscriber left, want 5s", d)
		}
		cancelSlow()
		waitFor(t, "the slow subscriber to leave", func() bool { return s.Subscribers() == 0 })
	})
	t.Run("SlowSubscriberDropped", func(t *testing.T) {
		s, c := newClockedSampler(Options{Buffer: 2})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		never, _ := s.Subscribe(ctx, MinInterval)
		reader, _ := s.Subscribe(ctx, MinInterval)
		got := 0
		for range 10 {
			s.tick(c.Add(MinInterval)) // never blocks: a full buffer is a drop
			n, _ := drain(reader)
			got += n
		}
		if got != 11 {
			t.Fatalf("the reading subscriber got %d samples, want 11", got)
		}
		if n, closed := drain(never); n != 2 || !closed {
			t.Fatalf("the never-reading subscriber: %d buffered, closed %v; want 2 and closed", n, closed)
		}
		if s.dropped() != 1 || s.Subscribers() != 1 {
			t.Fatalf("dropped %d, subscribers %d", s.dropped(), s.Subscribers())
		}
	})
	t.Run("IntervalsBoundedBySubscribers", func(t *testing.T) {
		// The intervals that set the sampling rate hold only the live subscribers': a refused
		// one, a dropped one and one whose context ended take theirs away.
		s, c := newClockedSampler(Options{HistoryInterval: 5 * time.Second, Buffer: 1, MaxSubscribers: 3})
		intervals := func() int {
			s.ivMu.Lock()
			defer s.ivMu.Unlock()
			return len(s.intervals)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		never, _ := s.Subscribe(ctx, MinInterval)
		if _, err := s.Subscribe(ctx, time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Subscribe(ctx, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Subscribe(ctx, 300*time.Millisecond); !errors.Is(err, pubsub.ErrTooManySubscribers) {
			t.Fatalf("a fourth subscriber of 3: %v", err)
		}
		if n, d := intervals(), s.interval(); n != 3 || d != MinInterval {
			t.Fatalf("%d intervals, rate %v after a refusal; want 3 and 250ms", n, d)
		}
		s.tick(c.Add(MinInterval)) // never's buffer holds the first sample: it is dropped
		if _, closed := drain(never); !closed || s.dropped() != 1 {
			t.Fatalf("the never-reading subscriber: closed %v, dropped %d", closed, s.dropped())
		}
		if n, d := intervals(), s.interval(); n != 2 || d != time.Second {
			t.Fatalf("%d intervals, rate %v after the drop; want 2 and 1s", n, d)
		}
		cancel()
		waitFor(t, "the subscribers to leave", func() bool { return s.Subscribers() == 0 })
		if n, d := intervals(), s.interval(); n != 0 || d != 5*time.Second {
			t.Fatalf("%d intervals, rate %v with no subscriber; want none and the history interval", n, d)
		}
	})
	t.Run("ErrTooManySubscribers", func(t *testing.T) {
		s := New(Options{MaxSubscribers: 2})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for range 2 {
			if _, err := s.Subscribe(ctx, time.Second); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Subscribe(ctx, time.Second); !errors.Is(err, pubsub.ErrTooManySubscribers) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ErrCanceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := New(Options{}).Subscribe(ctx, time.Second); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("SubscribeAs", func(t *testing.T) {
		s := New(Options{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch, err := SubscribeAs(s, ctx, time.Second, func(smp Sample) *int64 { return &smp.RSSBytes })
		if err != nil {
			t.Fatal(err)
		}
		if v := <-ch; *v <= 0 {
			t.Fatalf("converted RSS %d", *v)
		}
	})
}

func TestRun(t *testing.T) {
	t.Run("RealTicker", func(t *testing.T) {
		s := New(Options{HistoryInterval: MaxInterval})
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()

		subCtx, unsubscribe := context.WithCancel(context.Background())
		ch, err := s.Subscribe(subCtx, MinInterval)
		if err != nil {
			t.Fatal(err)
		}
		var at []time.Time
		for smp := range ch {
			if at = append(at, smp.At); len(at) == 6 {
				break
			}
		}
		for i := 2; i < len(at); i++ { // at[0] is the sample at subscribe, at[1] the first tick
			if d := at[i].Sub(at[i-1]); d < 100*time.Millisecond || d > time.Second {
				t.Errorf("samples %v apart at a 250 ms subscription", d)
			}
		}
		unsubscribe()
		waitFor(t, "the rate to fall back", func() bool { return s.interval() == MaxInterval })
		before := s.samples.Load()
		time.Sleep(600 * time.Millisecond)
		if n := s.samples.Load() - before; n > 1 {
			t.Errorf("%d samples in 600 ms after the only subscriber left", n)
		}

		late, _ := s.Subscribe(context.Background(), time.Second)
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, closed := drain(late); !closed {
			t.Fatal("subscriber not completed when Run returned")
		}
		if _, err := s.Subscribe(context.Background(), time.Second); !errors.Is(err, ErrStopped) {
			t.Fatalf("Subscribe after Run: %v", err)
		}
		if err := s.Run(context.Background()); !errors.Is(err, ErrStopped) {
			t.Fatalf("second Run: %v", err)
		}
		if s.Current().RSSBytes <= 0 {
			t.Fatal("Current after Run")
		}
	})
	t.Run("ThousandSubscribersOneGoroutine", func(t *testing.T) {
		const n = 1000
		s := New(Options{MaxSubscribers: n})
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		waitFor(t, "the first sample", func() bool { return s.samples.Load() > 0 })
		base := runtime.NumGoroutine()

		chans := make([]<-chan Sample, n)
		cancels := make([]context.CancelFunc, n)
		var wg sync.WaitGroup
		var failed atomic.Int32
		for i := range n {
			wg.Go(func() {
				subCtx, cancel := context.WithCancel(context.Background())
				ch, err := s.Subscribe(subCtx, MinInterval)
				if err != nil {
					failed.Add(1)
				}
				chans[i], cancels[i] = ch, cancel
			})
		}
		wg.Wait()
		if failed.Load() > 0 || s.Subscribers() != n {
			t.Fatalf("%d subscriptions failed; %d subscribed", failed.Load(), s.Subscribers())
		}
		if d := runtime.NumGoroutine() - base; d >= 10 {
			t.Fatalf("goroutines grew by %d with %d subscribers", d, n)
		}
		for i, ch := range chans { // the sample at subscribe, then one from the shared ticker
			for k := range 2 {
				if _, ok := <-ch; !ok {
					t.Fatalf("subscriber %d closed before sample %d (dropped %d)", i, k, s.dropped())
				}
			}
		}
		if d := runtime.NumGoroutine() - base; d >= 10 {
			t.Fatalf("goroutines grew by %d while %d subscribers were fed", d, n)
		}
		for _, cancel := range cancels {
			cancel()
		}
		waitFor(t, "all to unsubscribe", func() bool { return s.Subscribers() == 0 })
		for _, ch := range chans {
			for range ch { // ends: closed after what remains in the buffer
			}
		}
		if s.dropped() != 0 {
			t.Fatalf("%d dropped", s.dropped())
		}
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	t.Run("LogLine", func(t *testing.T) {
		var buf syncBuffer
		s := New(Options{LogInterval: 20 * time.Millisecond, LimitBytes: 1 << 40,
			Logger: slogJSON(&buf)})
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		waitFor(t, "a log line", func() bool { return strings.Contains(buf.String(), "\n") })
		stop()
		<-done
		line, _, _ := strings.Cut(buf.String(), "\n")
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"rss_bytes", "heap_alloc_bytes", "heap_inuse_bytes", "total_bytes",
			"goroutines", "gc_cycles", "last_gc_pause", "limit_bytes", "usage_percent"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("log line lacks %s: %s", k, line)
			}
		}
		if rec["msg"] != "memory" || rec["level"] != "INFO" {
			t.Errorf("log line %s", line)
		}
	})
}

func TestCollectors(t *testing.T) {
	s, c := newClockedSampler(Options{Buffer: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.Subscribe(ctx, MinInterval)
	s.tick(c.Add(MinInterval)) // the buffer of 1 is full: dropped
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(s.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			got[mf.GetName()] = g.GetValue()
		} else {
			got[mf.GetName()] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"eventide_memory_samples_total":                     -1,
		"eventide_memory_rss_bytes":                         -1,
		"eventide_memory_limit_bytes":                       0,
		"eventide_memory_subscribers":                       0,
		"eventide_memory_subscribers_dropped_total":         1,
		"eventide_memory_watchdog_pressure_total":           0,
		"eventide_memory_watchdog_restarts_requested_total": 0,
	}
	for name, v := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s missing", name)
		case v < 0 && g <= 0:
			t.Errorf("%s = %v, want > 0", name, g)
		case v >= 0 && g != v:
			t.Errorf("%s = %v, want %v", name, g, v)
		}
	}
}

func slogJSON(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = syncbuf.Buffer

func BenchmarkSample(b *testing.B) {
	s := New(Options{LimitBytes: 1 << 30})
	b.ReportAllocs()
	for b.Loop() {
		s.sample(time.Now())
	}
}

// BenchmarkFanOut1000 is one sampler tick with 1 000 memoryStats subscribers due, each draining
// its channel in a goroutine of its own as a subscription does: one sample taken, converted and
// offered to all 1 000, and the op ends when every one has it.
func BenchmarkFanOut1000(b *testing.B) {
	const n = 1000
	s := New(Options{LimitBytes: 1 << 30, MaxSubscribers: n})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var left atomic.Int64
	left.Store(n) // each subscriber gets the current sample at once
	done := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for range n {
		ch, err := s.Subscribe(ctx, MinInterval)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range ch {
				if left.Add(-1) == 0 {
					done <- struct{}{}
				}
			}
		}()
	}
	<-done
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		left.Store(n)
		now = now.Add(MinInterval)
		s.tick(now)
		<-done
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	if st := s.dropped(); st != 0 {
		b.Fatalf("%d subscribers dropped", st)
	}
}
