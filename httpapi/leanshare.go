package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/calendar"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/pubsub"
)

// Shared subscriptions of the lean transports. Anonymous subscribers of the same document,
// operation and variables see the same thing: they share ONE gqlgen operation — one resolver
// channel, one execution and one JSON marshal per event — and each subscriber gets the same
// payload bytes, framed for its connection: a websocket's next (or data) message with its own id,
// an SSE stream's "event: next", a multipart stream's part (memberSink). What holds per
// subscriber still holds per subscriber:
//
//   - each subscribe is parsed, validated and checked (sessions, limits, request rules) on its
//     own context; a websocket's is throttled and counted against its connection's cap
//     (socketGuard.admit), a stream's request was throttled and counted against its client's
//     streams by the middleware, as for a stream with an operation of its own; and each is
//     admitted by the resolver that made the shared operation (pubsub.Share: eventUpdated checks
//     the event is visible and takes the subscriber's place in the broker's bound and its
//     client's share, as its own subscription would);
//   - each one ends on its own: complete on the client's complete, nothing once its connection
//     is gone (a stream's client closed it), and the shared operation ends with its last
//     subscriber.
//
// What differs from one operation each: the shared operation runs on a context of its own, so an
// error in its responses carries its request id, not the subscriber's; the metrics count the
// subscribers one by one (Operations.openMember), each on its own transport; and when the broker
// drops the shared operation for falling behind (its buffer is pubsub's sharedBuffer times a
// subscriber's), all its subscribers complete at once.
//
// Only anonymous subscribers share: a signed-in viewer's results may depend on who they are (an
// event's onlineUrl, viewerRegistration, registrations, its draft status), its role can change
// under it and its token expire, all per session; their subscriptions run one by one as before.
// Only the root fields in leanShare.fields are tried, and only a resolver that calls
// pubsub.Share is shared (eventUpdated on a published event). The key (shareKey) holds the
// calendar links' base, which comes from the request's host: subscribers that came by different
// hosts do not share.

// sharedOps holds the shared subscriptions by key, each while it has a subscriber (or is being
// made): bounded by the subscriptions, an entry goes with its last subscriber.
type sharedOps struct {
	mu sync.Mutex
	m  map[string]*leanGroup
}

func (r *sharedOps) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}

func (r *sharedOps) remove(g *leanGroup) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m[g.key] == g {
		delete(r.m, g.key)
	}
}

// join adds m to the shared operation of key, making it with mk when there is none; nil when the
// operation cannot be shared (its resolver did not say it may be, or it failed: the subscriber
// then runs its own, and gets its own answer).
func (r *sharedOps) join(key string, m *leanMember, mk func(g *leanGroup) bool) *leanGroup {
	for range 3 { // a group that ends as m comes is made anew
		r.mu.Lock()
		g := r.m[key]
		if g == nil {
			g = &leanGroup{key: key, reg: r, made: make(chan struct{}), members: map[*leanMember]struct{}{}}
			if r.m == nil {
				r.m = map[string]*leanGroup{}
			}
			r.m[key] = g
			r.mu.Unlock()
			ok := mk(g)
			if !ok {
				r.remove(g)
			}
			close(g.made)
			if !ok {
				return nil
			}
		} else {
			r.mu.Unlock()
			<-g.made
			if g.admit == nil {
				return nil
			}
		}
		if g.add(m) {
			return g
		}
	}
	return nil
}

// leanGroup is one shared subscription and its subscribers.
type leanGroup struct {
	key   string
	reg   *sharedOps
	made  chan struct{} // closed once the operation runs (admit set) or failed (admit nil)
	admit pubsub.Admit
	sub   *leanSub

	mu      sync.Mutex
	members map[*leanMember]struct{}
	ended   bool // no subscriber joins any more
}

func (g *leanGroup) add(m *leanMember) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ended {
		return false
	}
	g.members[m] = struct{}{}
	m.g = g
	return true
}

// drop removes m; the operation ends with its last subscriber.
func (g *leanGroup) drop(m *leanMember) {
	g.mu.Lock()
	if _, ok := g.members[m]; !ok {
		g.mu.Unlock()
		return
	}
	delete(g.members, m)
	last := len(g.members) == 0 && !g.ended
	if last {
		g.ended = true
	}
	g.mu.Unlock()
	if last {
		g.reg.remove(g)
		g.sub.cancel() // the resolver's channel closes; the operation's last turn finds nothing
	}
}

