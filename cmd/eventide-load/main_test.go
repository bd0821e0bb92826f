package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eventide/server/internal/testutil"
)

// fakeServer fakes just enough of Eventide's /graphql, /metrics and graphql-transport-ws for the
// tool to be tested end to end: it routes on the operation name of the tool's own documents.
type fakeServer struct {
	*httptest.Server
	memoryStats   bool                        // whether the schema has memoryStats
	throttleEvery int64                       // every n-th events page is a 429 RATE_LIMITED
	rss           func(time.Duration) float64 // MiB at a time since start
	start         time.Time

	pages    atomic.Int64
	mu       sync.Mutex
	calls    map[string]int
	users    map[string]bool
	events   []string
	subsOpen atomic.Int64
}

func newFake(t *testing.T) *fakeServer {
	f := &fakeServer{memoryStats: true, start: time.Now(), calls: map[string]int{}, users: map[string]bool{},
		rss: func(time.Duration) float64 { return 64 }, events: []string{"load-a", "load-b"}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) url() string { return f.URL + "/graphql" }

func (f *fakeServer) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

var opName = regexp.MustCompile(`^(?:query|mutation|subscription) (\w+)`)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func gqlErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"errors": []any{map[string]any{"message": msg, "extensions": map[string]any{"code": code}}}})
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/metrics":
		fmt.Fprintf(w, "# HELP go_goroutines Number of goroutines.\ngo_goroutines 17\nprocess_resident_memory_bytes %g\n",
			f.rss(time.Since(f.start))*(1<<20))
		return
	case r.URL.Path != "/graphql":
		http.NotFound(w, r)
		return
	case r.Header.Get("Upgrade") == "websocket":
		f.websocket(w, r)
		return
	}
	var req struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		gqlErr(w, 400, "BAD_REQUEST", "bad json")
		return
	}
	m := opName.FindStringSubmatch(req.Query)
	if m == nil {
		gqlErr(w, 422, "GRAPHQL_PARSE_FAILED", "unnamed")
		return
	}
	op := m[1]
	f.mu.Lock()
	f.calls[op]++
	f.mu.Unlock()
	auth := r.Header.Get("Authorization")
	vars := req.Variables
	data := func(v any) { writeJSON(w, 200, map[string]any{"data": v}) }
	switch op {
	case "Login":
		email, _ := vars["email"].(string)
		switch {
		case email == "admin@eventide.local" && vars["password"] == "eventide-admin":
			data(map[string]any{"login": map[string]any{"token": "admin", "user": map[string]any{"id": "admin", "role": "ADMIN"}}})
		case strings.HasSuffix(email, "@load.eventide.local") && vars["password"] == "load-test-password":
			data(map[string]any{"login": map[string]any{"token": "user:" + email, "user": map[string]any{"id": email, "role": "USER"}}})
		default:
			gqlErr(w, 200, "UNAUTHENTICATED", "invalid email or password")
		}
	case "SignUp":
		email := vars["input"].(map[string]any)["email"].(string)
		f.mu.Lock()
		exists := f.users[email]
		f.users[email] = true
		f.mu.Unlock()
		if exists {
			gqlErr(w, 200, "BAD_USER_INPUT", "an account with this email already exists")
			return
		}
		data(map[string]any{"signUp": map[string]any{"token": "user:" + email, "user": map[string]any{"id": email, "role": "USER"}}})
	case "Promote":
		if auth != "Bearer admin" {
			gqlErr(w, 200, "FORBIDDEN", "admins only")
			return
		}
		data(map[string]any{"setUserRole": map[string]any{"id": vars["id"], "role": "ORGANIZER"}})
	case "Venues":
		data(map[string]any{"venues": map[string]any{"edges": []any{}}})
	case "Venue":
		data(map[string]any{"createVenue": map[string]any{"id": "v1"}})
	case "Create":
		f.mu.Lock()
		id := fmt.Sprintf("load-%d", len(f.events))
		f.events = append(f.events, id)
		f.mu.Unlock()
		data(map[string]any{"createEvent": map[string]any{"id": id}})
	case "Publish":
		data(map[string]any{"publishEvent": map[string]any{"id": vars["id"], "status": "PUBLISHED"}})
	case "EventIDs":
		filter, _ := vars["filter"].(map[string]any)
		f.mu.Lock()
		ids := append([]string(nil), f.events...)
		f.mu.Unlock()
		switch {
		case filter["status"] == "DRAFT":
			ids = nil
		case filter["tag"] == loadTag:
		default:
			ids = append(ids, "demo-1", "demo-2")
		}
		edges := []any{}
		for _, id := range ids {
			edges = append(edges, map[string]any{"node": map[string]any{"id": id}})
		}
		data(map[string]any{"events": map[string]any{"edges": edges}})
	case "Memory":
		if !f.memoryStats {
			gqlErr(w, 422, "GRAPHQL_VALIDATION_FAILED", `Cannot query field "memoryStats" on type "Query".`)
			return
		}
		if auth != "Bearer admin" {
			gqlErr(w, 200, "FORBIDDEN", "admins only")
			return
		}
		data(map[string]any{"memoryStats": map[string]any{
			"rssBytes": int64(f.rss(time.Since(f.start)) * (1 << 20)), "heapInuseBytes": 20 << 20, "goroutines": 42}})
	case "EventsPage":
		if strings.Contains(req.Query, "totalCount") {
			f.mu.Lock()
			f.calls["EventsPage totalCount"]++
			f.mu.Unlock()
		}
		if n := f.pages.Add(1); f.throttleEvery > 0 && n%f.throttleEvery == 0 {
			w.Header().Set("Retry-After", "1")
			gqlErr(w, 429, "RATE_LIMITED", "slow down")
			return
		}
		data(map[string]any{"events": map[string]any{"edges": []any{map[string]any{"node": map[string]any{
			"id": "demo-1", "title": "Fado night", "startsAt": "2030-01-01T20:00:00Z", "venue": map[string]any{"name": "Hall", "city": "Lisbon"},
			"organizer": map[string]any{"name": "Sofia"}, "attendeeCount": 3, "waitlistCount": 0}}},
			"pageInfo": map[string]any{"hasNextPage": false, "endCursor": "c1"}}})
	case "EventDetail":
		data(map[string]any{"event": map[string]any{"id": vars["id"], "title": "x"}})
	case "EventAttendees":
		if auth != "Bearer admin" {
			gqlErr(w, 200, "UNAUTHENTICATED", "attendees are for signed-in viewers")
			return
		}
		f.mu.Lock()
		f.calls[fmt.Sprintf("EventAttendees %v", vars["id"])]++
		f.mu.Unlock()
		data(map[string]any{"event": map[string]any{"id": vars["id"], "attendees": map[string]any{"totalCount": 0, "edges": []any{}}}})
	case "Register", "Cancel":
		if !strings.HasPrefix(auth, "Bearer user:") {
			gqlErr(w, 200, "UNAUTHENTICATED", "sign in")
			return
		}
		data(map[string]any{"registration": map[string]any{"id": "r", "status": "CONFIRMED"}})
	case "Purge":
		if auth != "Bearer admin" {
			gqlErr(w, 200, "FORBIDDEN", "admins only")
			return
		}
		data(map[string]any{"purgeCache": 3})
	default:
		gqlErr(w, 422, "GRAPHQL_VALIDATION_FAILED", "unknown operation "+op)
	}
}

