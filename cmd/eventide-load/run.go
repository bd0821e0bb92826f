package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"time"

	"github.com/eventide/server/cmd/eventide-load/internal/gql"
	"github.com/eventide/server/cmd/eventide-load/internal/load"
)

// errSoakFailed is returned, after the report, when the soak's RSS slope is over -max-slope or
// could not be measured.
var errSoakFailed = errors.New("soak failed")

// run parses args, sets up, drives the load, and writes the report to stdout; progress goes to
// stderr. It returns when the run is over (warm-up + duration + drain, plus setup and the
// baseline when asked) or ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	if o.seedScale != nil {
		log := stderr
		if o.quiet {
			log = io.Discard
		}
		_, err := seedScale(ctx, *o.seedScale, o.dataDir, stdout, log)
		return err
	}
	logf := func(format string, args ...any) {
		if !o.quiet {
			fmt.Fprintf(stderr, "eventide-load: "+format+"\n", args...)
		}
	}
	conns := o.workers
	if o.rate > 0 {
		conns = o.maxInFlight
	}
	client := gql.NewClient(o.url.String(), conns, o.timeout)
	defer client.Close()

	st := &setup{o: o, c: client, log: stderr}
	sctx, cancel := context.WithTimeout(ctx, o.setupTimeout)
	f, err := st.run(sctx, needsOf(o))
	cancel()
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}

	rep := &report{
		Tool: "eventide-load", Target: o.url.String(), Scenario: o.scenario, Loop: "closed", Workers: o.workers,
		WarmupS: o.warmup.Seconds(), DurationS: o.duration.Seconds(), Setup: st.report,
	}
	if o.rate > 0 {
		rep.Loop, rep.Rate = "open", o.rate
	}
	if len(o.mix) > 0 {
		rep.Mix = map[string]int{}
		for _, m := range o.mix {
			rep.Mix[m.scenario] = m.weight
		}
	}

	smp := newSampler(ctx, client, f, o.url)
	rep.Server.Source, rep.Server.Note = smp.source, smp.note
	if smp.note != "" {
		logf("server samples: %s", smp.note)
	}
	if s, err := smp.take(ctx); err == nil {
		rep.Server.Before = &s
	}

	var subs *gql.Subscribers
	if o.subscribers > 0 {
		logf("opening %d subscribers (%s)", o.subscribers, o.subKind)
		subs = gql.StartSubscribers(ctx, gql.SubConfig{
			URL: o.url.String(), Token: f.adminToken, Conns: o.subscribers,
			Subscriptions: subscriptions(o.subKind, o.subInterval),
		})
		logf("%d of %d subscribers connected", subs.Connected(), o.subscribers)
	}

	sc := newScenarios(client, f, o)
	cfg := load.Config{
		Workers: o.workers, Rate: o.rate, MaxInFlight: o.maxInFlight, Start: time.Now(),
		Warmup: o.warmup, Duration: o.duration, Drain: o.drain, Seed: o.randSeed,
	}
	rep.StartedAt = cfg.Start
	logf("%s: %s loop, warm-up %v, measuring %v", o.scenario, rep.Loop, o.warmup, o.duration)
	rec := load.NewRecorder()
	op := sc.op(o.scenario)
	mon := startMonitor(ctx, smp, rec, op != nil, subs, cfg, o.sampleEvery, logf)
	var res load.Result
	if op != nil {
		res = load.Run(ctx, cfg, op, rec)
	} else {
		res = holdWindow(ctx, cfg)
	}
	during, sampleErrors := mon.stop()
	if subs != nil {
		s := subs.Stop()
		rep.Subscribers = &s
	}
	select { // let the server see the connections go before the last sample
	case <-time.After(o.settle):
	case <-ctx.Done():
	}
	if s, err := smp.take(context.WithoutCancel(ctx)); err == nil {
		rep.Server.After = &s
	}
	window := cfg.Start.Add(cfg.Warmup)
	for _, s := range []*sample{rep.Server.Before, rep.Server.After} {
		if s != nil {
			s.T = s.At.Sub(window).Seconds()
		}
	}
	rep.Server.During, rep.Server.SampleErrors = during, sampleErrors
	summarizeDuring(&rep.Server)
	rep.Workers = res.Workers // closed loop: -workers; open loop: the most requests in flight
	if op != nil {
		rep.Run = newRunStats(res, rec.Summary(), o.rate > 0)
	}

	if o.soak {
		rep.Soak = judgeSoak(o, res, &rep.Server)
	}
	if o.baseline && ctx.Err() == nil {
		name, body := sc.baselineRequest(o.scenario)
		b, err := runBaseline(ctx, o, client, body, cfg, logf)
		if b != nil {
			b.Request = name
		}
		if err != nil {
			rep.Notes = append(rep.Notes, "baseline not run: "+err.Error())
		} else {
			rep.Baseline = b
			if b.Run.RPS > 0 {
				b.RatioRPS = rep.Run.RPS / b.Run.RPS
			}
			if b.Run.Latency.P50 > 0 {
				b.RatioP50 = rep.Run.Latency.P50 / b.Run.Latency.P50
			}
		}
	}
	rep.Notes = append(rep.Notes, notes(o, rep)...)
	if ctx.Err() != nil {
		rep.Notes = append(rep.Notes, "interrupted: the window ran only part of -duration")
	}

	if o.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.writeText(stdout)
	}
	if rep.Soak != nil && !rep.Soak.Pass {
		return fmt.Errorf("%w: %s", errSoakFailed, rep.Soak.Reason)
	}
	return nil
}