// snapshot copies the subscribers (they are written to outside the lock); end also ends the
// operation for subscribers to come, and empties the set.
func (g *leanGroup) snapshot(end bool) []*leanMember {
	g.mu.Lock()
	defer g.mu.Unlock()
	ms := make([]*leanMember, 0, len(g.members))
	for m := range g.members {
		ms = append(ms, m)
	}
	if end {
		g.ended = true
		clear(g.members)
	}
	return ms
}

// each calls fn for every subscriber.
func (g *leanGroup) each(fn func(m *leanMember)) {
	for _, m := range g.snapshot(false) {
		fn(m)
	}
}

// fanOutChunk is how many sockets one worker writes to at a time in a fan-out.
const fanOutChunk = 512

// broadcast writes one response, marshalled once, to every admitted subscriber. A large group's
// writes are shared with idle workers, in chunks; it returns when all are written, so the next
// response of the operation never overtakes this one on any socket.
func (g *leanGroup) broadcast(payload []byte) {
	ms := g.snapshot(false)
	if len(ms) <= fanOutChunk {
		for _, m := range ms {
			m.deliver(payload)
		}
		return
	}
	chunks := (len(ms) + fanOutChunk - 1) / fanOutChunk
	f := &fanOut{members: ms, payload: payload, done: make(chan struct{})}
	f.left.Store(int64(chunks))
	for range min(chunks, g.sub.ls.pool.n) - 1 {
		g.sub.ls.pool.submit(f)
	}
	f.work()
	<-f.done
}

// fanOut is one response's writes, taken a chunk at a time by the worker that produced it and by
// the helpers it called: a helper that comes after the last chunk has nothing to do, and the
// producer waits only for chunks already taken, so no worker waits for a queued one.
type fanOut struct {
	members []*leanMember
	payload []byte
	next    atomic.Int64
	left    atomic.Int64
	done    chan struct{}
}

func (f *fanOut) work() {
	for {
		lo := int(f.next.Add(1)-1) * fanOutChunk
		if lo >= len(f.members) {
			return
		}
		for _, m := range f.members[lo:min(lo+fanOutChunk, len(f.members))] {
			m.deliver(f.payload)
		}
		if f.left.Add(-1) == 0 {
			close(f.done)
		}
	}
}

// end is the operation's end (its resolver's channel closed, or it failed): every subscriber
// completes.
func (g *leanGroup) end() {
	ms := g.snapshot(true)
	g.reg.remove(g)
	for _, m := range ms {
		m.end(true)
	}
}

// memberSink is where a subscriber of a shared subscription writes: its websocket (leanConn,
// under its operation id) or its HTTP stream (leanStream, which carries one subscription and
// ignores the id).
type memberSink interface {
	sendPayload(id string, payload []byte)
	sendError(id string, errs ...*gqlerror.Error)
	// backlog is what the connection has waiting for its reader (socketBacklog).
	backlog() int64
	// unlist forgets m, which has ended; open is false once the connection is going (nothing
	// is to be written to it).
	unlist(m *leanMember) (open bool)
	// complete tells the client that subscription id is over: graphql-ws's complete, SSE's
	// "event: complete", multipart's closing delimiter (a stream then ends).
	complete(id string)
}

var (
	_ memberSink = (*leanConn)(nil)
	_ memberSink = (*leanStream)(nil)
)

// leanMember is one subscriber of a shared subscription: its connection and its operation id.
type leanMember struct {
	s  memberSink
	id string
	g  *leanGroup

	mu       sync.Mutex
	live     bool // admitted: gets the operation's responses
	done     bool
	releases []func() // its places: the connection's cap, the broker's, the gauge's
}

func (m *leanMember) stop() { m.leave(true) }

// leave takes m out of its operation; complete says so to the client.
func (m *leanMember) leave(complete bool) {
	if m.g != nil {
		m.g.drop(m)
	}
	m.end(complete)
}

