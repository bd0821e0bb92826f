package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eventide/server/internal/testutil"
)

// End-to-end proof that slow or held connections cost a client its own budget only: a request
// must arrive whole within HTTP_READ_TIMEOUT, a client address holds at most
// HTTP_MAX_CONNECTIONS_PER_CLIENT connections and WS_MAX_CONNECTIONS_PER_CLIENT streams (SSE
// included), a reader that stalls an SSE stream is cut, idle streams get keep-alive comments, and
// METRICS_ADDR takes /metrics off the public port. Clients on other addresses dial from other
// loopback addresses (127.0.0.0/8 is all local on Linux) or come through a trusted proxy.

// rawClient is one TCP connection to the server from a chosen loopback address, speaking
// HTTP/1.1 by hand so that it can stall wherever a test wants.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
}

// dialFrom opens a connection to ts from the local address ip ("" for any); rcvbuf, when > 0,
// shrinks the socket's receive buffer so that a client that stops reading stalls the server soon.
func (ts *testServer) dialFrom(t *testing.T, ip string, rcvbuf int) *rawClient {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if ip != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	conn, err := d.Dial("tcp", strings.TrimPrefix(ts.base, "http://"))
	if err != nil {
		t.Fatalf("dial from %s: %v", ip, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawClient{conn: conn, br: bufio.NewReader(conn)}
}

// roundTrip sends a whole request and reads its answer.
func (c *rawClient) roundTrip(t *testing.T, method, path string, h http.Header, body []byte) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://eventide"+path, bytes.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if err := req.Write(c.conn); err != nil {
		return nil, nil, err
	}
	res, err := http.ReadResponse(c.br, req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res, raw, err
}

// closedWithin reports whether the server ends the connection (EOF or reset) within d, reading
// and dropping whatever it sends before.
func (c *rawClient) closedWithin(d time.Duration) bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// httpFrom is an HTTP client whose connections come from the local address ip.
func httpFrom(t *testing.T, ip string) *http.Client {
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// query answers a small GraphQL query from client c with headers h.
func (ts *testServer) query(t *testing.T, c *http.Client, h http.Header) *httpRes {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := &httpRes{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if err := json.Unmarshal(raw, &out.gqlResponse); err != nil {
		t.Fatalf("response %d is not JSON: %v: %s", res.StatusCode, err, raw)
	}
	return out
}

// slowBodyHead is a POST that declares a body of about 900 KB; the test sends only its start.
func slowBodyHead(h http.Header) []byte {
	var b bytes.Buffer
	b.WriteString("POST /graphql HTTP/1.1\r\nHost: eventide\r\nContent-Type: application/json\r\nContent-Length: 900000\r\n")
	for k, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	b.WriteString("\r\n")
	b.WriteString(`{"query":"{ __typename }","variables":{"pad":"`)
	b.WriteString(strings.Repeat("x", 4096))
	return b.Bytes()
}

// TestSlowBody: a body that stops short of its Content-Length is cut at HTTP_READ_TIMEOUT and
// counted against its client's budget, which is checked before any byte of it is read.
func TestSlowBody(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.HTTPReadTimeout = time.Second
	cfg.ThrottleLimit = 20
	ts := startServer(t, cfg)

	const attacker = "127.0.0.2"
	c := ts.dialFrom(t, attacker, 0)
	if _, err := c.conn.Write(slowBodyHead(nil)); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if !c.closedWithin(8 * time.Second) {
		t.Fatalf("a body stalled for %s is still being waited for (HTTP_READ_TIMEOUT is %s)", time.Since(began).Round(time.Millisecond), cfg.HTTPReadTimeout)
	}
	if took := time.Since(began); took > cfg.HTTPReadTimeout+2*time.Second {
		t.Fatalf("the stalled body was cut after %s, want about HTTP_READ_TIMEOUT (%s)", took, cfg.HTTPReadTimeout)
	}

	// The held request was counted: the next one from that address sees the budget spent by two.
	r := ts.query(t, httpFrom(t, attacker), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("a normal request after the stall: %s", r)
	}
	rateHeaders(t, r, cfg.ThrottleLimit, cfg.ThrottleLimit-2)

	// A client whose budget is spent is refused before its body is read: the 429 comes while the
	// body is still stalled.
	for range cfg.ThrottleLimit {
		ts.query(t, httpFrom(t, attacker), nil)
	}
	c = ts.dialFrom(t, attacker, 0)
	if _, err := c.conn.Write(slowBodyHead(nil)); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(cfg.HTTPReadTimeout / 2))
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("no answer to a throttled client before its body arrived: %v", err)
	}
	var body gqlResponse
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusTooManyRequests || body.code() != "RATE_LIMITED" {
		t.Fatalf("a throttled client's slow body: %d %+v %v", res.StatusCode, body, err)
	}
}

// TestSlowBodiesPerClient: bodies are reserved at their declared length against a budget per
// client address (8 x HTTP_MAX_BODY_BYTES) before they are read; one over it is refused at once,
// unread, so slow bodies from one address pin a bounded amount of memory.
func TestSlowBodiesPerClient(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.HTTPReadTimeout = 5 * time.Second
	ts := startServer(t, cfg)
	const attacker = "127.0.0.5"
	fit := int(8 * cfg.HTTPMaxBodyBytes / 900_000)
	for range fit {
		c := ts.dialFrom(t, attacker, 0)
		if _, err := c.conn.Write(slowBodyHead(nil)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(cfg.HTTPReadTimeout / 2)
	for {
		c := ts.dialFrom(t, attacker, 0)
		if _, err := c.conn.Write(slowBodyHead(nil)); err != nil {
			t.Fatal(err)
		}
		_ = c.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		res, err := http.ReadResponse(c.br, nil)
		if err == nil {
			var body gqlResponse
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusTooManyRequests || body.code() != "RATE_LIMITED" {
				t.Fatalf("a body over the client's budget: %d %+v %v", res.StatusCode, body, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d held bodies of 900 KB, and one more is still waited for: %v", fit, err)
		}
	}
	// Another address is served meanwhile.
	if r := ts.query(t, httpFrom(t, "127.0.0.6"), nil); r.Status != http.StatusOK {
		t.Fatalf("another address: %s", r)
	}
}

// TestStreamsOutliveReadTimeout: HTTP_READ_TIMEOUT bounds a request's arrival, not a stream:
// a websocket and an SSE stream open for twice its length still deliver.
func TestStreamsOutliveReadTimeout(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.HTTPReadTimeout = time.Second
	ts := startServer(t, cfg)
	org := ts.organizer("Long Org")
	id := ts.publishedEvent(org, "Long", 10, 24*time.Hour)
	vars := map[string]any{"id": id}
	s, status, raw := ts.sseOpen(t, nil, "", eventUpdatedSub, vars)
	if s == nil {
		t.Fatalf("SSE: %d %s", status, raw)
	}
	ws := ts.wsOpen(nil, nil)
	ws.subscribe("1", eventUpdatedSub, vars)
	time.Sleep(2 * cfg.HTTPReadTimeout)
	ts.mustData(org.Token, `mutation($id: ID!){ updateEvent(id: $id, input: {title: "Later"}){ id } }`, vars, nil)
	s.waitLine(t, 10*time.Second, "the update over SSE", func(l string) bool { return strings.Contains(l, "Later") })
	if m := ws.next(); m["type"] != "next" || !strings.Contains(fmt.Sprint(m["payload"]), "Later") {
		t.Fatalf("the update over the websocket: %v", m)
	}
}

// TestConnectionsPerClient: one address holds at most HTTP_MAX_CONNECTIONS_PER_CLIENT
// connections; the next is answered 429 RATE_LIMITED and closed, other addresses are served, a
// trusted proxy is not taken for one client, and a client behind it is capped by the requests it
// has in flight.
func TestConnectionsPerClient(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.HTTPMaxConnectionsPerClient = 4
	cfg.WSMaxConnectionsPerClient = 2
	// The held bodies are cut after the read timeout: the refusal must be seen within half of
	// it, which under CI's parallel -race run took more than 1.5 s once.
	cfg.HTTPReadTimeout = 6 * time.Second
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	ts := startServer(t, cfg)
	admin := ts.admin()

	t.Run("Direct", func(t *testing.T) {
		const client = "127.0.0.3"
		var open []*rawClient
		for i := range cfg.HTTPMaxConnectionsPerClient {
			c := ts.dialFrom(t, client, 0)
			res, _, err := c.roundTrip(t, http.MethodGet, "/healthz", nil, nil)
			if err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("connection %d within the cap: %v %v", i, res, err)
			}
			open = append(open, c)
		}
		extra := ts.dialFrom(t, client, 0)
		res, raw, err := extra.roundTrip(t, http.MethodGet, "/healthz", nil, nil)
		if err != nil {
			t.Fatalf("the connection over the cap got no answer: %v", err)
		}
		var body gqlResponse
		if res.StatusCode != http.StatusTooManyRequests || json.Unmarshal(raw, &body) != nil || body.code() != "RATE_LIMITED" {
			t.Fatalf("the connection over the cap: %d %s", res.StatusCode, raw)
		}
		if !extra.closedWithin(5 * time.Second) {
			t.Fatal("the connection over the cap was left open")
		}
		// The connections within the cap still work, and another address is served.
		if res, _, err := open[0].roundTrip(t, http.MethodGet, "/healthz", nil, nil); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("a connection within the cap after the refusal: %v %v", res, err)
		}
		if r := ts.query(t, httpFrom(t, "127.0.0.4"), nil); r.Status != http.StatusOK {
			t.Fatalf("another address: %s", r)
		}
		// The refusal is a security event.
		events := only(ts.securityEvents(admin, map[string]any{"types": []string{"RATE_LIMITED"}}, 100), func(e secEvent) bool {
			return str(e.Operation) == "connections" && str(e.IP) == client
		})
		if len(events) != 1 {
			t.Fatalf("RATE_LIMITED events for the connection cap: %v", events)
		}
		// Closing one frees its place.
		_ = open[0].conn.Close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c := ts.dialFrom(t, client, 0)
			res, _, err := c.roundTrip(t, http.MethodGet, "/healthz", nil, nil)
			if err == nil && res.StatusCode == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no place freed by a closed connection: %v %v", res, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("TrustedProxy", func(t *testing.T) {
		// The proxy's own connections are many clients': twice the cap of them are served.
		var open []*rawClient
		for i := range 2 * cfg.HTTPMaxConnectionsPerClient {
			c := ts.dialFrom(t, "127.0.0.1", 0)
			res, _, err := c.roundTrip(t, http.MethodGet, "/healthz", from(fmt.Sprintf("192.0.2.%d", 100+i)), nil)
			if err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("proxy connection %d: %v %v", i, res, err)
			}
			open = append(open, c)
		}
		// One forwarded client holding the cap's worth of requests (slow bodies) is refused more.
		const client = "192.0.2.60"
		for range cfg.HTTPMaxConnectionsPerClient {
			c := ts.dialFrom(t, "127.0.0.1", 0)
			if _, err := c.conn.Write(slowBodyHead(from(client))); err != nil {
				t.Fatal(err)
			}
		}
		proxy := httpFrom(t, "127.0.0.1")
		deadline := time.Now().Add(cfg.HTTPReadTimeout / 2)
		for {
			r := ts.query(t, proxy, from(client))
			if r.Status == http.StatusTooManyRequests && r.code() == "RATE_LIMITED" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a forwarded client holding %d requests was served more: %s", cfg.HTTPMaxConnectionsPerClient, r)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if r := ts.query(t, proxy, from("192.0.2.61")); r.Status != http.StatusOK {
			t.Fatalf("another forwarded client: %s", r)
		}
		// Once the held bodies are cut, the client is served again.
		deadline = time.Now().Add(cfg.HTTPReadTimeout + 5*time.Second)
		for {
			r := ts.query(t, proxy, from(client))
			if r.Status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the forwarded client is still refused after its bodies were cut: %s", r)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// sseStream is an open Server-Sent Events subscription.
type sseStream struct {
	res   *http.Response
	lines chan string
}

const eventUpdatedSub = `subscription($id: ID!){ eventUpdated(id: $id){ id title } }`

// sseOpen posts a subscription with Accept: text/event-stream. It returns the stream when the
// server answers 200, else the answer's status and body.
func (ts *testServer) sseOpen(t *testing.T, h http.Header, token, query string, vars map[string]any) (*sseStream, int, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("SSE request: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return nil, res.StatusCode, raw
	}
	s := &sseStream{res: res, lines: make(chan string, 1024)}
	t.Cleanup(func() { res.Body.Close() })
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 8<<20)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	return s, res.StatusCode, nil
}

// waitLine returns the first line that satisfies ok within d, failing the test otherwise.
func (s *sseStream) waitLine(t *testing.T, d time.Duration, what string, ok func(string) bool) string {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case l, open := <-s.lines:
			if !open {
				t.Fatalf("the stream ended while waiting for %s", what)
			}
			if ok(l) {
				return l
			}
		case <-timeout:
			t.Fatalf("no %s within %s", what, d)
		}
	}
}

// awaitUpdate waits until s delivers a line containing want, calling again (another change whose
// line also contains want) every second meanwhile: an SSE stream answers 200 before its
// subscription is registered (gqlgen's transport flushes first), so a change made right after
// the open can come before the subscription and never reach it.
func (s *sseStream) awaitUpdate(t *testing.T, d time.Duration, want string, again func()) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case l, open := <-s.lines:
			if !open {
				t.Fatalf("the stream ended while waiting for %q", want)
			}
			if strings.Contains(l, want) {
				return
			}
		case <-tick.C:
			if time.Now().After(deadline) {
				t.Fatalf("no %q within %s", want, d)
			}
			again()
		}
	}
}

