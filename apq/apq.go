// Package apq keeps automatic persisted queries (Apollo's protocol) in the shared cache.
package apq

import (
	"context"
	"log/slog"
	"time"

	"github.com/eventide/server/cache"
)

// MaxPersistedQuery bounds the queries APQ keeps: a longer one is still answered, just not
// persisted (the client keeps sending it in full), so that clients cannot fill the cache with
// megabytes of text.
const MaxPersistedQuery = 32 << 10

// APQ keeps automatic persisted queries (Apollo's protocol) in the shared cache under their
// SHA-256, for TTL. It implements gqlgen's graphql.Cache[string]; gqlgen has already checked that
// the hash matches the query when Add is called.
type APQ struct {
	c   cache.Cache
	ttl time.Duration
	log *slog.Logger
}

// New returns the persisted-query cache over c.
func New(c cache.Cache, ttl time.Duration, log *slog.Logger) *APQ {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &APQ{c: c, ttl: ttl, log: log}
}

func apqKey(hash string) string { return "apq:" + hash }

// Get returns the query persisted under hash.
func (a *APQ) Get(ctx context.Context, hash string) (string, bool) {
	if len(hash) != 64 {
		return "", false
	}
	v, err := a.c.Get(ctx, []string{apqKey(hash)})
	if err != nil || v[0] == nil {
		return "", false
	}
	return string(v[0]), true
}

// Add persists query under hash. A failure is logged: the client will be asked for the full query
// again, which works but costs it a round trip every time.
func (a *APQ) Add(ctx context.Context, hash, query string) {
	if len(query) > MaxPersistedQuery {
		a.log.DebugContext(ctx, "persisted query too long to keep", "hash", hash, "bytes", len(query))
		return
	}
	if err := a.c.Set(context.WithoutCancel(ctx), []cache.Item{{Key: apqKey(hash), Value: []byte(query)}}, a.ttl); err != nil {
		a.log.WarnContext(ctx, "could not persist a query", "hash", hash, "error", err)
	}
}
