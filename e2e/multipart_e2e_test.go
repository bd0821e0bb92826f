package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/internal/testutil"
)

// End-to-end proof of issue 13's multipart parts: Apollo's multipart HTTP subscriptions and
// @defer over multipart/mixed, with the exact Accept headers Apollo Client 4's HttpLink sends.

const (
	// apolloClientSubAccept is HttpLink's Accept for a subscription (BaseHttpLink prepends the
	// multipart range to its default Accept).
	apolloClientSubAccept = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9"
	// apolloDeferAccept is HttpLink's Accept for a query with @defer (Defer20220824Handler).
	apolloDeferAccept = "multipart/mixed;deferSpec=20220824,application/graphql-response+json,application/json;q=0.9"
)

// mpPart is one part of a multipart answer, as Apollo Client reads it.
type mpPart struct {
	header string // the part's header block
	body   []byte
}

// kind is "heartbeat", "payload" (an event: {"payload": {...}}) or "transport" ({"payload":
// null, "errors": [...]}).
func (p mpPart) kind(t testing.TB) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p.body, &m); err != nil {
		t.Fatalf("part %q is not a JSON object: %v", p.body, err)
	}
	switch {
	case len(m) == 0:
		return "heartbeat"
	case string(m["payload"]) == "null" && m["errors"] != nil:
		return "transport"
	case m["payload"] != nil:
		return "payload"
	}
	t.Fatalf("part %s is none of heartbeat, payload, transport error", p.body)
	return ""
}

// code is the code of the part's first error, in its payload or beside it.
func (p mpPart) code() string {
	var m map[string]any
	_ = json.Unmarshal(p.body, &m)
	if c := wsErrorCode(m); c != "" {
		return c
	}
	return wsErrorCode(map[string]any{"payload": m["errors"]})
}

// mpStream is an open multipart answer, read as Apollo Client's readMultipartBody reads it: split
// at each "\r\n--graphql", a part handed on as soon as the delimiter after it arrives.
type mpStream struct {
	res    *http.Response
	parts  chan mpPart
	closed chan bool // one value when the body ends: whether the closing delimiter came
}

// mpOpen posts query with Accept (Apollo Client's subscription Accept when empty) and returns the
// stream when the server answers 200 multipart/mixed, else the answer's status and body.
func (ts *testServer) mpOpen(t testing.TB, h http.Header, token, query string, vars map[string]any) (*mpStream, int, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", apolloClientSubAccept)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("multipart request: %v", err)
	}
	mt, params, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	if res.StatusCode != http.StatusOK || mt != "multipart/mixed" {
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return nil, res.StatusCode, raw
	}
	if params["boundary"] != "graphql" || params["subscriptionspec"] != "1.0" {
		t.Fatalf("Content-Type %q: want boundary graphql and subscriptionSpec 1.0", res.Header.Get("Content-Type"))
	}
	s := &mpStream{res: res, parts: make(chan mpPart, 1024), closed: make(chan bool, 1)}
	t.Cleanup(func() { res.Body.Close() })
	go s.read()
	return s, res.StatusCode, nil
}

func (s *mpStream) read() {
	defer close(s.parts)
	const delim = "\r\n--graphql"
	var buf []byte
	chunk := make([]byte, 32<<10)
	for {
		n, err := s.res.Body.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for {
			i := bytes.Index(buf, []byte(delim))
			if i < 0 {
				break
			}
			msg := string(buf[:i])
			buf = buf[i+len(delim):]
			msg = strings.TrimPrefix(msg, "--graphql") // the opening delimiter
			head, body, ok := strings.Cut(msg, "\r\n\r\n")
			if !ok {
				continue
			}
			s.parts <- mpPart{header: head, body: []byte(body)}
		}
		if err != nil {
			s.closed <- string(buf) == "--\r\n"
			return
		}
	}
}

// next returns the next part within d, failing the test when none comes or the body ends.
func (s *mpStream) next(t testing.TB, d time.Duration, what string) mpPart {
	t.Helper()
	select {
	case p, open := <-s.parts:
		if !open {
			t.Fatalf("the multipart body ended while waiting for %s", what)
		}
		if !strings.Contains(strings.ToLower(p.header), "content-type: application/json") {
			t.Fatalf("part header %q: want Content-Type application/json", p.header)
		}
		return p
	case <-time.After(d):
		t.Fatalf("no %s within %s", what, d)
	}
	return mpPart{}
}

