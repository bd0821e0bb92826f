package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jellydator/ttlcache/v3"
)

// Memory is the in-process backend: a ttlcache bounded by entries (CACHE_MAX_ENTRIES) and by
// bytes, with a hard TTL (a read never extends it). When full, the least recently used entry
// goes; every such eviction is counted.
type Memory struct {
	c         *ttlcache.Cache[string, []byte]
	capacity  int
	ttl       time.Duration
	evictions atomic.Int64
	stopEvict func()
	stopOnce  sync.Once
	done      chan struct{}
}

var _ Cache = (*Memory)(nil)

// MemoryOptions configures NewMemory.
type MemoryOptions struct {
	// MaxEntries bounds the number of entries (> 0).
	MaxEntries int
	// MaxBytes bounds the bytes held in keys and values together; 0 means 64 MiB.
	MaxBytes int64
	// TTL is the default time to live, used when a call passes 0.
	TTL time.Duration
}

// DefaultMemoryBytes is the byte budget of the memory backend when none is given.
const DefaultMemoryBytes = 64 << 20

// entryOverhead approximates what ttlcache spends per entry beyond key and value, so that the
// byte budget also bounds many tiny entries.
const entryOverhead = 160

// NewMemory returns a started memory backend; Close stops its expiry goroutine.
func NewMemory(o MemoryOptions) *Memory {
	if o.MaxEntries <= 0 {
		o.MaxEntries = 10_000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMemoryBytes
	}
	c := ttlcache.New(
		ttlcache.WithCapacity[string, []byte](uint64(o.MaxEntries)),
		ttlcache.WithTTL[string, []byte](o.TTL),
		ttlcache.WithDisableTouchOnHit[string, []byte](),
		ttlcache.WithMaxCost[string, []byte](uint64(o.MaxBytes), func(it ttlcache.CostItem[string, []byte]) uint64 {
			return uint64(len(it.Key) + len(it.Value) + entryOverhead)
		}),
	)
	m := &Memory{c: c, capacity: o.MaxEntries, ttl: o.TTL, done: make(chan struct{})}
	m.stopEvict = c.OnEviction(func(_ context.Context, r ttlcache.EvictionReason, _ *ttlcache.Item[string, []byte]) {
		if r == ttlcache.EvictionReasonCapacityReached || r == ttlcache.EvictionReasonMaxCostExceeded {
			m.evictions.Add(1)
		}
	})
	go func() {
		defer close(m.done)
		c.Start()
	}()
	return m
}

// Close stops the expiry goroutine and the eviction counter; the cache stays readable.
func (m *Memory) Close() {
	m.stopOnce.Do(func() {
		// Stop is a no-op until the goroutine has entered Start, so repeat it until it is out.
		for {
			m.c.Stop()
			select {
			case <-m.done:
				m.stopEvict()
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
}

func (m *Memory) ttlOr(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return m.ttl
	}
	return ttl
}

// Get implements Cache.
func (m *Memory) Get(_ context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if it := m.c.Get(k); it != nil {
			out[i] = it.Value()
		}
	}
	return out, nil
}

// Set implements Cache. Values are not copied: callers hand over ownership.
func (m *Memory) Set(_ context.Context, items []Item, ttl time.Duration) error {
	ttl = m.ttlOr(ttl)
	for _, it := range items {
		m.c.Set(it.Key, it.Value, ttl)
	}
	return nil
}

// AddOrGet implements Cache.
func (m *Memory) AddOrGet(_ context.Context, items []Item, ttl time.Duration) ([][]byte, error) {
	ttl = m.ttlOr(ttl)
	out := make([][]byte, len(items))
	for i, it := range items {
		got, _ := m.c.GetOrSet(it.Key, it.Value, ttlcache.WithTTL[string, []byte](ttl))
		out[i] = got.Value()
	}
	return out, nil
}

// Delete implements Cache.
func (m *Memory) Delete(_ context.Context, keys []string) error {
	for _, k := range keys {
		m.c.Delete(k)
	}
	return nil
}

// SetLocal implements Cache: memory is this process's own, so it takes the write.
func (m *Memory) SetLocal(ctx context.Context, items []Item, deletes []string, ttl time.Duration) {
	_ = m.Set(ctx, items, ttl)
	_ = m.Delete(ctx, deletes)
}

// Purge implements Cache.
func (m *Memory) Purge(context.Context) (int, error) {
	n := m.c.Len()
	m.c.DeleteAll()
	return n, nil
}

// Len is the number of live entries.
func (m *Memory) Len() int { return m.c.Len() }

// Evictions is the number of entries dropped to make room since start.
func (m *Memory) Evictions() int64 { return m.evictions.Load() }

// Stats implements Cache.
func (m *Memory) Stats(context.Context) Stats {
	return Stats{
		Backend:    "memory",
		Entries:    int64(m.c.Len()),
		Capacity:   int64(m.capacity),
		Evictions:  m.evictions.Load(),
		TTLSeconds: int(m.ttl / time.Second),
	}
}