// websocket speaks the server side of graphql-transport-ws: memoryStats sends a sample every
// intervalMs, securityEvents one event.
func (f *fakeServer) websocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return
	}
	defer c.CloseNow()
	f.subsOpen.Add(1)
	defer f.subsOpen.Add(-1)
	ctx := r.Context()
	send := func(v any) {
		b, _ := json.Marshal(v)
		_ = c.Write(ctx, websocket.MessageText, b)
	}
	var m struct {
		Type    string          `json:"type"`
		ID      string          `json:"id"`
		Payload json.RawMessage `json:"payload"`
	}
	_, b, err := c.Read(ctx)
	if err != nil || json.Unmarshal(b, &m) != nil || m.Type != "connection_init" || !bytes.Contains(m.Payload, []byte(`"Bearer admin"`)) {
		_ = c.Close(4403, "Forbidden")
		return
	}
	send(map[string]any{"type": "connection_ack"})
	send(map[string]any{"type": "ping"})
	var wg sync.WaitGroup
	defer wg.Wait()
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		m.Payload = nil
		if json.Unmarshal(b, &m) != nil || m.Type != "subscribe" {
			continue
		}
		var p struct {
			Query     string         `json:"query"`
			Variables map[string]any `json:"variables"`
		}
		_ = json.Unmarshal(m.Payload, &p)
		id := m.ID
		switch {
		case strings.Contains(p.Query, "memoryStats"):
			ms, _ := p.Variables["ms"].(float64)
			wg.Go(func() {
				t := time.NewTicker(time.Duration(max(ms, 20)) * time.Millisecond)
				defer t.Stop()
				for {
					send(map[string]any{"type": "next", "id": id, "payload": map[string]any{"data": map[string]any{"memoryStats": map[string]any{"rssBytes": 1}}}})
					select {
					case <-t.C:
					case <-subCtx.Done():
						return
					}
				}
			})
		case strings.Contains(p.Query, "securityEvents"):
			send(map[string]any{"type": "next", "id": id, "payload": map[string]any{"data": map[string]any{"securityEvents": map[string]any{"id": "s1"}}}})
		}
	}
}