// waitPart returns the first part that satisfies ok within d.
func (s *mpStream) waitPart(t testing.TB, d time.Duration, what string, ok func(mpPart) bool) mpPart {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		p := s.next(t, time.Until(deadline), what)
		if ok(p) {
			return p
		}
	}
}

// end waits for the body to end and reports whether it ended with the closing delimiter.
func (s *mpStream) end(t testing.TB, d time.Duration) bool {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case _, open := <-s.parts:
			if !open {
				return <-s.closed
			}
		case <-timeout:
			t.Fatalf("the multipart body did not end within %s", d)
		}
	}
}

// TestMultipartSubscription: Apollo Client's subscription request gets a multipart stream: a
// heartbeat part at once and on a quiet subscription every MULTIPART_HEARTBEAT_INTERVAL, each
// event as {"payload": {"data": ...}} as it happens.
func TestMultipartSubscription(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.MultipartHeartbeatInterval = 150 * time.Millisecond
	ts := startServer(t, cfg)
	org := ts.organizer("Multipart Org")
	id := ts.publishedEvent(org, "Multipart", 10, 24*time.Hour)
	vars := map[string]any{"id": id}
	s, status, raw := ts.mpOpen(t, nil, "", eventUpdatedSub, vars)
	if s == nil {
		t.Fatalf("a subscription with Apollo Client's Accept: %d %s", status, raw)
	}
	if p := s.next(t, 2*time.Second, "the first part"); p.kind(t) != "heartbeat" {
		t.Fatalf("first part %s, want the heartbeat {}", p.body)
	}
	// Quiet: heartbeats, at about the interval.
	start := time.Now()
	for i := range 3 {
		if p := s.next(t, 2*time.Second, "a heartbeat"); p.kind(t) != "heartbeat" {
			t.Fatalf("part %d of a quiet subscription: %s", i, p.body)
		}
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("3 heartbeats in %s with a 150ms interval", d)
	}
	// Events as they happen, in order.
	for _, title := range []string{"First", "Second"} {
		ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": id, "t": title}, nil)
		p := s.waitPart(t, 10*time.Second, "the update "+title, func(p mpPart) bool { return p.kind(t) == "payload" })
		var got struct {
			Payload struct {
				Data struct {
					EventUpdated struct{ ID, Title string }
				}
				Errors []any
			}
		}
		if err := json.Unmarshal(p.body, &got); err != nil || got.Payload.Data.EventUpdated.Title != title ||
			got.Payload.Data.EventUpdated.ID != id || len(got.Payload.Errors) > 0 {
			t.Fatalf("event part %s, want the title %q", p.body, title)
		}
	}
}

// TestMultipartSubscriptionNegotiation: which subscriptions get a multipart stream. Apollo
// Client's Accept, or any that prefers multipart/mixed, does; one that prefers Server-Sent Events
// (urql's) keeps SSE; one that accepts no stream is answered at once; one that accepts nothing
// the server sends is 406.
func TestMultipartSubscriptionNegotiation(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	org := ts.organizer("Negotiating Multipart Org")
	id := ts.publishedEvent(org, "Negotiated", 10, 24*time.Hour)
	body := gqlBody(eventUpdatedSub, map[string]any{"id": id})
	for _, tc := range []struct{ name, accept, want string }{
		{"ApolloClient", apolloClientSubAccept, "multipart/mixed"},
		{"ApolloClient3", apolloSubAccept, "multipart/mixed"},
		{"ApolloRouterDocs", `multipart/mixed;subscriptionSpec="1.0", application/json`, "multipart/mixed"},
		{"MultipartOnly", "multipart/mixed;subscriptionSpec=1.0", "multipart/mixed"},
		{"MultipartPreferredByQ", "text/event-stream;q=0.5, multipart/mixed;subscriptionSpec=1.0", "multipart/mixed"},
		{"UrqlDefault", urqlAccept, "text/event-stream"},
		{"SSEFirst", "text/event-stream, multipart/mixed;subscriptionSpec=1.0", "text/event-stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			b, _ := json.Marshal(body)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.base+"/graphql", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", tc.accept)
			res, err := specClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); res.StatusCode != http.StatusOK || mt != tc.want {
				t.Fatalf("Accept %q: %d %q, want 200 %s", tc.accept, res.StatusCode, res.Header.Get("Content-Type"), tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name, accept string
		status       int
		code         string
	}{
		{"NoStream", "application/json", http.StatusOK, "BAD_REQUEST"},
		{"MultipartRefused", "multipart/mixed;q=0, application/json", http.StatusOK, "BAD_REQUEST"},
		{"NothingServable", "text/html", http.StatusNotAcceptable, "NOT_ACCEPTABLE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.specDo(t, http.MethodPost, "", body, hdr("Accept", tc.accept))
			resp, _ := r.body(t)
			if r.Status != tc.status || resp.code() != tc.code || r.mediaType() != applicationJSON {
				t.Fatalf("Accept %q: %s, want %d %s", tc.accept, r, tc.status, tc.code)
			}
		})
	}
}

