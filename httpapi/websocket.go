package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	coderws "github.com/coder/websocket"

	"github.com/eventide/server/eventide"
)

// Websocket timeouts. InitTimeout is how long a new socket may stay silent before its
// connection_init; WriteTimeout how long one message may wait for room in a peer's socket
// (gqlgen's transport) or a socket's backlog may stay without emptying (the lean one): a peer
// that reads nothing for that long is gone, and holding the socket would hold its memory,
// goroutines and the server's shutdown.
const (
	DefaultInitTimeout  = 10 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// originPatterns turns CORS_ORIGINS into coder/websocket origin patterns: an origin with a
// scheme ("https://app.example") is matched with its scheme, a bare host on any scheme; "*"
// allows every origin.
func originPatterns(origins []string) (patterns []string, any bool) {
	for _, o := range origins {
		o = strings.TrimSuffix(strings.TrimSpace(o), "/")
		if o == "*" {
			return nil, true
		}
		if o != "" {
			patterns = append(patterns, o)
		}
	}
	return patterns, false
}

func acceptOptions(origins []string) coderws.AcceptOptions {
	patterns, any := originPatterns(origins)
	// any: every origin, development only, by configuration.
	return coderws.AcceptOptions{InsecureSkipVerify: any, OriginPatterns: patterns}
}

// originAllowed applies coder/websocket's rule: no Origin (not a browser), the server's own
// host, or an origin matching a pattern.
func originAllowed(r *http.Request, patterns []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(r.Host, u.Host) {
		return true
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return true
		}
	}
	return false
}

// checkOrigin refuses a websocket upgrade from a browser page of a foreign origin (cross-site
// websocket hijacking) with 403 FORBIDDEN, before gqlgen's transport, whose own refusal is a
// plain-text body followed by a second, ignored status.
func checkOrigin(origins []string) func(http.Handler) http.Handler {
	patterns, any := originPatterns(origins)
	return func(next http.Handler) http.Handler {
		if any {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && !originAllowed(r, patterns) {
				writeError(w, r, http.StatusForbidden, eventide.CodeForbidden,
					"websocket connections from this origin are not allowed (CORS_ORIGINS)")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// socketImplementation wraps gqlgen's websocket adapter with graphql-transport-ws's init
// timeout (gqlgen's own closes with 1002, protocol error; the protocol says 4408, which
// clients recognise) and a write timeout.
type socketImplementation struct {
	inner        transport.WebsocketImplementation
	initTimeout  time.Duration
	writeTimeout time.Duration
}

func (s socketImplementation) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	c, err := s.inner.Accept(w, r, o)
	if err != nil {
		return nil, err
	}
	g := &guardedConn{WebsocketConn: c, writeTimeout: s.writeTimeout}
	if r != nil {
		g.req = r.Context()
	}
	if ss := sessionOf(r); ss != nil {
		ss.setSocket(closeFunc(func(code int, reason string) { _ = c.WriteClose(code, reason) }))
	}
	if s.initTimeout > 0 {
		g.initTimer = time.AfterFunc(s.initTimeout, func() {
			_ = g.WriteClose(closeInitTimeout, "Connection initialisation timeout")
		})
	}
	return g, nil
}

// sessionOf is the session of an upgrade request (nil without one, or without a request).
func sessionOf(r *http.Request) *session {
	if r == nil {
		return nil
	}
	return sessionFrom(r.Context())
}

// guardedConn is a websocket as gqlgen sees it, with the timeouts of socketImplementation. It
// passes gqlgen's optional read limit and read deadline through.
type guardedConn struct {
	transport.WebsocketConn
	writeTimeout time.Duration
	initTimer    *time.Timer
	req          context.Context // the upgrade's: errServerShutdown is its cause when the server stops
}

var (
	_ transport.WebsocketReadLimiter   = (*guardedConn)(nil)
	_ transport.WebsocketReadDeadliner = (*guardedConn)(nil)
)

// NextReader stops the init timer at the first message, whatever it is: gqlgen closes a socket
// whose first message is not connection_init.
func (g *guardedConn) NextReader() (int, io.Reader, error) {
	t, r, err := g.WebsocketConn.NextReader()
	if g.initTimer != nil {
		g.initTimer.Stop()
	}
	return t, r, err
}

// WriteJSON closes the socket when the message does not fit in writeTimeout, which ends the
// blocked write with an error. Every error it sends has a code (codeSocketErrors).
func (g *guardedConn) WriteJSON(v any) error {
	codeSocketErrors(v)
	if g.writeTimeout <= 0 {
		return g.WebsocketConn.WriteJSON(v)
	}
	t := time.AfterFunc(g.writeTimeout, func() { _ = g.WebsocketConn.Close() })
	defer t.Stop()
	return g.WebsocketConn.WriteJSON(v)
}

// WriteClose turns the normal close gqlgen writes when the request's context ends into 1001
// when the server is shutting down, as the lean transport closes.
func (g *guardedConn) WriteClose(code int, reason string) error {
	if code == transport.WebsocketCloseNormalClosure && g.req != nil && errors.Is(context.Cause(g.req), errServerShutdown) {
		code, reason = closeGoingAway, "going away"
	}
	return g.WebsocketConn.WriteClose(code, reason)
}

func (g *guardedConn) Close() error {
	if g.initTimer != nil {
		g.initTimer.Stop()
	}
	return g.WebsocketConn.Close()
}

func (g *guardedConn) SetReadLimit(n int64) {
	if l, ok := g.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(n)
	}
}

func (g *guardedConn) SetReadDeadline(t time.Time) error {
	if d, ok := g.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}
