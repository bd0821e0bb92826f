// Package memstats watches the process's own memory: one sampler reading runtime/metrics and the
// resident set size, a bounded history, live subscribers, a periodic log line, a watchdog that
// asks for a restart when memory stays too high, and the runtime's soft memory limit.
package memstats

import (
	"bytes"
	"errors"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"
)

// ExitRestart is the exit status with which the server asks its supervisor for a restart: 75,
// EX_TEMPFAIL in sysexits.h ("temporary failure; the user is invited to retry"). The -supervise
// parent restarts on it at once; under systemd, pair it with RestartForceExitStatus=75; under
// Kubernetes any non-zero exit restarts the container.
const ExitRestart = 75

// Sample is one reading of the process's memory. Byte counts come from runtime/metrics, read
// without stopping the world, except RSSBytes, which the kernel reports.
type Sample struct {
	At              time.Time
	RSSBytes        int64 // resident set size: /proc/self/statm, else the runtime's mapped and unreleased memory
	HeapAllocBytes  int64 // bytes of heap objects, live or not yet swept (MemStats.HeapAlloc)
	HeapInuseBytes  int64 // bytes in in-use heap spans (MemStats.HeapInuse)
	HeapSysBytes    int64 // heap memory obtained from the OS, released or not (MemStats.HeapSys)
	StackInuseBytes int64 // goroutine stack memory (MemStats.StackInuse)
	TotalBytes      int64 // all memory mapped by the Go runtime (/memory/classes/total:bytes)
	Goroutines      int   // runtime.NumGoroutine()
	GCCycles        int   // completed GC cycles since start
	// LastGCPauseNs approximates the latest GC stop-the-world pause. The runtime publishes pauses
	// only as a cumulative histogram, so this is the upper bound of the highest bucket that gained
	// a pause since the previous sample (buckets are 14–25% wide, so it overstates by at most a
	// quarter), and the previous value when no collection paused in between; with several
	// collections between two samples, the longest of their pauses. The first sample reports the
	// longest pause since start.
	LastGCPauseNs    int64
	MemoryLimitBytes int64   // the memory limit in force (see ApplyMemoryLimit); 0 = none
	UsagePercent     float64 // 100 × RSSBytes / MemoryLimitBytes; valid only when MemoryLimitBytes > 0
}

// The metrics a Sample is made of, in the order of reader.samples.
const (
	mHeapObjects = iota
	mHeapUnused
	mHeapFree
	mHeapReleased
	mHeapStacks
	mTotal
	mGCCycles
	mPauses
	nMetrics
)

var metricNames = [nMetrics]string{
	mHeapObjects:  "/memory/classes/heap/objects:bytes",
	mHeapUnused:   "/memory/classes/heap/unused:bytes",
	mHeapFree:     "/memory/classes/heap/free:bytes",
	mHeapReleased: "/memory/classes/heap/released:bytes",
	mHeapStacks:   "/memory/classes/heap/stacks:bytes",
	mTotal:        "/memory/classes/total:bytes",
	mGCCycles:     "/gc/cycles/total:gc-cycles",
	// The same histogram as the deprecated /gc/pauses:seconds, under its current name.
	mPauses: "/sched/pauses/total/gc:seconds",
}

// reader takes samples. It is not safe for concurrent use: the pause histogram is diffed against
// the previous read.
type reader struct {
	samples   []metrics.Sample
	prevPause []uint64
	lastPause int64
	rss       func() (int64, error) // nil: the runtime's own estimate
}

func newReader(rss func() (int64, error)) *reader {
	r := &reader{samples: make([]metrics.Sample, nMetrics), rss: rss}
	for i, name := range metricNames {
		r.samples[i].Name = name
	}
	return r
}

