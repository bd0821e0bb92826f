package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/security"
)

// The per-client connection cap (HTTP_MAX_CONNECTIONS_PER_CLIENT) works at two levels, because a
// connection's peer is not always the client:
//
//   - A peer that is not a trusted proxy is the client: connectionCap counts its open
//     connections, every kind (plain requests, slow bodies, websockets, SSE), at accept. One
//     beyond the cap is still accepted, but its first request is answered 429 RATE_LIMITED with
//     Connection: close (limitClients), so the client learns why in the shape every error has.
//     Those answered connections have a cap of their own, the same number: past it a connection is
//     closed at once, unanswered, so a flood of them costs an accept and a close each.
//   - A trusted proxy carries many clients over its connections, so its own connections are not
//     counted (it would be refused as one client). Behind it, each request in flight is counted
//     against the forwarded client address instead (limitClients): a request held open (a slow
//     body, a stream) is what a held connection would be, since the proxy opens one upstream
//     connection per request it forwards at once.

// connectionCap counts open connections per client address, for limitListener.
type connectionCap struct {
	max     int
	trusted []netip.Prefix
	open    *clientSlots // connections within the cap
	over    *clientSlots // connections over it, to be answered 429 and closed
	// onRefuse hears of each connection closed unanswered (the throttle's counter and event).
	onRefuse func(key string)
}

func newConnectionCap(max int, trusted []netip.Prefix, onRefuse func(key string)) *connectionCap {
	return &connectionCap{max: max, trusted: trusted, open: newClientSlots(max), over: newClientSlots(max), onRefuse: onRefuse}
}

// limitListener counts every accepted connection against its peer's address.
type limitListener struct {
	net.Listener
	cap *connectionCap
}

// Accept returns the next connection; one over its client's cap comes marked (countedConn.over),
// and one over twice the cap is closed here and not returned.
func (l limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer := peerAddr(c.RemoteAddr())
		if trustedPeer(peer, l.cap.trusted) {
			return c, nil
		}
		key := security.ClientKey("", peer)
		switch {
		case l.cap.open.acquire(key):
			return &countedConn{Conn: c, key: key, slots: l.cap.open}, nil
		case l.cap.over.acquire(key):
			return &countedConn{Conn: c, key: key, slots: l.cap.over, over: true}, nil
		}
		_ = c.Close()
		if l.cap.onRefuse != nil {
			l.cap.onRefuse(key)
		}
	}
}

// countedConn is a connection that holds a slot of its client until it is closed (by the server,
// or by whoever hijacked it: a websocket).
type countedConn struct {
	net.Conn
	key   string
	slots *clientSlots
	over  bool
	once  sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.slots.release(c.key) })
	return c.Conn.Close()
}

// NetConn is the connection under the count (the lean websocket transport hands it to its event
// loop and closes this one, the count's, with the socket).
func (c *countedConn) NetConn() net.Conn { return c.Conn }

// CloseWrite lets net/http half-close the connection after a final answer (the 429), so the
// client reads it before the connection goes.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type overCapKey struct{}

// connContext marks the context of requests on a connection over its client's cap.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if cc, ok := c.(*countedConn); ok && cc.over {
		return context.WithValue(ctx, overCapKey{}, cc.key)
	}
	return ctx
}

// limitClients answers requests on a connection over its client's cap with 429 RATE_LIMITED and
// closes it, and counts the requests in flight of clients behind a trusted proxy against max.
func limitClients(max int, trusted []netip.Prefix, t *security.Throttle) func(http.Handler) http.Handler {
	inFlight := newClientSlots(max)
	refuse := func(w http.ResponseWriter, r *http.Request, key string) {
		if t != nil {
			t.Refused(security.ScopeConnections, key, max)
		}
		w.Header().Set("Retry-After", "1")
		writeError(w, r, http.StatusTooManyRequests, eventide.CodeRateLimited,
			fmt.Sprintf("too many open connections from this client (at most %d)", max))
	}
	return func(next http.Handler) http.Handler {
		if max <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if key, over := r.Context().Value(overCapKey{}).(string); over {
				w.Header().Set("Connection", "close")
				refuse(w, r, key)
				return
			}
			peer := peerAddr(r.RemoteAddr)
			if !trustedPeer(peer, trusted) {
				next.ServeHTTP(w, r) // counted by its connection
				return
			}
			client := security.ClientIP(r, trusted)
			if client == peer || !client.IsValid() {
				next.ServeHTTP(w, r) // the proxy's own request (a health check)
				return
			}
			key := security.ClientKey("", client)
			if !inFlight.acquire(key) {
				refuse(w, r, key)
				return
			}
			defer holdFrom(r.Context()).release(func() { inFlight.release(key) })
			next.ServeHTTP(w, r)
		})
	}
}

// peerAddr is the address of a connection's peer: a net.Addr or a RemoteAddr string.
func peerAddr(a any) netip.Addr {
	var s string
	switch v := a.(type) {
	case string:
		s = v
	case net.Addr:
		if tcp, ok := v.(*net.TCPAddr); ok {
			ip, _ := netip.AddrFromSlice(tcp.IP)
			return ip.Unmap()
		}
		s = v.String()
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func trustedPeer(a netip.Addr, trusted []netip.Prefix) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
