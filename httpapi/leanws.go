package httpapi

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/logging"
	"github.com/lesismal/nbio/taskpool"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventide/server/calendar"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/pubsub"
)

// The lean websocket transport (WS_TRANSPORT=lean): graphql-transport-ws and legacy graphql-ws
// with no goroutine and no buffer per idle connection.
//
//   - The upgrade runs through the whole middleware chain and gqlgen's handler like any request;
//     the transport answers 101, hijacks the connection and hands its socket to nbio's event loop
//     (epoll), then returns: the middleware's releases (stream slot, session, shutdown wait) wait
//     for the socket's close (streamHold).
//   - nbio reads into one buffer per poller; gobwas/ws frames messages (wsFramer, wsframe.go), and
//     a message is handled on a bounded handler pool, serially per connection. A write goes
//     straight to the socket; only what the kernel does not take is kept (the socket's
//     backlog). A slow reader gets backpressure, as
//     gqlgen's blocking write gives it: while the backlog is over backlogHigh, no subscription of
//     the socket takes its next value, so the producer's bounded buffer fills and the producer
//     drops the subscription and counts it; the subscriptions go on once the backlog is under
//     backlogLow. A backlog that does not empty within the write timeout (WS_WRITE_TIMEOUT) closes
//     the socket with 1013, and one over maxSocketBacklog (what ungated answers, pongs and errors,
//     can still add) closes it at once.
//   - The init timeout is one runtime timer per connection, until its connection_init; the
//     keep-alive (graphql-ws "ka", graphql-transport-ws ping with dead-peer detection) is one
//     wheel for all the sockets (leankeepalive.go): one goroutine, pings in batches, spread over
//     the interval.
//   - A subscription runs through the server's own executor (the same extensions, limits,
//     sessions and error presenter as every operation). Its resolver's channel is not waited on:
//     the producer (pubsub.Broker, and eventUpdated's draft forwarder) signals through a
//     pubsub.Notifier when the channel has something, and a bounded worker pool then runs the
//     subscription's next response. A resolver that does not take the notifier (memoryStats,
//     securityEvents, and every query or mutation) runs as gqlgen runs it, on a goroutine of its own.
//   - Anonymous subscribers of the same eventUpdated document and variables — websockets, SSE and
//     multipart streams — share one operation (leanshare.go): one execution and one marshal per
//     event, the same bytes to every socket.
//   - A socket keeps of its upgrade request only the few values its operations read
//     (leanContext), not the request's context chain and headers.
//
// TLS connections, which nbio cannot take from net/http, fall back to gqlgen's transport.

// LeanSockets is the event loop and the worker pool of the lean transport, shared by all its
// connections; Stop it after the HTTP server's Shutdown.
type LeanSockets struct {
	log *slog.Logger

	once     sync.Once
	startErr error
	engine   *nbio.Engine
	handlers *taskpool.TaskPool // runs the sockets' messages, one at a time per socket
	pool     *workerPool
	shared   sharedOps

	open    atomic.Int64
	streams atomic.Int64 // open lean HTTP streams (leanstream.go)

	shutdowns shutdownLists // the websockets to close when their server shuts down

	wheelMu       sync.Mutex
	wheels        []*keepAliveWheel // one per keep-alive interval (in practice one)
	wheelsStopped bool

	// slowDropped counts members of shared operations dropped because their socket fell behind.
	slowDropped atomic.Uint64
	// executions counts the responses the transport's operations produced (each one ran the
	// executor and a JSON marshal once, however many sockets it went to).
	executions atomic.Uint64
}

const (
	// backlogHigh is the backlog (what one socket has waiting for its peer beyond the kernel's
	// buffer) over which its subscriptions stop taking values; backlogLow the one under which
	// they go on.
	backlogHigh = 64 << 10
	backlogLow  = 16 << 10
	// maxSocketBacklog is the backlog over which the socket is closed at once: far over
	// backlogHigh, which only a large answer, or answers that are not held back (pongs, errors),
	// can reach.
	maxSocketBacklog = 1 << 20
	// closeSlowReader closes a socket whose backlog did not empty within the write timeout: "Try
	// Again Later", which graphql-ws clients answer by reconnecting (unlike 1008).
	closeSlowReader = 1013
	// leanMessageLimit bounds a client message (gqlgen's default PayloadReadLimit): over it the
	// socket is closed with 1009.
	leanMessageLimit = 1 << 20
	// closeGrace is how long a closing socket waits for its peer's close frame.
	closeGrace = 2 * time.Second
)

// NewLeanSockets returns the transport's shared parts; the event loop starts with the first
// websocket.
func NewLeanSockets(log *slog.Logger) *LeanSockets {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ls := &LeanSockets{log: log}
	ls.shutdowns.fire = (*leanConn).goingAway
	return ls
}

