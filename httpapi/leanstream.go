package httpapi

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/lesismal/nbio"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/pubsub"
)

// Lean HTTP streams: SSE and multipart subscriptions on the lean websockets' event loop, with no
// goroutine and no buffer per idle stream (WS_TRANSPORT=lean, the default).
//
//   - The request runs through the whole middleware chain as before: negotiation, auth, the
//     per-client stream cap, the session, the streams context. The transport parses and
//     validates the subscription on a context of the few values it needs (leanContext), then
//     writes the response's header and its first bytes (SSE's ":" comment, multipart's first
//     heartbeat) through net/http, so the status line, the headers the middleware set (request
//     id, CORS, ...) and the chunked framing are net/http's own; then it hijacks the connection
//     and hands the socket to the event loop the websockets use, and returns. The middleware's
//     releases wait for the socket's close (streamHold).
//   - An anonymous eventUpdated stream joins the shared operation of its document and variables
//     (leanshare.go), as a websocket's subscriber does; other streams run their own operation.
//   - Events are written by the worker pool through the notifier path of the websockets
//     (leanSub, or a shared operation's broadcast), each as one chunk; only what the kernel does
//     not take is kept (the socket's backlog, socketBacklog): the same backpressure as a
//     websocket (a reader that falls behind is held back, and its producer drops it; a shared
//     operation's member is dropped from it alone), and a backlog that does not empty within the
//     write timeout (SSE_WRITE_TIMEOUT) closes the connection.
//   - The SSE keep-alive comment and the multipart heartbeat are one runtime timer per stream,
//     re-armed; the client's close is the event loop's (nbio's OnClose) and ends the subscription
//     at once.
//   - The end of the subscription (it completed, its session ended it with its error, the
//     server shuts down) writes what the old path writes (SSE: "event: complete"; multipart: at
//     shutdown the transport's error part, then the closing delimiter), the last chunk, and
//     closes the connection once the kernel has taken it all. The response says
//     "Connection: close" (the one header unlike the old path's, whose SSE says keep-alive): the
//     connection cannot go back to net/http for a next request.
//
// The access log and eventide_http_request_duration_seconds see the request end at the hijack,
// as for a lean websocket, not at the stream's end; eventide_open_subscriptions counts the
// subscription for its whole life.
//
// Where net/http gives no connection to take — TLS (nbio cannot take it), HTTP/2, a writer that
// cannot be hijacked — and with WS_TRANSPORT=gqlgen, the stream stays on its request's goroutine
// as before (sseTransport's gqlgen path, multipartTransport's loop).

// The headers a lean stream's operation sees (RawParams.Headers): requestRules reads that a
// subscription came on a stream; nothing reads more, and the request's own would stay as long
// as the stream.
var (
	sseHeaders       = http.Header{"Accept": {mediaSSE}}
	multipartHeaders = http.Header{"Accept": {`multipart/mixed;subscriptionSpec="1.0"`}}
)

var (
	sseOpen      = []byte(":\n\n")
	ssePing      = []byte(": ping\n\n")
	sseNext      = []byte("event: next\ndata: ")
	sseEnd       = []byte("\n\n")
	sseComplete  = []byte("event: complete\n\n")
	partPayload  = []byte(`{"payload":`)
	partClose    = []byte("--\r\n")
	lastChunk    = []byte("0\r\n\r\n")
	crlf         = []byte("\r\n")
	closeBracket = []byte("}")
)

// leanStreamable reports whether the stream of r can move to the event loop, and its stream
// writer: plain HTTP/1.1 whose connection the writer can give up, with the middleware's hold and
// stream writer, and the event loop running.
func (ls *LeanSockets) streamable(w http.ResponseWriter, r *http.Request) (*streamWriter, bool) {
	if ls == nil || r.TLS != nil || r.ProtoMajor != 1 || r.ProtoMinor < 1 || holdFrom(r.Context()) == nil {
		return nil, false
	}
	sw := streamWriterFrom(r.Context())
	if sw == nil || !hijackable(w) || ls.start() != nil {
		return nil, false
	}
	return sw, true
}

// hijackable reports whether the writer under w's wrappers (net/http's own, over HTTP/1.x) can
// give up its connection; the wrappers' Hijack methods pass it on.
func hijackable(w http.ResponseWriter) bool {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			_, ok := w.(http.Hijacker)
			return ok
		}
		w = u.Unwrap()
	}
}

