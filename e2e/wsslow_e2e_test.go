package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eventide/server/config"
)

// A websocket reader that stops reading: both transports hold its subscriptions back, so the
// producer drops them (and counts it) while the socket stays open; the lean transport closes a
// socket whose backlog does not empty within WS_WRITE_TIMEOUT with 1013, and one whose backlog
// passes its hard cap at once. TestSecuritySubscriberThatNeverReads (hardening_e2e_test.go) is
// the securityEvents side of the first.

// dialSmallBuffer opens a graphql-transport-ws websocket to ts whose receive buffer is 4 KiB, so
// that what the server sends fills the socket soon once the client stops reading (for a client
// that never reads again: with so small a window, reading a few MB later takes minutes).
func (ts *testServer) dialSmallBuffer(ctx context.Context) (*websocket.Conn, error) {
	dialer := &net.Dialer{}
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.base, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPClient: &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err == nil {
				err = c.(*net.TCPConn).SetReadBuffer(4096)
			}
			return c, err
		}}},
	})
	return conn, err
}

// slowWS is an acknowledged graphql-transport-ws client for 2 minutes, reading messages of any
// size. Its receive buffer is the kernel's default (which grows only as it reads): small next to
// what the slow-reader tests send.
func (ts *testServer) slowWS(t *testing.T) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.base, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	conn.SetReadLimit(-1)
	c := &wsClient{t: t, conn: conn, ctx: ctx}
	c.initWS()
	return c
}

// slowSubs is how many eventUpdated subscriptions the slow client holds on one event: each update
// sends it that many times about 9 KB, so that the server's kernel buffer (up to 4 MiB) fills soon.
const slowSubs = 10

// subscribeSlow subscribes c slowSubs times to id's updates and waits for a query sent after them
// to be answered: the lean transport handles a connection's messages in order, so they are in
// place; gqlgen's starts each on a goroutine, in place soon after (a late one only misses the
// first updates).
func (ts *testServer) subscribeSlow(c *wsClient, id string) {
	c.t.Helper()
	for i := range slowSubs {
		c.subscribe(fmt.Sprint(i), describedSub, map[string]any{"id": id})
	}
	c.send(map[string]any{"id": "q", "type": "subscribe", "payload": map[string]any{"query": "{ __typename }"}})
	for m := c.next(); m["type"] != "complete" || m["id"] != "q"; m = c.next() {
		if m["id"] != "q" {
			c.t.Fatalf("subscribed, got %v", m)
		}
	}
}

// describe sets the event's description to a long text numbered i (about 9 KB on the wire).
func (ts *testServer) describe(org session, id string, i int) {
	ts.mustData(org.Token, `mutation($id: ID!, $d: String!){ updateEvent(id: $id, input: {description: $d}){ id } }`,
		map[string]any{"id": id, "d": fmt.Sprintf("%06d%s", i, strings.Repeat("d", 9000))}, nil)
}

const describedSub = `subscription($id: ID!){ eventUpdated(id: $id){ id description } }`

// TestWebsocketSlowReaderBackpressure: a subscriber that stops reading has its eventUpdated
// subscription dropped by the broker (it gets its "complete" once it reads again), not its
// socket cut; the one that keeps reading gets every update. Both transports.
func TestWebsocketSlowReaderBackpressure(t *testing.T) {
	cfg := testConfig(t)
	cfg.ThrottleLimit = 1 << 20
	cfg.WSWriteTimeout = time.Hour // only backpressure acts here
	ts := startServer(t, cfg)
	org := ts.organizer("Org")
	id := ts.publishedEvent(org, "Busy", 1_000_000, 24*time.Hour)
	vars := map[string]any{"id": id}

	n := 0
	slow := ts.slowWS(t)
	ts.subscribeSlow(slow, id)
	// From here on slow reads nothing.
	reader := ts.rawWS(t, "graphql-transport-ws")
	reader.initWS()
	reader.subscribe("1", describedSub, vars)
	reader.changeUntilMessage(func(int) { ts.describe(org, id, n); n++ })

	// Far more than the kernel's buffers and the lean transport's old 1 MiB cut: 9 KB to the
	// reader, 90 KB to the slow one, each time.
	const updates = 100
	last := fmt.Sprintf("%06d", n+updates-1)
	got := make(chan error, 1)
	go func() {
		for {
			m, err := reader.read()
			switch {
			case err != nil:
				got <- err
				return
			case m["type"] == "complete" || m["type"] == "error":
				got <- fmt.Errorf("the reading subscriber's subscription ended: %v", m)
				return
			case m["type"] == "next" && strings.Contains(fmt.Sprint(m["payload"]), last):
				got <- nil
				return
			}
		}
	}()
	for range updates {
		ts.describe(org, id, n)
		n++
	}
	if err := <-got; err != nil {
		t.Fatalf("the subscriber that reads: %v", err)
	}

	// The slow one's socket is open: what it missed ends with each subscription's complete, and
	// the socket still answers.
	if ts.app.LeanSockets() != nil && ts.openLeanSockets() != 2 {
		t.Fatalf("%d lean sockets open, want both", ts.openLeanSockets())
	}
	nexts := map[any]int{}
	for completed := 0; completed < slowSubs; {
		m, err := slow.read()
		if err != nil {
			t.Fatalf("the slow reader's socket was cut (%d subscriptions completed, updates %v): %v", completed, nexts, err)
		}
		switch {
		case m["type"] == "next":
			nexts[m["id"]]++
		case m["type"] == "complete":
			completed++
			if nexts[m["id"]] >= updates {
				t.Fatalf("subscription %v got all %d updates: it was not held back", m["id"], nexts[m["id"]])
			}
		case m["type"] != "ping" && m["type"] != "pong":
			t.Fatalf("the slow reader got %v", m)
		}
	}
	t.Logf("the slow reader's subscriptions got %v of %d updates, then their complete", nexts, updates)
	// Under lean the anonymous subscriptions share one operation with the reader's: each of the
	// slow reader's was dropped from it, not the operation (the reader got every update).
	if ts.app.LeanSockets() != nil {
		if n := ts.app.LeanSockets().SlowDropped(); n != slowSubs {
			t.Fatalf("%d members dropped from the shared operation, want the slow reader's %d", n, slowSubs)
		}
	}
	slow.send(map[string]any{"type": "ping"})
	for {
		m, err := slow.read()
		if err != nil {
			t.Fatalf("no pong: %v", err)
		}
		if m["type"] == "pong" {
			break
		}
	}
}