// holdWindow waits out warm-up and window for the subscribers scenario, which sends no requests.
func holdWindow(ctx context.Context, cfg load.Config) load.Result {
	start := cfg.Start.Add(cfg.Warmup)
	end := start.Add(cfg.Duration)
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return load.Result{Start: start, Elapsed: min(max(time.Since(start), 0), cfg.Duration)}
}

// monitor samples the server every interval through the window and prints progress lines.
type monitor struct {
	cancel  context.CancelFunc
	done    chan struct{}
	samples []sample
	errors  int
}

func startMonitor(ctx context.Context, smp *sampler, rec *load.Recorder, requests bool, subs *gql.Subscribers,
	cfg load.Config, every time.Duration, logf func(string, ...any)) *monitor {
	ctx, cancel := context.WithCancel(ctx)
	m := &monitor{cancel: cancel, done: make(chan struct{})}
	window := cfg.Start.Add(cfg.Warmup)
	end := window.Add(cfg.Duration)
	go func() {
		defer close(m.done)
		t := time.NewTimer(time.Hour)
		defer t.Stop()
		var lastN uint64 // the warm-up is not recorded: the first interval counts from 0
		last := window
		for k := 1; ; k++ {
			at := window.Add(time.Duration(k) * every)
			if at.After(end.Add(time.Millisecond)) {
				return
			}
			t.Reset(time.Until(at))
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
			n, failed := rec.Progress()
			line := fmt.Sprintf("[%6.0fs]", at.Sub(window).Seconds())
			if requests {
				line += fmt.Sprintf(" %d requests, %.1f/s now, %d errors |", n, float64(n-lastN)/time.Since(last).Seconds(), failed)
			}
			lastN, last = n, time.Now()
			if subs != nil {
				open, msgs := subs.Progress()
				line += fmt.Sprintf(" %d subscribers open, %d messages |", open, msgs)
			}
			if smp.source != sourceNone {
				s, err := smp.take(context.WithoutCancel(ctx)) // a sample under way when the run ends still counts
				if err != nil {
					m.errors++
					line += " server sample failed: " + err.Error()
				} else {
					s.T = s.At.Sub(window).Seconds()
					m.samples = append(m.samples, s)
					line += fmt.Sprintf(" server RSS %s, %d goroutines", mib(s.RSSBytes), s.Goroutines)
				}
			}
			logf("%s", line)
		}
	}()
	return m
}

func (m *monitor) stop() ([]sample, int) {
	m.cancel()
	<-m.done
	return m.samples, m.errors
}

func summarizeDuring(s *serverReport) {
	for i, smp := range s.During {
		if i == 0 || smp.RSSBytes < s.RSSMinBytes {
			s.RSSMinBytes = smp.RSSBytes
		}
		if i == 0 || smp.Goroutines < s.GoroutinesMin {
			s.GoroutinesMin = smp.Goroutines
		}
		s.RSSMaxBytes = max(s.RSSMaxBytes, smp.RSSBytes)
		s.GoroutinesMax = max(s.GoroutinesMax, smp.Goroutines)
	}
	if s.During == nil {
		s.During = []sample{}
	}
}