// runTool runs the tool with args and decodes its -json report.
func runTool(t *testing.T, args ...string) (*report, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := run(ctx, append([]string{"-json", "-quiet", "-settle", "0s"}, args...), &stdout, &stderr)
	if err != nil && stdout.Len() == 0 { // refused before running: no report
		return nil, stderr.String(), err
	}
	var rep report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("report is not JSON (%v; run error %v): %s\nstderr: %s", jerr, err, stdout.String(), stderr.String())
	}
	return &rep, stderr.String(), err
}

func TestRunEventsPage(t *testing.T) {
	f := newFake(t)
	rep, _, err := runTool(t, "-url", f.url(), "-workers", "2", "-warmup", "100ms", "-duration", "500ms", "-sample-interval", "100ms")
	if err != nil {
		t.Fatal(err)
	}
	rs := rep.Run
	if rs == nil || rs.Requests < 20 || rs.Errors != 0 || rs.OK != rs.Requests {
		t.Fatalf("run %+v", rs)
	}
	if math.Abs(rs.RPS-float64(rs.Requests)/0.5) > 1 || rs.ElapsedS != 0.5 {
		t.Errorf("%.1f req/s over %.2fs for %d requests", rs.RPS, rs.ElapsedS, rs.Requests)
	}
	if l := rs.Latency; l.P50 <= 0 || l.P50 > l.P95 || l.P95 > l.P99 || l.P99 > l.Max {
		t.Errorf("latency %+v", l)
	}
	// The warm-up's requests reached the server but are not in the report.
	if pages := f.pages.Load(); uint64(pages) <= rs.Requests {
		t.Errorf("server saw %d pages, report %d: the warm-up should be extra", pages, rs.Requests)
	}
	s := rep.Server
	if s.Source != sourceMemoryStats || s.Before == nil || s.After == nil || len(s.During) < 3 {
		t.Fatalf("server report %+v", s)
	}
	if s.Before.RSSBytes != 64<<20 || s.Before.Goroutines != 42 || s.During[0].HeapInuseBytes != 20<<20 || s.Before.T >= 0 || s.After.T < 0.5 {
		t.Errorf("samples before %+v during[0] %+v after %+v", s.Before, s.During[0], s.After)
	}
	if rep.Scenario != scEventsPage || rep.Loop != "closed" || rep.Workers != 2 {
		t.Errorf("header %s %s %d", rep.Scenario, rep.Loop, rep.Workers)
	}
}

