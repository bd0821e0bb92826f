package respcache

import (
	"context"
	"sync"
)

// Deps collects what one response read through the shared cache (storecache.Store records it):
// the token of every cached value it used, as the store saw it before reading, and the instant
// its clock-bound pages stop being right. A response built from those reads stays exactly right
// while every token is unchanged and the instant has not passed, which is what lets this package
// keep whole responses under the same rules as the cached values. A read the cache could not answer
// (it went to the store directly) taints the collection: such a response is never kept.
//
// A Deps belongs to one response and is safe for its concurrent resolvers. It holds at most
// MaxDeps tokens; a response that depends on more is tainted instead (it would cost more to check
// than to build).
type Deps struct {
	mu      sync.Mutex
	keys    []string
	vals    [][]byte
	seen    map[string]struct{}
	until   int64 // unix ms, 0: no bound
	tainted bool
}

// MaxDeps bounds the tokens one response may depend on and still be kept.
const MaxDeps = 256

type depsKey struct{}

// WithDeps returns ctx collecting the dependencies of the reads made under it into d.
func WithDeps(ctx context.Context, d *Deps) context.Context {
	return context.WithValue(ctx, depsKey{}, d)
}

// DepsFrom returns the Deps collecting under ctx, nil when the response is not a candidate.
func DepsFrom(ctx context.Context) *Deps {
	d, _ := ctx.Value(depsKey{}).(*Deps)
	return d
}

// Taint marks the response as not to be kept.
func (d *Deps) Taint() {
	d.mu.Lock()
	d.tainted = true
	d.mu.Unlock()
}

// Add records that the response used a value tagged with token val under key.
func (d *Deps) Add(key string, val []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tainted {
		return
	}
	if _, ok := d.seen[key]; ok {
		return
	}
	if len(d.keys) >= MaxDeps || val == nil {
		d.tainted = true
		return
	}
	if d.seen == nil {
		d.seen = make(map[string]struct{}, 64)
	}
	d.seen[key] = struct{}{}
	d.keys = append(d.keys, key)
	d.vals = append(d.vals, val)
}

// ExpireAt records that the response stops being right at unix millisecond ms.
func (d *Deps) ExpireAt(ms int64) {
	d.mu.Lock()
	if d.until == 0 || ms < d.until {
		d.until = ms
	}
	d.mu.Unlock()
}

// Result returns the token keys and values the response depends on, the unix millisecond at which
// it stops being right (0: none), and whether it may be kept at all. The slices are d's own: read
// them once the response is built, and do not modify them.
func (d *Deps) Result() (keys []string, vals [][]byte, untilMs int64, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.keys, d.vals, d.until, !d.tainted
}
