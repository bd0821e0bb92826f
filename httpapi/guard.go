package httpapi

import (
	"context"
	"errors"
	"fmt"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/security"
)

// identify puts the client (address, throttling key, user agent) in the context. X-Forwarded-For
// is believed only from trusted proxies.
func identify(trusted []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip := security.ClientIP(r, trusted)
			key := security.ClientKey("", ip)
			ua := r.UserAgent()
			if len(ua) > 256 {
				ua = ua[:256]
			}
			c := reqmeta.Client{IP: ip.String(), Key: key, AddrKey: key, UserAgent: ua}
			if !ip.IsValid() {
				c.IP = ""
			}
			next.ServeHTTP(w, r.WithContext(reqmeta.WithClient(r.Context(), c)))
		})
	}
}

// keyByViewer makes a signed-in viewer's own budget the throttling key.
func keyByViewer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := eventide.ViewerFrom(r.Context()); v != nil {
			c := reqmeta.ClientFrom(r.Context())
			c.Key = security.ClientKey(v.ID, netip.Addr{})
			r = r.WithContext(reqmeta.WithClient(r.Context(), c))
		}
		next.ServeHTTP(w, r)
	})
}

// throttle counts every request against its client's budget: 429 RATE_LIMITED with Retry-After
// when spent, and the RateLimit-* headers on every answer.
func throttle(t *security.Throttle) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if t == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d := t.Request(r.Context(), reqmeta.ClientFrom(r.Context()).Key)
			d.SetHeaders(w.Header())
			if !d.Allowed {
				writeError(w, r, http.StatusTooManyRequests, eventide.CodeRateLimited,
					fmt.Sprintf("too many requests; retry in %s", d.RetryAfter.Round(1e9)))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// simpleContentTypes are those a browser sends cross-site without a preflight.
var simpleContentTypes = map[string]bool{
	"text/plain": true, "application/x-www-form-urlencoded": true, "multipart/form-data": true,
}

// preventCSRF refuses, as Apollo Server does, a POST whose content type a cross-site form could
// send without a CORS preflight, unless it carries a header no simple request can
// (Apollo-Require-Preflight or X-Apollo-Operation-Name). Eventide's JSON POST always preflights;
// GET runs queries only, never mutations, so a forged GET changes nothing.
//
// A POST that passes is a JSON GraphQL request: a preflighted one sent as text/plain or without a
// content type is read as JSON (the header proves it is not a forged form), and any other
// content type is refused with 415 BAD_REQUEST instead of reaching gqlgen, which has no
// transport for it and would answer without an error code.
func preventCSRF(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		ct := r.Header.Get("Content-Type")
		mt, _, err := mime.ParseMediaType(ct)
		simple := ct == "" || (err == nil && simpleContentTypes[mt])
		preflighted := r.Header.Get("Apollo-Require-Preflight") != "" || r.Header.Get("X-Apollo-Operation-Name") != ""
		switch {
		case simple && !preflighted:
			writeError(w, r, http.StatusBadRequest, eventide.CodeBadRequest,
				"this request has been blocked as a potential cross-site request forgery: send Content-Type: application/json")
			return
		case ct == "" || mt == "text/plain":
			r.Header.Set("Content-Type", "application/json")
		case mt != "application/json":
			writeError(w, r, http.StatusUnsupportedMediaType, eventide.CodeBadRequest,
				"unsupported content type: send the GraphQL request as Content-Type: application/json")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// retryHeaders applies to a plain HTTP answer what the errors of its executed response ask
// for: an error that says when to retry (eventide.Error's RetryAfter: a login or sign-up over its
// budget, the password-hashing gate full) sets Retry-After, and one that names headers of its
// own (security.Refusal: the RateLimit-* of the budget that refused) adds them; the last such
// error wins. It reports whether the answer is then a 429. A stream (websocket, SSE, multipart
// subscription) reads nothing of this: it has no status to send.
func retryHeaders(h http.Header, errs gqlerror.List) bool {
	refused := false
	for _, e := range errs {
		var de *eventide.Error
		if !errors.As(e, &de) || de.RetryAfter <= 0 {
			continue
		}
		refused = true
		h.Set("Retry-After", strconv.Itoa(max(int(math.Ceil(de.RetryAfter.Seconds())), 1)))
		var own interface{ SetHeaders(http.Header) }
		if errors.As(e, &own) {
			own.SetHeaders(h)
		}
	}
	return refused
}

// clientSlots counts what each client holds open (streams, connections, requests in flight) and
// refuses one more beyond max. Its map holds only clients that hold something, so it is bounded by
// what they hold, and a client's entry goes when its last slot is released.
type clientSlots struct {
	max  int
	mu   sync.Mutex
	open map[string]int
}

func newClientSlots(max int) *clientSlots {
	return &clientSlots{max: max, open: map[string]int{}}
}

func (l *clientSlots) acquire(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key] >= l.max {
		return false
	}
	l.open[key]++
	return true
}

func (l *clientSlots) release(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[key]--; l.open[key] <= 0 {
		delete(l.open, key)
	}
}

// clients is how many clients hold a slot (the size of the map).
func (l *clientSlots) clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open)
}

// bodyBudget bounds the request-body bytes each client has in flight (read, or being read, and
// held until its request ends): a body is reserved at its declared length before a byte of it is
// read. Its map holds only clients with a body in flight.
type bodyBudget struct {
	max  int64
	mu   sync.Mutex
	used map[string]int64
}