// streamContext is the context a lean stream's operation is created and runs on: the few values
// of its request it needs (leanContext), cancelled with the stream (the cause says why).
func streamContext(r *http.Request) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(leanContext(r.Context()))
	return graphql.StartOperationTrace(ctx), cancel
}

// leanStream is one SSE or multipart subscription on the event loop.
type leanStream struct {
	ls           *LeanSockets
	sse          bool // else multipart
	nbc          *nbio.Conn
	wrapped      net.Conn // the listener's wrappers of the TCP connection, closed at the end
	hold         *streamHold
	ctx          context.Context // ends with the stream; its cause says whether the server shuts down
	cancel       context.CancelCauseFunc
	every        time.Duration // the keep-alive comment's or the heartbeat's interval; 0: none
	writeTimeout time.Duration
	socketBacklog

	mu sync.Mutex
	// onLoop: the socket is on the event loop. Before, what is written waits in early: the
	// dispatch's error (a panic's), a shared subscription's first responses or its refusal; and
	// endEarly says the stream's end came too (complete).
	onLoop       bool
	early        []byte
	endEarly     bool
	member       *leanMember // the stream's place in a shared subscription (leanshare.go), while it has one
	ended        bool        // the last chunk went out, or the socket is gone: nothing more is written
	closed       bool        // the socket is gone
	last         time.Time
	timer        *time.Timer // the keep-alive's
	stopShutdown func() bool
	// drainClose: close the socket once the backlog is empty (the last chunk is in it). An atomic:
	// taken runs within a write, under mu.
	drainClose atomic.Bool
}

// sessionStream is the lean stream of an nbio socket, or nil.
func sessionStream(c *nbio.Conn) *leanStream {
	if s, _ := c.Session().(*leanSession); s != nil {
		return s.stream.Load()
	}
	return nil
}

// openStream answers the subscription rc of r as a lean stream: SSE (sse) or multipart, with a
// keep-alive or heartbeat every `every`. ctx and cancel are streamContext's, rc was created on
// ctx. The stream subscribes first — to a shared subscription when share lets it, else to an
// operation of its own — so a client that has read the stream's first bytes is subscribed (what
// comes meanwhile waits: in its channel, or in early). On any failure before the stream is on
// the event loop, ctx is cancelled, which ends the operation (or the stream leaves its shared
// one), and the answer ends there (the client sees a response cut short, as when a write fails on
// the old path).
func (ls *LeanSockets) openStream(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor,
	ctx context.Context, cancel context.CancelCauseFunc, rc *graphql.OperationContext, share *leanShare,
	sse bool, every time.Duration, sw *streamWriter) {
	st := &leanStream{ls: ls, sse: sse, ctx: ctx, cancel: cancel, every: every, writeTimeout: sw.writeTimeout}
	begin := st.subscribe(exec, rc, share)
	h := w.Header()
	// The connection ends with the stream: net/http never gets it back, so a client must not keep
	// it for its next request (the old path's SSE says keep-alive).
	h.Set("Connection", "close")
	first := sseOpen
	if sse { // as gqlgen's SSE transport
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Type", mediaSSE)
	} else { // as multipartTransport
		h.Set("Content-Type", multipartSubscriptionType)
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		first = append(append(append([]byte("--"+multipartBoundary), partHeader...), heartbeat...), delimiter...)
	}
	w.WriteHeader(http.StatusOK)
	rctl := http.NewResponseController(w)
	if _, err := w.Write(first); err != nil || rctl.Flush() != nil {
		st.abandon()
		return
	}
	sw.detach()
	conn, _, err := rctl.Hijack()
	if err != nil {
		ls.log.Warn("stream: could not take the connection", "error", err)
		st.abandon()
		return
	}
	raw, wrapped := underWrappers(conn)
	nbc, err := nbio.NBConn(raw)
	if err != nil {
		ls.log.Warn("stream: could not hand the connection to the event loop", "error", err)
		_ = conn.Close()
		st.abandon()
		return
	}
	hold := holdFrom(r.Context())
	hold.detach()
	st.wrapped, st.hold = wrapped, hold
	session := &leanSession{}
	session.conn.Store(nil) // the callbacks ask for a websocket first: atomics both, for the race detector
	session.stream.Store(st)
	nbc.SetSession(session)
	nbc.OnData(func(*nbio.Conn, []byte) {}) // a client has nothing to say on its stream
	ls.streams.Add(1)
	// Under the lock: the event loop's goroutines read them, and the race detector does not see
	// the order epoll gives.
	st.mu.Lock()
	st.nbc = nbc
	if streams, ok := r.Context().Value(streamsKey{}).(context.Context); ok {
		st.stopShutdown = context.AfterFunc(streams, st.shutdown)
	}
	st.last = time.Now()
	if every > 0 {
		st.timer = time.AfterFunc(every, st.tick)
	}
	st.mu.Unlock()
	if _, err := ls.engine.AddConn(nbc); err != nil {
		ls.log.Warn("stream: the event loop refused the connection", "error", err)
		_ = nbc.Close()
		st.gone()
		return
	}
	// On the loop: nbio may now keep what the kernel does not take.
	st.mu.Lock()
	st.onLoop = true
	early, end := st.early, st.endEarly
	st.early = nil
	if len(early) > 0 {
		st.writeLocked(false, early)
	}
	st.mu.Unlock()
	if end {
		st.complete("")
	}
	begin()
}

