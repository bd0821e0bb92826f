package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eventide/server/cmd/eventide-load/internal/gql"
	"github.com/eventide/server/cmd/eventide-load/internal/load"
)

// report is everything a run found; -json prints it as is.
type report struct {
	Tool        string          `json:"tool"`
	Target      string          `json:"target"`
	Scenario    string          `json:"scenario"`
	Mix         map[string]int  `json:"mix,omitempty"`
	Loop        string          `json:"loop"` // closed or open
	Workers     int             `json:"workers"`
	Rate        float64         `json:"rate,omitempty"`
	WarmupS     float64         `json:"warmup_seconds"`
	DurationS   float64         `json:"duration_seconds"`
	StartedAt   time.Time       `json:"started_at"`
	Run         *runStats       `json:"run,omitempty"` // nil for the subscribers scenario
	Server      serverReport    `json:"server"`
	Subscribers *gql.SubStats   `json:"subscribers,omitempty"`
	Setup       seedReport      `json:"setup"`
	Soak        *soakReport     `json:"soak,omitempty"`
	Baseline    *baselineReport `json:"baseline,omitempty"`
	Notes       []string        `json:"notes,omitempty"`
}

// runStats is one load run's requests.
type runStats struct {
	ElapsedS        float64           `json:"elapsed_seconds"`
	Requests        uint64            `json:"requests"`
	OK              uint64            `json:"ok"`
	Errors          uint64            `json:"errors"`
	ErrorRate       float64           `json:"error_rate"`
	RPS             float64           `json:"requests_per_second"`
	Latency         latency           `json:"latency_ms"`
	Open            *openLoop         `json:"open_loop,omitempty"`
	Operations      []opReport        `json:"operations"`
	ErrorsByCode    map[string]uint64 `json:"errors_by_code"`
	ErrorsByStatus  map[string]uint64 `json:"errors_by_http_status"`
	TransportErrors map[string]uint64 `json:"transport_errors"`
}

type openLoop struct {
	Intended     uint64 `json:"intended"`
	Sent         uint64 `json:"sent"`
	Missed       uint64 `json:"missed"` // never sent: -max-inflight requests were outstanding
	PeakInFlight int    `json:"peak_in_flight"`
}

// latency is in milliseconds.
type latency struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

type opReport struct {
	Name     string  `json:"name"`
	Aux      bool    `json:"harness_step,omitempty"` // not in the totals (the cold scenario's purge)
	Requests uint64  `json:"requests"`
	Errors   uint64  `json:"errors"`
	RPS      float64 `json:"requests_per_second"`
	Latency  latency `json:"latency_ms"`
}

type serverReport struct {
	Source        string   `json:"source"` // memoryStats, metrics or unavailable
	Note          string   `json:"note,omitempty"`
	Before        *sample  `json:"before,omitempty"`
	During        []sample `json:"during"`
	After         *sample  `json:"after,omitempty"`
	SampleErrors  int      `json:"sample_errors,omitempty"`
	RSSMinBytes   int64    `json:"rss_min_bytes_during,omitempty"`
	RSSMaxBytes   int64    `json:"rss_max_bytes_during,omitempty"`
	GoroutinesMin int      `json:"goroutines_min_during,omitempty"`
	GoroutinesMax int      `json:"goroutines_max_during,omitempty"`
}

type soakReport struct {
	FromS          float64 `json:"window_from_seconds"`
	ToS            float64 `json:"window_to_seconds"`
	Samples        int     `json:"samples"`
	SlopeMiBPerMin float64 `json:"rss_slope_mib_per_min"`
	MaxSlope       float64 `json:"max_slope_mib_per_min"`
	Pass           bool    `json:"pass"`
	Reason         string  `json:"reason,omitempty"`
}