func (ls *LeanSockets) start() error {
	ls.once.Do(func() {
		logging.SetLevel(logging.LevelError)
		engine := nbio.NewEngine(nbio.Config{
			Name:               "eventide-websockets",
			NPoller:            max(1, runtime.GOMAXPROCS(0)/2), // as Goroutines counts
			ReadBufferSize:     16 << 10,
			MaxWriteBufferSize: maxSocketBacklog,
		})
		// A socket's messages run on the pool, one at a time and in order (nbio.Conn.Execute),
		// never on the poller, which serves every socket. Set before Start: the pollers read
		// the handlers unlocked.
		ls.handlers = taskpool.New(leanHandlers, leanHandlerQueue)
		engine.Execute = ls.handlers.Go
		engine.OnData(func(c *nbio.Conn, data []byte) {
			if h := c.DataHandler(); h != nil {
				h(c, data)
			} else if lc := sessionConn(c); lc != nil {
				lc.onData(data)
			}
		})
		engine.OnWrittenSize(func(c *nbio.Conn, _ []byte, n int) {
			if lc := sessionConn(c); lc != nil {
				lc.taken(n)
			} else if st := sessionStream(c); st != nil {
				st.taken(n)
			}
		})
		engine.OnClose(func(c *nbio.Conn, _ error) {
			if lc := sessionConn(c); lc != nil {
				lc.gone()
			} else if st := sessionStream(c); st != nil {
				st.gone()
			}
		})
		if ls.startErr = engine.Start(); ls.startErr != nil {
			ls.handlers.Stop()
			return
		}
		ls.engine = engine
		ls.pool = newWorkerPool(leanWorkers())
	})
	return ls.startErr
}

func leanWorkers() int { return max(8, 4*runtime.GOMAXPROCS(0)) }

const (
	// leanHandlers bounds the goroutines that run sockets' messages at once (started on demand,
	// gone when idle); leanHandlerQueue is how many more wait before the poller does.
	leanHandlers     = 256
	leanHandlerQueue = 1024
)

// Goroutines is how many goroutines the transport keeps whatever its sockets: the workers, the
// event loop's pollers and its timer, and the keep-alive wheel.
func (ls *LeanSockets) Goroutines() int {
	return leanWorkers() + max(1, runtime.GOMAXPROCS(0)/2) + 1 + 1
}

// Open is the number of open lean websockets.
func (ls *LeanSockets) Open() int64 { return ls.open.Load() }

// Streams is the number of open SSE and multipart subscriptions on the event loop.
func (ls *LeanSockets) Streams() int64 { return ls.streams.Load() }

// SlowDropped is how many subscribers of shared operations were dropped because their socket
// fell behind (each still gets its complete; see leanMember.deliver).
func (ls *LeanSockets) SlowDropped() uint64 { return ls.slowDropped.Load() }

// Executions is how many responses the transport's operations have produced: one per event for
// a shared subscription, whatever its subscribers.
func (ls *LeanSockets) Executions() uint64 { return ls.executions.Load() }

// SharedOperations is how many shared subscriptions are held (each with at least one subscriber).
func (ls *LeanSockets) SharedOperations() int { return ls.shared.len() }

// Stop closes what is still open and stops the event loop and the workers.
func (ls *LeanSockets) Stop() {
	if ls == nil {
		return
	}
	ls.once.Do(func() {}) // never start after Stop
	if ls.engine != nil {
		ls.engine.Stop()
		ls.handlers.Stop()
	}
	if ls.pool != nil {
		ls.pool.stop()
	}
	ls.wheelMu.Lock()
	wheels := ls.wheels
	ls.wheelsStopped = true
	ls.wheelMu.Unlock()
	for _, w := range wheels {
		w.stop()
	}
}

// leanTransport is the websocket transport gqlgen's handler picks for an upgrade.
type leanTransport struct {
	sockets     *LeanSockets
	fallback    transport.Websocket
	initFunc    transport.WebsocketInitFunc
	initTimeout time.Duration
	keepAlive   time.Duration
	// guard admits each subscriber of a shared subscription (throttle, per-connection cap);
	// share says which subscriptions may be shared, and counts each subscriber open.
	guard socketGuard
	share *leanShare
	// writeTimeout is how long a socket's backlog may stay without emptying (WS_WRITE_TIMEOUT).
	writeTimeout time.Duration
}

var _ graphql.Transport = (*leanTransport)(nil)

func (t *leanTransport) Supports(r *http.Request) bool { return r.Header.Get("Upgrade") != "" }

// subprotocols in gqlgen's order of preference.
var leanSubprotocols = []string{"graphql-ws", "graphql-transport-ws"}

