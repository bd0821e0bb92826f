package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/auth"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/querylimit"
	"github.com/eventide/server/respcache"
	"github.com/eventide/server/security"
)

// GraphQLOptions configures NewGraphQL.
type GraphQLOptions struct {
	Logger        *slog.Logger
	Authenticator *auth.Authenticator
	// Introspection allows introspection for everyone; otherwise only admins may introspect.
	Introspection bool
	// AllowedOrigins lists the origins a websocket may be opened from ("*" allows any); the
	// server's own origin is always allowed.
	AllowedOrigins []string
	// QueryCacheSize bounds the parsed-query LRU (DefaultQueryCacheSize when 0).
	QueryCacheSize int
	// APQ, when set, keeps automatic persisted queries (Apollo's protocol): a request may send
	// only the query's SHA-256, and PERSISTED_QUERY_NOT_FOUND asks it for the full text.
	APQ graphql.Cache[string]
	// Extensions are the schema's own (one ACCESS_DENIED per operation, per-response
	// dataloaders...), added in order after the server's guards and request rules.
	Extensions []graphql.HandlerExtension
	// ErrorPresenter and Recover turn the schema's errors and panics into GraphQL errors with
	// their codes (resolvers.ErrorPresenter, resolvers.Recover); gqlgen's defaults when nil.
	ErrorPresenter graphql.ErrorPresenterFunc
	Recover        graphql.RecoverFunc
	// Limits refuse hostile documents before validation (QUERY_TOO_COMPLEX); each refusal is a
	// QUERY_REJECTED security event when Security is set.
	Limits querylimit.Limits
	// DisableSuggestions drops "Did you mean" hints from validation errors (production).
	DisableSuggestions bool
	// Security, when set, hears of invalid tokens in websocket init payloads (TOKEN_INVALID), of
	// refused introspection (ACCESS_DENIED) and of documents over Limits (QUERY_REJECTED).
	Security *security.Log
	// Throttle, when set, counts each websocket operation against its client's budget.
	Throttle *security.Throttle
	// MaxSubscriptionsPerConnection caps concurrent subscriptions on one websocket (0: no cap).
	MaxSubscriptionsPerConnection int
	// ResponseCache, when set, lets the HTTP middleware keep the responses this server marks as
	// cacheable (see CacheableRoots).
	ResponseCache *respcache.Cache
	// InitTimeout is how long a websocket may wait before its connection_init; it is then closed
	// with 4408 (DefaultInitTimeout when 0).
	InitTimeout time.Duration
	// WriteTimeout is how long a websocket's writes may wait for its reader before the socket is
	// closed (WS_WRITE_TIMEOUT; DefaultWriteTimeout when 0).
	WriteTimeout time.Duration
	// MultipartHeartbeat is how long a multipart subscription stays without a part before a
	// heartbeat part is written (DefaultMultipartHeartbeat when 0).
	MultipartHeartbeat time.Duration
	// Operations reports each operation (metrics, and a span when tracing is on); nil: an
	// unregistered one.
	Operations *Operations
	// LeanSockets, when set, serves websockets with the lean transport (WS_TRANSPORT=lean,
	// leanws.go) instead of gqlgen's.
	LeanSockets *LeanSockets
}

// keepAliveInterval is the websocket keep-alive: graphql-ws "ka", graphql-transport-ws ping.
const keepAliveInterval = 15 * time.Second

// maxCachedQueryBytes bounds what the parsed-query LRU keeps: longer documents (rare, and the
// only ones that could make 1000 entries weigh much) are parsed every time instead.
const maxCachedQueryBytes = 16 << 10

// DefaultQueryCacheSize is how many parsed documents the query LRU keeps by default.
const DefaultQueryCacheSize = 1000

// NewGraphQL builds the gqlgen server with explicit transports: websocket (graphql-transport-ws
// and graphql-ws, keepalive and ping/pong dead-peer detection on), Server-Sent Events, multipart
// subscriptions, GET and POST (with @defer: multipart.go).
func NewGraphQL(es graphql.ExecutableSchema, o GraphQLOptions) *handler.Server {
	srv := handler.New(es)
	if o.Operations == nil {
		o.Operations = NewOperations(nil, nil, 0)
	}
	guard := socketGuard{throttle: o.Throttle, maxSubs: o.MaxSubscriptionsPerConnection}
	addTransports(srv, o, guard)
	if o.QueryCacheSize <= 0 {
		o.QueryCacheSize = DefaultQueryCacheSize
	}
	srv.SetQueryCache(boundedQueryCache{lru.New[*ast.QueryDocument](o.QueryCacheSize)})
	// First, so outermost: its span is the parent of all the operation does, and it sees the
	// refusals of every extension after it.
	srv.Use(o.Operations)
	if o.APQ != nil {
		srv.Use(extension.AutomaticPersistedQuery{Cache: o.APQ})
	}
	// After APQ, so a persisted query's text is checked too.
	var qlOpts []querylimit.Option
	if o.Security != nil {
		qlOpts = append(qlOpts, querylimit.OnReject(queryRejected(o.Security)))
	}
	srv.Use(querylimit.Extension(o.Limits, qlOpts...))
	if o.DisableSuggestions {
		querylimit.DisableSuggestions(srv)
	}
	srv.Use(sessionGuard{})
	srv.Use(guard)
	srv.Use(recordOpName{})
	srv.Use(introspection{all: o.Introspection, events: o.Security})
	srv.Use(requestRules{}) // no control characters in arguments, subscriptions on streams only, at most MaxErrors errors
	for _, x := range o.Extensions {
		srv.Use(x)
	}
	if o.ResponseCache != nil {
		srv.Use(keepResponses{}) // last, so outermost: it sees every error the others add
	}
	if o.ErrorPresenter != nil {
		srv.SetErrorPresenter(o.ErrorPresenter)
	}
	if o.Recover != nil {
		srv.SetRecoverFunc(o.Recover)
	}
	return srv
}

