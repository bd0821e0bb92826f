package server

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestDrainListener: stop closes the listener and waits for every accepted connection to be
// closed; one still open is counted when the wait ends.
func TestDrainListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := newDrainListener(ln)
	var server []net.Conn
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		server = append(server, s)
	}
	_ = server[0].Close()
	if _, err := server[1].Write([]byte("HTTP/1.1 200 OK\r\n")); err != nil { // answered, still open
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // do not wait: count what is left
	if n := l.stop(ctx); n != 2 {
		t.Fatalf("stop left %d connections waiting, want 2 (the open ones)", n)
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after stop succeeded")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close after stop (as Shutdown does): %v", err)
	}
	_ = server[1].Close()
	_ = server[2].Close()
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n := l.stop(ctx); n != 0 {
		t.Fatalf("stop left %d waiting once all were closed", n)
	}
	if len(l.waiting) != 0 {
		t.Fatalf("%d connections still tracked", len(l.waiting))
	}
}
