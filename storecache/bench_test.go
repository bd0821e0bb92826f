package storecache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventide/server/cache"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/redistest"
)

// The cache hit path as the events page takes it: 20 event records by id (one look-up of 40 keys,
// values and tokens), and a whole page (the page entry, then its 20 records). BENCHMARKS.md.

func benchStore(b *testing.B, backend string) (*Store, []string) {
	b.Helper()
	fake := newFakeStore()
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprintf("6650a1f2c3d4e5f6a7b8c9%02d", i)
		e := *benchEvent
		e.ID = ids[i]
		e.StartsAt = e.StartsAt.Add(time.Duration(i) * time.Hour)
		e.EndsAt = e.StartsAt.Add(2 * time.Hour)
		fake.events[e.ID] = &e
	}
	var r *cache.Redis
	if backend == "redis" {
		srv := redistest.Start(b)
		r = cache.NewRedis(cache.RedisOptions{Addrs: []string{srv.Addr()}, Prefix: "bench:", TTL: time.Minute})
	}
	sw := cache.NewSwitch(context.Background(), r, cache.NewMemory(cache.MemoryOptions{MaxEntries: 10_000, TTL: time.Minute}), 0, nil)
	b.Cleanup(func() { _ = sw.Close() })
	s := NewStore(fake, sw, StoreOptions{TTL: time.Minute})
	if _, err := s.EventsByIDs(context.Background(), ids); err != nil {
		b.Fatal(err)
	}
	return s, ids
}

func BenchmarkStoreHit(b *testing.B) {
	for _, backend := range []string{"memory", "redis"} {
		b.Run(backend+"/20events", func(b *testing.B) {
			s, ids := benchStore(b, backend)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				evs, err := s.EventsByIDs(ctx, ids)
				if err != nil || len(evs) != 20 {
					b.Fatalf("%d events, %v", len(evs), err)
				}
			}
			if st := s.Stats(ctx); st.Misses != 20 {
				b.Fatalf("misses %d after warm-up", st.Misses)
			}
		})
		b.Run(backend+"/eventsPage", func(b *testing.B) {
			s, _ := benchStore(b, backend)
			ctx := context.Background()
			q := eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventPublished}}
			if _, err := s.Events(ctx, q, eventide.Page{First: 20}); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				c, err := s.Events(ctx, q, eventide.Page{First: 20})
				if err != nil || len(c.Items) != 20 {
					b.Fatalf("%v", err)
				}
			}
		})
	}
}