func (t *leanTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	hold := holdFrom(r.Context())
	if r.TLS != nil || hold == nil || t.sockets.start() != nil {
		t.fallback.Do(w, r, exec)
		return
	}
	key := r.Header.Get("Sec-WebSocket-Key")
	if r.Method != http.MethodGet || !headerHasToken(r.Header, "Connection", "upgrade") ||
		!strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
		r.Header.Get("Sec-WebSocket-Version") != "13" || key == "" {
		writeError(w, r, http.StatusBadRequest, eventide.CodeBadRequest,
			"a websocket upgrade needs GET with Connection: Upgrade, Upgrade: websocket, Sec-WebSocket-Version: 13 and a Sec-WebSocket-Key")
		return
	}
	proto := ""
	for _, p := range leanSubprotocols {
		if headerHasToken(r.Header, "Sec-WebSocket-Protocol", p) {
			proto = p
			break
		}
	}
	h := w.Header()
	h.Set("Upgrade", "websocket")
	h.Set("Connection", "Upgrade")
	h.Set("Sec-WebSocket-Accept", acceptKey(key))
	if proto != "" {
		h.Set("Sec-WebSocket-Protocol", proto)
	}
	w.WriteHeader(http.StatusSwitchingProtocols)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.sockets.log.Warn("websocket: could not take the connection", "error", err)
		return
	}
	_ = brw.Flush()
	var early []byte // what the client sent before it saw the 101
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		early = bytes.Clone(b)
	}
	raw, wrapped := underWrappers(conn)
	nbc, err := nbio.NBConn(raw)
	if err != nil {
		t.sockets.log.Warn("websocket: could not hand the connection to the event loop", "error", err)
		_ = conn.Close()
		return
	}
	hold.detach()
	vals := leanContext(r.Context())
	// The socket's state for socketGuard, here rather than in a context.WithValue of the init
	// function's (wsInit keeps one it finds): one object less a socket.
	vals.put(wsConnKey{}, &wsConn{})
	ctx, cancel := context.WithCancel(vals)
	lc := &leanConn{t: t, ls: t.sockets, exec: exec, legacy: proto != "graphql-transport-ws",
		ctx: ctx, cancel: cancel, hold: hold, wrapped: wrapped, nbc: nbc, wheelSlot: -1, wheelPos: -1}
	if t.keepAlive > 0 {
		lc.wheel = t.sockets.keepAliveWheel(t.keepAlive)
	}
	lc.sock = backlogConn{Conn: nbc, lc: lc}
	lc.ws.init(&lc.sock, lc, leanMessageLimit)
	lc.session.conn.Store(lc)
	nbc.SetSession(&lc.session)
	// What net/http read past the request (its background read takes a byte of the client's first
	// frame when it comes early) is parsed first, by whichever comes first: this goroutine once
	// the socket is in the event loop, or the loop's first read (onData, through the engine's
	// OnData: no handler of the socket's own).
	lc.early = early
	lc.hasEarly.Store(len(early) > 0)
	t.sockets.open.Add(1)
	if ss := sessionOf(r); ss != nil {
		ss.setSocket(lc)
	}
	if streams, ok := r.Context().Value(streamsKey{}).(context.Context); ok && !t.sockets.shutdowns.join(streams, lc) {
		go lc.goingAway() // the server is shutting down already
	}
	// Under the lock: the event loop's goroutines read it, and the race detector does not see
	// the order epoll gives.
	lc.mu.Lock()
	if t.initTimeout > 0 {
		lc.timer = time.AfterFunc(t.initTimeout, lc.initTimedOut)
	}
	lc.mu.Unlock()
	if _, err := t.sockets.engine.AddConn(nbc); err != nil {
		t.sockets.log.Warn("websocket: the event loop refused the connection", "error", err)
		_ = nbc.Close()
		lc.gone()
		return
	}
	if lc.hasEarly.Load() {
		if err := lc.parseEarly(); err != nil {
			nbc.CloseWithError(err)
		}
	}
}

// parseEarly parses what net/http read past the upgrade request, once.
func (c *leanConn) parseEarly() error {
	c.earlyMu.Lock()
	defer c.earlyMu.Unlock()
	defer c.hasEarly.Store(false) // after the parse: a read that sees false comes after it
	b := c.early
	c.early = nil
	if len(b) == 0 {
		return nil
	}
	return c.ws.Parse(b)
}

// onData is what the event loop read from the socket.
func (c *leanConn) onData(data []byte) {
	if c.hasEarly.Load() {
		if err := c.parseEarly(); err != nil {
			c.nbc.CloseWithError(err)
			return
		}
	}
	if err := c.ws.Parse(data); err != nil {
		c.nbc.CloseWithError(err)
	}
}

// The framer's handler (wsHandler): the socket's messages run on the handler pool, one at a
// time and in order.
func (c *leanConn) execute(job func()) bool { return c.nbc.Execute(job) }
func (c *leanConn) message(data []byte)     { c.onMessage(data) }

func (c *leanConn) peerClose(code int, _ string) {
	c.peerClosed(code)
	_ = c.nbc.Close() // the close handshake is done: the server closes the TCP connection
}

// underWrappers is the TCP connection under the listener's wrappers of conn (the connection
// cap's count, the drain's), and the outermost wrapper (nil when there is none): the wrappers
// stay, to be closed with the socket, while nbio takes the TCP connection under them.
func underWrappers(conn net.Conn) (raw, wrapped net.Conn) {
	raw = conn
	for {
		u, ok := raw.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		raw = u.NetConn()
	}
	if raw != conn {
		wrapped = conn
	}
	return raw, wrapped
}

