package httpapi

import (
	"context"
	"sync"
)

// shutdownLists are the lean websockets to close with 1001 when their server shuts down: one
// list per streams context (one per server, whose Shutdown cancels it), each registered once
// with context.AfterFunc, instead of an AfterFunc per socket (its context, its stop function and
// its closure: three more objects for every GC cycle to mark, per held socket). A list is linked
// through the sockets themselves: joining it allocates nothing.
//
// Bound: a list holds exactly the sockets that joined it and have not left (gone leaves), and
// the map one list per streams context that has not ended (its end removes it).
type shutdownLists struct {
	mu    sync.Mutex
	lists map[context.Context]*shutdownList
	// fire is what the end of a streams context does to each of its sockets (goingAway; a test's
	// recorder).
	fire func(c *leanConn)
}

type shutdownList struct {
	head *leanConn
	n    int
}

// join puts c in streams' list; false when streams has ended already (c is to go at once).
func (s *shutdownLists) join(streams context.Context, c *leanConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.lists[streams]
	if l == nil {
		if streams.Err() != nil {
			return false
		}
		l = &shutdownList{}
		if s.lists == nil {
			s.lists = map[context.Context]*shutdownList{}
		}
		s.lists[streams] = l
		context.AfterFunc(streams, func() { s.end(streams, l) })
	}
	c.shutNext = l.head
	if l.head != nil {
		l.head.shutPrev = c
	}
	l.head, c.shutList = c, l
	l.n++
	return true
}

// leave takes c out of its list, if it is in one.
func (s *shutdownLists) leave(c *leanConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := c.shutList
	if l == nil {
		return
	}
	if c.shutPrev != nil {
		c.shutPrev.shutNext = c.shutNext
	} else {
		l.head = c.shutNext
	}
	if c.shutNext != nil {
		c.shutNext.shutPrev = c.shutPrev
	}
	c.shutPrev, c.shutNext, c.shutList = nil, nil, nil
	l.n--
}

// end is streams' end: the list goes, and each of its sockets is fired (outside the lock: a
// socket's close leaves the list).
func (s *shutdownLists) end(streams context.Context, l *shutdownList) {
	s.mu.Lock()
	delete(s.lists, streams)
	conns := make([]*leanConn, 0, l.n)
	for c := l.head; c != nil; {
		next := c.shutNext
		c.shutPrev, c.shutNext, c.shutList = nil, nil, nil
		conns = append(conns, c)
		c = next
	}
	l.head, l.n = nil, 0
	fire := s.fire
	s.mu.Unlock()
	for _, c := range conns {
		fire(c)
	}
}

// len is how many sockets the lists hold, and how many lists there are.
func (s *shutdownLists) len() (sockets, lists int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lists {
		sockets += l.n
	}
	return sockets, len(s.lists)
}

// goingAway closes a socket whose server shuts down: 1001, after the init function's refusal
// reason when it gave one.
func (c *leanConn) goingAway() {
	if reason := closeReasonForContext(c.connCtx()); reason != "" {
		c.connectionError(reason)
	}
	c.close(closeGoingAway, "going away")
}