// TestSSEStreamsPerClient: SSE streams count with websockets against
// WS_MAX_CONNECTIONS_PER_CLIENT; one over is 429 RATE_LIMITED, another client is served.
func TestSSEStreamsPerClient(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.WSMaxConnectionsPerClient = 3
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	ts := startServer(t, cfg)
	org := ts.organizer("Streams Org")
	id := ts.publishedEvent(org, "Streamed", 10, 24*time.Hour)
	vars := map[string]any{"id": id}

	const client = "192.0.2.70"
	var open []*sseStream
	for i := range cfg.WSMaxConnectionsPerClient {
		s, status, raw := ts.sseOpen(t, from(client), "", eventUpdatedSub, vars)
		if s == nil {
			t.Fatalf("stream %d within the cap: %d %s", i, status, raw)
		}
		open = append(open, s)
	}
	s, status, raw := ts.sseOpen(t, from(client), "", eventUpdatedSub, vars)
	if s != nil {
		t.Fatalf("a stream over the cap (%d) was opened", cfg.WSMaxConnectionsPerClient)
	}
	var body gqlResponse
	if status != http.StatusTooManyRequests || json.Unmarshal(raw, &body) != nil || body.code() != "RATE_LIMITED" {
		t.Fatalf("the stream over the cap: %d %s", status, raw)
	}
	// Streams and websockets share the cap.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if conn, res, err := ts.wsDial(ctx, from(client)); err == nil {
		conn.CloseNow()
		t.Fatal("a websocket over the cap, beside SSE streams, was opened")
	} else if res == nil || res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the websocket over the cap: %v %v", res, err)
	}
	// Another client is served, and the open streams still deliver.
	if s, status, raw := ts.sseOpen(t, from("192.0.2.71"), "", eventUpdatedSub, vars); s == nil {
		t.Fatalf("another client's stream: %d %s", status, raw)
	}
	renames := 0
	rename := func() {
		renames++
		ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": vars["id"], "t": fmt.Sprintf("Renamed %d", renames)}, nil)
	}
	rename()
	for _, s := range open {
		s.awaitUpdate(t, 10*time.Second, "Renamed", rename)
	}
	// Closing one frees its place.
	open[0].res.Body.Close()
	var last string
	if !testutil.Within(5*time.Second, func() bool {
		s, status, raw := ts.sseOpen(t, from(client), "", eventUpdatedSub, vars)
		last = fmt.Sprintf("%d %s", status, raw)
		return s != nil
	}) {
		t.Fatalf("no place freed by a closed stream: %s", last)
	}
}