// leanContext is what a socket keeps of its upgrade request's context for its operations: the
// viewer (the session's cell), request id and client, the session, the transport's label, the
// calendar base and the caller's trace. Not the request's chain: its cancel contexts,
// middleware values and cloned headers would stay as long as the socket. The values are kept in
// one object (leanValues), not a chain of context.WithValue: one object for each GC cycle to
// mark per held socket instead of six; the values themselves are the request's, not copies.
func leanContext(src context.Context) *leanValues {
	v := &leanValues{Context: context.Background()}
	if sc := trace.SpanContextFromContext(src); sc.IsValid() {
		v.Context = trace.ContextWithSpanContext(v.Context, sc)
	}
	eventide.CarryViewer(src, v.put)
	reqmeta.Carry(src, v.put)
	if ss := sessionFrom(src); ss != nil {
		v.put(sessionKey{}, ss)
	}
	if t := src.Value(transportKey{}); t != nil {
		v.put(transportKey{}, t)
	}
	calendar.CarryBase(src, v.put)
	return v
}

// leanValues is a context of a few values, in one object; its parent (Context) has the rest.
type leanValues struct {
	context.Context
	n  int
	kv [7]leanValue // as many as leanContext carries, and the websocket's wsConn
}

type leanValue struct{ key, val any }

// put adds a value; one more than the array holds goes in a context.WithValue over the parent.
func (v *leanValues) put(key, val any) {
	if v.n == len(v.kv) {
		v.Context = context.WithValue(v.Context, key, val)
		return
	}
	v.kv[v.n] = leanValue{key, val}
	v.n++
}

func (v *leanValues) Value(key any) any {
	for i := range v.n {
		if v.kv[i].key == key {
			return v.kv[i].val
		}
	}
	return v.Context.Value(key)
}

func (v *leanValues) String() string { return "httpapi.leanValues" }

// upgradeHeaders are the headers a socket's operations see (RawParams.Headers): requestRules
// reads that they came over a websocket; nothing reads more.
var upgradeHeaders = http.Header{"Upgrade": {"websocket"}}

// headerHasToken reports whether a comma-separated header of h lists token (case-insensitive).
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func acceptKey(key string) string {
	s := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(s[:])
}

// leanSession is a socket's nbio session: a websocket's (conn) or an HTTP stream's (stream). The
// event loop's callbacks take the connection from it through an atomic, which orders that after
// the connection's set-up for the race detector too (nbio's own bookkeeping is not instrumented).
type leanSession struct {
	conn   atomic.Pointer[leanConn]
	stream atomic.Pointer[leanStream]
}

// sessionConn is the lean connection of an nbio socket, or nil.
func sessionConn(c *nbio.Conn) *leanConn {
	if s, _ := c.Session().(*leanSession); s != nil {
		return s.conn.Load()
	}
	return nil
}

// leanConn is one websocket of the lean transport.
type leanConn struct {
	t        *leanTransport // shared by every socket: not a copy each
	ls       *LeanSockets
	exec     graphql.GraphExecutor
	legacy   bool // graphql-ws (or no subprotocol), else graphql-transport-ws
	hold     *streamHold
	wrapped  net.Conn // the listener's wrappers of the TCP connection, closed at the end
	nbc      *nbio.Conn
	ws       wsFramer
	session  leanSession  // the nbio session: in the socket's own object
	lastPong atomic.Int64 // unix nanoseconds

	mu          sync.Mutex
	ctx         context.Context // the connection's; after connection_init, the init function's
	cancel      context.CancelFunc
	inited      bool
	closing     bool // a close frame went out (or the socket is gone): nothing more is written
	ended       bool // the socket is gone
	active      leanOps
	timer       *time.Timer // the init timeout
	initPayload transport.InitPayload

	// Its place in the list of its server's shutdown (LeanSockets.shutdowns' mu).
	shutList           *shutdownList
	shutPrev, shutNext *leanConn

	// The keep-alive: the wheel (nil: none), and the socket's place in it (wheel.mu's).
	wheel               *keepAliveWheel
	wheelSlot, wheelPos int32

	// What net/http read past the upgrade request, parsed before the socket's first read.
	earlyMu  sync.Mutex
	early    []byte
	hasEarly atomic.Bool

	sock backlogConn
	socketBacklog
}

// backlogConn is the socket as the framer writes to it: it counts what goes in
// (nbio's OnWrittenSize, through leanConn.taken, counts what comes out).
type backlogConn struct {
	*nbio.Conn
	lc *leanConn
}

func (b *backlogConn) Write(p []byte) (int, error) {
	c := b.lc
	n, err := c.socketBacklog.write(b.Conn, p, c.t.writeTimeout, c.backlogTimedOut)
	if err != nil && c.backlog()+int64(len(p)) > maxSocketBacklog {
		c.ls.log.Info("websocket: closed a socket whose reader fell behind", "backlog_bytes", c.backlog()+int64(len(p)))
	}
	return n, err
}

// park holds s back while the socket's backlog is over backlogHigh (socketBacklog.park).
//
// A shared operation (nil c: it has no socket of its own) is never held back: one slow member
// must not stop the others' updates; its own socket's write timeout and backlog cap end it.
func (c *leanConn) park(s *leanSub) bool {
	if c == nil {
		return false
	}
	return c.socketBacklog.park(s)
}

// waitRoom is run's backpressure (socketBacklog.waitRoom); a shared operation has no socket.
func (c *leanConn) waitRoom(ctx context.Context) {
	if c != nil {
		c.socketBacklog.waitRoom(ctx)
	}
}

