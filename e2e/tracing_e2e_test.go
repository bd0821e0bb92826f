package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/eventide/server/config"
	"github.com/eventide/server/internal/redistest"
)

// otlpReceiver is an OTLP/HTTP traces endpoint in the test process: it decodes each
// ExportTraceServiceRequest (protobuf, gzipped or not) and keeps the spans with their
// resource's service.name.
type otlpReceiver struct {
	srv *httptest.Server

	mu      sync.Mutex
	spans   []*tracepb.Span
	service map[string]bool // service.name values seen
	posts   int
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	o := &otlpReceiver{service: map[string]bool{}}
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want a protobuf POST to /v1/traces", http.StatusBadRequest)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		raw, err := io.ReadAll(body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(raw, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		o.mu.Lock()
		o.posts++
		for _, rs := range req.ResourceSpans {
			for _, kv := range rs.GetResource().GetAttributes() {
				if kv.Key == "service.name" {
					o.service[kv.GetValue().GetStringValue()] = true
				}
			}
			for _, ss := range rs.ScopeSpans {
				o.spans = append(o.spans, ss.Spans...)
			}
		}
		o.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

// trace returns the spans received of trace id.
func (o *otlpReceiver) trace(id []byte) []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range o.spans {
		if bytes.Equal(s.TraceId, id) {
			out = append(out, s)
		}
	}
	return out
}

// tracedConfig is testConfig with the OTEL_* keys read from the environment the way the process
// reads them, pointing at endpoint.
func tracedConfig(t *testing.T, endpoint string) *config.Config {
	t.Helper()
	env, err := config.Load(config.Sources{Environ: []string{"APP_ENV=test",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + endpoint, "OTEL_SERVICE_NAME=eventide-e2e"}, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	cfg.OtelEndpoint, cfg.OtelServiceName = env.OtelEndpoint, env.OtelServiceName
	cfg.OtelTracesSampler, cfg.OtelTracesSamplerArg = env.OtelTracesSampler, env.OtelTracesSamplerArg
	return cfg
}

// eventsPageOp is the web app's events page as a named operation.
const eventsPageOp = `query EventsPage($first: Int){ events(first: $first){
	edges { cursor node { id title startsAt venue { id name city } organizer { id name } attendeeCount waitlistCount } }
	pageInfo { hasNextPage endCursor } } }`

// TestTraceOfEventsPage starts the server with OTEL_EXPORTER_OTLP_ENDPOINT on an in-process
// receiver, sends one events-page request carrying a W3C traceparent, and checks the tree of
// spans that request made: all under the caller's trace id, the HTTP span the only root (its
// parent the caller's span), the operation span under it with its name, type and code, the
// dataloader batches under the operation and the store commands (and, with Redis, the Redis
// commands) under those. With -v it prints the tree (README "Operations").
func TestTraceOfEventsPage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store string // the span-name prefix of a store command
		cfg   func(t *testing.T, cfg *config.Config) *config.Config
		redis bool
	}{
		{name: "SQLite", store: "sqlite ", cfg: func(_ *testing.T, c *config.Config) *config.Config { return c }},
		{name: "MongoDB", store: "mongodb ", cfg: func(t *testing.T, c *config.Config) *config.Config { return onMongoDB(t, c) }},
		{name: "SQLiteWithRedis", store: "sqlite ", redis: true, cfg: func(t *testing.T, c *config.Config) *config.Config {
			return withRedis(t, c, redistest.Start(t))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newOTLPReceiver(t)
			ts := startServer(t, tc.cfg(t, tracedConfig(t, rcv.srv.URL)))
			if !ts.app.Tracing().Enabled() {
				t.Fatal("tracing is off with OTEL_EXPORTER_OTLP_ENDPOINT set")
			}
			admin := ts.admin()
			org := ts.organizer("Tracer Org")
			var v struct{ CreateVenue struct{ ID string } }
			ts.mustData(org.Token, `mutation{ createVenue(input:{name: "Hall", address:"Main St", city:"Lisbon", capacity: 500}){ id } }`, nil, &v)
			for i := range 3 {
				id := ts.publishedEvent(org, fmt.Sprintf("Traced %d", i), 50, time.Duration(i+2)*time.Hour)
				ts.mustData(org.Token, `mutation($id: ID!, $v: ID!){ updateEvent(id: $id, input: {venueId: $v}){ id } }`,
					map[string]any{"id": id, "v": v.CreateVenue.ID}, nil)
			}
			ts.purgeCache(admin) // cold: the loaders' batches reach the store

			traceID, callerSpan := randomHex(16), randomHex(8)
			body, _ := json.Marshal(map[string]any{"query": eventsPageOp, "operationName": "EventsPage", "variables": map[string]any{"first": 10}})
			req, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("traceparent", "00-"+traceID+"-"+callerSpan+"-01")
			var page eventsPage
			res := ts.send(req)
			if len(res.Errors) > 0 || json.Unmarshal(res.Data, &page) != nil || len(page.Events.Edges) != 3 {
				t.Fatalf("events page: %+v", res)
			}
			ts.stop() // shutdown flushes the span queue

			tid, _ := hex.DecodeString(traceID)
			spans := rcv.trace(tid)
			if len(spans) == 0 {
				t.Fatalf("no span of trace %s received (%d exports)", traceID, rcv.posts)
			}
			byID := map[string]*tracepb.Span{}
			for _, s := range spans {
				byID[string(s.SpanId)] = s
			}
			parent, _ := hex.DecodeString(callerSpan)
			var roots []*tracepb.Span
			for _, s := range spans {
				if bytes.Equal(s.ParentSpanId, parent) {
					roots = append(roots, s)
				} else if byID[string(s.ParentSpanId)] == nil {
					t.Errorf("span %q has a parent outside the request's tree", s.Name)
				}
			}
			if len(roots) != 1 || roots[0].Name != "POST /graphql" || roots[0].Kind != tracepb.Span_SPAN_KIND_SERVER {
				t.Fatalf("roots under the caller's span: %v, want one server span POST /graphql", names(roots))
			}
			root := roots[0]
			if got := attr(root, "http.response.status_code"); got != "200" {
				t.Errorf("root status attribute %q", got)
			}
			t.Logf("span tree of one events-page request (%s):\n%s", tc.name, spanTree(spans, root, ""))

			op := onlySpan(t, childrenOf(spans, root), "query EventsPage")
			for k, want := range map[string]string{"graphql.operation.type": "query", "graphql.operation.name": "EventsPage", "graphql.error.code": "OK"} {
				if got := attr(op, k); got != want {
					t.Errorf("operation span %s = %q, want %q", k, got, want)
				}
			}
			under := func(s, anc *tracepb.Span) bool {
				for p := byID[string(s.ParentSpanId)]; p != nil; p = byID[string(p.ParentSpanId)] {
					if p == anc {
						return true
					}
				}
				return false
			}
			loaders := map[string]bool{}
			storeUnderLoader, storeUnderOp, redisSpans := 0, 0, 0
			for _, s := range spans {
				switch {
				case strings.HasPrefix(s.Name, "dataloader "):
					if !under(s, op) {
						t.Errorf("%s is not under the operation", s.Name)
					}
					loaders[attr(s, "dataloader.name")] = true
				case strings.HasPrefix(s.Name, tc.store):
					if !under(s, op) {
						t.Errorf("store span %s is not under the operation", s.Name)
					}
					storeUnderOp++
					if p := byID[string(s.ParentSpanId)]; p != nil && strings.HasPrefix(p.Name, "dataloader ") {
						storeUnderLoader++
					}
				case strings.HasPrefix(s.Name, "redis "):
					// The throttle's script runs before the operation, under the request's span.
					if under(s, op) {
						redisSpans++
					}
				}
			}
			if !loaders["venues"] || !loaders["users"] {
				t.Errorf("dataloader spans of %v, want venues and users", loaders)
			}
			if storeUnderOp < 2 || storeUnderLoader == 0 {
				t.Errorf("%d %s spans under the operation, %d of them under a loader batch", storeUnderOp, tc.store, storeUnderLoader)
			}
			if tc.redis && redisSpans == 0 {
				t.Error("no Redis command span under the operation, with USE_REDIS on and the cache cold")
			}
			if !rcv.service["eventide-e2e"] {
				t.Errorf("service.name %v, want eventide-e2e (OTEL_SERVICE_NAME)", rcv.service)
			}
		})
	}
}

