package httpapi

import (
	"net"
	"net/netip"
	"testing"
)

func TestClientSlots(t *testing.T) {
	t.Run("Cap", func(t *testing.T) {
		l := newClientSlots(2)
		if !l.acquire("a") || !l.acquire("a") {
			t.Fatal("a slot within the cap was refused")
		}
		if l.acquire("a") {
			t.Fatal("a third slot was given with a cap of 2")
		}
		if !l.acquire("b") {
			t.Fatal("another client was refused")
		}
	})
	t.Run("Bound", func(t *testing.T) {
		// The map holds only clients with a slot: releasing every slot empties it.
		l := newClientSlots(3)
		for i := range 100 {
			key := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()
			l.acquire(key)
			l.acquire(key)
		}
		if got := l.clients(); got != 100 {
			t.Fatalf("clients = %d, want 100", got)
		}
		for i := range 100 {
			key := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()
			l.release(key)
			l.release(key)
		}
		if got := l.clients(); got != 0 {
			t.Fatalf("clients = %d after every slot was released", got)
		}
	})
}

func TestBodyBudget(t *testing.T) {
	b := newBodyBudget(1000)
	if !b.reserve("a", 600) || !b.reserve("a", 400) {
		t.Fatal("bodies within the budget were refused")
	}
	if b.reserve("a", 1) {
		t.Fatal("a byte over the budget was reserved")
	}
	if !b.reserve("b", 1000) {
		t.Fatal("another client was refused")
	}
	b.release("a", 600)
	if !b.reserve("a", 600) {
		t.Fatal("released bytes were not given back")
	}
	b.release("a", 600)
	b.release("a", 400)
	b.release("b", 1000)
	if got := b.clients(); got != 0 {
		t.Fatalf("clients = %d after every body was released", got)
	}
}

// TestLimitListener counts connections per peer address: within the cap they are plain, the next
// cap's worth come marked over it (answered 429 by limitClients), beyond that they are closed at
// accept; a trusted proxy is not counted; closing a connection frees its place.
func TestLimitListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	refused := 0
	cp := newConnectionCap(2, []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")}, func(string) { refused++ })
	l := limitListener{Listener: inner, cap: cp}

	dial := func(from string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	accept := func() net.Conn {
		t.Helper()
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	var held []net.Conn
	for range 2 {
		dial("127.0.0.2")
		c := accept()
		if cc, ok := c.(*countedConn); !ok || cc.over {
			t.Fatalf("a connection within the cap: %#v", c)
		}
		held = append(held, c)
	}
	for range 2 {
		dial("127.0.0.2")
		c := accept()
		if cc, ok := c.(*countedConn); !ok || !cc.over {
			t.Fatalf("a connection over the cap was not marked: %#v", c)
		}
		held = append(held, c)
	}
	// Past twice the cap: closed at accept; Accept returns the next one (another address).
	dial("127.0.0.2")
	dial("127.0.0.3")
	c := accept()
	if cc, ok := c.(*countedConn); !ok || cc.over || peerAddr(c.RemoteAddr()).String() != "127.0.0.3" {
		t.Fatalf("after the refused one, Accept returned %v", c.RemoteAddr())
	}
	if refused != 1 {
		t.Fatalf("refused = %d, want 1", refused)
	}
	// A trusted proxy is not counted.
	for range 5 {
		dial("127.0.0.9")
		if _, ok := accept().(*countedConn); ok {
			t.Fatal("a trusted proxy's connection was counted")
		}
	}
	// Closing frees the place, and the maps empty with the connections.
	held[0].Close()
	held[0].Close() // twice: released once
	dial("127.0.0.2")
	if cc, ok := accept().(*countedConn); !ok || cc.over {
		t.Fatal("a closed connection did not free its place")
	}
	c.Close()
	for _, h := range held {
		h.Close()
	}
	if n := cp.over.clients(); n != 0 {
		t.Fatalf("over-cap map holds %d clients after their connections closed", n)
	}
	if n := cp.open.clients(); n != 1 { // the one accepted after the close is still open
		t.Fatalf("open map holds %d clients, want 1", n)
	}
}