// TestSSEStalledReaderIsCut: a client that stops reading its SSE stream while updates pour in is
// disconnected once a write has waited SSE_WRITE_TIMEOUT, instead of holding the server's writer
// (and its connection) for ever.
func TestSSEStalledReaderIsCut(t *testing.T) {
	t.Parallel()
	stalledReaderIsCut(t, "text/event-stream", "SSE stream")
}

// stalledReaderIsCut opens an eventUpdated stream with accept (SSE or multipart), reads up to the
// first update, then stops reading while updates far larger than the sockets hold pour in: the
// server must drop the connection once a write has waited SSE_WRITE_TIMEOUT, and keep serving.
func stalledReaderIsCut(t *testing.T, accept, what string) {
	t.Helper()
	cfg := testConfig(t)
	cfg.SSEWriteTimeout = time.Second
	cfg.QueryMaxAliases = 100
	ts := startServer(t, cfg)
	org := ts.organizer("Stall Org " + what)
	id := ts.publishedEvent(org, "Stalled", 10, 24*time.Hour)
	vars := map[string]any{"id": id}
	ts.mustData(org.Token, `mutation($id: ID!, $d: String!){ updateEvent(id: $id, input: {description: $d}){ id } }`,
		map[string]any{"id": id, "d": strings.Repeat("d", 10_000)}, nil)

	// Each update is about 600 KB of this stream.
	var sel strings.Builder
	for i := range 60 {
		fmt.Fprintf(&sel, " d%d: description", i)
	}
	body, _ := json.Marshal(map[string]any{"query": `subscription($id: ID!){ eventUpdated(id: $id){ title` + sel.String() + ` } }`, "variables": vars})
	c := ts.dialFrom(t, "", 4096)
	req := fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: eventide\r\nContent-Type: application/json\r\nAccept: %s\r\nContent-Length: %d\r\n\r\n%s", accept, len(body), body)
	if _, err := c.conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(c.br, nil)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("%s answer: %v %v", what, res, err)
	}
	// Read up to the first update, so the subscription is known to be in place.
	update := func(title string) {
		ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": id, "t": title}, nil)
	}
	update("first")
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() && !strings.Contains(sc.Text(), "first") {
	}
	// Now stall, and make the server write far more than the sockets hold.
	for i := range 40 {
		update(fmt.Sprintf("update %d", i))
	}
	time.Sleep(3 * cfg.SSEWriteTimeout)
	if !c.closedWithin(15 * time.Second) {
		t.Fatalf("the server still holds the %s of a reader that stalled", what)
	}
	// The server is fine.
	if r := ts.query(t, http.DefaultClient, nil); r.Status != http.StatusOK {
		t.Fatalf("after the stalled reader: %s", r)
	}
}