// judgeSoak fits the RSS of the samples in the last 80% of the window by least squares.
func judgeSoak(o *options, res load.Result, s *serverReport) *soakReport {
	r := &soakReport{FromS: 0.2 * o.duration.Seconds(), ToS: res.Elapsed.Seconds(), MaxSlope: o.maxSlope}
	var xs, ys []float64
	for _, smp := range s.During {
		// Samples are taken at whole intervals from the window's start, a little late if anything.
		if smp.T >= r.FromS-0.001 && smp.T <= r.ToS+o.sampleEvery.Seconds()/2 {
			xs = append(xs, smp.T/60)
			ys = append(ys, float64(smp.RSSBytes)/(1<<20))
		}
	}
	r.Samples = len(xs)
	switch slope, err := load.Slope(xs, ys); {
	case s.Source == sourceNone:
		r.Reason = "no source of server memory samples: " + s.Note
	case res.Elapsed < o.duration-o.sampleEvery:
		r.SlopeMiBPerMin = slope
		r.Reason = "the run ended early"
	case err != nil || len(xs) < 3:
		r.Reason = fmt.Sprintf("%d samples in the window: too few for a slope (lengthen -duration or shorten -sample-interval)", len(xs))
	default:
		r.SlopeMiBPerMin = slope
		r.Pass = math.Abs(slope) <= o.maxSlope
		if !r.Pass {
			r.Reason = fmt.Sprintf("|%.3f| MiB/min is over %g", slope, o.maxSlope)
		}
	}
	return r
}

// runBaseline fetches one real events page, serves its bytes from a plain handler on a loopback
// port in this process, and runs the same load at it.
func runBaseline(ctx context.Context, o *options, c *gql.Client, page []byte, cfg load.Config, logf func(string, ...any)) (*baselineReport, error) {
	status, body, err := c.Raw(ctx, "", page)
	if err != nil {
		return nil, err
	}
	if codes := gql.Codes(status, body); status != http.StatusOK || len(codes) > 0 {
		return nil, fmt.Errorf("the baseline's request answered HTTP %d %v: nothing clean to serve", status, codes)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	length := fmt.Sprint(len(body))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", length)
			_, _ = w.Write(body)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(l) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	url := "http://" + l.Addr().String() + "/graphql"
	bc := gql.NewClient(url, max(o.workers, o.maxInFlight), o.timeout)
	defer bc.Close()
	logf("baseline: the same load at a plain net/http handler serving the %d-byte answer at %s", len(body), url)
	cfg.Start = time.Now()
	rec := load.NewRecorder()
	res := load.Run(ctx, cfg, func(ctx context.Context, _ *load.Worker) load.Outcome {
		status, codes, err := bc.Send(ctx, "", page)
		return load.Outcome{Op: "baseline", Status: status, Codes: codes, Err: err}
	}, rec)
	return &baselineReport{URL: url, BodyBytes: len(body), Run: newRunStats(res, rec.Summary(), o.rate > 0)}, nil
}

// notes explain what a reader might misread in the figures.
func notes(o *options, r *report) []string {
	var n []string
	if rs := r.Run; rs != nil {
		if throttled := rs.ErrorsByStatus["429"] + rs.ErrorsByCode["RATE_LIMITED"]; throttled > 0 {
			n = append(n, "the server throttled this tool (HTTP 429 / RATE_LIMITED): all its anonymous requests come from one "+
				"address; start the server with higher THROTTLE_LIMIT and LOGIN_THROTTLE_LIMIT to measure capacity rather than the throttle")
		}
		if rs.ErrorsByCode["GRAPHQL_VALIDATION_FAILED"] > 0 {
			n = append(n, "GRAPHQL_VALIDATION_FAILED: the server's schema lacks a field this scenario uses (see API.md)")
		}
		if rs.Open != nil && rs.Open.Missed > 0 {
			n = append(n, fmt.Sprintf("%d requests due were never sent: %d were outstanding (-max-inflight) until the window ended; "+
				"the server did not keep up with %g req/s", rs.Open.Missed, o.maxInFlight, o.rate))
		}
		for _, op := range rs.Operations {
			if op.Aux && op.Errors > 0 {
				n = append(n, fmt.Sprintf("%s failed %d times (admin harness step)", op.Name, op.Errors))
			}
		}
	}
	if s := r.Subscribers; s != nil && s.Connected < int64(s.Requested) {
		n = append(n, fmt.Sprintf("%d of %d subscribers did not connect: the server caps websockets per client (WS_MAX_CONNECTIONS_PER_CLIENT) "+
			"and all of them are the admin from one address", int64(s.Requested)-s.Connected, s.Requested))
	}
	if s := r.Subscribers; s != nil && len(s.Refused) > 0 {
		n = append(n, "the server refused subscriptions (see refused above; GRAPHQL_VALIDATION_FAILED means its schema lacks the "+
			"memoryStats/securityEvents subscriptions of API.md), so those connections were closed and held nothing")
	}
	if r.Baseline != nil {
		n = append(n, "the baseline handler runs inside this tool and shares its CPU, as the server shares the machine")
	}
	return n
}
