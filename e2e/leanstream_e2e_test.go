package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/httpapi"
	"github.com/eventide/server/internal/testutil"
)

// The lean HTTP streams (httpapi/leanstream.go): SSE and multipart subscriptions over plain
// HTTP/1.1 move to the websockets' event loop once accepted. What the old path did is checked by
// the SSE and multipart tests, which run on the lean path by default; these check what is new:
// an idle stream holds no goroutine, a client that goes frees its subscription at once, a reader
// that stalls is cut by the write timeout, and TLS and HTTP/2 keep the old path.

// streamKinds are the two HTTP streams: the Accept that asks for each, the Prometheus transport
// label, and whether a line of the body is its keep-alive (SSE's comment, multipart's heartbeat).
var streamKinds = []struct {
	name, accept, label string
	keepAlive           func(line string) bool
}{
	{"SSE", "text/event-stream", httpapi.TransportSSE, func(l string) bool { return l == ": ping" }},
	{"multipart", apolloClientSubAccept, httpapi.TransportMultipart, func(l string) bool { return l == "{}" }},
}

// rawStream is a subscription stream read by hand over its own connection: no goroutine of the
// test reads it while it is idle.
type rawStream struct {
	c    *rawClient
	body *bufio.Reader // the response's body, de-chunked
}

// openRawStream posts query as a subscription with accept from the forwarded address xff, and
// reads the answer's header and first line (SSE's ":", multipart's first delimiter).
func (ts *testServer) openRawStream(t *testing.T, accept, xff, query string, vars map[string]any) *rawStream {
	t.Helper()
	return ts.openRawStreamWith(t, rawStreamOpts{}, accept, xff, query, vars)
}

// rawStreamOpts are what openRawStreamWith changes of openRawStream's request.
type rawStreamOpts struct {
	host   string // the Host header ("eventide" when ""); the calendar links' base is made of it
	token  string // a bearer token, none when ""
	rcvbuf int    // dialFrom's receive buffer, the kernel's when 0
}

// openRawStreamWith is openRawStream with o.
func (ts *testServer) openRawStreamWith(t *testing.T, o rawStreamOpts, accept, xff, query string, vars map[string]any) *rawStream {
	t.Helper()
	c := ts.dialFrom(t, "", o.rcvbuf)
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	if o.host == "" {
		o.host = "eventide"
	}
	auth := ""
	if o.token != "" {
		auth = "Authorization: Bearer " + o.token + "\r\n"
	}
	req := fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: %s\r\n"+
		"X-Forwarded-For: %s\r\n%sContent-Length: %d\r\n\r\n%s", o.host, accept, xff, auth, len(body), body)
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := c.conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("stream answer: %v", err)
	}
	if res.StatusCode != http.StatusOK || len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" {
		raw, _ := io.ReadAll(res.Body)
		t.Fatalf("stream answer: %d %v %s", res.StatusCode, res.TransferEncoding, raw)
	}
	s := &rawStream{c: c, body: bufio.NewReader(res.Body)}
	if l := s.line(t); l != ":" && l != "--graphql" {
		t.Fatalf("first line of the stream %q", l)
	}
	return s
}