func TestRunFallsBackToMetrics(t *testing.T) {
	f := newFake(t)
	f.memoryStats = false
	rep, _, err := runTool(t, "-url", f.url(), "-warmup", "0s", "-duration", "300ms", "-sample-interval", "100ms")
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Server
	if s.Source != sourceMetrics || !strings.Contains(s.Note, "memoryStats is not available") || !strings.Contains(s.Note, "/metrics") {
		t.Fatalf("source %q note %q", s.Source, s.Note)
	}
	if s.Before == nil || s.Before.RSSBytes != 64<<20 || s.Before.Goroutines != 17 || len(s.During) == 0 {
		t.Errorf("samples from /metrics: before %+v, %d during", s.Before, len(s.During))
	}
}

func TestRunCountsErrors(t *testing.T) {
	f := newFake(t)
	f.throttleEvery = 4
	rep, _, err := runTool(t, "-url", f.url(), "-warmup", "0s", "-duration", "300ms", "-workers", "1")
	if err != nil {
		t.Fatal(err)
	}
	rs := rep.Run
	if rs.Errors == 0 || rs.ErrorsByStatus["429"] != rs.Errors || rs.ErrorsByCode["RATE_LIMITED"] != rs.Errors {
		t.Fatalf("errors %d: by status %v by code %v", rs.Errors, rs.ErrorsByStatus, rs.ErrorsByCode)
	}
	if d := math.Abs(rs.ErrorRate - 0.25); d > 0.05 {
		t.Errorf("error rate %.3f, want ~0.25", rs.ErrorRate)
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "THROTTLE_LIMIT") {
		t.Errorf("no note on throttling: %q", rep.Notes)
	}
	// A server that is gone: transport errors, by kind.
	f.Close()
	_, _, err = runTool(t, "-url", f.url(), "-warmup", "0s", "-duration", "200ms", "-workers", "1")
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("against a closed port: %v", err)
	}
}

func TestRunMixedOpenLoopWithSubscribers(t *testing.T) {
	f := newFake(t)
	rep, _, err := runTool(t, "-url", f.url(), "-scenario", "mixed", "-rate", "200", "-warmup", "100ms", "-duration", "600ms",
		"-subscribers", "5", "-sub-interval", "50ms", "-sample-interval", "200ms")
	if err != nil {
		t.Fatal(err)
	}
	rs := rep.Run
	if rs.Open == nil || rs.Open.Intended != 120 || rs.Open.Sent != 120 || rs.Open.Missed != 0 || rs.Requests != 120 {
		t.Fatalf("open loop %+v, %d requests", rs.Open, rs.Requests)
	}
	if rs.Errors != 0 {
		t.Errorf("errors: %v %v %v", rs.ErrorsByCode, rs.ErrorsByStatus, rs.TransportErrors)
	}
	ops := map[string]uint64{}
	for _, op := range rs.Operations {
		ops[op.Name] = op.Requests
	}
	if ops[scEventsPage] < 60 || ops[scEventDetail] == 0 || ops["register"] == 0 || ops[scLogin]+ops["cancel"] == 0 {
		t.Errorf("operations %v: want about 70/15/5/10", ops)
	}
	if len(rep.Mix) != 4 || rep.Mix[scEventsPage] != 70 {
		t.Errorf("mix %v", rep.Mix)
	}
	s := rep.Subscribers
	if s == nil || s.Connected != 5 || s.OpenAtEnd != 5 || len(s.ConnectErrors) != 0 || len(s.Dropped) != 0 {
		t.Fatalf("subscribers %+v", s)
	}
	// 5 connections × memoryStats every 50ms for ~0.7s, plus one security event each.
	if s.ByName["memoryStats"] < 5*8 || s.ByName["securityEvents"] != 5 {
		t.Errorf("messages %v", s.ByName)
	}
	waitFor(t, func() bool { return f.subsOpen.Load() == 0 }, "the subscribers to close their websockets")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, what, cond)
}

func TestRunSubscribersRefused(t *testing.T) {
	f := newFake(t)
	rep, _, err := runTool(t, "-url", f.url(), "-scenario", "subscribers", "-subscribers", "3", "-admin-password", "wrong",
		"-warmup", "0s", "-duration", "200ms")
	if err == nil || !strings.Contains(err.Error(), "admin sign-in") {
		t.Fatalf("subscribers without an admin: %v (report %+v)", err, rep)
	}
}