type baselineReport struct {
	URL string `json:"url"`
	// Request names the request whose answer the handler serves (events-page or event-detail).
	Request   string    `json:"request"`
	BodyBytes int       `json:"body_bytes"`
	Run       *runStats `json:"run"`
	// Server over baseline: requests/s (how much of the ceiling the server reaches) and p50.
	RatioRPS float64 `json:"ratio_rps_server_over_baseline"`
	RatioP50 float64 `json:"ratio_p50_server_over_baseline"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func latencyOf(h *load.Hist) latency {
	return latency{
		Min: ms(h.Min()), Mean: ms(h.Mean()), P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)),
		P95: ms(h.Quantile(0.95)), P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)), Max: ms(h.Max()),
	}
}

func newRunStats(res load.Result, s load.Summary, open bool) *runStats {
	elapsed := res.Elapsed.Seconds()
	rs := &runStats{
		ElapsedS: elapsed, Requests: s.All.Count(), Errors: s.Failed, Latency: latencyOf(s.All),
		ErrorsByCode: s.Codes, ErrorsByStatus: s.Statuses, TransportErrors: s.Transport,
	}
	rs.OK = rs.Requests - rs.Errors
	if rs.Requests > 0 {
		rs.ErrorRate = float64(rs.Errors) / float64(rs.Requests)
	}
	if elapsed > 0 {
		rs.RPS = float64(rs.Requests) / elapsed
	}
	if open {
		rs.Open = &openLoop{Intended: res.Intended, Sent: res.Sent, Missed: res.Missed, PeakInFlight: res.Workers}
	}
	for _, op := range s.Ops {
		r := opReport{Name: op.Name, Aux: op.Aux, Requests: op.Hist.Count(), Errors: op.Errors, Latency: latencyOf(op.Hist)}
		if elapsed > 0 {
			r.RPS = float64(r.Requests) / elapsed
		}
		rs.Operations = append(rs.Operations, r)
	}
	return rs
}

// fmtMs prints milliseconds with a precision that suits them.
func fmtMs(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 10:
		return fmt.Sprintf("%.2fms", v)
	case v < 1000:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.2fs", v/1000)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// writeText prints the report for a person.
func (r *report) writeText(w io.Writer) {
	if r.Run == nil {
		fmt.Fprintf(w, "eventide-load  %s  (no HTTP requests)", r.Scenario)
	} else if r.Loop == "open" {
		fmt.Fprintf(w, "eventide-load  %s  open loop at %g req/s", r.Scenario, r.Rate)
	} else {
		fmt.Fprintf(w, "eventide-load  %s  closed loop, %d workers", r.Scenario, r.Workers)
	}
	fmt.Fprintf(w, ", %gs (+%gs warm-up)  against %s\n", r.DurationS, r.WarmupS, r.Target)
	if len(r.Mix) > 0 {
		var parts []string
		for _, k := range sortedKeys(r.Mix) {
			parts = append(parts, fmt.Sprintf("%s %d%%", k, r.Mix[k]))
		}
		fmt.Fprintf(w, "mix           %s\n", strings.Join(parts, ", "))
	}
	if r.Run != nil {
		writeRun(w, r.Run)
	}
	if s := r.Subscribers; s != nil {
		fmt.Fprintf(w, "subscribers   %d requested, %d connected, %d open at the end, held %.1fs\n",
			s.Requested, s.Connected, s.OpenAtEnd, s.HeldSeconds)
		fmt.Fprintf(w, "              %d messages (%.1f/s)", s.Messages, s.MessagesPerS)
		for _, k := range sortedKeys(s.ByName) {
			fmt.Fprintf(w, ", %s %d", k, s.ByName[k])
		}
		fmt.Fprintln(w)
		writeCounts(w, "connect errors", s.ConnectErrors)
		writeCounts(w, "refused", s.Refused)
		writeCounts(w, "dropped", s.Dropped)
		writeCounts(w, "completed", s.Completed)
		writeCounts(w, "payload errors", s.PayloadErrors)
	}
	writeServer(w, &r.Server)
	if s := r.Soak; s != nil {
		verdict := "PASS"
		if !s.Pass {
			verdict = "FAIL"
		}
		fmt.Fprintf(w, "soak          RSS slope %+.3f MiB/min over %.0fs–%.0fs (%d samples), limit ±%g: %s",
			s.SlopeMiBPerMin, s.FromS, s.ToS, s.Samples, s.MaxSlope, verdict)
		if s.Reason != "" {
			fmt.Fprintf(w, " (%s)", s.Reason)
		}
		fmt.Fprintln(w)
	}
	if b := r.Baseline; b != nil {
		fmt.Fprintf(w, "baseline      plain net/http serving the %s answer (%d bytes) at %s (inside this tool)\n", b.Request, b.BodyBytes, b.URL)
		fmt.Fprintf(w, "              %.1f req/s, p50 %s, p99 %s, %d errors\n", b.Run.RPS, fmtMs(b.Run.Latency.P50), fmtMs(b.Run.Latency.P99), b.Run.Errors)
		fmt.Fprintf(w, "              server/baseline: %.3f of the requests/s, %.2f× the p50\n", b.RatioRPS, b.RatioP50)
	}
	fmt.Fprintf(w, "setup         %s\n", r.Setup.summary())
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note          %s\n", n)
	}
}

func writeRun(w io.Writer, rs *runStats) {
	fmt.Fprintf(w, "requests      %d in %.1fs = %.1f req/s; %d ok, %d errors (%.2f%%)\n",
		rs.Requests, rs.ElapsedS, rs.RPS, rs.OK, rs.Errors, 100*rs.ErrorRate)
	if o := rs.Open; o != nil {
		fmt.Fprintf(w, "open loop     %d due, %d sent, %d missed, peak %d requests in flight\n",
			o.Intended, o.Sent, o.Missed, o.PeakInFlight)
	}
	l := rs.Latency
	fmt.Fprintf(w, "latency       p50 %s  p90 %s  p95 %s  p99 %s  p99.9 %s  max %s  (mean %s, min %s)\n",
		fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P95), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max), fmtMs(l.Mean), fmtMs(l.Min))
	if len(rs.Operations) > 1 || (len(rs.Operations) == 1 && rs.Operations[0].Aux) {
		fmt.Fprintf(w, "by operation  %-22s %9s %9s %8s %9s %9s %9s %9s\n", "", "requests", "req/s", "errors", "p50", "p95", "p99", "max")
		for _, op := range rs.Operations {
			name := op.Name
			if op.Aux {
				name += " (harness)"
			}
			fmt.Fprintf(w, "              %-22s %9d %9.1f %8d %9s %9s %9s %9s\n", name, op.Requests, op.RPS, op.Errors,
				fmtMs(op.Latency.P50), fmtMs(op.Latency.P95), fmtMs(op.Latency.P99), fmtMs(op.Latency.Max))
		}
	}
	if rs.Errors > 0 {
		writeCounts(w, "errors by GraphQL code", rs.ErrorsByCode)
		writeCounts(w, "errors by HTTP status", rs.ErrorsByStatus)
		writeCounts(w, "transport errors", rs.TransportErrors)
	}
}

func writeCounts[V int | uint64](w io.Writer, title string, m map[string]V) {
	if len(m) == 0 {
		return
	}
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	fmt.Fprintf(w, "  %-22s %s\n", title+":", strings.Join(parts, ", "))
}

func writeServer(w io.Writer, s *serverReport) {
	fmt.Fprintf(w, "server        memory and goroutines from %s\n", s.Source)
	if s.Note != "" {
		fmt.Fprintf(w, "              (%s)\n", s.Note)
	}
	line := func(label string, smp *sample) {
		if smp == nil {
			return
		}
		fmt.Fprintf(w, "  %-8s    RSS %s, %d goroutines", label, mib(smp.RSSBytes), smp.Goroutines)
		if smp.HeapInuseBytes > 0 {
			fmt.Fprintf(w, ", heap in use %s", mib(smp.HeapInuseBytes))
		}
		fmt.Fprintln(w)
	}
	line("before", s.Before)
	if len(s.During) > 0 {
		fmt.Fprintf(w, "  during      RSS %s – %s, goroutines %d – %d (%d samples)\n",
			mib(s.RSSMinBytes), mib(s.RSSMaxBytes), s.GoroutinesMin, s.GoroutinesMax, len(s.During))
		var parts []string
		for _, smp := range s.During {
			t := strconv.FormatFloat(math.Round(smp.T*10)/10, 'f', -1, 64)
			parts = append(parts, fmt.Sprintf("%ss %.1f/%d", t, float64(smp.RSSBytes)/(1<<20), smp.Goroutines))
		}
		const maxShown = 24 // a soak has 120; the JSON has them all
		if len(parts) > maxShown {
			parts = append(parts[:maxShown/2], append([]string{"…"}, parts[len(parts)-maxShown/2:]...)...)
		}
		fmt.Fprintf(w, "              (t MiB/goroutines) %s\n", strings.Join(parts, "  "))
	}
	line("after", s.After)
	if s.SampleErrors > 0 {
		fmt.Fprintf(w, "              %d samples failed\n", s.SampleErrors)
	}
}

func (s seedReport) summary() string {
	var b strings.Builder
	if s.Seeded {
		fmt.Fprintf(&b, "seeded: users %d new + %d existing, events %d new + %d drafts published + %d reused",
			s.UsersCreated, s.UsersExisting, s.EventsCreated, s.EventsPublished-s.EventsCreated, s.EventsReused)
		if s.OrganizerCreated || s.OrganizerPromoted || s.VenueCreated {
			fmt.Fprintf(&b, " (organizer created %t, promoted %t; venue created %t)", s.OrganizerCreated, s.OrganizerPromoted, s.VenueCreated)
		}
		b.WriteString("; ")
	}
	fmt.Fprintf(&b, "%d events listed (%d load-test), %d users signed in, took %s", s.EventsListed, s.LoadEventsListed, s.UsersSignedIn, s.Took)
	return b.String()
}