// subscribe subscribes the stream to rc: as a member of the shared subscription for rc when share
// lets it (an anonymous eventUpdated, leanshare.go), else with an operation of its own. begin
// runs once the stream is on the event loop.
func (st *leanStream) subscribe(exec graphql.GraphExecutor, rc *graphql.OperationContext, share *leanShare) (begin func()) {
	if field, ok := share.shareable(st.ctx, rc); ok {
		if key, ok := shareKey(st.ctx, rc); ok {
			m := &leanMember{s: st, releases: make([]func(), 0, 2)}
			st.mu.Lock()
			st.member = m
			st.mu.Unlock()
			joined, err := st.ls.joinShared(st.ctx, key, exec, rc, m, share.ops)
			if joined {
				if err != nil {
					st.write(marshalResponse(sharedRefusal(st.ctx, exec, rc, field, err)))
					st.complete("")
				}
				return func() {}
			}
		}
	}
	sub, n, dispatched := st.dispatch(exec, rc)
	return func() { sub.begin(n, dispatched) } // run once the stream is on the event loop
}

// dispatch runs the stream's operation as a lean websocket's runs (leanConn.subscribe), up to
// its first value: nothing is written until start. false when the dispatch panicked (its error is
// kept in early).
func (st *leanStream) dispatch(exec graphql.GraphExecutor, rc *graphql.OperationContext) (*leanSub, *pubsub.Notifier, bool) {
	ctx := graphql.WithOperationContext(st.ctx, rc)
	ctx, cancel := context.WithCancel(ctx)
	s := &leanSub{st: st, ls: st.ls, rc: rc, cancel: cancel}
	ctx, n := pubsub.WithNotifier(ctx, s.ready)
	ok := s.protect(func() { s.responses, s.ctx = exec.DispatchOperation(ctx, rc) })
	return s, n, ok
}

// abandon ends a stream that never reached the event loop: its operation ends with its context,
// or it leaves its shared one.
func (st *leanStream) abandon() {
	st.mu.Lock()
	st.ended, st.closed = true, true
	m := st.member
	st.mu.Unlock()
	st.cancel(nil)
	if m != nil {
		m.leave(false)
	}
}

// shutdown is the server's: the stream's operation ends with its context, whose cause says so; a
// member of a shared subscription leaves it, and the stream ends as one of its own would (complete).
func (st *leanStream) shutdown() {
	st.cancel(errServerShutdown)
	st.mu.Lock()
	m := st.member
	st.mu.Unlock()
	if m != nil {
		m.leave(true)
	}
}

// writeLocked writes parts as one chunk (and the last chunk after it when last); false when
// nothing more may be written.
func (st *leanStream) writeLocked(last bool, parts ...[]byte) bool {
	if st.ended {
		return false
	}
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if !st.onLoop {
		for _, p := range parts {
			st.early = append(st.early, p...)
		}
		return true
	}
	buf := getBuffer()
	defer putBuffer(buf)
	if n > 0 {
		var size [16]byte
		buf.Write(strconv.AppendInt(size[:0], int64(n), 16))
		buf.Write(crlf)
		for _, p := range parts {
			buf.Write(p)
		}
		buf.Write(crlf)
	}
	if last {
		buf.Write(lastChunk)
		st.ended = true
	}
	if _, err := st.socketBacklog.write(st.nbc, buf.Bytes(), st.writeTimeout, st.backlogTimedOut); err != nil {
		st.ended = true
		_ = st.nbc.CloseWithError(err)
		return false
	}
	st.last = time.Now()
	return true
}