// backlogTimedOut is the write timeout: a backlog that has not emptied since it began that long
// ago closes the socket with 1013, as gqlgen's transport closes one whose write is blocked.
func (c *leanConn) backlogTimedOut() {
	if !c.socketBacklog.expired(c.t.writeTimeout) {
		return
	}
	c.ls.log.Info("websocket: closed a socket whose reader took nothing", "write_timeout", c.t.writeTimeout,
		"backlog_bytes", c.backlog())
	c.close(closeSlowReader, "Try again later: the client did not read for "+c.t.writeTimeout.String())
}

func (c *leanConn) connCtx() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctx
}

// wire is a protocol message as gqlgen writes it.
type wire struct {
	Payload json.RawMessage `json:"payload,omitempty"`
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
}

func (c *leanConn) onMessage(data []byte) {
	if !c.legacy { // the keep-alive's answers, as every client spells them: no decode
		switch {
		case bytes.Equal(data, pongMessage):
			c.lastPong.Store(time.Now().UnixNano())
			return
		case bytes.Equal(data, pingMessage):
			c.write(pongMessage)
			return
		}
	}
	start := graphql.Now()
	var m wire
	if err := json.Unmarshal(data, &m); err != nil {
		c.protocolError("invalid json", "decoding error")
		return
	}
	c.mu.Lock()
	inited := c.inited
	c.mu.Unlock()
	switch m.Type {
	case "connection_init":
		if inited {
			if !c.legacy {
				c.close(4429, "Too many initialisation requests")
				return
			}
			c.protocolError("unexpected message connection_init", "unexpected message")
			return
		}
		c.init(m.Payload)
	case "subscribe", "start":
		if (m.Type == "subscribe") == c.legacy {
			c.protocolError("unexpected message "+m.Type, "unexpected message")
			return
		}
		if !inited {
			if !c.legacy {
				c.close(4401, "Unauthorized")
				return
			}
			c.protocolError("unexpected message "+m.Type, "unexpected message")
			return
		}
		c.subscribe(start, m.ID, m.Payload)
	case "complete", "stop":
		if (m.Type == "complete") == c.legacy {
			c.protocolError("unexpected message "+m.Type, "unexpected message")
			return
		}
		c.mu.Lock()
		s := c.active.get(m.ID)
		c.mu.Unlock()
		if s != nil {
			s.stop()
		}
	case "ping":
		if c.legacy {
			c.protocolError("unexpected message ping", "unexpected message")
			return
		}
		c.send(wire{Type: "pong", Payload: m.Payload})
	case "pong":
		if c.legacy {
			c.protocolError("unexpected message pong", "unexpected message")
			return
		}
		c.lastPong.Store(time.Now().UnixNano())
	case "connection_terminate":
		if !c.legacy {
			c.protocolError("unexpected message "+m.Type, "unexpected message")
			return
		}
		c.close(transport.WebsocketCloseNormalClosure, "terminated")
	default:
		c.protocolError("unexpected message "+m.Type, "unexpected message")
	}
}

// protocolError ends the connection for a message it should not have sent: graphql-ws gets
// gqlgen's connection_error and 1002; graphql-transport-ws its protocol's 4400.
func (c *leanConn) protocolError(msg, reason string) {
	if !c.legacy {
		c.close(4400, "Invalid message received: "+msg)
		return
	}
	c.connectionError(msg)
	c.close(transport.WebsocketCloseProtocolError, reason)
}

func (c *leanConn) init(payload json.RawMessage) {
	var p transport.InitPayload
	if len(payload) > 0 && string(payload) != "null" {
		if err := json.Unmarshal(payload, &p); err != nil {
			c.protocolError("invalid json", "decoding error")
			return
		}
	}
	ctx := c.connCtx()
	var ack *transport.InitPayload
	if c.t.initFunc != nil {
		var err error
		var ictx context.Context
		ictx, ack, err = c.t.initFunc(ctx, p)
		if err != nil {
			c.connectionError(err.Error())
			code, reason := transport.WebsocketCloseNormalClosure, "terminated"
			if r, ok := ictx.Value(socketRefusalKey{}).(socketRefusal); ok {
				code, reason = r.code, r.reason
			}
			c.close(code, reason)
			return
		}
		ctx = ictx
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.ctx, c.inited, c.initPayload = ctx, true, p
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil // not kept for the socket's life
	}
	c.mu.Unlock()
	ackMsg := wire{Type: "connection_ack"}
	if ack != nil {
		b, err := json.Marshal(*ack)
		if err == nil {
			ackMsg.Payload = b
		}
	}
	c.send(ackMsg)
	if c.legacy {
		c.send(wire{Type: "ka"})
	}
	c.lastPong.Store(time.Now().UnixNano())
	if c.wheel != nil {
		c.mu.Lock()
		if !c.closing { // under mu: close takes the socket out after it set closing
			c.wheel.add(c)
		}
		c.mu.Unlock()
	}
}

func (c *leanConn) initTimedOut() {
	c.mu.Lock()
	inited := c.inited
	c.mu.Unlock()
	if !inited {
		c.close(closeInitTimeout, "Connection initialisation timeout")
	}
}

var errNoPong = errors.New("no pong")