// TestMultipartStreamsPerClient: multipart subscriptions count with SSE streams and websockets
// against WS_MAX_CONNECTIONS_PER_CLIENT; one over is 429 RATE_LIMITED, as for SSE.
func TestMultipartStreamsPerClient(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.WSMaxConnectionsPerClient = 2
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	ts := startServer(t, cfg)
	org := ts.organizer("Capped Multipart Org")
	id := ts.publishedEvent(org, "Capped", 10, 24*time.Hour)
	vars := map[string]any{"id": id}

	const client = "192.0.2.90"
	first, status, raw := ts.mpOpen(t, from(client), "", eventUpdatedSub, vars)
	if first == nil {
		t.Fatalf("multipart stream within the cap: %d %s", status, raw)
	}
	if s, status, raw := ts.sseOpen(t, from(client), "", eventUpdatedSub, vars); s == nil {
		t.Fatalf("an SSE stream beside it, within the cap: %d %s", status, raw)
	}
	s, status, raw := ts.mpOpen(t, from(client), "", eventUpdatedSub, vars)
	if s != nil {
		t.Fatal("a multipart stream over the cap was opened")
	}
	var body gqlResponse
	if status != http.StatusTooManyRequests || json.Unmarshal(raw, &body) != nil || body.code() != "RATE_LIMITED" {
		t.Fatalf("the multipart stream over the cap: %d %s", status, raw)
	}
	// Another client is served; closing a stream frees its place.
	if s, status, raw := ts.mpOpen(t, from("192.0.2.91"), "", eventUpdatedSub, vars); s == nil {
		t.Fatalf("another client's stream: %d %s", status, raw)
	}
	first.res.Body.Close()
	var last string
	if !testutil.Within(5*time.Second, func() bool {
		s, status, raw := ts.mpOpen(t, from(client), "", eventUpdatedSub, vars)
		last = fmt.Sprintf("%d %s", status, raw)
		return s != nil
	}) {
		t.Fatalf("no place freed by a closed multipart stream: %s", last)
	}
}

// TestMultipartSubscriptionShutdown: a server shutting down ends its multipart subscriptions with
// a transport error part (SERVICE_UNAVAILABLE, so the client knows to subscribe again) and the closing
// delimiter; the whole body is a well-formed multipart/mixed body.
func TestMultipartSubscriptionShutdown(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	org := ts.organizer("Shutdown Multipart Org")
	id := ts.publishedEvent(org, "Shut", 10, 24*time.Hour)
	body, _ := json.Marshal(gqlBody(eventUpdatedSub, map[string]any{"id": id}))
	req, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", apolloClientSubAccept)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	br := bufio.NewReader(res.Body)
	if _, err := br.Peek(1); err != nil { // the first heartbeat: the subscription is open
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { ts.stop(); close(stopped) }()
	raw, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("the body after shutdown: %v (%q)", err, raw)
	}
	<-stopped
	_, params, _ := mime.ParseMediaType(res.Header.Get("Content-Type"))
	mr := multipart.NewReader(bytes.NewReader(raw), params["boundary"])
	var parts []mpPart
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not a well-formed multipart body: %v\n%q", err, raw)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, mpPart{header: "content-type: " + p.Header.Get("Content-Type"), body: b})
	}
	if len(parts) < 2 {
		t.Fatalf("%d parts: %q", len(parts), raw)
	}
	last := parts[len(parts)-1]
	if last.kind(t) != "transport" || last.code() != "SERVICE_UNAVAILABLE" {
		t.Fatalf("last part before the close: %s, want a transport error SERVICE_UNAVAILABLE", last.body)
	}
}

