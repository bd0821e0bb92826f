package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eventide/server/httpapi"
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