// end ends m once: after it nothing is written for it but the complete, if asked for.
func (m *leanMember) end(complete bool) {
	m.mu.Lock()
	if m.done {
		m.mu.Unlock()
		return
	}
	m.done, m.live = true, false
	releases := m.releases
	m.releases = nil
	m.mu.Unlock()
	open := m.s.unlist(m)
	// Released before the complete goes out: a client that has its complete finds the
	// subscriber no longer counted (gauges, the broker's places).
	for _, r := range releases {
		r()
	}
	if complete && open {
		m.s.complete(m.id)
	}
}

// hold keeps release until m ends (at once when it has).
func (m *leanMember) hold(release func()) {
	if release == nil {
		return
	}
	m.mu.Lock()
	if m.done {
		m.mu.Unlock()
		release()
		return
	}
	m.releases = append(m.releases, release)
	m.mu.Unlock()
}

// deliver writes payload for m, unless it is not admitted yet or ended: under m's lock, so its
// complete never goes before a response. A member whose connection has fallen behind (its
// backlog over backlogHigh) is dropped as the broker drops a slow subscriber: it leaves the
// operation and gets its complete after what waits for it — a websocket stays open, a stream
// then ends — its connection's write timeout still applies, and the other members go on; one
// slow reader never holds a shared operation back.
func (m *leanMember) deliver(payload []byte) {
	m.mu.Lock()
	if !m.live || m.done {
		m.mu.Unlock()
		return
	}
	if m.s.backlog() > backlogHigh {
		m.mu.Unlock()
		m.g.sub.ls.slowDropped.Add(1)
		m.leave(true)
		return
	}
	m.s.sendPayload(m.id, payload)
	m.mu.Unlock()
}

// fail sends the operation's error (a panic) to m, as deliver sends a response.
func (m *leanMember) fail(err *gqlerror.Error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.live && !m.done {
		m.s.sendError(m.id, err)
	}
}

// unlist forgets m's id on the socket (a later subscribe may reuse it).
func (c *leanConn) unlist(m *leanMember) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.active.drop(m.id, m)
	return !c.closing
}

// leanShare is what the lean transports (websockets, SSE, multipart) share subscriptions by:
// the root fields that may be shared, and the metrics that count each subscriber.
type leanShare struct {
	fields map[string]bool
	ops    *Operations
}

// shareable says whether the subscription rc may be shared, and its root field: a subscription
// of an anonymous viewer with one root field sh shares.
func (sh *leanShare) shareable(ctx context.Context, rc *graphql.OperationContext) (*graphql.CollectedField, bool) {
	if sh == nil || len(sh.fields) == 0 || rc.Operation == nil || rc.Operation.Operation != ast.Subscription ||
		eventide.ViewerFrom(ctx) != nil {
		return nil, false
	}
	fields := graphql.CollectFields(rc, rc.Operation.SelectionSet, []string{"Subscription"})
	if len(fields) != 1 || !sh.fields[fields[0].Name] {
		return nil, false
	}
	return &fields[0], true
}

// shareable is leanShare's for a socket, which must have its connection's state (the cap on
// its subscriptions counts the members).
func (c *leanConn) shareable(ctx context.Context, rc *graphql.OperationContext) (*graphql.CollectedField, bool) {
	if conn, _ := ctx.Value(wsConnKey{}).(*wsConn); conn == nil {
		return nil, false
	}
	return c.t.share.shareable(ctx, rc)
}

// shareKey names what a subscriber asks for: the same key, the same responses for everyone
// anonymous.
func shareKey(ctx context.Context, rc *graphql.OperationContext) (string, bool) {
	vars, err := json.Marshal(rc.Variables) // a map's keys sorted
	if err != nil {
		return "", false
	}
	var b strings.Builder
	for _, part := range []string{calendar.BaseFrom(ctx), rc.OperationName, string(vars), rc.RawQuery} {
		b.WriteString(part)
		b.WriteByte(0)
	}
	return b.String(), true
}

// alreadyThrottledKey marks a subscriber that subscribeShared throttled before it had to run its
// own operation after all: socketGuard does not charge it twice.
type alreadyThrottledKey struct{}

