package load

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Outcome is what one request came to. It failed when Err is set (the request got no HTTP
// answer), Status is not 200, or the GraphQL answer carried errors (Codes, one per error).
type Outcome struct {
	Op     string   // which operation, for the per-operation table
	Status int      // HTTP status; 0 when Err is set
	Codes  []string // extensions.code of every GraphQL error in the answer
	Err    error    // transport error: refused, reset, timeout, ...
	// Untimed is time the operation spent on harness steps (the cold scenario's purge), taken
	// out of its latency.
	Untimed time.Duration
}

// Failed reports whether o counts as an error.
func (o Outcome) Failed() bool { return o.Err != nil || o.Status != http.StatusOK || len(o.Codes) > 0 }

// maxClasses bounds the distinct error classes kept per kind, so a server that puts something
// unique in every error cannot grow the recorder; the rest count under "other".
const maxClasses = 64

// Recorder collects outcomes and latencies from many goroutines: one histogram in all and one
// per operation, and errors counted by GraphQL code, HTTP status and transport error. Auxiliary
// operations (harness steps such as a cache purge) get their own row but stay out of the totals.
// Its memory is bounded: histograms are fixed-size and error classes capped.
type Recorder struct {
	mu        sync.Mutex
	all       *Hist
	ops       map[string]*opStats
	codes     map[string]uint64
	statuses  map[string]uint64
	transport map[string]uint64

	count, failed atomic.Uint64 // of the totals, read by progress lines without the lock
}

type opStats struct {
	hist   *Hist
	errors uint64
	aux    bool
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{
		all:       NewHist(),
		ops:       map[string]*opStats{},
		codes:     map[string]uint64{},
		statuses:  map[string]uint64{},
		transport: map[string]uint64{},
	}
}

// Record adds one outcome that took latency.
func (r *Recorder) Record(o Outcome, latency time.Duration) { r.record(o, latency, false) }

// RecordAux adds one outcome of a harness step: in the per-operation table, not in the totals.
func (r *Recorder) RecordAux(o Outcome, latency time.Duration) { r.record(o, latency, true) }

func (r *Recorder) record(o Outcome, latency time.Duration, aux bool) {
	failed := o.Failed()
	if !aux {
		r.count.Add(1)
		if failed {
			r.failed.Add(1)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	op := r.ops[o.Op]
	if op == nil {
		if len(r.ops) >= maxClasses {
			o.Op = "other"
			op = r.ops[o.Op]
		}
		if op == nil {
			op = &opStats{hist: NewHist(), aux: aux}
			r.ops[o.Op] = op
		}
	}
	op.hist.Record(latency)
	if !aux {
		r.all.Record(latency)
	}
	if !failed {
		return
	}
	op.errors++
	if aux {
		return // an aux failure shows in its row; the error tables describe the measured requests
	}
	switch {
	case o.Err != nil:
		bump(r.transport, ClassifyError(o.Err))
	case o.Status != http.StatusOK:
		bump(r.statuses, strconv.Itoa(o.Status))
	}
	seen := map[string]bool{}
	for _, c := range o.Codes {
		if !seen[c] {
			seen[c] = true
			bump(r.codes, c)
		}
	}
}

func bump(m map[string]uint64, k string) {
	if _, ok := m[k]; !ok && len(m) >= maxClasses {
		k = "other"
	}
	m[k]++
}

// Progress returns the totals so far, cheaply, for progress lines.
func (r *Recorder) Progress() (requests, failed uint64) { return r.count.Load(), r.failed.Load() }

// Summary is a snapshot of a Recorder.
type Summary struct {
	All       *Hist
	Failed    uint64
	Ops       []OpSummary // by name
	Codes     map[string]uint64
	Statuses  map[string]uint64
	Transport map[string]uint64
}

// OpSummary is one operation's row.
type OpSummary struct {
	Name   string
	Aux    bool
	Hist   *Hist
	Errors uint64
}

// Summary returns a copy of everything recorded so far.
func (r *Recorder) Summary() Summary {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Summary{
		All:       NewHist(),
		Failed:    r.failed.Load(),
		Codes:     clone(r.codes),
		Statuses:  clone(r.statuses),
		Transport: clone(r.transport),
	}
	s.All.Merge(r.all)
	for name, op := range r.ops {
		h := NewHist()
		h.Merge(op.hist)
		s.Ops = append(s.Ops, OpSummary{Name: name, Aux: op.aux, Hist: h, Errors: op.errors})
	}
	sort.Slice(s.Ops, func(i, j int) bool { return s.Ops[i].Name < s.Ops[j].Name })
	return s
}

func clone(m map[string]uint64) map[string]uint64 {
	c := make(map[string]uint64, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// ClassifyError names a transport error by kind, not by its text, which carries addresses and
// ports that would make every error a class of its own.
func ClassifyError(err error) string {
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free local port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "connection closed early (EOF)"
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Op + " error"
	}
	var ce interface{ Class() string }
	if errors.As(err, &ce) {
		return ce.Class()
	}
	return "other"
}