// send writes one protocol message; an error message's errors get a code first (as
// guardedConn.WriteJSON gives gqlgen's).
func (c *leanConn) send(m wire) {
	if !c.legacy && (m.Type == "ka" || m.Type == "connection_error") {
		return // graphql-transport-ws has neither
	}
	if m.Type == "error" || m.Type == "connection_error" {
		if out, changed, _ := codeErrors(m.Payload, eventide.CodeBadRequest, true); changed {
			m.Payload = out
		}
	}
	buf := getBuffer()
	defer putBuffer(buf)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return
	}
	c.write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}

// write sends one text message, unless a close frame went out; what send and sendPayload frame
// goes through it.
func (c *leanConn) write(b []byte) {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if closing {
		return
	}
	if err := c.ws.WriteText(b); err != nil {
		c.nbc.CloseWithError(err)
	}
}

var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func getBuffer() *bytes.Buffer { return buffers.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 64<<10 {
		return // a rare large message does not stay
	}
	b.Reset()
	buffers.Put(b)
}

func (c *leanConn) connectionError(msg string) {
	b, err := json.Marshal(&gqlerror.Error{Message: msg})
	if err == nil {
		c.send(wire{Type: "connection_error", Payload: b})
	}
}

func (c *leanConn) sendError(id string, errs ...*gqlerror.Error) {
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	b, err := json.Marshal(list)
	if err == nil {
		c.send(wire{Type: "error", ID: id, Payload: b})
	}
}

func (c *leanConn) sendResponse(id string, resp *graphql.Response) {
	c.sendPayload(id, marshalResponse(resp))
}

func marshalResponse(resp *graphql.Response) []byte {
	b, err := json.Marshal(resp)
	if err != nil {
		panic(err) // as gqlgen's transport: recovered by the subscription's handler
	}
	return b
}

// sendPayload writes a response already marshalled (json.Marshal's compact JSON) as operation
// id's next (graphql-ws: data) message, framed as send frames it: the same bytes for every
// subscriber of a shared operation, with its own id.
func (c *leanConn) sendPayload(id string, payload []byte) {
	t := `","type":"next"}`
	if c.legacy {
		t = `","type":"data"}`
	}
	buf := getBuffer()
	defer putBuffer(buf)
	buf.WriteString(`{"payload":`)
	buf.Write(payload)
	buf.WriteString(`,"id":`)
	quoted, err := json.Marshal(id)
	if err != nil {
		return
	}
	buf.Write(quoted[:len(quoted)-1])
	buf.WriteString(t)
	c.write(buf.Bytes())
}

func (c *leanConn) complete(id string) { c.send(wire{Type: "complete", ID: id}) }

// close sends a close frame with code and reason, ends every subscription, and closes the socket
// when the peer answers (or after closeGrace).
func (c *leanConn) close(code int, reason string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.leaveWheel()
	c.cancel()
	if len(reason) > 123 {
		reason = reason[:123]
	}
	_ = c.ws.WriteClose(code, reason)
	time.AfterFunc(closeGrace, func() { _ = c.nbc.Close() })
}

// peerClosed answers the peer's close frame (unless ours went first); nbio then closes the socket.
func (c *leanConn) peerClosed(code int) {
	c.mu.Lock()
	sent := c.closing
	c.closing = true
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	c.leaveWheel()
	c.cancel()
	if sent {
		return
	}
	if code == 1005 || code == 1006 {
		code = transport.WebsocketCloseNormalClosure
	}
	_ = c.ws.WriteClose(code, "")
}

// gone is the socket's end: every subscription ends, the middleware's releases run.
func (c *leanConn) gone() {
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended, c.closing = true, true
	if c.timer != nil {
		c.timer.Stop()
	}
	var members []*leanMember
	c.active.each(func(op leanOp) {
		if m, ok := op.(*leanMember); ok {
			members = append(members, m)
		}
	})
	c.mu.Unlock()
	c.leaveWheel()
	c.cancel()
	for _, m := range members {
		m.leave(false)
	}
	c.socketBacklog.shutdown()
	c.ls.shutdowns.leave(c)
	c.ls.open.Add(-1)
	c.hold.end()
	if c.wrapped != nil {
		_ = c.wrapped.Close() // the wrappers' bookkeeping; the socket itself was nbio's
	}
}

func (c *leanConn) subscribe(start time.Time, id string, payload json.RawMessage) {
	c.mu.Lock()
	if c.active.get(id) != nil && !c.legacy {
		c.mu.Unlock()
		c.close(4409, "Subscriber for "+id+" already exists")
		return
	}
	base := c.ctx
	c.mu.Unlock()
	ctx := graphql.StartOperationTrace(base)
	params := &graphql.RawParams{}
	if err := decodeJSON(payload, params); err != nil {
		c.sendError(id, &gqlerror.Error{Message: "invalid json"})
		c.complete(id)
		return
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	params.Headers = upgradeHeaders
	rc, errs := c.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := c.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		switch errcode.GetErrorKind(errs) {
		case errcode.KindProtocol:
			c.sendError(id, resp.Errors...)
		default:
			c.sendResponse(id, &graphql.Response{Errors: errs})
		}
		c.complete(id)
		return
	}
	if field, ok := c.shareable(ctx, rc); ok {
		admitted, joined := c.subscribeShared(ctx, id, rc, field)
		if joined {
			return
		}
		ctx = admitted
	}
	ctx = graphql.WithOperationContext(ctx, rc)
	ctx, cancel := context.WithCancel(ctx)
	s := &leanSub{c: c, ls: c.ls, id: id, rc: rc, cancel: cancel}
	ctx, n := pubsub.WithNotifier(ctx, s.ready)
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		cancel()
		return
	}
	replaced := c.active.set(id, s)
	c.mu.Unlock()
	endReplaced(replaced)
	ok := s.protect(func() { s.responses, s.ctx = c.exec.DispatchOperation(ctx, rc) })
	s.begin(n, ok)
}