// read fills s from runtime/metrics and the RSS source; it does not allocate once warm.
func (r *reader) read(s *Sample) {
	metrics.Read(r.samples)
	u := func(i int) int64 {
		if r.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0 // unknown to this runtime
		}
		return int64(r.samples[i].Value.Uint64())
	}
	objects, unused := u(mHeapObjects), u(mHeapUnused)
	s.HeapAllocBytes = objects
	s.HeapInuseBytes = objects + unused
	s.HeapSysBytes = objects + unused + u(mHeapFree) + u(mHeapReleased)
	s.StackInuseBytes = u(mHeapStacks)
	s.TotalBytes = u(mTotal)
	// Not /sched/goroutines:goroutines, which counts the runtime's own goroutines too; this is
	// the count everyone else shows (pprof, expvar), and it stops nothing either.
	s.Goroutines = runtime.NumGoroutine()
	s.GCCycles = int(u(mGCCycles))
	if r.samples[mPauses].Value.Kind() == metrics.KindFloat64Histogram {
		r.notePauses(r.samples[mPauses].Value.Float64Histogram())
	}
	s.LastGCPauseNs = r.lastPause

	s.RSSBytes = 0
	if r.rss != nil {
		if v, err := r.rss(); err == nil {
			s.RSSBytes = v
		}
	}
	if s.RSSBytes == 0 {
		// Mapped by the runtime and not returned to the OS: close to RSS for a pure-Go process.
		s.RSSBytes = s.TotalBytes - u(mHeapReleased)
	}
}

// notePauses records the highest histogram bucket that gained a count since the previous read.
func (r *reader) notePauses(h *metrics.Float64Histogram) {
	if len(r.prevPause) != len(h.Counts) {
		r.prevPause = make([]uint64, len(h.Counts))
	}
	for i := len(h.Counts) - 1; i >= 0; i-- {
		if h.Counts[i] > r.prevPause[i] {
			bound := h.Buckets[i+1] // Counts[i] covers [Buckets[i], Buckets[i+1])
			if math.IsInf(bound, 1) {
				bound = h.Buckets[i]
			}
			r.lastPause = int64(bound * 1e9)
			break
		}
	}
	copy(r.prevPause, h.Counts)
}

// ErrNoRSS is returned by RSS readers where the kernel offers no /proc/self/statm.
var ErrNoRSS = errors.New("memstats: resident set size unavailable")

// ReadRSS returns the process's resident set size from /proc/self/statm. Elsewhere than Linux it
// returns ErrNoRSS (wrapped with the cause), and a Sampler falls back to the runtime's estimate.
func ReadRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, errors.Join(ErrNoRSS, err)
	}
	return parseStatm(b)
}

// statm reads /proc/self/statm through one descriptor kept open, re-reading from offset 0, which
// makes the kernel render the file afresh. Safe for concurrent use.
type statm struct {
	mu     sync.Mutex
	f      *os.File
	err    error
	opened bool
	buf    [128]byte
}

func (s *statm) read() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.opened {
		s.opened = true
		s.f, s.err = os.Open("/proc/self/statm")
		if s.err != nil {
			s.err = errors.Join(ErrNoRSS, s.err)
		}
	}
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.f.ReadAt(s.buf[:], 0)
	if n == 0 && err != nil {
		return 0, errors.Join(ErrNoRSS, err)
	}
	return parseStatm(s.buf[:n])
}

// close releases the descriptor; a later read reopens it.
func (s *statm) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		s.f.Close()
	}
	s.f, s.err, s.opened = nil, nil, false
}

var pageSize = int64(os.Getpagesize())

// parseStatm takes the second field of /proc/<pid>/statm, resident pages, and returns bytes.
func parseStatm(b []byte) (int64, error) {
	_, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return 0, ErrNoRSS
	}
	field, _, _ := bytes.Cut(rest, []byte{' '})
	pages, err := strconv.ParseInt(string(bytes.TrimSpace(field)), 10, 64) // the conversion does not escape
	if err != nil || pages < 0 {
		return 0, errors.Join(ErrNoRSS, err)
	}
	return pages * pageSize, nil
}
