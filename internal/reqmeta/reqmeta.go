// Package reqmeta carries what the HTTP transport learns of a request (its id and its client)
// through the context to what runs beneath it: the resolvers, the logs, the security log. The
// domain (eventide, app) never reads it: where a rule needs the client, the transport's side
// hands it over through app's interfaces (app.Guard, app.Journal).
package reqmeta

import "context"

type idKey struct{}

// WithID returns a context carrying the request id that logs and internal errors name.
func WithID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, idKey{}, id)
}

// IDFrom returns the request id, or "".
func IDFrom(ctx context.Context) string {
	id, _ := ctx.Value(idKey{}).(string)
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
