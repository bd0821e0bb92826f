// Package reqmeta carries what the HTTP transport learns of a request (its id and its client),
// and the hook by which a subscription it runs is ended with an error, through the context to
// what runs beneath it: the resolvers, the logs, the security log. The
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

// Carry calls put with the key and value of src's request id and of its client, those it has:
// what a connection that outlives its request (the lean websocket transport) keeps of it for
// its operations, in one object of its own.
func Carry(src context.Context, put func(key, val any)) {
	if v := src.Value(idKey{}); v != nil {
		put(idKey{}, v)
	}
	if v := src.Value(clientKey{}); v != nil {
		put(clientKey{}, v)
	}
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