// subscribeShared makes subscriber id a member of the shared operation for rc (made now when
// there is none). joined false: it could not be shared, and runs its own operation on ctx.
func (c *leanConn) subscribeShared(ctx context.Context, id string, rc *graphql.OperationContext, field *graphql.CollectedField) (_ context.Context, joined bool) {
	key, ok := shareKey(ctx, rc)
	if !ok {
		return ctx, false
	}
	conn, _ := ctx.Value(wsConnKey{}).(*wsConn)
	slot, refusal := c.t.guard.admit(ctx, conn, true)
	if refusal != nil {
		c.sendResponse(id, refusal(ctx))
		c.complete(id)
		return ctx, true
	}
	m := &leanMember{s: c, id: id, releases: make([]func(), 0, 3)}
	m.hold(slot)
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		m.end(false)
		return ctx, true
	}
	replaced := c.active.set(id, m)
	c.mu.Unlock()
	endReplaced(replaced)
	joined, err := c.ls.joinShared(ctx, key, c.exec, rc, m, c.t.share.ops)
	if !joined {
		return context.WithValue(ctx, alreadyThrottledKey{}, true), false
	}
	if err != nil {
		c.sendResponse(id, sharedRefusal(ctx, c.exec, rc, field, err))
		c.complete(id)
	}
	return ctx, true
}

// joinShared makes m, a subscriber on ctx, a member of the shared operation of key — made now
// with exec and rc when there is none — and admits it (the operation's resolver takes its place
// in the broker's bounds; ops counts it open). joined false: the operation cannot be shared, m
// has ended, and the subscriber runs its own. err: the resolver refused m, which has left
// without a complete; the subscriber's answer is that error (sharedRefusal).
func (ls *LeanSockets) joinShared(ctx context.Context, key string, exec graphql.GraphExecutor, rc *graphql.OperationContext,
	m *leanMember, ops *Operations) (joined bool, err error) {
	g := ls.shared.join(key, m, func(g *leanGroup) bool { return ls.startShared(exec, ctx, rc, g) })
	if g == nil {
		m.end(false)
		return false, nil
	}
	release, err := g.admit(ctx)
	if err != nil {
		m.leave(false)
		return true, err
	}
	m.hold(release)
	if ops != nil {
		m.hold(ops.openMember(rc, transportLabel(ctx)))
	}
	m.mu.Lock()
	m.live = !m.done
	m.mu.Unlock()
	return true, nil
}

// sharedRefusal is the answer of a subscriber the shared operation's resolver refused: its error,
// at the root field, as its own operation would have answered it.
func sharedRefusal(ctx context.Context, exec graphql.GraphExecutor, rc *graphql.OperationContext, field *graphql.CollectedField, err error) *graphql.Response {
	path := ast.Path{ast.PathName(field.Alias)}
	return exec.DispatchError(graphql.WithOperationContext(ctx, rc), gqlerror.List{gqlerror.WrapPath(path, err)})
}

// startShared runs g's operation on a context of its own — anonymous, with no connection, no
// session, no client and a request id of its own, as it serves subscribers of many connections
// and transports — and reports whether its resolver said it may be shared.
func (ls *LeanSockets) startShared(exec graphql.GraphExecutor, member context.Context, rc *graphql.OperationContext, g *leanGroup) bool {
	var rid [12]byte
	_, _ = rand.Read(rid[:])
	ctx := reqmeta.WithID(context.Background(), hex.EncodeToString(rid[:]))
	ctx = withSharedOperation(withTransport(ctx, transportLabel(member)))
	if b := calendar.BaseFrom(member); b != "" {
		ctx = calendar.WithBase(ctx, b)
	}
	ctx, cancel := context.WithCancel(ctx)
	ctx = graphql.WithOperationContext(graphql.StartOperationTrace(ctx), rc)
	s := &leanSub{ls: ls, g: g, rc: rc, cancel: cancel, ctx: ctx}
	g.sub = s
	ctx, n := pubsub.WithSharedNotifier(ctx, s.ready) // its subscribers are counted, not it
	ok := s.protect(func() { s.responses, s.ctx = exec.DispatchOperation(ctx, rc) })
	if !ok || !n.Claimed() || n.Shared() == nil {
		s.done.Store(true)
		cancel()
		return false
	}
	g.admit = n.Shared()
	s.started.Store(true)
	if s.pending.Load() > 0 || s.closed.Load() {
		s.schedule()
	}
	return true
}