// TestMultipartStalledReaderIsCut: a client that stops reading its multipart subscription while
// updates pour in is disconnected once a write has waited SSE_WRITE_TIMEOUT.
func TestMultipartStalledReaderIsCut(t *testing.T) {
	t.Parallel()
	stalledReaderIsCut(t, apolloClientSubAccept, "multipart stream")
}

// deferQuery defers an event's organizer and attendee count behind its id and title. gqlgen
// defers fields that have resolvers only (a plain struct field is there at once) and writes a
// deferred field as null in its initial part, which the multipart transport leaves out.
const deferQuery = `query($id: ID!){ event(id: $id){ id title ... @defer(label: "details") { organizer { name } attendeeCount } } }`

// TestDeferMultipart: a query with @defer, sent with Apollo Client's @defer Accept, is answered in
// multipart/mixed: {data, hasNext: true} without the deferred fields, then {incremental: [{data,
// path, label}], hasNext: false}, then the closing delimiter.
func TestDeferMultipart(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	org := ts.organizer("Defer Org")
	id := ts.publishedEvent(org, "Deferred", 10, 24*time.Hour)
	for range 2 { // the second time, a response cache would have kept the first answer
		parts := ts.deferMultipart(t, deferQuery, map[string]any{"id": id})
		if len(parts) != 2 {
			t.Fatalf("%d parts, want 2: %s", len(parts), parts)
		}
		var initial struct {
			Data struct {
				Event map[string]any
			}
			HasNext *bool
			Errors  []any
		}
		if err := json.Unmarshal(parts[0], &initial); err != nil || initial.HasNext == nil || !*initial.HasNext ||
			initial.Data.Event["title"] != "Deferred" || len(initial.Errors) > 0 {
			t.Fatalf("initial part %s, want the title, hasNext true", parts[0])
		}
		// The deferred fields are absent, not null (gqlgen's placeholder): Apollo Client reads a
		// null as the value and takes the initial part for the complete result.
		if _, ok := initial.Data.Event["organizer"]; ok {
			t.Fatalf("initial part %s holds the deferred organizer", parts[0])

		}
		var sub struct {
			Incremental []struct {
				Data  map[string]any
				Path  []any
				Label string
			}
			HasNext *bool
		}
		if err := json.Unmarshal(parts[1], &sub); err != nil || sub.HasNext == nil || *sub.HasNext || len(sub.Incremental) != 1 {
			t.Fatalf("subsequent part %s, want one incremental result and hasNext false", parts[1])
		}
		inc := sub.Incremental[0]
		organizer, _ := inc.Data["organizer"].(map[string]any)
		if organizer["name"] != "Defer Org" || inc.Label != "details" || fmt.Sprint(inc.Path) != "[event]" {
			t.Fatalf("incremental result %s, want the organizer at path [event] labelled details", parts[1])
		}
	}
}

