// Package cache is Eventide's shared key-value cache: a small byte-value interface with two
// backends (Redis through go-redis, and an in-process ttlcache) and the Switch that falls back
// from Redis to memory and back. What is kept in it, and how it stays exact, is the business of
// its users (storecache, apq, respcache); the replica bus (package bus) publishes over its Redis.
package cache

import (
	"context"
	"time"
)

// Item is one key and its value.
type Item struct {
	Key   string
	Value []byte
}

// Cache stores byte values under string keys, each with a time to live. Methods take many keys at
// once so that a backend can answer in one round trip. A nil value in a result is a miss.
// Implementations return an error only when they could not do what was asked; the Switch hides
// backend failures and returns only the caller's own context error.
type Cache interface {
	// Get returns the value of each key, in key order (nil when absent).
	Get(ctx context.Context, keys []string) ([][]byte, error)
	// Set stores every item for ttl, replacing what was there.
	Set(ctx context.Context, items []Item, ttl time.Duration) error
	// AddOrGet stores each item whose key is absent and returns, in item order, the value now
	// under each key: the existing one, or the one just stored.
	AddOrGet(ctx context.Context, items []Item, ttl time.Duration) ([][]byte, error)
	// Delete removes the keys.
	Delete(ctx context.Context, keys []string) error
	// Purge removes everything this cache holds and returns how many entries it dropped.
	Purge(ctx context.Context) (int, error)
	// Stats reports the backend's state; Hits and Misses are left to the layer that knows what a
	// hit is (storecache.Store).
	Stats(ctx context.Context) Stats
	// SetLocal applies a write made by another replica to what only this process holds: it
	// replaces items (for ttl) and deletes keys there. What every replica shares (Redis, while it
	// serves) has had the write already, so Redis does nothing here, and the Switch does it on
	// its memory only while memory serves.
	SetLocal(ctx context.Context, items []Item, deletes []string, ttl time.Duration)
}

// Stats describes the cache for admins (the CacheStats type of the schema).
type Stats struct {
	// Backend is "redis" or "memory": where reads go now.
	Backend string
	// FallbackActive is true while Redis is configured but unreachable and memory serves.
	FallbackActive bool
	// Hits and Misses count record and page look-ups since start.
	Hits, Misses int64
	// Entries is how many keys the backend holds (for Redis, the whole database: DBSIZE).
	Entries int64
	// Capacity is the in-memory backend's entry limit; 0 for Redis, which is bounded by its own
	// memory limit and the TTL on every key.
	Capacity int64
	// Evictions counts entries dropped to make room (capacity or byte budget in memory; Redis's
	// evicted_keys).
	Evictions int64
	// TTLSeconds is the time to live of every entry.
	TTLSeconds int
	// ResponseHits, ResponseMisses, ResponseEntries and ResponseBytes describe the whole-response
	// cache (package respcache) when one is in front of this cache; the server fills them in.
	ResponseHits, ResponseMisses int64
	ResponseEntries              int
	ResponseBytes                int64
}

// HitRatio is Hits / (Hits + Misses), 0 before any look-up.
func (s Stats) HitRatio() float64 {
	if n := s.Hits + s.Misses; n > 0 {
		return float64(s.Hits) / float64(n)
	}
	return 0
}
