package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eventide/server/config"
)

// The lean websocket transport's own behaviour (WS_TRANSPORT=lean): graphql-transport-ws's
// close codes for protocol mistakes, frames as RFC 6455 has them, and no goroutine held per idle
// subscriber. Every other websocket test runs against both transports (.ci/run).

// openLeanSockets is how many lean websockets the server holds open.
func (ts *testServer) openLeanSockets() int64 { return ts.app.lean.Open() }

func startLean(t *testing.T) *testServer {
	t.Helper()
	cfg := testConfig(t)
	cfg.WSTransport = config.WSTransportLean
	return startServer(t, cfg)
}

// rawWS dials /graphql with subprotocol and no init.
func (ts *testServer) rawWS(t *testing.T, subprotocol string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.base, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{subprotocol}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	return &wsClient{t: t, conn: conn, ctx: ctx}
}

func (c *wsClient) initWS() {
	c.t.Helper()
	c.send(map[string]any{"type": "connection_init"})
	if m := c.next(); m["type"] != "connection_ack" {
		c.t.Fatalf("init answered %v", m)
	}
}

func TestLeanWebsocketProtocol(t *testing.T) {
	ts := startLean(t)
	org := ts.organizer("Org")
	id := ts.publishedEvent(org, "Proto", 5, 24*time.Hour)
	sub := map[string]any{"query": `subscription($id: ID!){ eventUpdated(id: $id){ id } }`, "variables": map[string]any{"id": id}}

	t.Run("DuplicateIDIs4409", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		c.send(map[string]any{"id": "a", "type": "subscribe", "payload": sub})
		c.send(map[string]any{"id": "a", "type": "subscribe", "payload": sub})
		if code, reason := closeStatus(t, c.conn); code != 4409 || !strings.Contains(reason, "a") {
			t.Fatalf("closed with %d %q, want 4409 Subscriber for a already exists", code, reason)
		}
	})
	t.Run("SubscribeBeforeInitIs4401", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.send(map[string]any{"id": "a", "type": "subscribe", "payload": sub})
		if code, _ := closeStatus(t, c.conn); code != 4401 {
			t.Fatalf("closed with %d, want 4401 Unauthorized", code)
		}
	})
	t.Run("SecondInitIs4429", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		c.send(map[string]any{"type": "connection_init"})
		if code, _ := closeStatus(t, c.conn); code != 4429 {
			t.Fatalf("closed with %d, want 4429 Too many initialisation requests", code)
		}
	})
	t.Run("UnknownMessageIs4400", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		c.send(map[string]any{"type": "bogus"})
		if code, _ := closeStatus(t, c.conn); code != 4400 {
			t.Fatalf("closed with %d, want 4400", code)
		}
	})
	t.Run("OversizeMessageIs1009", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		big := fmt.Sprintf(`{"type":"ping","payload":{"pad":%q}}`, strings.Repeat("x", 2<<20))
		_ = c.conn.Write(c.ctx, websocket.MessageText, []byte(big))
		if code, _ := closeStatus(t, c.conn); code != websocket.StatusMessageTooBig {
			t.Fatalf("closed with %d, want 1009", code)
		}
	})
	t.Run("FragmentedMessage", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		msg, _ := json.Marshal(map[string]any{"id": "q", "type": "subscribe", "payload": map[string]any{"query": "{ __typename }"}})
		w, err := c.conn.Writer(c.ctx, websocket.MessageText)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(msg); i += 7 { // one frame per Write: a text frame, then continuations
			if _, err := w.Write(msg[i:min(i+7, len(msg))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		m := c.next()
		b, _ := json.Marshal(m)
		if m["type"] != "next" || m["id"] != "q" || !strings.Contains(string(b), `"__typename":"Query"`) {
			t.Fatalf("the reassembled query was answered %s", b)
		}
		if m := c.next(); m["type"] != "complete" || m["id"] != "q" {
			t.Fatalf("then %v, want complete", m)
		}
	})
	t.Run("CloseHandshake", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		began := time.Now()
		// coder/websocket's Close waits for the peer's close frame and fails without it.
		if err := c.conn.Close(websocket.StatusNormalClosure, "bye"); err != nil {
			t.Fatalf("close handshake: %v", err)
		}
		if d := time.Since(began); d > 2*time.Second {
			t.Fatalf("the close handshake took %v", d)
		}
	})
	t.Run("CompleteEndsTheSubscription", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		c.send(map[string]any{"id": "s", "type": "subscribe", "payload": sub})
		c.send(map[string]any{"id": "s", "type": "complete"})
		if m := c.next(); m["type"] != "complete" || m["id"] != "s" {
			t.Fatalf("after complete: %v", m)
		}
		// The id is free again.
		c.send(map[string]any{"id": "s", "type": "subscribe", "payload": map[string]any{"query": "{ __typename }"}})
		if m := c.next(); m["type"] != "next" || m["id"] != "s" {
			t.Fatalf("a new operation with the id: %v", m)
		}
	})
	t.Run("LegacyStop", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-ws")
		c.initWS()
		c.send(map[string]any{"id": "s", "type": "start", "payload": sub})
		c.send(map[string]any{"id": "s", "type": "stop"})
		if m := c.next(); m["type"] != "complete" || m["id"] != "s" {
			t.Fatalf("after stop: %v", m)
		}
		c.send(map[string]any{"type": "connection_terminate"})
		if code, _ := closeStatus(t, c.conn); code != websocket.StatusNormalClosure {
			t.Fatalf("connection_terminate closed with %d", code)
		}
	})
}

