// Package respcache keeps whole GraphQL responses to anonymous queries, so that the page every
// visitor loads is answered without parsing, validating or executing anything: Apollo's
// full-response cache and Hasura's @cached, with one difference that matters for an events
// platform where counts change with every registration: an entry is never served stale.
//
// # Exactness
//
// A response is kept with the tokens of every cached value it was built from (Deps), as
// the cache saw them before reading, and the instant its clock-bound pages stop being right. A
// hit reads those tokens again, in one call to the shared cache (one MGET on Redis, so every
// replica sees every other's writes), and is served only when each is unchanged and the instant
// has not passed. A write replaces the tokens of what it changes before it returns, so no
// response built before the write can match after it, on any replica. A response that read
// anything the cache does not cover is never kept (its Deps are tainted).
//
// # Bounds
//
// Entries live in one LRU bounded in bytes (each entry's key, body and tokens are counted, with
// a fixed overhead), with at most MaxEntryFraction of the budget per entry, and a TTL.
package respcache

import (
	"bytes"
	"container/list"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Tokens reads the current value of token keys: the shared cache (cache.Cache).
type Tokens interface {
	Get(ctx context.Context, keys []string) ([][]byte, error)
}

// Entry is one kept response.
type Entry struct {
	Body        []byte
	ContentType string
	// Operation is the operation's name, for the access log of a hit.
	Operation string

	key     string
	tokKeys []string
	tokVals [][]byte
	expires int64 // unix ms: past it, the entry is refreshed (Get)
	until   int64 // unix ms: past it, never served; 0: no such instant
	dead    bool  // found stale: never served again (under Cache.mu)
	size    int64
}

// entryOverhead approximates what an entry costs beyond its bytes: the struct, its list element
// and map slot.
const (
	entryOverhead = 256
	tokenOverhead = 48
)

// MaxEntryFraction is the largest share of the budget one entry may take.
const MaxEntryFraction = 16

// Cache is the bounded response cache. The zero value is not usable; use New.
type Cache struct {
	tokens Tokens
	max    int64
	ttl    time.Duration
	now    func() time.Time

	mu    sync.Mutex
	ll    *list.List // front: most recently used; values are *Entry
	items map[string]*list.Element
	bytes int64
	// building holds the keys whose response a request is building now, for Begin: at most one
	// entry per request in flight.
	building map[string]chan struct{}

	hits, misses, stored, evicted, stale, coalesced atomic.Int64
}

// Options configures New.
type Options struct {
	// MaxBytes bounds everything kept (keys, bodies, tokens, overhead).
	MaxBytes int64
	// TTL bounds how long an entry is kept even while its tokens hold (the cache's own TTL: a
	// token that outlives its values must not keep a response forever).
	TTL time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// New returns a cache checking its entries against tokens.
func New(tokens Tokens, o Options) *Cache {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TTL <= 0 {
		o.TTL = 5 * time.Minute
	}
	return &Cache{tokens: tokens, max: o.MaxBytes, ttl: o.TTL, now: o.Now,
		ll: list.New(), items: make(map[string]*list.Element), building: make(map[string]chan struct{})}
}

// Begin is called after a miss on key. When another request is already building key's response,
// Begin waits for it to finish (or for ctx to end) and reports waited: the caller then looks the
// key up again, and builds the response itself only if that misses too (the one built meanwhile
// could not be kept, or a write has already made it stale). Otherwise the caller is the builder:
// it must call release once it has kept the response or given up.
//
// This is what keeps a popular page's expiry from becoming a stampede: when its tokens expire or
// a write changes it, the requests arriving in the next milliseconds wait for one execution
// instead of each running their own.
func (c *Cache) Begin(ctx context.Context, key string) (release func(), waited bool) {
	c.mu.Lock()
	if ch, ok := c.building[key]; ok {
		c.mu.Unlock()
		c.coalesced.Add(1)
		select {
		case <-ch:
		case <-ctx.Done():
		}
		return nil, true
	}
	ch := make(chan struct{})
	c.building[key] = ch
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.building, key)
		c.mu.Unlock()
		close(ch)
	}, false
}

// Get returns the response kept under key if it is still exactly right, or nil. A token read that
// fails is a miss: the caller builds the response as if nothing were kept.
//
// An entry past its TTL is refreshed without a stall: the first request to find it so gets nil
// and builds the response anew (through Begin), while the requests arriving meanwhile are still
// served the old one once its tokens check out: exact, since no write has touched what it was
// built from. The TTL only bounds what no token can see (a change made to the store behind the
// server's back); past twice the TTL an entry is never served. The instant a clock-bound page
// stops being right is never passed.
func (c *Cache) Get(ctx context.Context, key string) *Entry {
	e, _ := c.Lookup(ctx, key)
	return e
}

