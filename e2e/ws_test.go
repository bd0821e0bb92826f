package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsClient speaks graphql-transport-ws (or legacy graphql-ws) over a real websocket.
type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
	ctx  context.Context
}

func (ts *testServer) dialWS(subprotocol string, initPayload map[string]any) *wsClient {
	ts.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	ts.t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.base, "http")+"/graphql", &websocket.DialOptions{Subprotocols: []string{subprotocol}})
	if err != nil {
		ts.t.Fatalf("dial: %v", err)
	}
	ts.t.Cleanup(func() { _ = conn.CloseNow() })
	c := &wsClient{t: ts.t, conn: conn, ctx: ctx}
	c.send(map[string]any{"type": "connection_init", "payload": initPayload})
	if m := c.next(); m["type"] != "connection_ack" {
		ts.t.Fatalf("init answered %v", m)
	}
	return c
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if err := c.conn.Write(c.ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("ws write: %v", err)
	}
}

// next returns the next message that is not a keepalive or ping.
func (c *wsClient) next() map[string]any {
	c.t.Helper()
	for {
		m, err := c.read()
		if err != nil {
			c.t.Fatalf("ws read: %v", err)
		}
		switch m["type"] {
		case "ka", "ping", "pong":
			if m["type"] == "ping" {
				c.send(map[string]any{"type": "pong"})
			}
			continue
		}
		return m
	}
}

// changeUntilMessage makes change (its i-th time) until the socket has a message that is not a
// keep-alive, and returns it: a subscription's resolver runs after its subscribe message was
// read, so a change made at once can come before it (seen on a loaded machine, on both transports).
func (c *wsClient) changeUntilMessage(change func(i int)) map[string]any {
	c.t.Helper()
	type result struct {
		m   map[string]any
		err error
	}
	got := make(chan result, 1)
	go func() {
		for {
			m, err := c.read()
			if err == nil && (m["type"] == "ka" || m["type"] == "ping" || m["type"] == "pong") {
				continue // a ping goes unanswered: the test ends well before the server's deadline
			}
			got <- result{m, err}
			return
		}
	}()
	for i := 0; ; i++ {
		change(i)
		select {
		case r := <-got:
			if r.err != nil {
				c.t.Fatalf("ws read: %v", r.err)
			}
			return r.m
		case <-time.After(time.Second):
		case <-c.ctx.Done():
			c.t.Fatal("no message came")
		}
	}
}

func (c *wsClient) read() (map[string]any, error) {
	_, b, err := c.conn.Read(c.ctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	c.send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}})
}

func TestEventUpdatedSubscription(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Org")
	user := ts.signUp("Fan")
	id := ts.publishedEvent(org, "Live", 1, 24*time.Hour)

	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(proto, func(t *testing.T) {
			c := ts.dialWS(proto, map[string]any{"Authorization": "Bearer " + user.Token})
			start := "subscribe"
			if proto == "graphql-ws" {
				start = "start"
			}
			c.send(map[string]any{"id": "1", "type": start, "payload": map[string]any{
				"query": `subscription($id: ID!){ eventUpdated(id: $id){ id attendeeCount waitlistCount viewerRegistration { status } } }`, "variables": map[string]any{"id": id},
			}})
			// Subscriptions start asynchronously: retry the change until a message arrives.
			other := ts.signUp("Other " + proto)
			m := c.changeUntilMessage(func(i int) {
				op := `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`
				if i%2 == 1 {
					op = `mutation($id: ID!){ cancelRegistration(eventId: $id){ id } }`
				}
				ts.mustData(other.Token, op, map[string]any{"id": id}, nil)
			})
			if m["type"] != "next" && m["type"] != "data" {
				t.Fatalf("got %v", m)
			}
			b, _ := json.Marshal(m["payload"])
			if !strings.Contains(string(b), `"id":"`+id+`"`) {
				t.Fatalf("payload %s", b)
			}
		})
	}
	t.Run("ErrBadTokenInInit", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.base, "http")+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		b, _ := json.Marshal(map[string]any{"type": "connection_init", "payload": map[string]any{"authToken": "nope"}})
		_ = conn.Write(ctx, websocket.MessageText, b)
		for {
			_, msg, err := conn.Read(ctx)
			if err != nil {
				var ce websocket.CloseError
				if !errors.As(err, &ce) {
					t.Fatalf("not a close: %v", err)
				}
				return // refused with a close frame
			}
			if strings.Contains(string(msg), "connection_ack") {
				t.Fatal("bad token acknowledged")
			}
		}
	})
}

func TestShutdownClosesSubscriptions(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Org")
	id := ts.publishedEvent(org, "Closing", 5, 24*time.Hour)
	c := ts.dialWS("graphql-transport-ws", nil)
	c.subscribe("1", `subscription($id: ID!){ eventUpdated(id: $id){ id } }`, map[string]any{"id": id})
	time.Sleep(100 * time.Millisecond) // let the subscription register

	before := len(ts.logs.String())
	done := make(chan struct{})
	go func() { ts.stop(); close(done) }()

	var closeErr error
	for closeErr == nil {
		m, err := c.read()
		if err != nil {
			closeErr = err
			break
		}
		if m["type"] == "complete" || m["type"] == "ka" || m["type"] == "ping" {
			continue
		}
	}
	// 1001, going away: graphql-ws clients reconnect (to another replica), as they do after 1000
	// only while they hold a subscription.
	if s := websocket.CloseStatus(closeErr); s != websocket.StatusGoingAway {
		t.Fatalf("websocket ended with %v (status %d), want a going-away close frame (1001)", closeErr, s)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown did not finish")
	}
	// A subscription that held shutdown up, or a close that failed, is logged at WARN or ERROR.
	for _, line := range strings.Split(ts.logs.String()[before:], "\n") {
		if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
			t.Errorf("shutdown with an open subscription logged: %s", line)
		}
	}
}
