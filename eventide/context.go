package eventide

import (
	"context"
	"net/http"
	"sync"
)

type viewerKey struct{}
type requestIDKey struct{}

// WithViewer returns a context carrying the signed-in user (nil for anonymous).
func WithViewer(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, viewerKey{}, u)
}

// ViewerFrom returns the signed-in user, or nil when the request is anonymous. Under a
// ViewerCell it is the cell's current user.
func ViewerFrom(ctx context.Context) *User {
	switch v := ctx.Value(viewerKey{}).(type) {
	case *User:
		return v
	case *ViewerCell:
		return v.Load()
	}
	return nil
}

// Carry returns dst with what src says of its request: the viewer (or the viewer cell), the
// request id and the client. A connection that outlives its request (the lean websocket
// transport) builds its operations' context from these, not from the request's whole chain.
func Carry(dst, src context.Context) context.Context {
	if v := src.Value(viewerKey{}); v != nil {
		dst = context.WithValue(dst, viewerKey{}, v)
	}
	if id, ok := src.Value(requestIDKey{}).(string); ok {
		dst = WithRequestID(dst, id)
	}
	if c, ok := src.Value(clientKey{}).(Client); ok {
		dst = WithClient(dst, c)
	}
	return dst
}

// ViewerCell holds the viewer of a connection that outlives one request (a websocket, an SSE
// stream): its user is replaced when the session learns of a new role, and everything that asks
// ViewerFrom under it — the next operation, a subscription already running — sees the new one.
// A copy of the user frozen at connect time was a privilege escalation.
type ViewerCell struct {
	mu sync.RWMutex
	u  *User
}

// Load returns the current viewer (nil when anonymous).
func (c *ViewerCell) Load() *User {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.u
}

// Store replaces the viewer.
func (c *ViewerCell) Store(u *User) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.u = u
}

type subscriptionEndKey struct{}

// WithSubscriptionEnd returns ctx under which EndSubscription ends the subscription being run by
// calling end (the transport then sends the error, then complete).
func WithSubscriptionEnd(ctx context.Context, end func(error)) context.Context {
	return context.WithValue(ctx, subscriptionEndKey{}, end)
}

// EndSubscription ends the subscription ctx belongs to with err, which its client receives as a
// last error before complete. It reports false when ctx belongs to no such subscription; the
// caller then ends it by closing its channel.
func EndSubscription(ctx context.Context, err error) bool {
	end, _ := ctx.Value(subscriptionEndKey{}).(func(error))
	if end == nil {
		return false
	}
	end(err)
	return true
}

// WithViewerCell returns a context whose viewer is whatever c holds when asked.
func WithViewerCell(ctx context.Context, c *ViewerCell) context.Context {
	return context.WithValue(ctx, viewerKey{}, c)
}

// WithRequestID returns a context carrying the request id that logs and internal errors name.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestIDFrom returns the request id, or "".
func RequestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// Client is who sent a request, as far as the server can tell: the address (X-Forwarded-For only
// from trusted proxies), the throttling key (the user when signed in, else the address) and the
// User-Agent.
type Client struct {
	IP        string
	Key       string // "user:<id>" when signed in, else the address key
	AddrKey   string // the address key alone ("ip:..."), for what is throttled before sign-in
	UserAgent string
}

type clientKey struct{}

// WithClient returns a context carrying the request's client.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFrom returns the request's client, or the zero Client.
func ClientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}

// ResponseHints lets a resolver ask the HTTP transport for a status and headers (429 with
// Retry-After, say) on a plain HTTP response; over websockets nothing reads them. Safe for
// concurrent use.
type ResponseHints struct {
	mu     sync.Mutex
	status int
	header http.Header
}

// Set asks for status and adds header's values to the response.
func (h *ResponseHints) Set(status int, header http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status = status
	if h.header == nil {
		h.header = http.Header{}
	}
	for k, v := range header {
		h.header[k] = v
	}
}

// Get returns what was asked for: status 0 means nothing.
func (h *ResponseHints) Get() (int, http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status, h.header
}

type hintsKey struct{}

// WithResponseHints returns a context carrying h.
func WithResponseHints(ctx context.Context, h *ResponseHints) context.Context {
	return context.WithValue(ctx, hintsKey{}, h)
}

// ResponseHintsFrom returns the request's hints, or nil when the transport reads none.
func ResponseHintsFrom(ctx context.Context) *ResponseHints {
	h, _ := ctx.Value(hintsKey{}).(*ResponseHints)
	return h
}