// TestLeanSlowReaderTimesOut: a socket whose backlog does not empty within WS_WRITE_TIMEOUT is
// closed with 1013 (try again later), its close frame after what was waiting.
func TestLeanSlowReaderTimesOut(t *testing.T) {
	cfg := testConfig(t)
	cfg.WSTransport = config.WSTransportLean
	cfg.ThrottleLimit = 1 << 20
	cfg.WSWriteTimeout = time.Second
	ts := startServer(t, cfg)
	org := ts.organizer("Org")
	id := ts.publishedEvent(org, "Busy", 1_000_000, 24*time.Hour)

	n := 0
	slow := ts.slowWS(t)
	ts.subscribeSlow(slow, id)
	// Updates until the server gives up on the reader that reads nothing.
	const gaveUp = "websocket: closed a socket whose reader took nothing"
	// The socket is closed once its backlog has not emptied for the write timeout (1 s), however
	// many updates that takes: a fast machine sends hundreds within it. Past the first 200 (far
	// over the kernel's buffers and the 64 KiB mark) the updates are paced, so the loop waits out
	// the timeout instead of counting to a number.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(ts.logs.String(), gaveUp) {
		if time.Now().After(deadline) {
			t.Fatalf("%d updates over 30 s and the slow reader's socket was not closed", n)
		}
		ts.describe(org, id, n)
		n++
		if n > 200 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	code, reason := closeStatus(t, slow.conn)
	if code != 1013 {
		t.Fatalf("closed with %d %q, want 1013", code, reason)
	}
	t.Logf("closed with %d %q after %d updates", code, reason, n)
}

// TestLeanBacklogCap: what is not held back (pongs here) still cannot grow a socket's backlog
// past its cap: the socket is closed, long before the write timeout.
func TestLeanBacklogCap(t *testing.T) {
	cfg := testConfig(t)
	cfg.WSTransport = config.WSTransportLean
	cfg.WSWriteTimeout = time.Hour // only the cap acts here
	ts := startServer(t, cfg)
	c := ts.slowWS(t)
	ping := []byte(fmt.Sprintf(`{"type":"ping","payload":{"pad":%q}}`, strings.Repeat("p", 512<<10)))
	deadline := time.Now().Add(time.Minute)
	sent := 0
	for ts.openLeanSockets() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d pings of 512 KiB unread and the socket is still open", sent)
		}
		if sent < 64 { // 32 MiB of pongs, over any kernel buffer and the cap
			if err := c.conn.Write(c.ctx, websocket.MessageText, ping); err != nil {
				break // closed under the write
			}
			sent++
			continue
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		_, _, err := c.conn.Read(c.ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) {
			t.Fatalf("closed with %d %q: want the socket cut, not the write timeout's close", ce.Code, ce.Reason)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatal("the socket is still open")
		}
		break
	}
	if !strings.Contains(ts.logs.String(), "websocket: closed a socket whose reader fell behind") {
		t.Fatalf("the cut was not logged:\n%s", ts.logs.String())
	}
}