// Lookup is Get that also reports whether key has an entry at all, live or not: a response that
// was worth keeping, whose rebuild is worth coalescing (Begin). An entry found stale is marked
// dead rather than dropped, so that the requests arriving while it is rebuilt still know to wait
// for one build; the rebuilt response replaces it, and the LRU bounds what is never rebuilt.
func (c *Cache) Lookup(ctx context.Context, key string) (_ *Entry, known bool) {
	c.mu.Lock()
	el, ok := c.items[key]
	if !ok {
		c.mu.Unlock()
		c.misses.Add(1)
		return nil, false
	}
	e := el.Value.(*Entry)
	now := c.now().UnixMilli()
	_, building := c.building[key]
	switch {
	case e.dead:
		e = nil
	case e.until > 0 && now >= e.until, now >= e.expires+c.ttl.Milliseconds():
		e.dead = true
		e = nil
		c.stale.Add(1)
	case now >= e.expires && !building:
		e = nil // this caller refreshes it; the entry stays for the others meanwhile
	default:
		c.ll.MoveToFront(el)
	}
	c.mu.Unlock()
	if e == nil {
		c.misses.Add(1)
		return nil, true
	}
	if len(e.tokKeys) > 0 {
		got, err := c.tokens.Get(ctx, e.tokKeys)
		if err != nil || len(got) != len(e.tokVals) {
			c.misses.Add(1)
			return nil, true
		}
		for i, v := range got {
			if v == nil || !bytes.Equal(v, e.tokVals[i]) {
				c.mu.Lock()
				e.dead = true
				c.mu.Unlock()
				c.stale.Add(1)
				c.misses.Add(1)
				return nil, true
			}
		}
	}
	c.hits.Add(1)
	return e, true
}

// Put keeps body under key, depending on the token keys and values (as Deps.Result gives
// them) until untilMs (unix ms; 0: no bound but the TTL). It reports whether it kept it: an entry
// larger than the budget allows is not.
func (c *Cache) Put(key string, body []byte, contentType, operation string, tokKeys []string, tokVals [][]byte, untilMs int64) bool {
	size := int64(entryOverhead + 2*len(key) + len(body) + len(contentType) + len(operation))
	for i, k := range tokKeys {
		size += int64(tokenOverhead + len(k) + len(tokVals[i]))
	}
	if c.max <= 0 || size > c.max/MaxEntryFraction {
		return false
	}
	now := c.now().UnixMilli()
	if untilMs > 0 && untilMs <= now {
		return false
	}
	e := &Entry{Body: body, ContentType: contentType, Operation: operation, key: key,
		tokKeys: tokKeys, tokVals: tokVals, expires: now + c.ttl.Milliseconds(), until: untilMs, size: size}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.removeLocked(el)
	}
	c.items[key] = c.ll.PushFront(e)
	c.bytes += size
	for c.bytes > c.max {
		c.removeLocked(c.ll.Back())
		c.evicted.Add(1)
	}
	c.stored.Add(1)
	return true
}

func (c *Cache) removeLocked(el *list.Element) {
	e := c.ll.Remove(el).(*Entry)
	delete(c.items, e.key)
	c.bytes -= e.size
}

// Purge drops every entry and returns how many there were.
func (c *Cache) Purge() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.ll.Len()
	c.ll.Init()
	clear(c.items)
	c.bytes = 0
	return n
}

// Stats is what the cache has done since start and what it holds.
type Stats struct {
	Hits, Misses, Stored, Evicted, Stale, Coalesced int64
	Entries, Building                               int
	Bytes, MaxBytes                                 int64
}

// Stats reports the counters and the current size.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	n, b, building := c.ll.Len(), c.bytes, len(c.building)
	c.mu.Unlock()
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Stored: c.stored.Load(),
		Evicted: c.evicted.Load(), Stale: c.stale.Load(), Coalesced: c.coalesced.Load(),
		Entries: n, Building: building, Bytes: b, MaxBytes: c.max}
}

// Figures are the hits, misses, entries and bytes that the shared cache's Stats report of the
// response cache (storecache.Responses).
func (c *Cache) Figures() (hits, misses int64, entries int, bytes int64) {
	st := c.Stats()
	return st.Hits, st.Misses, st.Entries, st.Bytes
}

// Collectors are the cache's Prometheus metrics: eventide_response_cache_{hits,misses,stored,
// evicted,stale,coalesced}_total and eventide_response_cache_{entries,bytes}.
func (c *Cache) Collectors() []prometheus.Collector {
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventide_response_cache_" + name + "_total", Help: help},
			func() float64 { return float64(v.Load()) })
	}
	return []prometheus.Collector{
		counter("hits", "Anonymous queries answered with a kept response.", &c.hits),
		counter("misses", "Look-ups of the response cache that found nothing, or nothing still exact.", &c.misses),
		counter("stored", "Responses kept.", &c.stored),
		counter("evicted", "Responses dropped to stay within RESPONSE_CACHE_MAX_BYTES.", &c.evicted),
		counter("stale", "Kept responses found stale (a write changed what they were built from, or they expired).", &c.stale),
		counter("coalesced", "Requests that waited for another's build of the same response instead of building it too.", &c.coalesced),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "eventide_response_cache_entries", Help: "Responses kept now."},
			func() float64 { return float64(c.Stats().Entries) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "eventide_response_cache_bytes", Help: "Bytes the kept responses take, overhead included."},
			func() float64 { return float64(c.Stats().Bytes) }),
	}
}