func TestRunColdPurgesEveryRequest(t *testing.T) {
	f := newFake(t)
	rep, _, err := runTool(t, "-url", f.url(), "-scenario", "events-page", "-cold", "-warmup", "0s", "-duration", "300ms", "-workers", "1")
	if err != nil {
		t.Fatal(err)
	}
	var page, purge *opReport
	for i := range rep.Run.Operations {
		switch op := &rep.Run.Operations[i]; op.Name {
		case scEventsPageCold:
			page = op
		case "purgeCache":
			purge = op
		}
	}
	if page == nil || purge == nil || !purge.Aux || purge.Requests != page.Requests || rep.Run.Requests != page.Requests {
		t.Fatalf("operations %+v", rep.Run.Operations)
	}
	if f.count("Purge") != f.count("EventsPage") {
		t.Errorf("server: %d purges for %d pages", f.count("Purge"), f.count("EventsPage"))
	}
}

func TestRunSeeds(t *testing.T) {
	f := newFake(t)
	f.events = nil
	rep, _, err := runTool(t, "-url", f.url(), "-seed", "-events", "6", "-users", "9", "-scenario", "register-cancel",
		"-warmup", "0s", "-duration", "200ms", "-workers", "3")
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Setup
	if !s.Seeded || s.UsersCreated != 9 || !s.OrganizerCreated || !s.OrganizerPromoted || !s.VenueCreated ||
		s.EventsCreated != 6 || s.EventsPublished != 6 || s.LoadEventsListed != 6 || s.EventsListed != 8 || s.UsersSignedIn != 3 {
		t.Fatalf("setup %+v", s)
	}
	if f.count("Promote") != 1 || f.count("SignUp") != 10 {
		t.Errorf("promotions %d, sign-ups %d", f.count("Promote"), f.count("SignUp"))
	}
	if rep.Run.Errors != 0 || rep.Run.Requests == 0 {
		t.Errorf("register-cancel: %+v", rep.Run)
	}
	// A second seed reuses what is there.
	rep, _, err = runTool(t, "-url", f.url(), "-seed", "-events", "6", "-users", "9", "-warmup", "0s", "-duration", "100ms")
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Setup; s.UsersCreated != 0 || s.UsersExisting != 9 || s.EventsCreated != 0 || s.EventsReused != 6 {
		t.Errorf("second seed %+v", s)
	}
}

func TestRunBaseline(t *testing.T) {
	f := newFake(t)
	rep, _, err := runTool(t, "-url", f.url(), "-baseline", "-warmup", "0s", "-duration", "300ms")
	if err != nil {
		t.Fatal(err)
	}
	b := rep.Baseline
	if b == nil || b.Run.Requests == 0 || b.Run.Errors != 0 || b.BodyBytes < 100 || b.RatioRPS <= 0 || b.RatioP50 <= 0 {
		t.Fatalf("baseline %+v", b)
	}
	if !strings.HasPrefix(b.URL, "http://127.0.0.1:") || b.URL == f.url() {
		t.Errorf("baseline URL %s", b.URL)
	}
}

func TestRunSoak(t *testing.T) {
	t.Run("ErrSlope", func(t *testing.T) {
		// RSS grows 6 MiB per second, 360 MiB/min: over the limit.
		f := newFake(t)
		f.rss = func(d time.Duration) float64 { return 100 + 6*d.Seconds() }
		rep, _, err := runTool(t, "-url", f.url(), "-soak", "-rate", "50", "-subscribers", "2", "-warmup", "0s",
			"-duration", "1500ms", "-sample-interval", "100ms")
		if !errors.Is(err, errSoakFailed) {
			t.Fatalf("err %v, want errSoakFailed", err)
		}
		s := rep.Soak
		if s == nil || s.Pass || math.Abs(s.SlopeMiBPerMin-360) > 20 || s.Samples < 8 || math.Abs(s.FromS-0.3) > 1e-9 {
			t.Fatalf("soak %+v", s)
		}
		if rep.Scenario != scMixed || rep.Loop != "open" || rep.Subscribers == nil || rep.Subscribers.Requested != 2 {
			t.Errorf("soak runs mixed, open loop, with subscribers: %s %s %+v", rep.Scenario, rep.Loop, rep.Subscribers)
		}
		if exitCode(err, io.Discard) != exitFailed {
			t.Error("a failed soak must exit non-zero")
		}
	})
	t.Run("OK", func(t *testing.T) {
		// A sawtooth with no trend passes.
		f := newFake(t)
		f.rss = func(d time.Duration) float64 { return 100 + float64(int(d/(100*time.Millisecond))%3) }
		rep, _, err := runTool(t, "-url", f.url(), "-soak", "-rate", "50", "-subscribers", "2", "-warmup", "0s",
			"-duration", "1500ms", "-sample-interval", "100ms", "-max-slope", "100")
		if err != nil {
			t.Fatalf("err %v, soak %+v", err, rep.Soak)
		}
		if !rep.Soak.Pass {
			t.Errorf("soak %+v", rep.Soak)
		}
	})
}

func TestRunRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"http://10.1.2.3:8080/graphql", "http://192.168.0.10/graphql", "http://example.com/graphql", "http://[2001:db8::1]/graphql"} {
		_, _, err := runTool(t, "-url", u, "-duration", "1s")
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("%s: %v", u, err)
		}
		if exitCode(err, io.Discard) != exitUsage {
			t.Errorf("%s: exit %d", u, exitCode(err, io.Discard))
		}
	}
}

func TestParseOptions(t *testing.T) {
	t.Run("SoakDefaults", func(t *testing.T) {
		o, err := parseOptions([]string{"-soak"}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.scenario != scMixed || o.rate != 50 || o.duration != 10*time.Minute || o.subscribers != 1000 || o.maxSlope != 0.5 || o.sampleEvery != 5*time.Second {
			t.Errorf("%+v", o)
		}
	})
	t.Run("Cold", func(t *testing.T) {
		o, err := parseOptions([]string{"-cold"}, io.Discard)
		if err != nil || o.scenario != scEventsPageCold {
			t.Errorf("%v %+v", err, o)
		}
	})
	for _, bad := range [][]string{
		{"-scenario", "nope"},
		{"-cold", "-scenario", "login"},
		{"-soak", "-scenario", "login"},
		{"-baseline", "-scenario", "mixed"},
		{"-mix", "events-page=x", "-scenario", "mixed"},
		{"-mix", "subscribers=5", "-scenario", "mixed"},
		{"-workers", "0"},
		{"-duration", "0s"},
		{"-sub-kind", "all"},
		{"-url", "ftp://127.0.0.1/"},
		{"extra"},
	} {
		if _, err := parseOptions(bad, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	mix, err := parseMix(defaultMix)
	if err != nil || len(mix) != 4 {
		t.Fatalf("default mix: %v %v", mix, err)
	}
	total := 0
	for _, m := range mix {
		total += m.weight
	}
	if total != 100 {
		t.Errorf("default mix adds up to %d", total)
	}
}

func TestParseMetrics(t *testing.T) {
	text := "# TYPE go_goroutines gauge\ngo_goroutines 23\ngo_goroutines_other 5\n" +
		"process_resident_memory_bytes 5.4525952e+07\nprocess_resident_memory_bytes_x 1\n"
	rss, g, err := parseMetrics(strings.NewReader(text))
	if err != nil || rss != 54525952 || g != 23 {
		t.Errorf("rss %d goroutines %d err %v", rss, g, err)
	}
	if _, _, err := parseMetrics(strings.NewReader("up 1\n")); err == nil {
		t.Error("missing metrics must fail")
	}
}

func TestTextReport(t *testing.T) {
	f := newFake(t)
	f.throttleEvery = 3
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"-url", f.url(), "-quiet", "-scenario", "mixed", "-warmup", "0s", "-duration", "300ms",
		"-sample-interval", "100ms", "-subscribers", "2"}, &stdout, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := stdout.String()
	for _, want := range []string{"requests ", "req/s", "p50", "p95", "p99", "max", "by operation", "errors by GraphQL code:",
		"RATE_LIMITED", "errors by HTTP status:", "429", "subscribers", "server        memory and goroutines from memoryStats",
		"before", "during", "after", "note"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	if testing.Verbose() {
		t.Log("\n" + out)
	}
}