// TestDeferMultipartPlaceholders: the deferred fields gqlgen writes as null are left out of the
// initial part everywhere — in each item of a list, in a fragment spread — while a field selected
// both inside and outside a @defer, and a @defer(if: false), stay in it.
func TestDeferMultipartPlaceholders(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	org := ts.organizer("Placeholder Org")
	id := ts.publishedEvent(org, "Placeholders", 10, 24*time.Hour)
	ts.publishedEvent(org, "Placeholders 2", 10, 48*time.Hour)
	const q = `query($id: ID!, $no: Boolean!){
		events(first: 2){ edges { node { id ... @defer { venue { name } } } } }
		event(id: $id){ id organizer { name } ...Later @defer ... @defer(if: $no) { timeZone } }
	}
	fragment Later on Event { organizer { id } venue { name } }`
	parts := ts.deferMultipart(t, q, map[string]any{"id": id, "no": false})
	if len(parts) < 2 {
		t.Fatalf("%d parts: %s", len(parts), parts)
	}
	var initial struct {
		Data struct {
			Events struct {
				Edges []struct{ Node map[string]any }
			}
			Event map[string]any
		}
	}
	if err := json.Unmarshal(parts[0], &initial); err != nil {
		t.Fatal(err)
	}
	if len(initial.Data.Events.Edges) != 2 {
		t.Fatalf("initial part %s, want two events", parts[0])
	}
	for _, e := range initial.Data.Events.Edges {
		if _, ok := e.Node["venue"]; ok || e.Node["id"] == nil {
			t.Fatalf("initial part %s: a listed event holds its deferred venue", parts[0])
		}
	}
	ev := initial.Data.Event
	if _, ok := ev["venue"]; ok {
		t.Fatalf("initial part %s holds the venue deferred in a fragment spread", parts[0])
	}
	if o, _ := ev["organizer"].(map[string]any); o["name"] != "Placeholder Org" {
		t.Fatalf("initial part %s lost the organizer selected outside the @defer too", parts[0])
	}
	if ev["timeZone"] == nil {
		t.Fatalf("initial part %s lost the field under @defer(if: false)", parts[0])
	}

	// A @defer inside a deferred fragment: the outer payload leaves the inner field out too.
	const nested = `query($id: ID!){ event(id: $id){ id ... @defer(label: "outer") {
		organizer { name ... @defer(label: "inner") { organizedEvents(first: 1) { edges { node { id } } } } } } } }`
	parts = ts.deferMultipart(t, nested, map[string]any{"id": id})
	var outer, inner map[string]any
	for _, p := range parts[1:] {
		var sub struct {
			Incremental []struct {
				Data  map[string]any
				Label string
			}
		}
		if err := json.Unmarshal(p, &sub); err != nil {
			t.Fatal(err)
		}
		for _, inc := range sub.Incremental {
			switch inc.Label {
			case "outer":
				outer = inc.Data
			case "inner":
				inner = inc.Data
			}
		}
	}
	org2, _ := outer["organizer"].(map[string]any)
	if org2["name"] != "Placeholder Org" || inner["organizedEvents"] == nil {
		t.Fatalf("parts %s: want the organizer's name in the outer payload, their events in the inner", parts)
	}
	if _, ok := org2["organizedEvents"]; ok {
		t.Fatalf("parts %s: the outer payload holds the events deferred inside it", parts)
	}
}

// deferMultipart posts query with Apollo Client's @defer Accept and returns the JSON parts of its
// multipart answer, read with mime/multipart, which fails on a body without its closing delimiter.
func (ts *testServer) deferMultipart(t *testing.T, query string, vars map[string]any) [][]byte {
	t.Helper()
	r := ts.specDo(t, http.MethodPost, "", gqlBody(query, vars), hdr("Accept", apolloDeferAccept))
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Status != http.StatusOK || mt != "multipart/mixed" || params["boundary"] != "graphql" || params["deferspec"] != "20220824" {
		t.Fatalf("@defer with Apollo Client's Accept: %s", r)
	}
	mr := multipart.NewReader(bytes.NewReader(r.Raw), params["boundary"])
	var parts [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			t.Fatalf("not a well-formed multipart body: %v\n%q", err, r.Raw)
		}
		if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("part Content-Type %q", ct)
		}
		b, _ := io.ReadAll(p)
		parts = append(parts, b)
	}
}

