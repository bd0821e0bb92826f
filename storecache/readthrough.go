package storecache

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"

	"github.com/eventide/server/cache"
	"github.com/eventide/server/respcache"
)

// spec says how one kind of cached value is encoded and when a decoded one may be used.
type spec[T any] struct {
	kind byte
	enc  func(*encoder, T)
	dec  func(*decoder) T
	// fresh, when set, must accept a decoded value for it to be a hit (pages that end in time).
	fresh func(T) bool
	// keep, when set, must accept a loaded value for it to be written back.
	keep func(T) bool
}

// lookup is one value to read: its key and the key of the token it depends on.
type lookup struct {
	key   string
	token string
}

// loadFunc loads the values at the given indexes of the lookups from the store and returns those
// that exist, by index.
type loadFunc[T any] func(ctx context.Context, idx []int) (map[int]T, error)

// newToken is a fresh random token: 8 bytes, never reused in practice.
func newToken() []byte { return binary.LittleEndian.AppendUint64(make([]byte, 0, 8), rand.Uint64()) }

// taint marks the response being built under ctx, if any, as not to be kept: it read something
// the cache does not cover.
func taint(ctx context.Context) {
	if d := respcache.DepsFrom(ctx); d != nil {
		d.Taint()
	}
}

// recordDeps tells deps, when the response collects them, the token of every value read.
func recordDeps(deps *respcache.Deps, keys []string, raw [][]byte, tokIdx []int) {
	if deps == nil {
		return
	}
	for _, j := range tokIdx {
		deps.Add(keys[j], raw[j])
	}
}

// readThrough returns the value of every lookup and whether it exists. It reads all values and
// their tokens in one call; for the misses it makes sure a token exists, joins or starts one
// flight per key (the key and the token together), loads the flights it owns with one call of
// load, writes those values back tagged with the tokens, and waits for the rest.
func readThrough[T any](ctx context.Context, s *Store, sp spec[T], ls []lookup, load loadFunc[T]) ([]T, []bool, error) {
	n := len(ls)
	vals := make([]T, n)
	found := make([]bool, n)
	if n == 0 {
		return vals, found, nil
	}
	// Values first, then each distinct token once.
	keys := make([]string, n, 2*n)
	tokIdx := make([]int, n)
	seen := make(map[string]int, n)
	for i, l := range ls {
		keys[i] = l.key
		j, ok := seen[l.token]
		if !ok {
			j = len(keys)
			seen[l.token] = j
			keys = append(keys, l.token)
		}
		tokIdx[i] = j
	}
	raw, err := s.c.Get(ctx, keys)
	if err != nil {
		return nil, nil, err
	}
	var miss []int
	for i := range ls {
		tok := raw[tokIdx[i]]
		if d, ok := validFor(raw[i], sp.kind, tok); ok {
			v := sp.dec(d)
			if d.done() && (sp.fresh == nil || sp.fresh(v)) {
				vals[i], found[i] = v, true
				continue
			}
		}
		miss = append(miss, i)
	}
	s.hits.Add(int64(n - len(miss)))
	s.misses.Add(int64(len(miss)))
	deps := respcache.DepsFrom(ctx)
	if len(miss) == 0 {
		recordDeps(deps, keys, raw, tokIdx)
		return vals, found, nil
	}

	// A miss without a token gets one before the store is read: an absent token is never trusted.
	need := make(map[int]bool, len(miss))
	for _, i := range miss {
		need[tokIdx[i]] = true
	}
	var absent []cache.Item
	var absentAt []int
	for j := range need {
		if raw[j] == nil {
			absent = append(absent, cache.Item{Key: keys[j], Value: newToken()})
			absentAt = append(absentAt, j)
		}
	}
	if len(absent) > 0 {
		got, err := s.c.AddOrGet(ctx, absent, s.tokenTTL())
		if err != nil {
			return nil, nil, err
		}
		for k, j := range absentAt {
			raw[j] = got[k]
		}
	}
	// Every value returned below is tagged with (or read after) these tokens.
	recordDeps(deps, keys, raw, tokIdx)

	fkeys := make([]string, len(miss))
	for k, i := range miss {
		fkeys[k] = ls[i].key + "\x00" + string(raw[tokIdx[i]])
	}
	fl, owned := s.flights.claim(fkeys)
	var mine []int // indexes into miss
	for k := range miss {
		if owned[k] {
			mine = append(mine, k)
		}
	}
	if len(mine) > 0 {
		// The load runs apart from this request: others may wait on it, and one client going
		// away must not fail them. It is bounded by loadTimeout.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.loadTimeout)
		go func() {
			defer cancel()
			var got map[int]T
			var err error
			defer func() {
				if v := recover(); v != nil {
					err = fmt.Errorf("cache: load panicked: %v", v)
				}
				for _, m := range mine {
					v, ok := got[miss[m]]
					s.flights.complete(fkeys[m], fl[m], v, ok, err)
				}
			}()
			idx := make([]int, len(mine))
			for k, m := range mine {
				idx[k] = miss[m]
			}
			got, err = load(lctx, idx)
			var items []cache.Item
			if err == nil {
				for _, m := range mine {
					i := miss[m]
					v, ok := got[i]
					if !ok || (sp.keep != nil && !sp.keep(v)) {
						continue
					}
					e := newValue(sp.kind, raw[tokIdx[i]], 96)
					sp.enc(e, v)
					items = append(items, cache.Item{Key: ls[i].key, Value: e.b})
				}
				if len(items) > 0 {
					// A failed write-back costs only a later miss; the Switch has already
					// handled a Redis failure by then.
					_ = s.c.Set(lctx, items, s.ttl)
				}
			}
		}()
	}
	for k, i := range miss {
		v, ok, err := fl[k].wait(ctx)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			vals[i], found[i] = v.(T), true
		}
	}
	return vals, found, nil
}
