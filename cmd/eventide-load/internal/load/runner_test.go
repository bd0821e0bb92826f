package load

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"
)

func TestOpenLoopIntendedTimes(t *testing.T) {
	// 200/s: a request due every 5ms, from Start, warm-up included; only those due in the window
	// are recorded, and each op sees the exact time it was due, not when it got to run.
	var mu sync.Mutex
	var due []time.Time
	op := func(ctx context.Context, w *Worker) Outcome {
		mu.Lock()
		due = append(due, w.Intended)
		mu.Unlock()
		return Outcome{Op: "x", Status: 200}
	}
	start := time.Now().Add(20 * time.Millisecond)
	rec := NewRecorder()
	res := Run(context.Background(), Config{Rate: 200, Start: start, Warmup: 100 * time.Millisecond, Duration: 500 * time.Millisecond}, op, rec)

	if len(due) != 120 {
		t.Fatalf("%d requests sent, want 120 (20 warm-up + 100)", len(due))
	}
	sort.Slice(due, func(i, j int) bool { return due[i].Before(due[j]) })
	for i, d := range due {
		if want := start.Add(time.Duration(i) * 5 * time.Millisecond); !d.Equal(want) {
			t.Fatalf("request %d due at +%v, want +%v", i, d.Sub(start), want.Sub(start))
		}
	}
	if res.Intended != 100 || res.Sent != 100 || res.Missed != 0 {
		t.Errorf("intended %d sent %d missed %d, want 100 100 0", res.Intended, res.Sent, res.Missed)
	}
	if n, _ := rec.Progress(); n != 100 {
		t.Errorf("recorded %d, want the 100 of the window", n)
	}
	if !res.Start.Equal(start.Add(100*time.Millisecond)) || res.Elapsed != 500*time.Millisecond {
		t.Errorf("window %v + %v", res.Start.Sub(start), res.Elapsed)
	}
}

// slowServer answers one request at a time, each taking service: its capacity is 1/service.
func slowServer(t *testing.T, service time.Duration) *httptest.Server {
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		time.Sleep(service)
		mu.Unlock()
		_, _ = w.Write([]byte(`{"data":{}}`))
	}))
	t.Cleanup(ts.Close)
	return ts
}

func httpOp(ts *httptest.Server) Op {
	client := ts.Client()
	client.Transport.(*http.Transport).MaxIdleConnsPerHost = 1000
	return func(ctx context.Context, w *Worker) Outcome {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			return Outcome{Op: "get", Err: err}
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return Outcome{Op: "get", Status: resp.StatusCode}
	}
}

func TestOpenLoopNoCoordinatedOmission(t *testing.T) {
	// The server serves 50 req/s (20ms each, one at a time); we offer 100 req/s for 0.5s. A
	// generator that waits for answers before sending would see ~20ms latencies and send only
	// ~25 requests. The open loop sends all 50 on time and charges each with its wait in the
	// server's queue: the k-th is answered ~(k+1)·20ms after start but was due at k·10ms, so
	// latencies climb to ~0.5s and the median is ~0.25s.
	const service = 20 * time.Millisecond
	ts := slowServer(t, service)

	open := NewRecorder()
	res := Run(context.Background(), Config{Rate: 100, Duration: 500 * time.Millisecond, Drain: 5 * time.Second}, httpOp(ts), open)
	if res.Intended != 50 || res.Sent != 50 || res.Missed != 0 {
		t.Fatalf("intended %d sent %d missed %d, want 50 50 0", res.Intended, res.Sent, res.Missed)
	}
	s := open.Summary()
	if s.All.Count() != 50 || s.Failed != 0 {
		t.Fatalf("recorded %d, %d failed", s.All.Count(), s.Failed)
	}
	p50, maxLat := s.All.Quantile(0.5), s.All.Max()
	t.Logf("open loop: p50 %v max %v over %d workers", p50, maxLat, res.Workers)
	if p50 < 150*time.Millisecond || maxLat < 400*time.Millisecond {
		t.Errorf("open-loop p50 %v max %v: the queueing delay was omitted", p50, maxLat)
	}

	// The same server under a closed loop of one worker: latency is just the service time.
	closed := NewRecorder()
	Run(context.Background(), Config{Workers: 1, Duration: 300 * time.Millisecond}, httpOp(ts), closed)
	cp50 := closed.Summary().All.Quantile(0.5)
	t.Logf("closed loop: p50 %v", cp50)
	if p50 < 4*cp50 {
		t.Errorf("closed-loop p50 %v vs open-loop %v", cp50, p50)
	}
}