func newBodyBudget(max int64) *bodyBudget {
	return &bodyBudget{max: max, used: map[string]int64{}}
}

func (b *bodyBudget) reserve(key string, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used[key]+n > b.max {
		return false
	}
	b.used[key] += n
	return true
}

func (b *bodyBudget) release(key string, n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used[key] -= n; b.used[key] <= 0 {
		delete(b.used, key)
	}
}

func (b *bodyBudget) clients() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.used)
}

// limitStreams refuses a long-lived stream (a websocket upgrade, an SSE or a multipart
// subscription) beyond max open streams per client address with 429, and reports it through t (a
// RATE_LIMITED security event per client and window) when set. All kinds share the one cap: they
// cost the server the same (a connection, a goroutine, subscriptions), and a cap on websockets
// alone was walked around over SSE. The address is the forwarded one behind a trusted proxy.
func limitStreams(max int, t *security.Throttle) func(http.Handler) http.Handler {
	l := newClientSlots(max)
	return func(next http.Handler) http.Handler {
		if max <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !isStream(r) {
				next.ServeHTTP(w, r)
				return
			}
			key := reqmeta.ClientFrom(r.Context()).AddrKey
			if !l.acquire(key) {
				if t != nil {
					t.Refused(security.ScopeWebsockets, key, max)
				}
				w.Header().Set("Retry-After", "1")
				writeError(w, r, http.StatusTooManyRequests, eventide.CodeRateLimited,
					fmt.Sprintf("too many open streams (websockets, SSE and multipart) from this client (at most %d)", max))
				return
			}
			defer holdFrom(r.Context()).release(func() { l.release(key) })
			next.ServeHTTP(w, r)
		})
	}
}

// wsConn is one websocket's state, put in its context by the init function.
type wsConn struct {
	subscriptions atomic.Int64
}

type wsConnKey struct{}

// socketGuard is a gqlgen extension for operations over a websocket: each one is throttled like
// an HTTP request (RATE_LIMITED as a GraphQL error, since there is no status to send), and a
// connection holds at most maxSubs subscriptions at once.
type socketGuard struct {
	throttle *security.Throttle
	maxSubs  int
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = socketGuard{}

func (socketGuard) ExtensionName() string                   { return "SocketGuard" }
func (socketGuard) Validate(graphql.ExecutableSchema) error { return nil }

func (g socketGuard) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	conn, _ := ctx.Value(wsConnKey{}).(*wsConn)
	if conn == nil {
		return next(ctx)
	}
	oc := graphql.GetOperationContext(ctx)
	release, refusal := g.admit(ctx, conn, oc.Operation != nil && oc.Operation.Operation == ast.Subscription)
	if refusal != nil {
		return refusal
	}
	if release == nil {
		return next(ctx)
	}
	context.AfterFunc(ctx, release)
	h := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := h(ctx)
		if resp == nil {
			release()
		}
		return resp
	}
}

// admit throttles one operation of conn and, for a subscription, takes its place in the
// connection's maxSubs; refusal is the operation's answer when it may not run. release (nil when
// nothing was taken) gives the place back, once. The lean transport's shared subscriptions, which
// do not run through the interceptors one by one, are admitted here too.
func (g socketGuard) admit(ctx context.Context, conn *wsConn, subscription bool) (release func(), refusal graphql.ResponseHandler) {
	if g.throttle != nil && ctx.Value(alreadyThrottledKey{}) == nil {
		if d := g.throttle.Request(ctx, reqmeta.ClientFrom(ctx).Key); !d.Allowed {
			return nil, oneError(ctx, eventide.CodeRateLimited, fmt.Sprintf("too many requests; retry in %s", d.RetryAfter.Round(1e9)))
		}
	}
	if !subscription || g.maxSubs <= 0 {
		return nil, nil
	}
	if conn.subscriptions.Add(1) > int64(g.maxSubs) {
		conn.subscriptions.Add(-1)
		return nil, oneError(ctx, eventide.CodeRateLimited, fmt.Sprintf("too many subscriptions on this connection (at most %d)", g.maxSubs))
	}
	var once sync.Once
	return func() { once.Do(func() { conn.subscriptions.Add(-1) }) }, nil
}

func oneError(ctx context.Context, code eventide.Code, msg string) graphql.ResponseHandler {
	return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
		Message:    msg,
		Extensions: map[string]any{"code": string(code), "requestId": reqmeta.IDFrom(ctx)},
	}}})
}

// opName records the GraphQL operation name of a request for its access-log line.
type opName struct{ name atomic.Pointer[string] }

type opNameKey struct{}

func opNameFrom(ctx context.Context) string {
	if o, _ := ctx.Value(opNameKey{}).(*opName); o != nil {
		if p := o.name.Load(); p != nil {
			return *p
		}
	}
	return ""
}

// recordOpName is the gqlgen side of withOpName.
type recordOpName struct{}

func (recordOpName) ExtensionName() string                   { return "OperationName" }
func (recordOpName) Validate(graphql.ExecutableSchema) error { return nil }
func (recordOpName) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	if o, _ := ctx.Value(opNameKey{}).(*opName); o != nil {
		if oc := graphql.GetOperationContext(ctx); oc != nil {
			name := oc.OperationName
			if name == "" && oc.Operation != nil {
				name = oc.Operation.Name
			}
			o.name.Store(&name)
		}
	}
	return next(ctx)
}
