package security

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/eventide/server/eventide"
	"github.com/jellydator/ttlcache/v3"
)

// Decision is a limiter's answer for one request, with what the rate-limit headers need.
type Decision struct {
	Allowed    bool
	Limit      int           // requests allowed per window (0: no limit applied)
	Remaining  int           // requests that would be allowed right now, after this one
	RetryAfter time.Duration // when refused: how long until one more request is allowed
	ResetAfter time.Duration // how long until the key is back to Limit remaining
}

// SetHeaders writes the IETF RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset headers
// (seconds, rounded up) and, when the request is refused, Retry-After. A decision without a limit
// writes nothing.
func (d Decision) SetHeaders(h http.Header) {
	if d.Limit <= 0 {
		return
	}
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.ResetAfter)))
	if !d.Allowed {
		h.Set("Retry-After", strconv.Itoa(max(ceilSeconds(d.RetryAfter), 1)))
	}
}

// Err returns nil when d allows the request, else a *Refusal: a RATE_LIMITED *eventide.Error
// saying when to retry (its RetryAfter is d's, at least a second), with d for the HTTP answer's
// headers.
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	s := max(ceilSeconds(d.RetryAfter), 1)
	return &Refusal{Decision: d, err: &eventide.Error{Code: eventide.CodeRateLimited,
		Message: fmt.Sprintf("too many requests; retry in %d s", s), RetryAfter: time.Duration(s) * time.Second}}
}

// Refusal is the error of a refused Decision, met beneath the transport (a login or sign-up over
// its budget): it unwraps to its RATE_LIMITED *eventide.Error, which the client is shown, and
// keeps the decision, whose RateLimit-* headers an HTTP answer sends (SetHeaders) as the
// request throttle's own refusals do.
type Refusal struct {
	Decision Decision
	err      *eventide.Error
}

func (r *Refusal) Error() string { return r.err.Error() }
func (r *Refusal) Unwrap() error { return r.err }

// SetHeaders writes the refused decision's headers (Decision.SetHeaders).
func (r *Refusal) SetHeaders(h http.Header) { r.Decision.SetHeaders(h) }

func ceilSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(math.Ceil(d.Seconds()))
}

// Limiter decides whether one more request counted against key is allowed, at most limit per
// window. limit <= 0 or window <= 0 means no limit: the request is allowed.
//
// Both implementations use GCRA (the generic cell rate algorithm, as redis_rate does): a key
// may spend limit requests at once, and then earns one back every window/limit. So a burst of
// exactly limit is allowed and the next is refused with RetryAfter = window/limit; a client that
// keeps to limit per window is never refused.
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (Decision, error)
}

// MemoryLimiterConfig sizes a MemoryLimiter. Zero fields take the defaults named beside them.
type MemoryLimiterConfig struct {
	MaxKeys int              // keys tracked at most (the least recently used is forgotten); default 10000
	Now     func() time.Time // the clock; default time.Now
}

// MemoryLimiter is a Limiter in process memory. Each key costs one entry, which expires as soon
// as the key is back to its full limit, and at most MaxKeys are kept: a forgotten key starts
// again with its full limit. It is safe for concurrent use and never returns an error.
type MemoryLimiter struct {
	now func() time.Time

	mu   sync.Mutex
	tats *ttlcache.Cache[string, int64] // key → theoretical arrival time, Unix ns on now's clock
	sets int                            // since the last sweep of expired keys
}

// sweepEvery is how many writes pass between two sweeps of expired keys: the capacity bound
// evicts the least recently used key, which may be live while expired ones wait for a Get.
const sweepEvery = 1024

var _ Limiter = (*MemoryLimiter)(nil)

// NewMemoryLimiter returns an empty MemoryLimiter.
func NewMemoryLimiter(cfg MemoryLimiterConfig) *MemoryLimiter {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 10000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &MemoryLimiter{
		now: cfg.Now,
		tats: ttlcache.New(
			ttlcache.WithCapacity[string, int64](uint64(cfg.MaxKeys)),
			ttlcache.WithDisableTouchOnHit[string, int64](),
		),
	}
}

// Allow implements Limiter with GCRA. It never returns an error.
func (m *MemoryLimiter) Allow(_ context.Context, key string, limit int, window time.Duration) (Decision, error) {
	if limit <= 0 || window <= 0 {
		return Decision{Allowed: true}, nil
	}
	interval := max(int64(window)/int64(limit), 1) // one request is earned back every interval
	burst := interval * int64(limit)
	now := m.now().UnixNano()

	m.mu.Lock()
	defer m.mu.Unlock()
	tat := now
	if it := m.tats.Get(key); it != nil && it.Value() > now {
		tat = it.Value()
	}
	next := tat + interval
	allowAt := next - burst
	if now < allowAt {
		return Decision{Limit: limit, RetryAfter: time.Duration(allowAt - now),
			ResetAfter: time.Duration(tat - now)}, nil
	}
	m.tats.Set(key, next, time.Duration(next-now))
	if m.sets++; m.sets >= sweepEvery {
		m.sets = 0
		m.tats.DeleteExpired()
	}
	return Decision{Allowed: true, Limit: limit, Remaining: int((now - allowAt) / interval),
		ResetAfter: time.Duration(next - now)}, nil
}

// Len is the number of keys tracked and not expired; never above MaxKeys.
func (m *MemoryLimiter) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tats.Len()
}

// Reset forgets every key.
func (m *MemoryLimiter) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tats.DeleteAll()
}
