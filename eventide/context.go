package eventide

import "context"

type viewerKey struct{}
type requestIDKey struct{}

// WithViewer returns a context carrying the signed-in user (nil for anonymous).
func WithViewer(ctx context.Context, u *User) context.Context {
	return context.WithValue(ctx, viewerKey{}, u)
}

// ViewerFrom returns the signed-in user, or nil when the request is anonymous.
func ViewerFrom(ctx context.Context) *User {
	u, _ := ctx.Value(viewerKey{}).(*User)
	return u
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