// tick is the keep-alive: a comment (SSE) or a heartbeat part (multipart) after every interval
// without a write.
func (st *leanStream) tick() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended {
		return
	}
	next := st.every
	if idle := time.Since(st.last); idle < st.every {
		next = st.every - idle // written meanwhile: wait out the rest
	} else if st.sse {
		st.writeLocked(false, ssePing)
	} else {
		st.writeLocked(false, partHeader, heartbeat, delimiter)
	}
	if !st.ended {
		st.timer.Reset(next)
	}
}

// backlogTimedOut is the write timeout: a reader that took nothing for that long is cut, as the
// old path's write deadline cuts it.
func (st *leanStream) backlogTimedOut() {
	if !st.socketBacklog.expired(st.writeTimeout) {
		return
	}
	st.ls.log.Info("stream: closed a stream whose reader took nothing", "write_timeout", st.writeTimeout,
		"backlog_bytes", st.backlog())
	_ = st.nbc.Close()
}

// taken runs on the event loop, with nbio's lock of the socket, when the kernel took n bytes.
func (st *leanStream) taken(n int) {
	st.socketBacklog.taken(n)
	if st.backlog() > 0 {
		return
	}
	if st.drainClose.Load() {
		go func() { _ = st.nbc.Close() }() // not under nbio's lock, which Close takes
	}
}

// gone is the socket's end: the subscription ends, the middleware's releases run.
func (st *leanStream) gone() {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return
	}
	st.closed, st.ended = true, true
	if st.timer != nil {
		st.timer.Stop()
	}
	stopShutdown := st.stopShutdown
	m := st.member
	st.mu.Unlock()
	st.cancel(nil)
	if m != nil {
		m.leave(false)
	}
	st.socketBacklog.shutdown()
	if stopShutdown != nil {
		stopShutdown()
	}
	st.ls.streams.Add(-1)
	st.hold.end()
	if st.wrapped != nil {
		_ = st.wrapped.Close() // the wrappers' bookkeeping; the socket itself was nbio's
	}
}

func (st *leanStream) park(s *leanSub) bool           { return st.socketBacklog.park(s) }
func (st *leanStream) waitRoom(ctx context.Context)   { st.socketBacklog.waitRoom(ctx) }
func (st *leanStream) connCtx() context.Context       { return st.ctx }
func (st *leanStream) sendPayload(_ string, p []byte) { st.write(p) }

// sendError sends errs (a panic of the operation) as an event, as gqlgen's executor sends a
// resolver's.
func (st *leanStream) sendError(_ string, errs ...*gqlerror.Error) {
	st.write(marshalResponse(&graphql.Response{Errors: errs}))
}

// write sends one response already marshalled: an SSE "next" event, or a multipart part.
func (st *leanStream) write(payload []byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.sse {
		st.writeLocked(false, sseNext, payload, sseEnd)
	} else {
		st.writeLocked(false, partHeader, partPayload, payload, closeBracket, delimiter)
	}
}

// finished is the end of the stream's own operation: complete.
func (st *leanStream) finished(*leanSub) { st.complete("") }

// unlist forgets m, the stream's place in a shared subscription, which has ended.
func (st *leanStream) unlist(m *leanMember) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.member == m {
		st.member = nil
	}
	return !st.ended
}

// complete ends the response as the old path ends it, then the connection once the kernel has
// taken what is left: SSE with "event: complete"; multipart with the closing delimiter, after a
// transport error part at shutdown. A stream whose socket is gone is not written to; one not yet
// on the event loop ends once it is.
func (st *leanStream) complete(string) {
	st.mu.Lock()
	if !st.onLoop && !st.ended {
		st.endEarly = true
		st.mu.Unlock()
		return
	}
	shutdown := context.Cause(st.ctx) == errServerShutdown
	var ok bool
	switch {
	case st.sse:
		ok = st.writeLocked(true, sseComplete)
	case shutdown:
		ok = st.writeLocked(true, partHeader, shutdownPart(st.ctx), delimiter, partClose)
	case st.ctx.Err() != nil:
		ok = st.writeLocked(true) // the stream was ended: no close delimiter, the client must not take it whole
	default:
		ok = st.writeLocked(true, partClose)
	}
	if ok {
		st.drainClose.Store(true)
		if st.timer != nil {
			st.timer.Stop()
		}
	}
	st.mu.Unlock()
	if ok && st.backlog() <= 0 {
		_ = st.nbc.Close()
	}
}

// isSubscriptionRequest reports whether rc is a subscription (after negotiation's scan guessed so).
func isSubscriptionRequest(rc *graphql.OperationContext) bool {
	return rc != nil && rc.Operation != nil && rc.Operation.Operation == ast.Subscription
}