// TestTracingOffStartsNothing: with no OTEL_* key set, the server runs no SDK: Tracer is nil.
func TestTracingOffStartsNothing(t *testing.T) {
	ts := startServer(t, nil)
	if ts.app.Tracing().Enabled() || ts.app.Tracing().Tracer("x") != nil {
		t.Fatal("tracing is on without an endpoint")
	}
	ts.mustData("", `{ events(first: 1){ pageInfo { hasNextPage } } }`, nil, nil)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return anyValue(kv.Value)
		}
	}
	return ""
}

func anyValue(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	}
	return v.String()
}

func childrenOf(spans []*tracepb.Span, p *tracepb.Span) []*tracepb.Span {
	var out []*tracepb.Span
	for _, s := range spans {
		if bytes.Equal(s.ParentSpanId, p.SpanId) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].StartTimeUnixNano < out[j].StartTimeUnixNano })
	return out
}

func onlySpan(t *testing.T, spans []*tracepb.Span, name string) *tracepb.Span {
	t.Helper()
	var found *tracepb.Span
	for _, s := range spans {
		if s.Name == name {
			if found != nil {
				t.Fatalf("two spans %q", name)
			}
			found = s
		}
	}
	if found == nil {
		t.Fatalf("no span %q among %v", name, names(spans))
	}
	return found
}

func names(spans []*tracepb.Span) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}

// spanTree draws the tree under s, one span a line: its name, duration and chosen attributes.
func spanTree(spans []*tracepb.Span, s *tracepb.Span, indent string) string {
	var b strings.Builder
	d := time.Duration(s.EndTimeUnixNano - s.StartTimeUnixNano)
	fmt.Fprintf(&b, "%s%s  (%s", indent, s.Name, d.Round(10*time.Microsecond))
	for _, k := range []string{"graphql.operation.type", "graphql.operation.name", "graphql.error.code", "dataloader.keys",
		"db.collection.name", "http.response.status_code"} {
		if v := attr(s, k); v != "" {
			fmt.Fprintf(&b, ", %s=%s", k, v)
		}
	}
	b.WriteString(")\n")
	for _, c := range childrenOf(spans, s) {
		b.WriteString(spanTree(spans, c, indent+"  "))
	}
	return b.String()
}