// begin lets a dispatched operation write: on the notifier's signals when its producer claimed
// n, else on a goroutine of its own; it finishes one whose dispatch panicked (dispatched false).
func (s *leanSub) begin(n *pubsub.Notifier, dispatched bool) {
	if !dispatched {
		s.finish()
		return
	}
	if n.Claimed() {
		// The producer tells when there is something: no goroutine waits for it.
		s.started.Store(true)
		if s.pending.Load() > 0 || s.closed.Load() {
			s.schedule()
		}
		return
	}
	go s.run() // a resolver that does not signal, or a query or mutation: gqlgen's way
}

// leanOps are a socket's operations by id: most sockets hold one, kept inline; a map only for
// more (an empty Go map's first entry costs a whole group of slots, per socket).
type leanOps struct {
	id   string
	op   leanOp
	more map[string]leanOp
}

func (o *leanOps) get(id string) leanOp {
	if o.op != nil && o.id == id {
		return o.op
	}
	return o.more[id]
}

// set files op under id and returns what it replaces (legacy graphql-ws lets an id be reused).
func (o *leanOps) set(id string, op leanOp) (replaced leanOp) {
	replaced = o.get(id)
	switch {
	case o.op != nil && o.id == id, o.op == nil && o.more[id] == nil:
		o.id, o.op = id, op
	default:
		if o.more == nil {
			o.more = map[string]leanOp{}
		}
		o.more[id] = op
	}
	return replaced
}

// drop removes id when op is what it holds.
func (o *leanOps) drop(id string, op leanOp) {
	if o.op == op && o.id == id {
		o.id, o.op = "", nil
	} else if o.more[id] == op {
		delete(o.more, id)
	}
}

func (o *leanOps) each(fn func(op leanOp)) {
	if o.op != nil {
		fn(o.op)
	}
	for _, op := range o.more {
		fn(op)
	}
}

// leanOp is what a socket holds for one of its operation ids.
type leanOp interface {
	// stop is the client's complete (stop): the operation ends and says complete.
	stop()
}

// leanSub is one running operation: a socket's own (c, id), an HTTP stream's (st), or a shared
// subscription's (g).
type leanSub struct {
	c         *leanConn
	st        *leanStream
	ls        *LeanSockets
	g         *leanGroup
	id        string
	rc        *graphql.OperationContext
	ctx       context.Context
	cancel    context.CancelFunc
	responses graphql.ResponseHandler

	pending atomic.Int64 // values signalled and not yet read
	closed  atomic.Bool  // the channel is closed: reads no longer wait
	started atomic.Bool  // responses is set
	running atomic.Bool  // on a worker, or queued for one
	done    atomic.Bool
	parked  bool // in c.parked (c.wmu)
}

// ready is the pubsub.Notifier's function: one more value, or the channel's close.
func (s *leanSub) ready(closed bool) {
	if closed {
		s.closed.Store(true)
	} else {
		s.pending.Add(1)
	}
	if s.started.Load() {
		s.schedule()
	}
}

func (s *leanSub) stop() { s.cancel() }

// endReplaced ends a shared subscription's subscriber whose id a legacy client reused: the socket
// no longer knows it, so its close could not take it out of its operation. (A socket's own
// operation ends with the socket's context, as gqlgen's transport lets it run.)
func endReplaced(op leanOp) {
	if m, ok := op.(*leanMember); ok {
		m.leave(false)
	}
}

func (s *leanSub) schedule() {
	if s.running.CompareAndSwap(false, true) {
		s.ls.pool.submit(s)
	}
}

// drain runs on a worker: it sends the responses that are ready, never waiting for one, and
// leaves them to their channel while the socket's backlog is over backlogHigh (park).
func (s *leanSub) drain() {
	for {
		for !s.done.Load() && (s.pending.Load() > 0 || s.closed.Load()) {
			if s.sink().park(s) {
				break
			}
			if _, more := s.next(); !more {
				s.finish()
				break
			}
			s.pending.Add(-1)
		}
		s.running.Store(false)
		// park again after running is clear: a release before it could not schedule s.
		if s.done.Load() || (s.pending.Load() <= 0 && !s.closed.Load()) || s.sink().park(s) ||
			!s.running.CompareAndSwap(false, true) {
			return
		}
	}
}