// TestSSEKeepAlive: an idle SSE stream carries a keep-alive comment every SSE_KEEPALIVE_INTERVAL.
func TestSSEKeepAlive(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.SSEKeepAliveInterval = 200 * time.Millisecond
	ts := startServer(t, cfg)
	org := ts.organizer("Quiet Org")
	id := ts.publishedEvent(org, "Quiet", 10, 24*time.Hour)
	s, status, raw := ts.sseOpen(t, nil, "", eventUpdatedSub, map[string]any{"id": id})
	if s == nil {
		t.Fatalf("SSE: %d %s", status, raw)
	}
	isPing := func(l string) bool { return strings.HasPrefix(l, ":") && len(l) > 1 }
	for range 2 {
		s.waitLine(t, 5*time.Second, "keep-alive comment", isPing)
	}
	// The stream still delivers after its keep-alives.
	ts.mustData(org.Token, `mutation($id: ID!){ updateEvent(id: $id, input: {title: "Awake"}){ id } }`, map[string]any{"id": id}, nil)
	s.waitLine(t, 10*time.Second, "the update", func(l string) bool { return strings.Contains(l, "Awake") })
}

// TestEventSubscribersPerClient: one client address holds at most 1% (100) of the 10 000
// eventUpdated subscribers, so a few addresses cannot fill them; another address still subscribes.
func TestEventSubscribersPerClient(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.ThrottleLimit = 10_000
	ts := startServer(t, cfg)
	org := ts.organizer("Crowd Org")
	id := ts.publishedEvent(org, "Crowded", 10, 24*time.Hour)
	vars := map[string]any{"id": id}
	update := func(title string) {
		ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": id, "t": title}, nil)
	}
	const share = 100
	const client = "192.0.2.80"
	perSocket := cfg.WSMaxSubscriptionsPerConnection
	var sockets []*wsClient
	for n := 0; n < share; n += perSocket {
		c := ts.wsOpen(from(client), nil)
		for i := range min(perSocket, share-n) {
			c.subscribe(fmt.Sprint(n+i), eventUpdatedSub, vars)
		}
		sockets = append(sockets, c)
	}
	// All of them deliver: the share is taken. A subscribe has no acknowledgement, so the update
	// is repeated until every subscription has delivered (one sent at once can beat the last
	// subscriptions to the broker when the store answers fast).
	delivered := make(chan error, len(sockets))
	for n, c := range sockets {
		go func() {
			seen := map[any]bool{}
			for len(seen) < min(perSocket, share-n*perSocket) {
				m, err := c.read()
				if err != nil {
					delivered <- err
					return
				}
				if m["type"] == "ka" || m["type"] == "ping" || m["type"] == "pong" {
					continue
				}
				if m["type"] != "next" || wsErrorCode(m) != "" {
					delivered <- fmt.Errorf("a subscription within the share: %v", m)
					return
				}
				seen[m["id"]] = true
			}
			delivered <- nil
		}()
	}
	for i, done := 0, 0; done < len(sockets); i++ {
		update(fmt.Sprint("one ", i))
		for wait := time.After(200 * time.Millisecond); done < len(sockets); {
			select {
			case err := <-delivered:
				if err != nil {
					t.Fatal(err)
				}
				done++
				continue
			case <-wait:
			}
			break
		}
		if i == 50 && done < len(sockets) {
			t.Fatalf("%d of %d sockets' subscriptions within the share did not all deliver", len(sockets)-done, len(sockets))
		}
	}
	extra := ts.wsOpen(from(client), nil)
	extra.subscribe("over", eventUpdatedSub, vars)
	other := ts.wsOpen(from("192.0.2.81"), nil)
	other.subscribe("1", eventUpdatedSub, vars)
	// The refusal comes at once; the other client's subscription delivers the next updates.
	if m := extra.next(); wsErrorCode(m) != "RATE_LIMITED" || m["id"] != "over" {
		t.Fatalf("subscription %d of one address: %v, want a RATE_LIMITED refusal", share+1, m)
	}
	got := make(chan map[string]any, 1)
	go func() { got <- other.next() }()
	for i := 0; ; i++ {
		update(fmt.Sprint("two ", i))
		select {
		case m := <-got:
			if m["type"] != "next" || wsErrorCode(m) != "" {
				t.Fatalf("another address's subscription: %v", m)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if i == 50 {
			t.Fatal("another address's subscription delivered nothing")
		}
	}
}