// TestLeanSubscribersHoldNoGoroutine: n idle eventUpdated subscribers hold no goroutine of the
// server (gqlgen's transport holds 4 each), and one change still reaches every one of them.
func TestLeanSubscribersHoldNoGoroutine(t *testing.T) {
	n := 100 // one address's share of the eventUpdated subscribers
	if testing.Short() {
		n = 50
	}
	cfg := testConfig(t)
	cfg.WSTransport = config.WSTransportLean
	cfg.WSMaxConnectionsPerClient = n + 10
	cfg.ThrottleLimit = 100 * n
	ts := startServer(t, cfg)
	org := ts.organizer("Org")
	id := ts.publishedEvent(org, "Crowd", 5, 24*time.Hour)
	user := ts.signUp("Fan")

	// The event loop, its handler pool and the workers are there once the first socket opened,
	// whatever the sockets: warm them up before counting.
	for range 20 {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		c.send(map[string]any{"id": "q", "type": "subscribe", "payload": map[string]any{"query": "{ __typename }"}})
		for m := c.next(); m["type"] != "complete"; m = c.next() {
		}
		_ = c.conn.Close(websocket.StatusNormalClosure, "")
	}
	base := settledGoroutines()
	subs := make([]*wsClient, n)
	for i := range subs {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		c.subscribe("1", `subscription($id: ID!){ eventUpdated(id: $id){ id attendeeCount } }`, map[string]any{"id": id})
		subs[i] = c
	}
	// A connection's messages are handled in order: once a query sent after the subscription is
	// answered, the subscription is in place.
	for _, c := range subs {
		c.send(map[string]any{"id": "q", "type": "subscribe", "payload": map[string]any{"query": "{ __typename }"}})
		for m := c.next(); m["type"] != "complete"; m = c.next() {
		}
	}
	held := settledGoroutines()
	perSub := float64(held-base) / float64(n)
	t.Logf("goroutines %d -> %d with %d idle subscribers: %.3f each", base, held, n, perSub)
	if perSub > 0.05 {
		t.Errorf("%.3f goroutines per idle subscriber, want none\n%s", perSub, goroutineSummary())
	}

	ts.mustData(user.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": id}, nil)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, c := range subs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for {
				_, b, err := c.conn.Read(ctx)
				if err != nil {
					errs <- fmt.Errorf("subscriber %d: %w", i, err)
					return
				}
				if strings.Contains(string(b), `"type":"ping"`) {
					continue
				}
				if !strings.Contains(string(b), `"attendeeCount":1`) {
					errs <- fmt.Errorf("subscriber %d got %s", i, b)
				}
				return
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