// next runs the subscription's next response and sends it; false when the operation is over.
func (s *leanSub) next() (sent *graphql.Response, more bool) {
	var resp *graphql.Response
	var payload []byte
	if !s.protect(func() {
		if resp = s.responses(s.ctx); resp != nil {
			payload = marshalResponse(resp)
		}
	}) || resp == nil {
		return nil, false
	}
	s.ls.executions.Add(1)
	if s.g != nil {
		s.g.broadcast(payload)
	} else {
		s.sink().sendPayload(s.id, payload)
	}
	return resp, true
}

// run is gqlgen's loop, for an operation whose resolver does not signal; it takes the next
// value only when the socket has room, as gqlgen's blocking write does.
func (s *leanSub) run() {
	for {
		s.sink().waitRoom(s.ctx)
		if _, more := s.next(); !more {
			s.finish()
			return
		}
	}
}

// protect runs fn, sending a panic as the operation's error as gqlgen does; false after a panic.
func (s *leanSub) protect(fn func()) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			ctx := s.ctx
			if ctx == nil && s.g == nil {
				ctx = s.sink().connCtx()
			}
			err := s.rc.Recover(ctx, r)
			var gqlerr *gqlerror.Error
			if !errors.As(err, &gqlerr) {
				gqlerr = &gqlerror.Error{}
				if err != nil {
					gqlerr.Message = err.Error()
				}
			}
			if s.g != nil {
				s.g.each(func(m *leanMember) { m.fail(gqlerr) })
			} else {
				s.sink().sendError(s.id, gqlerr)
			}
			ok = false
		}
	}()
	fn()
	return true
}

// finish ends the operation: complete (unless the connection is ending), and its context.
func (s *leanSub) finish() {
	if s.done.Swap(true) {
		return
	}
	if s.g != nil {
		s.g.end()
		s.cancel()
		return
	}
	s.sink().finished(s)
	s.cancel()
}

// leanSink is where an operation of its own (not a shared subscription's) writes: a websocket
// (leanConn) or an HTTP stream (leanStream).
type leanSink interface {
	// park holds s back while the connection's backlog is too large (see socketBacklog.park);
	// waitRoom is the same for an operation that runs on a goroutine of its own.
	park(s *leanSub) bool
	waitRoom(ctx context.Context)
	sendPayload(id string, payload []byte)
	sendError(id string, errs ...*gqlerror.Error)
	connCtx() context.Context
	// finished is the operation's end, before its context is cancelled: complete, unless the
	// connection is going.
	finished(s *leanSub)
}

var (
	_ leanSink = (*leanConn)(nil)
	_ leanSink = (*leanStream)(nil)
)

// sink is where s writes. A shared subscription's (s.g) has none: a nil *leanConn, whose park and
// waitRoom never hold it back, and whose writes it never reaches (it writes through s.g).
func (s *leanSub) sink() leanSink {
	if s.st != nil {
		return s.st
	}
	return s.c
}

func (c *leanConn) finished(s *leanSub) {
	c.mu.Lock()
	c.active.drop(s.id, s)
	alive := !c.closing
	c.mu.Unlock()
	if alive {
		c.complete(s.id)
	}
}

// task is what the worker pool runs: a ready subscription (each queued at most once,
// leanSub.running) or a shared response's fan-out (at most one per worker per fan-out).
type task interface{ work() }

func (s *leanSub) work() { s.drain() }

// workerPool runs ready subscriptions on a fixed number of goroutines. Its queue holds each
// subscription at most once (leanSub.running) and a fan-out's helpers while it runs, so the
// subscriptions and the workers bound it.
type workerPool struct {
	n       int
	mu      sync.Mutex
	cond    *sync.Cond
	queue   []task
	head    int
	stopped bool
	wg      sync.WaitGroup
}

func newWorkerPool(n int) *workerPool {
	p := &workerPool{n: n}
	p.cond = sync.NewCond(&p.mu)
	for range n {
		p.wg.Go(p.work)
	}
	return p
}

func (p *workerPool) submit(s task) {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.queue = append(p.queue, s)
	p.mu.Unlock()
	p.cond.Signal()
}

func (p *workerPool) work() {
	for {
		p.mu.Lock()
		for p.head == len(p.queue) && !p.stopped {
			p.cond.Wait()
		}
		if p.stopped {
			p.mu.Unlock()
			return
		}
		t := p.queue[p.head]
		p.queue[p.head] = nil
		p.head++
		if p.head == len(p.queue) { // empty: reuse the array, or let a large one go
			p.head = 0
			if cap(p.queue) > 4096 {
				p.queue = nil
			} else {
				p.queue = p.queue[:0]
			}
		}
		p.mu.Unlock()
		t.work()
	}
}

func (p *workerPool) stop() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	p.cond.Broadcast()
	p.wg.Wait()
}

// socketRefusal is how the init function tells the lean transport its close code and reason
// (gqlgen's transport reads its own context keys, set beside it by refuseSocket).
type socketRefusal struct {
	code   int
	reason string
}

type socketRefusalKey struct{}

// closeReasonForContext is the close reason set with transport.AppendCloseReason; the lean
// transport reads it through socketRefusal.
func closeReasonForContext(ctx context.Context) string {
	if r, ok := ctx.Value(socketRefusalKey{}).(socketRefusal); ok {
		return r.reason
	}
	return ""
}
