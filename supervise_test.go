package main

import (
	"context"
	"net"
	"testing"
	"time"
)

// TestDrainListener: stop closes the listener and waits for every accepted connection to be
// answered once or closed; a silent one is counted when the wait ends.
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
	if _, err := server[0].Write([]byte("HTTP/1.1 200 OK\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = server[1].Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // do not wait: count what is left
	if n := l.stop(ctx); n != 1 {
		t.Fatalf("stop left %d connections waiting, want 1 (the silent one)", n)
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("Accept after stop succeeded")
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close after stop (as Shutdown does): %v", err)
	}
	if _, err := server[2].Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n := l.stop(ctx); n != 0 {
		t.Fatalf("stop left %d waiting once all were answered", n)
	}
	_ = server[2].Close()
	if len(l.waiting) != 0 {
		t.Fatalf("%d connections still tracked", len(l.waiting))
	}
}
