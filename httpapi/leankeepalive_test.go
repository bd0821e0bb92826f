package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestKeepAliveWheel: the ring holds exactly the sockets in it, deals sockets that join together
// over three quarters of a turn (none visited in the first quarter), visits each once a turn, and
// lets go of those that left.
func TestKeepAliveWheel(t *testing.T) {
	visits := map[*leanConn]int{}
	w := &keepAliveWheel{interval: time.Minute, visit: func(c *leanConn) { visits[c]++ }}
	const n = 960
	conns := make([]*leanConn, n)
	for i := range conns {
		conns[i] = &leanConn{wheelSlot: -1, wheelPos: -1}
		w.add(conns[i])
		w.add(conns[i]) // a second add leaves it where it is
	}
	if w.len() != n {
		t.Fatalf("ring holds %d sockets, want %d", w.len(), n)
	}
	most := 0
	for _, s := range w.slots {
		most = max(most, len(s))
	}
	if want := n/(wheelSlots-wheelSlots/4) + 1; most > want {
		t.Errorf("a slot holds %d of %d sockets, want at most %d (spread over 3/4 of a turn)", most, n, want)
	}
	for range wheelSlots / 4 {
		w.turn()
	}
	if len(visits) != 0 {
		t.Fatalf("%d sockets visited in the first quarter of a turn", len(visits))
	}
	for range wheelSlots - wheelSlots/4 {
		w.turn()
	}
	for i, c := range conns {
		if visits[c] != 1 {
			t.Fatalf("socket %d visited %d times in a turn, want 1", i, visits[c])
		}
	}

	for _, c := range conns[:n/2] {
		w.remove(c)
		w.remove(c) // a second remove is a no-op
	}
	clear(visits)
	for range wheelSlots {
		w.turn()
	}
	if w.len() != n/2 || len(visits) != n/2 {
		t.Fatalf("after half left: ring %d, visited %d, want %d", w.len(), len(visits), n/2)
	}
	for _, c := range conns[:n/2] {
		if visits[c] != 0 {
			t.Fatal("a socket that left was visited")
		}
	}
	for _, c := range conns[n/2:] {
		w.remove(c)
	}
	held := 0
	for _, s := range w.slots {
		held += len(s)
		for _, c := range s[:cap(s)] {
			if c != nil {
				t.Fatal("an empty slot still points to a socket")
			}
		}
	}
	if w.len() != 0 || held != 0 {
		t.Fatalf("all left: ring %d, slots hold %d", w.len(), held)
	}
	for _, c := range w.batch[:cap(w.batch)] {
		if c != nil {
			t.Fatal("the visit batch still points to a socket")
		}
	}
}

// TestLeanKeepAlive: over real sockets, a graphql-transport-ws peer that answers the pings stays
// open, one that stops answering is closed by the server, and the wheel is empty once both are
// gone.
func TestLeanKeepAlive(t *testing.T) {
	const interval = 100 * time.Millisecond
	ls := NewLeanSockets(nil)
	defer ls.Stop()
	tr := &leanTransport{sockets: ls, keepAlive: interval, initTimeout: 5 * time.Second, writeTimeout: 5 * time.Second}
	srv := httptest.NewServer(holdStreams(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.Do(w, r, nil)
	})))
	defer srv.Close()

	dial := func() *websocket.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"),
			&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"connection_init"}`)); err != nil {
			t.Fatal(err)
		}
		if _, b, err := c.Read(ctx); err != nil || !strings.Contains(string(b), "connection_ack") {
			t.Fatalf("init: %s %v", b, err)
		}
		return c
	}
	// read returns the pings the peer saw until ctx ends or the socket is closed (closed: true);
	// it answers them while answer says so.
	read := func(ctx context.Context, c *websocket.Conn, answer func() bool) (pings int, closed bool) {
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return pings, ctx.Err() == nil
			}
			if string(b) != `{"type":"ping"}` {
				t.Errorf("unexpected message %s", b)
				continue
			}
			pings++
			if answer() {
				if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"pong"}`)); err != nil {
					return pings, ctx.Err() == nil
				}
			}
		}
	}

	alive, silent := dial(), dial()
	defer alive.CloseNow()
	defer silent.CloseNow()
	// The silent peer answers its first ping, then no more: closed once no pong came for two
	// intervals (at most three intervals after its last pong), well inside 40 intervals.
	silentDone := make(chan [2]any, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*interval)
		defer cancel()
		answered := false
		p, closed := read(ctx, silent, func() bool { a := !answered; answered = true; return a })
		silentDone <- [2]any{p, closed}
	}()
	aliveDone := make(chan [2]any, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 40*interval)
		defer cancel()
		p, closed := read(ctx, alive, func() bool { return true })
		aliveDone <- [2]any{p, closed}
	}()
	r := <-silentDone
	if closed := r[1].(bool); !closed {
		t.Fatalf("a peer that stopped answering pings is still open after 40 intervals (%d pings)", r[0])
	}
	// The peer sees the close before the event loop's OnClose has taken the socket out of the
	// ring: wait for it, within a bound.
	for deadline := time.Now().Add(10 * time.Second); ls.keepAliveWheel(interval).len() != 1; {
		if time.Now().After(deadline) {
			t.Fatalf("keep-alive ring holds %d sockets with one open, want 1", ls.keepAliveWheel(interval).len())
		}
		time.Sleep(5 * time.Millisecond)
	}
	r = <-aliveDone
	if pings, closed := r[0].(int), r[1].(bool); closed {
		t.Fatalf("the server closed a peer that answered every ping (%d pings)", pings)
	} else if pings < 10 {
		t.Errorf("%d pings in 40 keep-alive intervals, want about 40", pings)
	}
	alive.CloseNow()
	deadline := time.Now().Add(10 * time.Second)
	for ls.keepAliveWheel(interval).len() != 0 || ls.Open() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("keep-alive ring holds %d sockets, %d open, after both closed", ls.keepAliveWheel(interval).len(), ls.Open())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
