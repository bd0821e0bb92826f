// Package dataloader batches and de-duplicates the reads of one GraphQL response: each loader
// collects the keys asked for while the response resolves and reads them with one call to the
// source (the cached store: one look-up of the shared cache for all keys, one $in query for the
// misses), and remembers what it read for the rest of the response. Loaders are made per response
// by Middleware and found with For(ctx).
package dataloader

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventide/server/telemetry"
)

// Loader loads values of type V by string key in batches. A batch is sent when MaxBatch keys are
// waiting, when Wait has passed since its first key, or at once for LoadMany and Prefetch, which
// know every key they need. The memo keeps what was loaded for the loader's life (one response),
// up to MaxMemo keys; past that, keys are still batched but not remembered.
type Loader[V any] struct {
	fetch    func(ctx context.Context, keys []string) (map[string]V, error)
	missing  func(key string) error // the error for a key the fetch did not return; nil = zero value
	wait     time.Duration
	maxBatch int
	maxMemo  int
	observe  func(size int)
	name     string
	tracer   trace.Tracer

	mu   sync.Mutex
	memo map[string]*result[V]
	cur  *batch[V]
}

type result[V any] struct {
	done chan struct{}
	v    V
	err  error
}

type batch[V any] struct {
	keys    []string
	results map[string]*result[V]
	ctx     context.Context
	timer   *time.Timer
	sent    bool
}

// Config configures a Loader.
type Config struct {
	// Wait is how long a batch collects keys after its first (default 1ms).
	Wait time.Duration
	// MaxBatch bounds the keys of one batch, which is one $in query (default 100).
	MaxBatch int
	// MaxMemo bounds the keys remembered per loader (default 2000).
	MaxMemo int
	// Observe, when set, is told the size of every batch sent.
	Observe func(size int)
	// Name names the loader in its batches' spans; Tracer, when set, makes each batch a span
	// under the span of the request that asked for its first key.
	Name   string
	Tracer trace.Tracer
}

// NewLoader returns a loader over fetch, which returns the values found by key; missing makes the
// error of a key fetch did not return (nil: such a key loads as the zero value without error).
func NewLoader[V any](fetch func(ctx context.Context, keys []string) (map[string]V, error), missing func(key string) error, c Config) *Loader[V] {
	if c.Wait <= 0 {
		c.Wait = time.Millisecond
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 100
	}
	if c.MaxMemo <= 0 {
		c.MaxMemo = 2000
	}
	return &Loader[V]{fetch: fetch, missing: missing, wait: c.Wait, maxBatch: c.MaxBatch, maxMemo: c.MaxMemo,
		observe: c.Observe, name: c.Name, tracer: c.Tracer, memo: make(map[string]*result[V])}
}

// Load returns the value of key, waiting for its batch.
func (l *Loader[V]) Load(ctx context.Context, key string) (V, error) {
	l.mu.Lock()
	r := l.enqueue(ctx, key)
	l.mu.Unlock()
	return r.wait(ctx)
}

// LoadMany returns the values of keys in key order, with an error per key (nil when loaded); the
// keys not yet loaded are sent at once.
func (l *Loader[V]) LoadMany(ctx context.Context, keys []string) ([]V, []error) {
	rs := l.enqueueAll(ctx, keys)
	vs := make([]V, len(keys))
	errs := make([]error, len(keys))
	for i, r := range rs {
		vs[i], errs[i] = r.wait(ctx)
	}
	return vs, errs
}

// Prefetch starts loading keys now, without waiting: the resolvers that Load them later find them
// loaded or in flight. A connection resolver that knows every node calls it for their relations,
// so that each relation is one batch whatever the scheduling of the node resolvers.
func (l *Loader[V]) Prefetch(ctx context.Context, keys []string) {
	if len(keys) > 0 {
		l.enqueueAll(ctx, keys)
	}
}

// Prime remembers v for key unless key is already loaded or loading.
func (l *Loader[V]) Prime(key string, v V) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.memo[key]; ok || len(l.memo) >= l.maxMemo {
		return
	}
	r := &result[V]{done: make(chan struct{}), v: v}
	close(r.done)
	l.memo[key] = r
}

// Clear forgets everything loaded, so that the next Load reads again (after a write).
func (l *Loader[V]) Clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.memo)
}

func (l *Loader[V]) enqueueAll(ctx context.Context, keys []string) []*result[V] {
	l.mu.Lock()
	defer l.mu.Unlock()
	rs := make([]*result[V], len(keys))
	for i, k := range keys {
		rs[i] = l.enqueue(ctx, k)
	}
	if l.cur != nil {
		l.sendLocked(l.cur)
	}
	return rs
}

// enqueue returns the result for key: remembered, already in the current batch, or added to it.
// It must be called with l.mu held.
func (l *Loader[V]) enqueue(ctx context.Context, key string) *result[V] {
	if r, ok := l.memo[key]; ok {
		return r
	}
	b := l.cur
	if b == nil {
		b = &batch[V]{results: make(map[string]*result[V]), ctx: ctx}
		l.cur = b
		b.timer = time.AfterFunc(l.wait, func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.sendLocked(b)
		})
	}
	if r, ok := b.results[key]; ok {
		return r
	}
	r := &result[V]{done: make(chan struct{})}
	b.results[key] = r
	b.keys = append(b.keys, key)
	if len(l.memo) < l.maxMemo {
		l.memo[key] = r
	}
	if len(b.keys) >= l.maxBatch {
		l.sendLocked(b)
	}
	return r
}

// sendLocked sends b once, in its own goroutine; it must be called with l.mu held.
func (l *Loader[V]) sendLocked(b *batch[V]) {
	if b.sent {
		return
	}
	b.sent = true
	b.timer.Stop()
	if l.cur == b {
		l.cur = nil
	}
	go l.run(b)
}

func (l *Loader[V]) run(b *batch[V]) {
	if l.observe != nil {
		l.observe(len(b.keys))
	}
	ctx, span := telemetry.Child(b.ctx, l.tracer, "dataloader "+l.name, trace.WithAttributes(
		attribute.String("dataloader.name", l.name), attribute.Int("dataloader.keys", len(b.keys))))
	got, err := l.safeFetch(ctx, b.keys)
	telemetry.End(span, err)
	for _, k := range b.keys {
		r := b.results[k]
		switch v, ok := got[k]; {
		case err != nil:
			r.err = err
		case ok:
			r.v = v
		case l.missing != nil:
			r.err = l.missing(k)
		}
		close(r.done)
	}
	if err != nil {
		// A failed batch is not remembered: a later Load in the same response may try again.
		l.mu.Lock()
		for _, k := range b.keys {
			if l.memo[k] == b.results[k] {
				delete(l.memo, k)
			}
		}
		l.mu.Unlock()
	}
}

// safeFetch turns a panic in the fetch (which runs outside any resolver's recover) into an error.
func (l *Loader[V]) safeFetch(ctx context.Context, keys []string) (got map[string]V, err error) {
	defer func() {
		if v := recover(); v != nil {
			got, err = nil, fmt.Errorf("dataloader: fetch panicked: %v\n%s", v, debug.Stack())
		}
	}()
	return l.fetch(ctx, keys)
}

func (r *result[V]) wait(ctx context.Context) (V, error) {
	select {
	case <-r.done:
		return r.v, r.err
	case <-ctx.Done():
		var zero V
		return zero, ctx.Err()
	}
}
