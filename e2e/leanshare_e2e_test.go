package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eventide/server/config"
	"github.com/eventide/server/httpapi"
	"github.com/eventide/server/internal/testutil"
)

// leanSubscriber is one socket of TestLeanSharedSubscriptions: its protocol's start message and
// its operation id.
type leanSubscriber struct {
	c     *wsClient
	start string
	id    string
}

// subscribeInPlace subscribes and returns once the subscription is in place: a connection's
// messages are handled in order, so once a query sent after it is answered, it is.
func (s leanSubscriber) subscribeInPlace(query string, vars map[string]any) {
	s.c.t.Helper()
	s.c.send(map[string]any{"id": s.id, "type": s.start, "payload": map[string]any{"query": query, "variables": vars}})
	s.c.send(map[string]any{"id": "q", "type": s.start, "payload": map[string]any{"query": "{ __typename }"}})
	for m := s.c.next(); m["type"] != "complete" || m["id"] != "q"; m = s.c.next() {
		if m["id"] != "q" {
			s.c.t.Fatalf("before its first update, subscription %s answered %v", s.id, m)
		}
	}
}

// nextPayload reads the subscription's next response (graphql-ws: data) and returns its payload
// as sent.
func (s leanSubscriber) nextPayload() string {
	s.c.t.Helper()
	for {
		_, b, err := s.c.conn.Read(s.c.ctx)
		if err != nil {
			s.c.t.Fatalf("subscription %s: %v", s.id, err)
		}
		var m struct {
			Type    string          `json:"type"`
			ID      string          `json:"id"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			s.c.t.Fatal(err)
		}
		switch m.Type {
		case "ka", "ping", "pong":
			continue
		case "next", "data":
			if m.ID != s.id {
				s.c.t.Fatalf("a response for %q on subscription %s's socket", m.ID, s.id)
			}
			return string(m.Payload)
		}
		s.c.t.Fatalf("subscription %s: %s, want its next response", s.id, b)
	}
}

// Anonymous subscribers of the same eventUpdated document and variables share one operation:
// each event runs the executor once for all of them and every socket gets the same payload with
// its own id; another document, or a signed-in viewer, runs its own. Each subscriber still ends
// on its own, and a shared operation goes with its last subscriber (the bound of the transport's
// map of them).
func TestLeanSharedSubscriptions(t *testing.T) {
	ts := startLean(t)
	lean := ts.app.LeanSockets()
	org := ts.organizer("Org")
	user := ts.signUp("Fan")
	id := ts.publishedEvent(org, "Shared", 5, 24*time.Hour)
	vars := map[string]any{"id": id}
	const doc = `subscription($id: ID!){ eventUpdated(id: $id){ id title } }`
	const other = `subscription($id: ID!){ eventUpdated(id: $id){ id title attendeeCount } }`

	var shared []leanSubscriber
	for i := range 6 {
		proto, start := "graphql-transport-ws", "subscribe"
		if i%3 == 2 {
			proto, start = "graphql-ws", "start"
		}
		c := ts.rawWS(t, proto)
		c.initWS()
		s := leanSubscriber{c: c, start: start, id: fmt.Sprint("s", i)}
		s.subscribeInPlace(doc, vars)
		if i == 2 {
			// graphql-ws lets a client reuse an id: the new subscriber replaces the old one,
			// which must leave its operation (the socket no longer knows it to end it).
			s.subscribeInPlace(doc, vars)
		}
		shared = append(shared, s)
	}
	var second []leanSubscriber
	for i := range 2 {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		s := leanSubscriber{c: c, start: "subscribe", id: fmt.Sprint("o", i)}
		s.subscribeInPlace(other, vars)
		second = append(second, s)
	}
	signed := leanSubscriber{c: ts.wsOpen(nil, map[string]any{"Authorization": "Bearer " + user.Token}), start: "subscribe", id: "u"}
	signed.subscribeInPlace(doc, vars)

	if n := lean.SharedOperations(); n != 2 {
		t.Fatalf("%d shared operations for two documents' anonymous subscribers, want 2", n)
	}
	// The metrics count subscribers, shared or not.
	if n := sumOf(ts.metrics(), "eventide_open_subscriptions", "transport", httpapi.TransportWebsocket); n != 9 {
		t.Fatalf("eventide_open_subscriptions{transport=ws} = %v with 9 subscribers", n)
	}
	update := func(title string) {
		ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": id, "t": title}, nil)
	}
	// every subscriber reads its update, then the executions are counted: the updates were run
	// before they were sent.
	readAll := func(title string, subs ...leanSubscriber) {
		t.Helper()
		var first string
		for i, s := range subs {
			p := s.nextPayload()
			if i == 0 {
				first = p
			} else if p != first {
				t.Fatalf("subscriber %s got %s, subscriber %s %s: a shared response differs", s.id, p, subs[0].id, first)
			}
		}
		var resp struct {
			Data struct {
				EventUpdated struct{ Title string } `json:"eventUpdated"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(first), &resp); err != nil || resp.Data.EventUpdated.Title != title {
			t.Fatalf("update %q delivered %s", title, first)
		}
	}

	before := lean.Executions()
	update("one")
	readAll("one", shared...)
	readAll("one", second...)
	readAll("one", signed)
	// 6 + 2 + 1 subscribers, 3 executions: one per shared operation and the signed-in viewer's own.
	if n := lean.Executions() - before; n != 3 {
		t.Fatalf("one event ran the executor %d times for two shared operations and one signed-in subscriber, want 3", n)
	}

	// One subscriber leaves: it completes, the others keep their operation.
	shared[0].c.send(map[string]any{"id": shared[0].id, "type": "complete"})
	for m := shared[0].c.next(); m["type"] != "complete"; m = shared[0].c.next() {
		if m["type"] != "next" { // an update may have been on its way
			t.Fatalf("subscription %s ended with %v", shared[0].id, m)
		}
	}
	// The second document's subscribers leave: its operation goes with the last one.
	for _, s := range second {
		s.c.send(map[string]any{"id": s.id, "type": "complete"})
		if m := s.c.next(); m["type"] != "complete" || m["id"] != s.id {
			t.Fatalf("subscription %s answered %v to its complete", s.id, m)
		}
	}
	if n := lean.SharedOperations(); n != 1 {
		t.Fatalf("%d shared operations once one document has no subscriber, want 1", n)
	}
	m := ts.metrics()
	if n := sumOf(m, "eventide_open_subscriptions", "transport", httpapi.TransportWebsocket); n != 6 {
		t.Fatalf("eventide_open_subscriptions{transport=ws} = %v with 6 subscribers left", n)
	}
	// Ended: s0, the two of the second document, and the one s2 replaced.
	if n := sumOf(m, "eventide_graphql_operations_total", "type", "subscription"); n != 4 {
		t.Fatalf("eventide_graphql_operations_total{type=subscription} = %v after 4 subscribers ended, want 4", n)
	}
	before = lean.Executions()
	update("two")
	readAll("two", shared[1:]...)
	readAll("two", signed)
	if n := lean.Executions() - before; n != 2 {
		t.Fatalf("one event ran the executor %d times for one shared operation and one signed-in subscriber, want 2", n)
	}

	// The sockets close: the last one takes the operation with it.
	for _, s := range shared[1:] {
		_ = s.c.conn.Close(websocket.StatusNormalClosure, "")
	}
	deadline := time.Now().Add(10 * time.Second)
	for lean.SharedOperations() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d shared operations held after every subscriber's socket closed", lean.SharedOperations())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ssePayload reads the stream's next SSE "next" event and returns its data as sent.
func (s *rawStream) ssePayload(t *testing.T) string {
	t.Helper()
	for l := s.line(t); l != "event: next"; l = s.line(t) {
		if l == "event: complete" {
			t.Fatal("the SSE stream completed, want its next event")
		}
	}
	l := s.line(t)
	data, ok := strings.CutPrefix(l, "data: ")
	if !ok {
		t.Fatalf("an SSE next event's line %q, want its data", l)
	}
	return data
}

// partPayload reads the stream's next multipart part that carries a payload, and returns the
// payload as sent.
func (s *rawStream) partPayload(t *testing.T) string {
	t.Helper()
	for {
		l := s.line(t)
		if l == "--graphql--" {
			t.Fatal("the multipart stream closed, want its next part")
		}
		if p, ok := strings.CutPrefix(l, `{"payload":`); ok {
			return strings.TrimSuffix(p, "}")
		}
	}
}

// TestLeanSharedStreams: anonymous SSE and multipart eventUpdated streams join the operation that
// the websocket subscribers of the same document and variables share: one execution per event for
// all of them, each stream getting the same payload framed for its transport (an SSE "next"
// event, a multipart part), each subscriber counted open on its own transport. A signed-in stream
// runs its own operation. A stream whose client closes leaves the operation, which goes with its
// last member, websocket or stream.
func TestLeanSharedStreams(t *testing.T) {
	cfg := testConfig(t)
	cfg.WSTransport = config.WSTransportLean
	ts := startServer(t, cfg)
	lean := ts.app.LeanSockets()
	org := ts.organizer("Org")
	user := ts.signUp("Fan")
	id := ts.publishedEvent(org, "Shared streams", 5, 24*time.Hour)
	vars := map[string]any{"id": id}
	const sseN, partN, wsN = 3, 3, 3

	// The websockets' Host: the calendar links in a response are made of it, so it is part of
	// what subscribers must share.
	host := rawStreamOpts{host: strings.TrimPrefix(ts.base, "http://")}
	var sse, parts []*rawStream
	for range sseN {
		sse = append(sse, ts.openRawStreamWith(t, host, "text/event-stream", "192.0.2.1", eventUpdatedSub, vars))
	}
	for range partN {
		parts = append(parts, ts.openRawStreamWith(t, host, apolloClientSubAccept, "192.0.2.1", eventUpdatedSub, vars))
	}
	var sockets []leanSubscriber
	for i := range wsN {
		proto, start := "graphql-transport-ws", "subscribe"
		if i == wsN-1 {
			proto, start = "graphql-ws", "start"
		}
		c := ts.rawWS(t, proto)
		c.initWS()
		s := leanSubscriber{c: c, start: start, id: fmt.Sprint("s", i)}
		s.subscribeInPlace(eventUpdatedSub, vars)
		sockets = append(sockets, s)
	}
	signedIn := host
	signedIn.token = user.Token
	signed := ts.openRawStreamWith(t, signedIn, "text/event-stream", "192.0.2.1", eventUpdatedSub, vars)
	// A stream is counted once on the event loop, just after its first bytes (its subscription is
	// in place before them).
	testutil.Eventually(t, 5*time.Second, "the streams on the event loop", func() bool {
		return lean.Streams() == sseN+partN+1
	})
	if n := lean.SharedOperations(); n != 1 {
		t.Fatalf("%d shared operations for one document's anonymous websocket, SSE and multipart subscribers, want 1", n)
	}
	open := func(want map[string]float64) {
		t.Helper()
		m := ts.metrics()
		for label, n := range want {
			if got := sumOf(m, "eventide_open_subscriptions", "transport", label); got != n {
				t.Fatalf("eventide_open_subscriptions{transport=%s} = %v, want %v", label, got, n)
			}
		}
	}
	open(map[string]float64{httpapi.TransportSSE: sseN + 1, httpapi.TransportMultipart: partN, httpapi.TransportWebsocket: wsN})

	update := func(title string) {
		ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": id, "t": title}, nil)
	}
	// Every subscriber reads the update, each framed for its transport, the same payload bytes in
	// each frame; then the executions are counted (they ran before they were sent).
	readAll := func(title string, sse, parts []*rawStream, sockets []leanSubscriber) {
		t.Helper()
		type got struct{ who, payload string }
		var all []got
		for i, s := range sockets {
			all = append(all, got{fmt.Sprint("websocket ", i), s.nextPayload()})
		}
		for i, s := range sse {
			all = append(all, got{fmt.Sprint("SSE stream ", i), s.ssePayload(t)})
		}
		for i, s := range parts {
			all = append(all, got{fmt.Sprint("multipart stream ", i), s.partPayload(t)})
		}
		for _, g := range all[1:] {
			if g.payload != all[0].payload {
				t.Fatalf("%s got %s, %s %s: a shared response differs", g.who, g.payload, all[0].who, all[0].payload)
			}
		}
		var resp struct {
			Data struct {
				EventUpdated struct{ Title string } `json:"eventUpdated"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(all[0].payload), &resp); err != nil || resp.Data.EventUpdated.Title != title {
			t.Fatalf("update %q delivered %s", title, all[0].payload)
		}
	}

	before := lean.Executions()
	update("one")
	readAll("one", sse, parts, sockets)
	if p := signed.ssePayload(t); !strings.Contains(p, `"one"`) {
		t.Fatalf("the signed-in stream got %s", p)
	}
	// 9 anonymous subscribers on three transports and one signed-in: the shared operation's
	// execution and the signed-in viewer's own.
	if n := lean.Executions() - before; n != 2 {
		t.Fatalf("one event ran the executor %d times for one shared operation and one signed-in stream, want 2", n)
	}

	// One SSE and one multipart client close their connection: they leave, the others keep the
	// operation.
	_ = sse[0].c.conn.Close()
	_ = parts[0].c.conn.Close()
	testutil.Eventually(t, 5*time.Second, "the closed streams gone", func() bool {
		return lean.Streams() == sseN+partN-1
	})
	open(map[string]float64{httpapi.TransportSSE: sseN, httpapi.TransportMultipart: partN - 1, httpapi.TransportWebsocket: wsN})
	if n := lean.SharedOperations(); n != 1 {
		t.Fatalf("%d shared operations after two streams left, want 1", n)
	}
	before = lean.Executions()
	update("two")
	readAll("two", sse[1:], parts[1:], sockets)
	signed.ssePayload(t)
	if n := lean.Executions() - before; n != 2 {
		t.Fatalf("one event ran the executor %d times after two streams left, want 2", n)
	}

	// The websockets go, then the streams: the last stream takes the operation with it.
	for _, s := range sockets {
		_ = s.c.conn.Close(websocket.StatusNormalClosure, "")
	}
	testutil.Eventually(t, 5*time.Second, "the websockets' members gone", func() bool {
		return sumOf(ts.metrics(), "eventide_open_subscriptions", "transport", httpapi.TransportWebsocket) == 0
	})
	if n := lean.SharedOperations(); n != 1 {
		t.Fatalf("%d shared operations with only streams left, want 1", n)
	}
	for _, s := range append(append(sse[1:], parts[1:]...), signed) {
		_ = s.c.conn.Close()
	}
	testutil.Eventually(t, 10*time.Second, "every stream and the shared operation gone", func() bool {
		return lean.Streams() == 0 && lean.SharedOperations() == 0
	})
	open(map[string]float64{httpapi.TransportSSE: 0, httpapi.TransportMultipart: 0, httpapi.TransportWebsocket: 0})
}

// TestLeanSharedStreamSlowMember: a stream that stops reading while large updates pour in is
// dropped from the shared operation alone — as a websocket member is — and its stream ends with
// its complete after what waits for it (SSE's "event: complete", multipart's closing delimiter);
// the subscriber that reads gets every update.
func TestLeanSharedStreamSlowMember(t *testing.T) {
	cfg := testConfig(t)
	cfg.WSTransport = config.WSTransportLean
	cfg.SSEWriteTimeout = time.Minute // only the drop acts here
	cfg.QueryMaxAliases = 100
	ts := startServer(t, cfg)
	lean := ts.app.LeanSockets()
	org := ts.organizer("Slow Streams Org")
	id := ts.publishedEvent(org, "Slow streams", 10, 24*time.Hour)
	ts.mustData(org.Token, `mutation($id: ID!, $d: String!){ updateEvent(id: $id, input: {description: $d}){ id } }`,
		map[string]any{"id": id, "d": strings.Repeat("d", 10_000)}, nil)
	// Each update is about 600 KB of each stream.
	var sel strings.Builder
	for i := range 60 {
		fmt.Fprintf(&sel, " d%d: description", i)
	}
	query := `subscription($id: ID!){ eventUpdated(id: $id){ title` + sel.String() + ` } }`
	vars := map[string]any{"id": id}

	reader := ts.openRawStream(t, "text/event-stream", "192.0.2.1", query, vars)
	small := rawStreamOpts{rcvbuf: 4096}
	slowSSE := ts.openRawStreamWith(t, small, "text/event-stream", "192.0.2.1", query, vars)
	slowPart := ts.openRawStreamWith(t, small, apolloClientSubAccept, "192.0.2.1", query, vars)
	testutil.Eventually(t, 5*time.Second, "the streams on the event loop", func() bool { return lean.Streams() == 3 })
	if n := lean.SharedOperations(); n != 1 {
		t.Fatalf("%d shared operations, want 1", n)
	}
	const updates = 20 // 12 MB for each stream: far more than the kernel's buffers hold
	got := make(chan error, 1)
	go func() {
		defer close(got)
		for i := 0; i < updates; {
			l, err := reader.body.ReadString('\n')
			switch {
			case err != nil:
				got <- fmt.Errorf("after %d updates: %v", i, err)
				return
			case l == "event: complete\n":
				got <- fmt.Errorf("completed after %d updates", i)
				return
			case strings.HasPrefix(l, "data: "):
				i++
			}
		}
	}()
	_ = reader.c.conn.SetReadDeadline(time.Now().Add(time.Minute))
	for i := range updates {
		ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": id, "t": fmt.Sprint("update ", i)}, nil)
	}
	if err := <-got; err != nil {
		t.Fatalf("the stream that reads: %v", err)
	}
	if n := lean.SlowDropped(); n != 2 {
		t.Fatalf("%d members dropped for falling behind, want the two stalled streams", n)
	}
	if n := lean.SharedOperations(); n != 1 {
		t.Fatalf("%d shared operations after the slow members were dropped, want the reader's", n)
	}
	// The stalled streams end with their complete after what waited for them, then the
	// connection closes.
	for _, c := range []struct {
		name     string
		s        *rawStream
		next     func(string) bool
		complete string
	}{
		{"SSE", slowSSE, func(l string) bool { return l == "event: next" }, "event: complete"},
		{"multipart", slowPart, func(l string) bool { return strings.HasPrefix(l, `{"payload":`) }, "--graphql--"},
	} {
		n := 0
		for l := c.s.line(t); l != c.complete; l = c.s.line(t) {
			if c.next(l) {
				n++
			}
		}
		if n >= updates {
			t.Fatalf("the stalled %s stream got all %d updates: it was not dropped", c.name, n)
		}
		t.Logf("the stalled %s stream got %d of %d updates, then its complete", c.name, n, updates)
		if !c.s.c.closedWithin(5 * time.Second) {
			t.Fatalf("the stalled %s stream's connection is still open after its complete", c.name)
		}
	}
	_ = reader.c.conn.Close()
	testutil.Eventually(t, 10*time.Second, "every stream and the shared operation gone", func() bool {
		return lean.Streams() == 0 && lean.SharedOperations() == 0
	})
}

// TestLeanSharedStreamRefused: a stream refused by the shared operation's resolver — its address
// holds its share (1%) of the eventUpdated subscribers — gets the error its own operation would
// have answered, then its complete, and ends; the members keep the operation.
func TestLeanSharedStreamRefused(t *testing.T) {
	cfg := testConfig(t)
	cfg.WSTransport = config.WSTransportLean
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.WSMaxConnectionsPerClient = 1000
	cfg.HTTPMaxConnectionsPerClient = 1000
	cfg.ThrottleLimit = 1_000_000
	ts := startServer(t, cfg)
	lean := ts.app.LeanSockets()
	org := ts.organizer("Refused Streams Org")
	id := ts.publishedEvent(org, "Refused", 10, 24*time.Hour)
	vars := map[string]any{"id": id}
	const share = 100 // maxEventSubscribers / 100
	var members []*rawStream
	for i := range share {
		accept := "text/event-stream"
		if i%2 == 1 {
			accept = apolloClientSubAccept
		}
		members = append(members, ts.openRawStream(t, accept, "192.0.2.7", eventUpdatedSub, vars))
	}
	testutil.Eventually(t, 5*time.Second, "the members on the event loop", func() bool { return lean.Streams() == share })
	if n := lean.SharedOperations(); n != 1 {
		t.Fatalf("%d shared operations, want 1", n)
	}
	for _, c := range []struct {
		name, accept, complete string
		payload                func(*rawStream, *testing.T) string
	}{
		{"SSE", "text/event-stream", "event: complete", (*rawStream).ssePayload},
		{"multipart", apolloClientSubAccept, "--graphql--", (*rawStream).partPayload},
	} {
		s := ts.openRawStream(t, c.accept, "192.0.2.7", eventUpdatedSub, vars)
		if p := c.payload(s, t); !strings.Contains(p, `"code":"RATE_LIMITED"`) || !strings.Contains(p, "eventUpdated") {
			t.Fatalf("the %s stream over its address's share answered %s, want RATE_LIMITED at eventUpdated", c.name, p)
		}
		s.until(t, func(l string) bool { return l == c.complete })
		if !s.c.closedWithin(5 * time.Second) {
			t.Fatalf("the refused %s stream's connection is still open after its complete", c.name)
		}
	}
	testutil.Eventually(t, 5*time.Second, "the refused streams gone", func() bool { return lean.Streams() == share })
	if n := sumOf(ts.metrics(), "eventide_open_subscriptions", "transport", httpapi.TransportSSE) +
		sumOf(ts.metrics(), "eventide_open_subscriptions", "transport", httpapi.TransportMultipart); n != share {
		t.Fatalf("%v stream subscriptions counted open, want the %d members", n, share)
	}
	ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
		map[string]any{"id": id, "t": "still shared"}, nil)
	for i, s := range members {
		read := s.ssePayload
		if i%2 == 1 {
			read = s.partPayload
		}
		if p := read(t); !strings.Contains(p, "still shared") {
			t.Fatalf("member %d got %s", i, p)
		}
	}
}
