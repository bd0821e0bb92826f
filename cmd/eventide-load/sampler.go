package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eventide/server/cmd/eventide-load/internal/gql"
)

// sample is one reading of the server's memory and goroutines.
type sample struct {
	T              float64   `json:"t_seconds"` // since the measured window began; negative before
	At             time.Time `json:"at"`
	RSSBytes       int64     `json:"rss_bytes"`
	HeapInuseBytes int64     `json:"heap_inuse_bytes,omitempty"` // memoryStats only
	Goroutines     int       `json:"goroutines"`
}

// Where the samples come from.
const (
	sourceMemoryStats = "memoryStats"
	sourceMetrics     = "metrics"
	sourceNone        = "unavailable"
)

// sampler reads the server's RSS and goroutines: from the admin memoryStats query (API.md), or,
// when that cannot be had (no admin token, or a server without the field yet), from /metrics
// (process_resident_memory_bytes, go_goroutines), saying so in note.
type sampler struct {
	c          *gql.Client
	token      string
	metricsURL string
	source     string
	note       string
}

const qMemoryStats = `query Memory { memoryStats { rssBytes heapInuseBytes goroutines } }`

// newSampler picks the source by trying them in order.
func newSampler(ctx context.Context, c *gql.Client, f *fixture, endpoint *url.URL) *sampler {
	m := *endpoint
	m.Path, m.RawQuery, m.Fragment = "/metrics", "", ""
	s := &sampler{c: c, token: f.adminToken, metricsURL: m.String()}
	var why string
	if f.adminToken == "" {
		why = fmt.Sprintf("memoryStats needs the admin, who could not sign in (%v)", f.adminErr)
	} else {
		s.source = sourceMemoryStats
		if _, err := s.take(ctx); err == nil {
			return s
		} else {
			why = "memoryStats is not available: " + err.Error()
		}
	}
	s.source = sourceMetrics
	if _, err := s.take(ctx); err != nil {
		s.source = sourceNone
		s.note = why + "; /metrics neither: " + err.Error()
		return s
	}
	s.note = why + "; read /metrics (process_resident_memory_bytes, go_goroutines) instead"
	return s
}

// take reads one sample now.
func (s *sampler) take(ctx context.Context) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	smp := sample{At: time.Now()}
	switch s.source {
	case sourceMemoryStats:
		var out struct {
			MemoryStats struct {
				RSSBytes       int64 `json:"rssBytes"`
				HeapInuseBytes int64 `json:"heapInuseBytes"`
				Goroutines     int   `json:"goroutines"`
			} `json:"memoryStats"`
		}
		if err := s.c.Do(ctx, s.token, "memoryStats", qMemoryStats, nil, &out); err != nil {
			return smp, err
		}
		smp.RSSBytes, smp.HeapInuseBytes, smp.Goroutines = out.MemoryStats.RSSBytes, out.MemoryStats.HeapInuseBytes, out.MemoryStats.Goroutines
		return smp, nil
	case sourceMetrics:
		return smp, s.scrape(ctx, &smp)
	}
	return smp, errors.New("no source of server samples")
}

func (s *sampler) scrape(ctx context.Context, smp *sample) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.metricsURL, nil)
	if err != nil {
		return err
	}
	resp, err := s.c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	rss, gor, err := parseMetrics(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	smp.RSSBytes, smp.Goroutines = rss, gor
	return nil
}

// parseMetrics finds process_resident_memory_bytes and go_goroutines in Prometheus text.
func parseMetrics(r io.Reader) (rss int64, goroutines int, err error) {
	var haveRSS, haveG bool
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), " ")
		if !ok || (name != "process_resident_memory_bytes" && name != "go_goroutines") {
			continue
		}
		value, _, _ := strings.Cut(strings.TrimSpace(rest), " ") // a timestamp may follow
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/metrics: %s %q: %w", name, value, err)
		}
		if name == "go_goroutines" {
			goroutines, haveG = int(v), true
		} else {
			rss, haveRSS = int64(v), true
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !haveRSS || !haveG {
		return 0, 0, errors.New("/metrics has no process_resident_memory_bytes or go_goroutines")
	}
	return rss, goroutines, nil
}
