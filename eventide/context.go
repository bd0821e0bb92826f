package eventide

import (
	"context"
	"sync"
)

type viewerKey struct{}

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

// CarryViewer calls put with the key and value of src's viewer (or viewer cell), if it has one.
// A connection that outlives its request (the lean websocket transport) keeps for its
// operations the few values they read, in one object of its own, not the request's whole chain.
func CarryViewer(src context.Context, put func(key, val any)) {
	if v := src.Value(viewerKey{}); v != nil {
		put(viewerKey{}, v)
	}
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

// WithViewerCell returns a context whose viewer is whatever c holds when asked.
func WithViewerCell(ctx context.Context, c *ViewerCell) context.Context {
	return context.WithValue(ctx, viewerKey{}, c)
}