// line reads the stream's next line (within 10 s).
func (s *rawStream) line(t *testing.T) string {
	t.Helper()
	_ = s.c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := s.body.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the stream: %v (read %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// until reads lines until ok holds for one, and returns it.
func (s *rawStream) until(t *testing.T, ok func(string) bool) string {
	t.Helper()
	for {
		if l := s.line(t); ok(l) {
			return l
		}
	}
}

// idleGoroutines is the process's goroutine count once the ones that end by themselves (a
// request's, net/http's) have ended: the lowest of a few samples.
func idleGoroutines() int {
	low := runtime.NumGoroutine()
	for range 10 {
		time.Sleep(50 * time.Millisecond)
		low = min(low, runtime.NumGoroutine())
	}
	return low
}

// TestLeanStreamsIdle: 200 idle SSE (then multipart) subscribers add no goroutine to the process
// (the old path held 3 each), each still gets its keep-alives and the event's update, and a client
// that closes its connection frees its stream and its subscription at once.
func TestLeanStreamsIdle(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.WSMaxConnectionsPerClient = 1000
	cfg.HTTPMaxConnectionsPerClient = 2000
	cfg.ThrottleLimit = 1_000_000
	cfg.SSEKeepAliveInterval = 300 * time.Millisecond
	cfg.MultipartHeartbeatInterval = 300 * time.Millisecond
	ts := startServer(t, cfg)
	lean := ts.app.LeanSockets()
	if lean == nil {
		t.Skip("WS_TRANSPORT=gqlgen: streams stay on their request's goroutine")
	}
	org := ts.organizer("Idle Streams Org")
	id := ts.publishedEvent(org, "Idle", 10, 24*time.Hour)
	vars := map[string]any{"id": id}
	for _, kind := range streamKinds {
		t.Run(kind.name, func(t *testing.T) {
			ts := ts.in(t)
			// 50 per forwarded address: one address may hold 1% of the eventUpdated subscribers.
			open := func(n, from int) []*rawStream {
				out := make([]*rawStream, n)
				for i := range out {
					out[i] = ts.openRawStream(t, kind.accept, fmt.Sprintf("192.0.2.%d", (from+i)/50+1), eventUpdatedSub, vars)
				}
				return out
			}
			streams := open(10, 0) // the event loop, its pollers and workers start with the first
			before := idleGoroutines()
			streams = append(streams, open(200, 10)...)
			var after int
			if !testutil.Within(5*time.Second, func() bool { after = idleGoroutines(); return after-before < 20 }) {
				t.Fatalf("%d goroutines with 10 idle %s streams, %d with 210: the count grows with the streams",
					before, kind.name, after)
			}
			testutil.Eventually(t, 5*time.Second, fmt.Sprintf("%d streams on the event loop", len(streams)), func() bool {
				return lean.Streams() == int64(len(streams))
			})
			for _, s := range streams[:3] {
				s.until(t, kind.keepAlive)
			}
			// Every stream gets the update (a stream is answered before its subscription is in:
			// the first streams were opened long enough ago).
			ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
				map[string]any{"id": id, "t": "Update for " + kind.name}, nil)
			for _, s := range streams {
				s.until(t, func(l string) bool { return strings.Contains(l, "Update for "+kind.name) })
			}
			if n := sumOf(ts.metrics(), "eventide_open_subscriptions", "transport", kind.label); n != float64(len(streams)) {
				t.Fatalf("eventide_open_subscriptions{transport=%s} = %v with %d streams", kind.label, n, len(streams))
			}
			// Clients that close their connection free their streams and subscriptions.
			for _, s := range streams {
				_ = s.c.conn.Close()
			}
			testutil.Eventually(t, 10*time.Second, "the closed streams freed", func() bool {
				return lean.Streams() == 0 &&
					sumOf(ts.metrics(), "eventide_open_subscriptions", "transport", kind.label) == 0
			})
		})
	}
}

// TestLeanStreamStalledReaderIsCut: a reader that stops reading its stream while updates pour in
// is cut once what waits for it has not emptied for SSE_WRITE_TIMEOUT, its stream and
// subscription freed; the server goes on serving.
func TestLeanStreamStalledReaderIsCut(t *testing.T) {
	cfg := testConfig(t)
	cfg.SSEWriteTimeout = time.Second
	cfg.QueryMaxAliases = 100
	ts := startServer(t, cfg)
	lean := ts.app.LeanSockets()
	if lean == nil {
		t.Skip("WS_TRANSPORT=gqlgen: TestSSEStalledReaderIsCut covers the old path")
	}
	org := ts.organizer("Stalled Lean Org")
	id := ts.publishedEvent(org, "Stalled", 10, 24*time.Hour)
	ts.mustData(org.Token, `mutation($id: ID!, $d: String!){ updateEvent(id: $id, input: {description: $d}){ id } }`,
		map[string]any{"id": id, "d": strings.Repeat("d", 10_000)}, nil)
	update := func(title string) {
		ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": id, "t": title}, nil)
	}
	// Each update is about 600 KB of the stream.
	var sel strings.Builder
	for i := range 60 {
		fmt.Fprintf(&sel, " d%d: description", i)
	}
	query := `subscription($id: ID!){ eventUpdated(id: $id){ title` + sel.String() + ` } }`
	for _, kind := range streamKinds {
		t.Run(kind.name, func(t *testing.T) {
			ts := ts.in(t)
			s := ts.openRawStream(t, kind.accept, "192.0.2.90", query, map[string]any{"id": id})
			// The stream is counted once on the event loop, just after its first bytes went out.
			testutil.Eventually(t, 5*time.Second, "the stream on the event loop", func() bool { return lean.Streams() == 1 })
			title := "first " + kind.name
			update(title)
			s.until(t, func(l string) bool { return strings.Contains(l, title) })
			for i := range 40 { // far more than the sockets hold
				update(fmt.Sprintf("update %d", i))
			}
			stalled := time.Now()
			// Cut once what waits has not emptied for the write timeout; the slack is the
			// machine's, not the server's.
			testutil.Eventually(t, cfg.SSEWriteTimeout+10*time.Second, "the stalled stream cut", func() bool {
				return lean.Streams() == 0
			})
			t.Logf("cut %s after the updates (write timeout %s)", time.Since(stalled).Round(time.Millisecond), cfg.SSEWriteTimeout)
			if !s.c.closedWithin(5 * time.Second) {
				t.Fatal("the connection of the stalled stream is still open")
			}
			if r := ts.query(t, http.DefaultClient, nil); r.Status != http.StatusOK {
				t.Fatalf("after the stalled reader: %s", r)
			}
		})
	}
}

// TestLeanStreamFallback: over TLS (HTTP/2, and HTTP/1.1) there is no plain connection for the
// event loop to take: the stream stays on its request's goroutine, as before, and works.
func TestLeanStreamFallback(t *testing.T) {
	ts := startServer(t, nil)
	lean := ts.app.LeanSockets()
	org := ts.organizer("TLS Streams Org")
	id := ts.publishedEvent(org, "Over TLS", 10, 24*time.Hour)
	srv := httptest.NewUnstartedServer(ts.app.Handler())
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h1 := srv.Client().Transport.(*http.Transport).Clone()
	h1.ForceAttemptHTTP2 = false
	h1.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{} // HTTP/1.1 only
	h1.TLSClientConfig.NextProtos = []string{"http/1.1"}
	t.Cleanup(h1.CloseIdleConnections)
	clients := []struct {
		name  string
		c     *http.Client
		proto int
	}{{"HTTP/2", srv.Client(), 2}, {"HTTP/1.1 over TLS", &http.Client{Transport: h1}, 1}}
	for _, cl := range clients {
		for _, kind := range streamKinds {
			t.Run(cl.name+" "+kind.name, func(t *testing.T) {
				ts := ts.in(t)
				body, _ := json.Marshal(map[string]any{"query": eventUpdatedSub, "variables": map[string]any{"id": id}})
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/graphql", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", kind.accept)
				res, err := cl.c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				if res.StatusCode != http.StatusOK || res.ProtoMajor != cl.proto {
					t.Fatalf("answer %d over %s, want 200 over HTTP/%d", res.StatusCode, res.Proto, cl.proto)
				}
				lines := make(chan string, 64)
				go func() {
					defer close(lines)
					sc := bufio.NewScanner(res.Body)
					for sc.Scan() {
						lines <- sc.Text()
					}
				}()
				title := "TLS " + cl.name + " " + kind.name
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				deadline := time.After(10 * time.Second)
				for seen := false; !seen; {
					select {
					case l, ok := <-lines:
						if !ok {
							t.Fatal("the stream ended before the update")
						}
						seen = strings.Contains(l, title)
					case <-tick.C: // the subscription may not be in yet: change again
						ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
							map[string]any{"id": id, "t": title}, nil)
					case <-deadline:
						t.Fatal("no update within 10s")
					}
				}
				if lean != nil && lean.Streams() != 0 {
					t.Fatalf("%d streams on the event loop: a TLS stream was taken from net/http", lean.Streams())
				}
			})
		}
	}
}
