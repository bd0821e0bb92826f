package load

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Config says how Run drives an operation.
type Config struct {
	// Workers is the closed loop's size: this many goroutines, each sending its next request as
	// soon as the previous one is answered. Used when Rate is 0.
	Workers int
	// Rate, when > 0, selects the open loop: requests are due at fixed intervals of 1/Rate s
	// whether or not earlier ones were answered, and each one's latency is measured from the
	// time it was due, so a server that stalls is charged for the queue it causes instead of
	// slowing the generator down (no coordinated omission).
	Rate float64
	// MaxInFlight caps the open loop's concurrent requests (its goroutines, started as needed).
	// When all are busy a due request waits for one and its wait counts in its latency; one
	// still waiting when the run ends is counted as missed. Default 10000.
	MaxInFlight int
	// Start is when the run begins; zero means now. Warmup runs from Start, then the measured
	// window of Duration; only requests due inside the window are recorded.
	Start    time.Time
	Warmup   time.Duration
	Duration time.Duration
	// Drain is how long requests still in flight at the end may take before they are cancelled
	// (and recorded as timeouts). Default 10s.
	Drain time.Duration
	// Seed makes each worker's random choices reproducible: worker i draws from PCG(Seed, i).
	Seed uint64
}

// Worker is the goroutine an operation runs on, with state that lasts across its requests.
type Worker struct {
	ID       int
	Rand     *rand.Rand
	State    any       // the operation's own, e.g. the registration a user holds
	Intended time.Time // when the current request was due (open loop) or started (closed loop)

	rec       *Recorder
	measuring bool
}

// RecordAux records a harness step of the current request (see Recorder.RecordAux), unless the
// request is part of the warm-up.
func (w *Worker) RecordAux(o Outcome, latency time.Duration) {
	if w.measuring {
		w.rec.RecordAux(o, latency)
	}
}

// Op makes one request (a user's action) and says how it went. ctx ends at the run's end plus
// Drain; it must return by then.
type Op func(ctx context.Context, w *Worker) Outcome

// Result describes the run itself; the requests are in the Recorder.
type Result struct {
	Start   time.Time     // the measured window's start (Config.Start + Warmup)
	Elapsed time.Duration // how much of the window ran: Duration, or less when ctx ended first
	Workers int           // closed loop: Workers; open loop: the most goroutines in use
	// Open loop only: requests due in the window, those sent, and those never sent because
	// MaxInFlight requests were still outstanding when the window ended.
	Intended, Sent, Missed uint64
}

// Run drives op until the window ends or ctx does, records every request due in the window in
// rec, waits for the requests in flight (at most Drain), and returns. It never runs past
// Start + Warmup + Duration + Drain.
func Run(ctx context.Context, cfg Config, op Op, rec *Recorder) Result {
	if cfg.Start.IsZero() {
		cfg.Start = time.Now()
	}
	if cfg.Drain <= 0 {
		cfg.Drain = 10 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 10000
	}
	measure := cfg.Start.Add(cfg.Warmup)
	end := measure.Add(cfg.Duration)
	opCtx, cancel := context.WithDeadline(ctx, end.Add(cfg.Drain))
	defer cancel()

	r := &runner{cfg: cfg, op: op, rec: rec, parent: ctx, ctx: opCtx, measure: measure, end: end}
	res := Result{Start: measure}
	var stopped time.Time
	if cfg.Rate > 0 {
		stopped = r.open(ctx, &res)
	} else {
		stopped = r.closed(ctx, &res)
	}
	res.Sent = r.sent.Load()
	if res.Intended > res.Sent {
		res.Missed = res.Intended - res.Sent
	}
	if stopped.After(end) {
		stopped = end
	}
	res.Elapsed = max(stopped.Sub(measure), 0)
	return res
}

type runner struct {
	cfg          Config
	op           Op
	rec          *Recorder
	parent       context.Context // Run's: its end is an interrupt
	ctx          context.Context // the requests': the parent's, ending at the drain deadline
	measure, end time.Time
	sent         atomic.Uint64
}

func (r *runner) newWorker(id int) *Worker {
	return &Worker{ID: id, Rand: rand.New(rand.NewPCG(r.cfg.Seed, uint64(id))), rec: r.rec}
}

// do runs one request due at t.
func (r *runner) do(w *Worker, t time.Time) {
	w.Intended = t
	w.measuring = !t.Before(r.measure)
	if w.measuring {
		r.sent.Add(1)
	}
	o := r.op(r.ctx, w)
	if w.measuring && (o.Err == nil || r.parent.Err() == nil) { // not the requests an interrupt cut short
		r.rec.Record(o, time.Since(t)-o.Untimed)
	}
}

// closed runs the closed loop and returns when its workers stopped starting requests.
func (r *runner) closed(ctx context.Context, res *Result) time.Time {
	res.Workers = max(r.cfg.Workers, 1)
	var wg sync.WaitGroup
	for id := range res.Workers {
		wg.Go(func() {
			w := r.newWorker(id)
			for ctx.Err() == nil {
				now := time.Now()
				if !now.Before(r.end) {
					return
				}
				r.do(w, now)
			}
		})
	}
	wg.Wait()
	// After ctx ends, in-flight requests are cancelled with it, so this is about when it ended.
	return time.Now()
}

// open runs the open loop: the pacer hands each due time to an idle goroutine, starts another
// when none is idle (up to MaxInFlight), else waits for one; it returns when the window ended
// and every request was answered or cancelled.
func (r *runner) open(ctx context.Context, res *Result) time.Time {
	start := r.cfg.Start
	interval := float64(time.Second) / r.cfg.Rate
	due := func(i int64) time.Time { return start.Add(time.Duration(float64(i) * interval)) }

	jobs := make(chan time.Time)
	var wg sync.WaitGroup
	spawn := func(id int, first time.Time) {
		wg.Go(func() {
			w := r.newWorker(id)
			r.do(w, first)
			for t := range jobs {
				r.do(w, t)
			}
		})
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	endTimer := time.NewTimer(time.Until(r.end))
	defer endTimer.Stop()

	stopped := r.end
	saturated := false // the window ended with every goroutine busy: count the rest as missed
	var i int64
pace:
	for ; ; i++ {
		t := due(i)
		if !t.Before(r.end) {
			break
		}
		if !t.Before(r.measure) {
			res.Intended++
		}
		if saturated {
			continue
		}
		if d := time.Until(t); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				if !t.Before(r.measure) {
					res.Intended--
				}
				stopped = time.Now()
				break pace
			}
		}
		select {
		case jobs <- t:
			continue
		default:
		}
		if res.Workers < r.cfg.MaxInFlight {
			spawn(res.Workers, t)
			res.Workers++
			continue
		}
		select {
		case jobs <- t:
		case <-endTimer.C:
			saturated = true
		case <-ctx.Done():
			stopped = time.Now()
			break pace
		}
	}
	close(jobs)
	wg.Wait()
	return stopped
}