// TestDeferWithoutMultipart: a client that prefers one JSON answer gets the query with @defer
// whole, the deferred fields merged in, never the initial part alone, and a repeat (which the
// response cache could answer) is whole too.
func TestDeferWithoutMultipart(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	org := ts.organizer("Merged Defer Org")
	id := ts.publishedEvent(org, "Merged", 10, 24*time.Hour)
	// Deferred inside a list and inside a deferred fragment too: every part finds its place.
	const nested = `query($id: ID!){ event(id: $id){ id ... @defer { title organizer { id ... @defer(label: "name") { name } } } }
		events(first: 5){ edges { node { id ... @defer(label: "t") { title } } } } }`
	for _, accept := range []string{"", applicationJSON, apolloAccept, urqlAccept} {
		t.Run("Accept="+accept, func(t *testing.T) {
			for i := range 2 {
				hits, _ := ts.responseCache()
				r := ts.specDo(t, http.MethodPost, "", gqlBody(deferQuery, map[string]any{"id": id}), hdr("Accept", accept))
				if r.mediaType() == "multipart/mixed" {
					t.Fatalf("Accept %q: a multipart answer", accept)
				}
				resp, keys := r.body(t)
				if _, ok := keys["hasNext"]; ok || len(resp.Errors) > 0 {
					t.Fatalf("Accept %q, request %d: %s", accept, i, r)
				}
				var data struct {
					Event struct {
						ID, Title     string
						Organizer     *struct{ Name string }
						AttendeeCount *int
					}
				}
				_ = json.Unmarshal(resp.Data, &data)
				if data.Event.Title != "Merged" || data.Event.Organizer == nil || data.Event.Organizer.Name != "Merged Defer Org" || data.Event.AttendeeCount == nil {
					t.Fatalf("Accept %q, request %d: %s, want the deferred organizer and count merged in", accept, i, r.Raw)
				}
				// Field order: the initial fields first, the deferred ones after.
				if !bytes.Contains(resp.Data, []byte(`{"event":{"id":`)) {
					t.Fatalf("Accept %q: %s", accept, resp.Data)
				}
				if h, _ := ts.responseCache(); h != hits {
					t.Fatalf("Accept %q, request %d: answered from the response cache", accept, i)
				}
			}
		})
	}
	r := ts.specDo(t, http.MethodPost, "", gqlBody(nested, map[string]any{"id": id}), nil)
	resp, _ := r.body(t)
	var data struct {
		Event struct {
			ID, Title string
			Organizer struct{ ID, Name string }
		}
		Events struct {
			Edges []struct{ Node struct{ ID, Title string } }
		}
	}
	if err := json.Unmarshal(resp.Data, &data); err != nil || len(resp.Errors) > 0 || data.Event.Title != "Merged" ||
		data.Event.Organizer.Name == "" || len(data.Events.Edges) == 0 {
		t.Fatalf("nested @defer merged: %s", r.Raw)
	}
	for _, e := range data.Events.Edges {
		if e.Node.ID == "" || e.Node.Title == "" {
			t.Fatalf("a deferred title inside the list is missing: %s", r.Raw)
		}
	}
}

// mpSubs is one multipart request per subscription, as Apollo Client's HttpLink opens them: the
// stream of session_e2e_test.go's tests.
type mpSubs struct {
	t      testing.TB
	ts     *testServer
	token  string
	events chan [3]string // id, kind, code
}

func newMPSubs(ts *testServer, token string) *mpSubs {
	return &mpSubs{t: ts.t, ts: ts, token: token, events: make(chan [3]string, 64)}
}

func (s *mpSubs) subscribe(id, query string) {
	s.t.Helper()
	st, status, raw := s.ts.mpOpen(s.t, nil, s.token, query, nil)
	if st == nil {
		s.t.Fatalf("multipart subscribe: %d %s", status, raw)
	}
	go func() {
		for p := range st.parts {
			var m map[string]json.RawMessage
			if json.Unmarshal(p.body, &m) != nil || len(m) == 0 {
				continue // a heartbeat (or a part the session tests fail on as a missing event)
			}
			s.events <- [3]string{id, "next", p.code()}
		}
		if <-st.closed {
			s.events <- [3]string{id, "complete", ""}
		} else {
			s.events <- [3]string{id, "ended", ""}
		}
	}()
}

func (s *mpSubs) next() (string, string, string, bool) {
	select {
	case e := <-s.events:
		return e[0], e[1], e[2], true
	case <-time.After(30 * time.Second):
		return "", "", "", false
	}
}
