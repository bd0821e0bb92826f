package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

func spans(names ...string) []*tracepb.ResourceSpans {
	var out []*tracepb.ResourceSpans
	for _, n := range names {
		out = append(out, &tracepb.ResourceSpans{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: n}}}}})
	}
	return out
}

// TestOTLPClientSendsARequestACollectorDecodes: the body is an ExportTraceServiceRequest as the
// collector's own generated type reads it, with the content type and configured headers.
func TestOTLPClientSendsARequestACollectorDecodes(t *testing.T) {
	var got coltracepb.ExportTraceServiceRequest
	var ctype, key string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctype, key = r.Header.Get("Content-Type"), r.Header.Get("X-Api-Key")
		b, _ := io.ReadAll(r.Body)
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Errorf("collector cannot decode: %v", err)
		}
	}))
	defer srv.Close()
	c := newOTLPClient(srv.URL+"/v1/traces", map[string]string{"X-Api-Key": "k"}, time.Second)
	if err := c.UploadTraces(context.Background(), spans("a", "b")); err != nil {
		t.Fatal(err)
	}
	if ctype != "application/x-protobuf" || key != "k" {
		t.Fatalf("Content-Type %q, X-Api-Key %q", ctype, key)
	}
	rs := got.GetResourceSpans()
	if len(rs) != 2 || rs[0].ScopeSpans[0].Spans[0].Name != "a" || rs[1].ScopeSpans[0].Spans[0].Name != "b" {
		t.Fatalf("collector received %v", rs)
	}
}

// TestOTLPClientRetries: 503 and 429 (with Retry-After: 1) are tried again until accepted; a 400
// is not, and its message is in the error.
func TestOTLPClientRetries(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	c := newOTLPClient(srv.URL, nil, time.Second)
	began := time.Now()
	if err := c.UploadTraces(context.Background(), spans("a")); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d requests, want 3", n)
	}
	if waited := time.Since(began); waited < time.Second {
		t.Fatalf("answered after %v: Retry-After: 1 was not honoured", waited)
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "bad spans", http.StatusBadRequest)
	}))
	defer bad.Close()
	calls.Store(0)
	err := newOTLPClient(bad.URL, nil, time.Second).UploadTraces(context.Background(), spans("a"))
	if err == nil || !strings.Contains(err.Error(), "bad spans") || calls.Load() != 1 {
		t.Fatalf("400: err %v after %d requests; want the collector's message after 1", err, calls.Load())
	}
}

// TestOTLPClientGivesUpAtTheDeadline: a collector that stays unavailable costs the export its
// deadline, not more.
func TestOTLPClientGivesUpAtTheDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := newOTLPClient(srv.URL, nil, time.Second).UploadTraces(ctx, spans("a")); err == nil {
		t.Fatal("no error from a collector that never accepted")
	}
	if ctx.Err() == nil {
		t.Fatal("returned before the deadline although every answer was retryable")
	}
}
