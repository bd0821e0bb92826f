package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eventide/server/config"
)

// The websocket protocols' edge cases, on both transports (the default, lean, and gqlgen's with
// EVENTIDE_TEST_WS_TRANSPORT=gqlgen, as .ci/run does): graphql-transport-ws's close codes for
// protocol mistakes (gqlgen's transport has its own for some, named where it differs), frames as
// RFC 6455 has them, close handshakes; and the lean transport's own: no goroutine held per idle
// subscriber.

// openLeanSockets is how many lean websockets the server holds open.
func (ts *testServer) openLeanSockets() int64 { return ts.app.LeanSockets().Open() }

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

func TestWebsocketProtocol(t *testing.T) {
	ts := startServer(t, nil)
	lean := ts.app.LeanSockets() != nil
	org := ts.organizer("Org")
	eventID := ts.publishedEvent(org, "Proto", 5, 24*time.Hour)
	sub := map[string]any{"query": `subscription($id: ID!){ eventUpdated(id: $id){ id } }`, "variables": map[string]any{"id": eventID}}

	t.Run("DuplicateIDIs4409", func(t *testing.T) {
		if !lean {
			t.Skip("gqlgen's transport does not refuse an id in use: the second operation takes its place")
		}
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
		want := websocket.StatusCode(4401)
		if !lean {
			want = websocket.StatusProtocolError // gqlgen's: any first message but connection_init
		}
		if code, reason := closeStatus(t, c.conn); code != want {
			t.Fatalf("closed with %d %q, want %d", code, reason, want)
		}
	})
	t.Run("SecondInitIs4429", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		c.send(map[string]any{"type": "connection_init"})
		want := websocket.StatusCode(4429)
		if !lean {
			want = websocket.StatusProtocolError
		}
		if code, reason := closeStatus(t, c.conn); code != want {
			t.Fatalf("closed with %d %q, want %d (4429 Too many initialisation requests on lean)", code, reason, want)
		}
	})
	t.Run("UnknownMessageIs4400", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		c.send(map[string]any{"type": "bogus"})
		want := websocket.StatusCode(4400)
		if !lean {
			want = websocket.StatusNormalClosure // gqlgen's: its read fails, and it ends the socket
		}
		if code, reason := closeStatus(t, c.conn); code != want {
			t.Fatalf("closed with %d %q, want %d", code, reason, want)
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
	t.Run("FragmentedFramesAroundAPing", func(t *testing.T) {
		// Written frame by frame on the TCP connection: a text frame without FIN, a ping, the
		// continuation with FIN. The ping is answered at once, the message reassembled.
		rc := ts.rawFrames(t)
		rc.write(true, opText, []byte(`{"type":"connection_init"}`))
		if op, b := rc.read(); op != opText || !strings.Contains(string(b), "connection_ack") {
			t.Fatalf("init answered %d %s", op, b)
		}
		msg := []byte(`{"id":"q","type":"subscribe","payload":{"query":"{ __typename }"}}`)
		rc.write(false, opText, msg[:20])
		rc.write(true, opPing, []byte("between"))
		rc.write(true, opContinuation, msg[20:])
		var pong, next bool
		for !next {
			op, b := rc.read()
			switch {
			case op == opPong && string(b) == "between":
				pong = true
			case op == opText && strings.Contains(string(b), `"type":"next"`) && strings.Contains(string(b), `"__typename":"Query"`):
				next = true
			case op == opText && strings.Contains(string(b), `"type":"ping"`):
			default:
				t.Fatalf("got frame %d %s", op, b)
			}
		}
		if !pong {
			t.Fatal("the ping between the fragments was not answered before the message's answer")
		}
	})
	t.Run("InvalidUTF8Is1007", func(t *testing.T) {
		if !lean {
			t.Skip("gqlgen's transport (gorilla/websocket) does not check a text message's UTF-8")
		}
		// RFC 6455 8.1: a text message that is not UTF-8 fails the connection with 1007.
		rc := ts.rawFrames(t)
		rc.write(true, opText, []byte{'{', 0xff, 0xfe, '}'})
		op, b := rc.read()
		if op != opClose || len(b) < 2 || binary.BigEndian.Uint16(b) != 1007 {
			t.Fatalf("got frame %d % x, want a close frame with 1007", op, b)
		}
	})
	t.Run("UnmaskedFrameIs1002", func(t *testing.T) {
		if !lean {
			t.Skip("gqlgen's transport closes without a close frame")
		}
		rc := ts.rawFrames(t)
		if _, err := rc.conn.Write([]byte{0x81, 0x02, '{', '}'}); err != nil { // a client frame must be masked
			t.Fatal(err)
		}
		op, b := rc.read()
		if op != opClose || len(b) < 2 || binary.BigEndian.Uint16(b) != 1002 {
			t.Fatalf("got frame %d % x, want a close frame with 1002", op, b)
		}
	})
	t.Run("PingPong", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		// The protocol's ping: a pong (with the ping's payload on lean; gqlgen's has none).
		c.send(map[string]any{"type": "ping", "payload": map[string]any{"n": 1}})
		for {
			m, err := c.read()
			if err != nil {
				t.Fatal(err)
			}
			if m["type"] == "ping" {
				continue
			}
			if m["type"] != "pong" {
				t.Fatalf("ping answered %v", m)
			}
			if lean && fmt.Sprint(m["payload"]) != "map[n:1]" {
				t.Fatalf("pong payload %v, want the ping's", m["payload"])
			}
			break
		}
		// RFC 6455's ping frame: a pong frame (coder/websocket's Ping waits for it, with a reader).
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		defer cancel()
		go func() { // a pong frame is read by a Read
			for {
				if _, _, err := c.conn.Read(ctx); err != nil {
					return
				}
			}
		}()
		if err := c.conn.Ping(ctx); err != nil {
			t.Fatalf("websocket ping: %v", err)
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
	// live subscribes c to the event's updates with id and start, and waits for its first update.
	live := func(c *wsClient, id, start string) {
		c.t.Helper()
		c.send(map[string]any{"id": id, "type": start, "payload": sub})
		title := 0
		if m := c.changeUntilMessage(func(int) { title++; ts.describe(org, eventID, title) }); m["id"] != id {
			c.t.Fatalf("subscribed, got %v", m)
		}
	}
	t.Run("CompleteEndsTheSubscription", func(t *testing.T) {
		c := ts.rawWS(t, "graphql-transport-ws")
		c.initWS()
		live(c, "s", "subscribe")
		c.send(map[string]any{"id": "s", "type": "complete"})
		for m := c.next(); m["type"] != "complete" || m["id"] != "s"; m = c.next() {
			if m["type"] != "next" { // an update may come before
				t.Fatalf("after complete: %v", m)
			}
		}
		// The id is free again.
		c.send(map[string]any{"id": "s", "type": "subscribe", "payload": map[string]any{"query": "{ __typename }"}})
		if m := c.next(); m["type"] != "next" || m["id"] != "s" {
			t.Fatalf("a new operation with the id: %v", m)
		}
	})
	t.Run("CompleteRightAfterSubscribe", func(t *testing.T) {
		if !lean {
			// gqlgen's transport runs the resolver on the subscription's goroutine, which can
			// see the complete's cancellation first: the client then gets INTERNAL_SERVER_ERROR.
			t.Skip("gqlgen's transport races a complete against the subscription's start")
		}
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
		live(c, "s", "start")
		c.send(map[string]any{"id": "s", "type": "stop"})
		for m := c.next(); m["type"] != "complete" || m["id"] != "s"; m = c.next() {
			if m["type"] != "data" {
				t.Fatalf("after stop: %v", m)
			}
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

// RFC 6455 opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// frameConn is a websocket written and read frame by frame on its TCP connection.
type frameConn struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// rawFrames upgrades a TCP connection to /graphql with graphql-transport-ws by hand.
func (ts *testServer) rawFrames(t *testing.T) *frameConn {
	t.Helper()
	addr := strings.TrimPrefix(ts.base, "http://")
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "GET /graphql HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"+
		"Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n", addr)
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("upgrade answered %d %v", res.StatusCode, res.Header)
	}
	return &frameConn{t: t, conn: conn, r: r}
}

// write sends one masked client frame.
func (c *frameConn) write(fin bool, op byte, payload []byte) {
	c.t.Helper()
	b0 := op
	if fin {
		b0 |= 0x80
	}
	frame := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		frame = append(frame, 0x80|byte(n))
	case n <= 0xFFFF:
		frame = append(frame, 0x80|126)
		frame = binary.BigEndian.AppendUint16(frame, uint16(n))
	default:
		frame = append(frame, 0x80|127)
		frame = binary.BigEndian.AppendUint64(frame, uint64(n))
	}
	mask := [4]byte{0x12, 0x34, 0x56, 0x78}
	frame = append(frame, mask[:]...)
	for i, p := range payload {
		frame = append(frame, p^mask[i%4])
	}
	if _, err := c.conn.Write(frame); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next server frame (unmasked, whole: the server does not fragment).
func (c *frameConn) read() (op byte, payload []byte) {
	c.t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(c.r, h[:]); err != nil {
		c.t.Fatal(err)
	}
	if h[0]&0x80 == 0 || h[1]&0x80 != 0 {
		c.t.Fatalf("frame header %x: want FIN and no mask from the server", h)
	}
	n := uint64(h[1] & 0x7F)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			c.t.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.r, b[:]); err != nil {
			c.t.Fatal(err)
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(c.r, payload); err != nil {
		c.t.Fatal(err)
	}
	return h[0] & 0x0F, payload
}