// addTransports adds the transports in the order gqlgen tries them.
func addTransports(srv *handler.Server, o GraphQLOptions, guard socketGuard) {
	if o.InitTimeout <= 0 {
		o.InitTimeout = DefaultInitTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	gqlgenWS := transport.Websocket{
		Implementation: socketImplementation{
			inner:       transport.CoderWebsocketImplementation{AcceptOptions: acceptOptions(o.AllowedOrigins)},
			initTimeout: o.InitTimeout, writeTimeout: o.WriteTimeout,
		},
		InitFunc:              wsInit(o.Authenticator, o.Security, o.Logger),
		KeepAlivePingInterval: keepAliveInterval,
		PingPongInterval:      keepAliveInterval,
	}
	// Anonymous subscribers of the lean transports — websockets, SSE and multipart alike — share
	// one operation per eventUpdated document and variables (leanshare.go).
	share := &leanShare{fields: map[string]bool{"eventUpdated": true}, ops: o.Operations}
	if o.LeanSockets != nil {
		srv.AddTransport(&leanTransport{sockets: o.LeanSockets, fallback: gqlgenWS, initFunc: gqlgenWS.InitFunc,
			initTimeout: o.InitTimeout, keepAlive: keepAliveInterval, writeTimeout: o.WriteTimeout,
			guard: guard, share: share})
	} else {
		srv.AddTransport(gqlgenWS)
	}
	// Before POST: all three take POST, SSE and multipart only as negotiated (httpStream).
	srv.AddTransport(sseTransport{lean: o.LeanSockets, share: share})
	srv.AddTransport(multipartTransport{heartbeat: o.MultipartHeartbeat, lean: o.LeanSockets, share: share})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(getTransport{})
	srv.AddTransport(postTransport{})
}

// wsInit authenticates a websocket from connection_init's payload: "Authorization" or
// "authorization" ("Bearer <token>") or "authToken" (the bare token). Without a token the
// viewer from the upgrade request's header (or anonymous) stays. The token binds the socket's
// session (Sessions), which re-checks it before every operation and closes the socket at its
// expiry.
func wsInit(a *auth.Authenticator, events *security.Log, log *slog.Logger) transport.WebsocketInitFunc {
	return func(ctx context.Context, p transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		if conn, _ := ctx.Value(wsConnKey{}).(*wsConn); conn == nil { // the lean transport made one
			ctx = context.WithValue(ctx, wsConnKey{}, &wsConn{})
		}
		tok := p.Authorization()
		if tok == "" {
			tok = p.GetString("authToken")
		}
		if tok == "" {
			return ctx, nil, nil
		}
		u, exp, err := a.Session(ctx, tok)
		if err != nil {
			if eventide.IsCode(err, eventide.CodeUnauthenticated) {
				logTokenInvalid(ctx, events, "websocket connection_init")
				// graphql-transport-ws: a refused connection_init closes with 4403 Forbidden, which
				// clients (graphql-ws) take as final instead of reconnecting at once.
				return refuseSocket(ctx, closeForbidden, "Forbidden: invalid or expired token"), nil, err
			}
			// The legacy protocol sends the error's text to the client: the store's failure stays
			// in the log.
			if log != nil {
				log.WarnContext(ctx, "websocket init: could not check the token", "error", err)
			}
			return refuseSocket(ctx, closeInternalError, "could not check the token; try again shortly"), nil,
				eventide.Errorf(eventide.CodeUnavailable, "could not check the token; try again shortly")
		}
		if ss := sessionFrom(ctx); ss != nil {
			// The session's viewer, re-checked before every operation and at every role change.
			ss.bind(tok, u, exp)
		} else {
			ctx = eventide.WithViewer(ctx, u)
		}
		c := reqmeta.ClientFrom(ctx)
		c.Key = security.ClientKey(u.ID, netip.Addr{})
		return reqmeta.WithClient(ctx, c), nil, nil
	}
}

// graphql-transport-ws close codes (github.com/enisdenjo/graphql-ws PROTOCOL.md).
const (
	closeInternalError = 4500
	closeForbidden     = 4403
	closeInitTimeout   = 4408
)

// closeGoingAway (RFC 6455's 1001) closes the websockets of a server that shuts down:
// graphql-ws clients reconnect after it (to another replica), where after 1000 they do only
// while they hold a subscription.
const closeGoingAway = 1001

// refuseSocket makes gqlgen close a socket whose init failed with code and reason.
func refuseSocket(ctx context.Context, code int, reason string) context.Context {
	ctx = context.WithValue(ctx, socketRefusalKey{}, socketRefusal{code: code, reason: reason})
	return transport.WithWebsocketCloseCode(transport.AppendCloseReason(ctx, reason), code)
}

// logTokenInvalid records a TOKEN_INVALID security event for the request in ctx.
func logTokenInvalid(ctx context.Context, events *security.Log, where string) {
	if events == nil {
		return
	}
	c := reqmeta.ClientFrom(ctx)
	events.Log(security.Event{Type: security.TokenInvalid, IP: c.IP, UserAgent: c.UserAgent,
		Message: "invalid or expired token in " + where})
}

// queryRejected logs each document querylimit refuses as a QUERY_REJECTED security event.
func queryRejected(events *security.Log) func(ctx context.Context, what string, measured, max int, op string) {
	return func(ctx context.Context, what string, measured, max int, op string) {
		logRequestEvent(ctx, events, security.Event{Type: security.QueryRejected, Operation: op,
			Message: fmt.Sprintf("query %s %d exceeds the limit of %d", what, measured, max)})
	}
}

// logRequestEvent logs e with what the request in ctx knows of who sent it: the client's
// address and user agent, and the viewer.
func logRequestEvent(ctx context.Context, events *security.Log, e security.Event) {
	c := reqmeta.ClientFrom(ctx)
	e.IP, e.UserAgent = c.IP, c.UserAgent
	if v := eventide.ViewerFrom(ctx); v != nil {
		e.UserID, e.Email = v.ID, v.Email
	}
	events.Log(e)
}

// boundedQueryCache keeps parsed documents of ordinary size only: its LRU has a fixed number of
// entries, and skipping the rare huge document bounds it in bytes too.
type boundedQueryCache struct {
	graphql.Cache[*ast.QueryDocument]
}

func (c boundedQueryCache) Add(ctx context.Context, key string, doc *ast.QueryDocument) {
	if len(key) <= maxCachedQueryBytes {
		c.Cache.Add(ctx, key, doc)
	}
}

// introspection allows schema introspection to everyone when all is set, else to admins only.
// Anyone else who selects __schema or __type is refused before execution, as @hasRole refuses an
// admin field (UNAUTHENTICATED when anonymous, else FORBIDDEN), and the attempt is an
// ACCESS_DENIED security event. gqlgen's own DisableIntrospection stays set as a backstop; alone,
// it fails the field with an uncoded error that would reach the client as an internal one.
type introspection struct {
	all    bool
	events *security.Log
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = introspection{}

func (introspection) ExtensionName() string                   { return "Introspection" }
func (introspection) Validate(graphql.ExecutableSchema) error { return nil }
func (i introspection) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	v := eventide.ViewerFrom(ctx)
	oc.DisableIntrospection = !i.all && (v == nil || v.Role != eventide.RoleAdmin)
	if !oc.DisableIntrospection || oc.Operation == nil || oc.Operation.Operation != ast.Query ||
		!introspects(oc.Operation.SelectionSet, oc.Doc, map[string]bool{}) {
		return nil
	}
	code, msg := eventide.CodeForbidden, "introspection needs the ADMIN role"
	if v == nil {
		code, msg = eventide.CodeUnauthenticated, "sign in first: introspection needs the ADMIN role"
	}
	if i.events != nil {
		logRequestEvent(ctx, i.events, security.Event{Type: security.AccessDenied,
			Operation: oc.Operation.Name, Message: "schema introspection needs the ADMIN role"})
	}
	return &gqlerror.Error{
		Message:    msg,
		Err:        &eventide.Error{Code: code, Message: msg},
		Extensions: map[string]any{"code": string(code)},
	}
}

// introspects reports whether a root selection set selects __schema or __type, directly or
// through fragments (each looked at once; validation has refused cycles). Those fields exist on
// the query root only, so fields' own selections need no look.
func introspects(set ast.SelectionSet, doc *ast.QueryDocument, seen map[string]bool) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name == "__schema" || s.Name == "__type" {
				return true
			}
		case *ast.InlineFragment:
			if introspects(s.SelectionSet, doc, seen) {
				return true
			}
		case *ast.FragmentSpread:
			if seen[s.Name] {
				continue
			}
			seen[s.Name] = true
			if f := doc.Fragments.ForName(s.Name); f != nil && introspects(f.SelectionSet, doc, seen) {
				return true
			}
		}
	}
	return false
}