func TestOpenLoopSaturated(t *testing.T) {
	// One request in flight at most, each taking 50ms, offered 100/s for 0.3s: requests wait for
	// the one goroutine, their wait counts, and those never sent are counted as missed.
	op := func(ctx context.Context, w *Worker) Outcome {
		time.Sleep(50 * time.Millisecond)
		return Outcome{Op: "slow", Status: 200}
	}
	rec := NewRecorder()
	res := Run(context.Background(), Config{Rate: 100, MaxInFlight: 1, Duration: 300 * time.Millisecond}, op, rec)
	if res.Intended != 30 || res.Sent+res.Missed != res.Intended || res.Missed < 20 || res.Workers != 1 {
		t.Fatalf("intended %d sent %d missed %d workers %d", res.Intended, res.Sent, res.Missed, res.Workers)
	}
	if m := rec.Summary().All.Max(); m < 200*time.Millisecond {
		t.Errorf("max latency %v: the wait for a free goroutine was not counted", m)
	}
}

func TestClosedLoop(t *testing.T) {
	op := func(ctx context.Context, w *Worker) Outcome {
		time.Sleep(10 * time.Millisecond)
		o := Outcome{Op: "page", Status: 200, Untimed: 5 * time.Millisecond}
		w.RecordAux(Outcome{Op: "purge", Status: 200}, time.Millisecond)
		if w.ID == 0 {
			o.Codes = []string{"RATE_LIMITED"}
		}
		return o
	}
	rec := NewRecorder()
	res := Run(context.Background(), Config{Workers: 3, Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond}, op, rec)
	s := rec.Summary()
	n := s.All.Count()
	// 3 workers × 300ms / 10ms = 90; the warm-up's ~30 are not recorded.
	if n < 30 || n > 96 || res.Workers != 3 {
		t.Fatalf("recorded %d requests over %d workers, want ~90 over 3", n, res.Workers)
	}
	if s.Failed == 0 || s.Codes["RATE_LIMITED"] != s.Failed {
		t.Errorf("failed %d, by code %v", s.Failed, s.Codes)
	}
	if p := s.All.Quantile(0.5); p < 4*time.Millisecond || p > 15*time.Millisecond {
		t.Errorf("p50 %v: want ~5ms, the 10ms minus the 5ms untimed", p)
	}
	var aux *OpSummary
	for i := range s.Ops {
		if s.Ops[i].Name == "purge" {
			aux = &s.Ops[i]
		}
	}
	if aux == nil || !aux.Aux || aux.Hist.Count() != n {
		t.Errorf("aux row %+v: want one purge per recorded request, none from the warm-up", aux)
	}
}

func TestRunStopsByItself(t *testing.T) {
	// An operation that would hang forever is cancelled at the end plus Drain.
	hang := func(ctx context.Context, w *Worker) Outcome {
		<-ctx.Done()
		return Outcome{Op: "hang", Err: ctx.Err()}
	}
	for _, cfg := range []Config{
		{Workers: 2, Duration: 100 * time.Millisecond, Drain: 100 * time.Millisecond},
		{Rate: 50, Duration: 100 * time.Millisecond, Drain: 100 * time.Millisecond},
	} {
		began := time.Now()
		rec := NewRecorder()
		Run(context.Background(), cfg, hang, rec)
		if took := time.Since(began); took > time.Second {
			t.Errorf("%+v: took %v", cfg, took)
		}
		if s := rec.Summary(); s.Transport["timeout"] == 0 {
			t.Errorf("%+v: hung requests should count as timeouts: %v", cfg, s.Transport)
		}
	}

	// And a cancelled ctx ends it early, reporting how much of the window ran.
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	res := Run(ctx, Config{Rate: 100, Duration: 10 * time.Second}, func(ctx context.Context, w *Worker) Outcome {
		return Outcome{Op: "x", Status: 200}
	}, NewRecorder())
	if res.Elapsed > time.Second || res.Intended > 30 {
		t.Errorf("after cancel: elapsed %v intended %d", res.Elapsed, res.Intended)
	}
}

func TestClassifyError(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
		{io.ErrUnexpectedEOF, "connection closed early (EOF)"},
		{errors.New("something else"), "other"},
	} {
		if got := ClassifyError(c.err); got != c.want {
			t.Errorf("%v: %q, want %q", c.err, got, c.want)
		}
	}
	// A real refused connection: a port that was just closed.
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	_, err := http.Get(url)
	if got := ClassifyError(err); got != "connection refused" {
		t.Errorf("refused: %q (%v)", got, err)
	}
}
