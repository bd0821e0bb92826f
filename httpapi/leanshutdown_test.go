package httpapi

import (
	"context"
	"slices"
	"sync"
	"testing"
)

// The shutdown lists hold exactly the sockets that joined and did not leave; a streams context's
// end fires each of its sockets once and takes its list away; a socket that comes after the end
// is refused (the caller closes it at once).
func TestShutdownLists(t *testing.T) {
	var mu sync.Mutex
	var fired []*leanConn
	done := make(chan struct{})
	s := shutdownLists{fire: func(c *leanConn) {
		mu.Lock()
		fired = append(fired, c)
		if len(fired) == 1 {
			close(done)
		}
		mu.Unlock()
	}}
	a, b := context.WithCancel(context.Background())
	other, stopOther := context.WithCancel(context.Background())
	defer stopOther()
	conns := make([]*leanConn, 5)
	for i := range conns {
		conns[i] = &leanConn{}
		streams := a
		if i == 4 {
			streams = other
		}
		if !s.join(streams, conns[i]) {
			t.Fatalf("socket %d refused by a live server", i)
		}
	}
	if n, lists := s.len(); n != 5 || lists != 2 {
		t.Fatalf("%d sockets in %d lists, want 5 in 2", n, lists)
	}
	s.leave(conns[0]) // the head, the middle, the tail
	s.leave(conns[2])
	s.leave(conns[3])
	s.leave(conns[3]) // twice: nothing
	if n, _ := s.len(); n != 2 {
		t.Fatalf("%d sockets after 3 left, want 2", n)
	}
	b()
	<-done
	mu.Lock()
	got := slices.Clone(fired)
	mu.Unlock()
	if len(got) != 1 || got[0] != conns[1] {
		t.Fatalf("fired %d sockets, want the one left of the server that ended", len(got))
	}
	if n, lists := s.len(); n != 1 || lists != 1 {
		t.Fatalf("after the end: %d sockets in %d lists, want the other server's 1 in 1", n, lists)
	}
	if conns[1].shutList != nil || conns[1].shutNext != nil {
		t.Fatal("a fired socket still points into its list")
	}
	s.leave(conns[1]) // a fired socket's own close: nothing
	if s.join(a, &leanConn{}) {
		t.Fatal("a socket joined a server that shut down")
	}
	s.leave(conns[4])
	if n, lists := s.len(); n != 0 || lists != 1 {
		t.Fatalf("%d sockets in %d lists, want 0 in 1 (the live server's, empty)", n, lists)
	}
}
