package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

// The benchmarks run on a seeded file: EVENTIDE_BENCH_EVENTS events (default 10 000) with ten
// registrations each and a user per event, seeded once per process. For the target:
//
//	EVENTIDE_BENCH_EVENTS=100000 go test -run '^$' -bench . -count 5 ./store/sqlite/
type seeded struct {
	dir    string
	st     *Store
	events []string
	users  []string
	now    time.Time
	seedIn time.Duration
	size   int64
}

var (
	seedOnce sync.Once
	seedData *seeded
	seedErr  error
)

// TestMain removes the seeded file after the benchmarks.
func TestMain(m *testing.M) {
	code := m.Run()
	if seedData != nil {
		_ = seedData.st.Close(context.Background())
		_ = os.RemoveAll(seedData.dir)
	}
	os.Exit(code)
}

func benchStore(b *testing.B) *seeded {
	b.Helper()
	seedOnce.Do(func() {
		n := 10000
		if v, err := strconv.Atoi(os.Getenv("EVENTIDE_BENCH_EVENTS")); err == nil && v > 0 {
			n = v
		}
		dir, err := os.MkdirTemp("", "eventide-sqlite-bench")
		if err != nil {
			seedErr = err
			return
		}
		path := filepath.Join(dir, "bench.db")
		st, err := Open(context.Background(), Options{Path: path})
		if err != nil {
			_ = os.RemoveAll(dir)
			seedErr = err
			return
		}
		now := time.Now()
		t0 := time.Now()
		evs, us, err := st.Seed(context.Background(), SeedOptions{Events: n, Registrations: 10 * n, Users: n, Now: now})
		if err != nil {
			seedErr = err
			return
		}
		seedData = &seeded{dir: dir, st: st, events: evs, users: us, now: now, seedIn: time.Since(t0)}
		if _, err := st.w.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			seedErr = err
			return
		}
		if fi, err := os.Stat(path); err == nil {
			seedData.size = fi.Size()
		}
		fmt.Fprintf(os.Stderr, "seeded %d events, %d registrations, %d users in %v; file %.1f MiB\n",
			n, 10*n, n, seedData.seedIn.Round(time.Millisecond), float64(seedData.size)/(1<<20))
	})
	if seedErr != nil {
		b.Fatal(seedErr)
	}
	return seedData
}

// BenchmarkEventsPageWithCount is the web app's events page: the first 20 upcoming published
// events and their totalCount.
func BenchmarkEventsPageWithCount(b *testing.B) {
	d := benchStore(b)
	ctx := context.Background()
	q := eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventPublished}, EndsAfter: &d.now}
	b.ResetTimer()
	for b.Loop() {
		c, err := d.st.Events(ctx, q, eventide.Page{First: 20})
		if err != nil || len(c.Items) != 20 {
			b.Fatal(err, len(c.Items))
		}
		if n, err := d.st.CountEvents(ctx, q); err != nil || n == 0 {
			b.Fatal(err, n)
		}
	}
}

// BenchmarkEventsPageFiltered is the events page with each filter (page and count).
func BenchmarkEventsPageFiltered(b *testing.B) {
	d := benchStore(b)
	ctx := context.Background()
	pub := []eventide.EventStatus{eventide.EventPublished}
	later := d.now.Add(30 * 24 * time.Hour)
	for name, q := range map[string]eventide.EventQuery{
		"city":  {Statuses: pub, EndsAfter: &d.now, City: "porto"},
		"tag":   {Statuses: pub, EndsAfter: &d.now, Tag: "jazz"},
		"range": {Statuses: pub, StartsFrom: &d.now, StartsTo: &later},
		// In a twentieth of the descriptions, but made of trigrams that are in all of them.
		"search": {Statuses: pub, EndsAfter: &d.now, Search: "jazz and"},
		// In about ten titles.
		"search-rare": {Statuses: pub, EndsAfter: &d.now, Search: "event 1234"},
	} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := d.st.Events(ctx, q, eventide.Page{First: 20}); err != nil {
					b.Fatal(err)
				}
				if _, err := d.st.CountEvents(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAttendeesPage reads the first ten attendees of an event.
func BenchmarkAttendeesPage(b *testing.B) {
	d := benchStore(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		id := d.events[(i*7)%len(d.events)]
		if _, err := d.st.Attendees(ctx, id, eventide.Page{First: 10}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEventByID reads one event with its counts (a column read, see
// BenchmarkCountColumnVsIndexedCount).
func BenchmarkEventByID(b *testing.B) {
	d := benchStore(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if _, err := d.st.EventByID(ctx, d.events[(i*7)%len(d.events)]); err != nil {
			b.Fatal(err)
		}
	}
}

// registerable are the events a registration can be made at: published and not ended.
func registerable(b *testing.B, d *seeded) []string {
	var out []string
	for i, id := range d.events {
		if i%20 != 7 && i%20 != 13 && i%10 != 3 {
			out = append(out, id)
		}
	}
	return out
}

var benchUser atomic.Int64

// BenchmarkRegister registers a new user (one that holds no registration yet) at an upcoming
// event: one BEGIN IMMEDIATE transaction with its counter update, committed to the WAL.
func BenchmarkRegister(b *testing.B) {
	d := benchStore(b)
	ctx := context.Background()
	evs := registerable(b, d)
	for b.Loop() {
		u := benchUser.Add(1)
		uid := fmt.Sprintf("ffffffff%016x", u)
		if _, _, err := d.st.Register(ctx, evs[int(u*7919)%len(evs)], uid, d.now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRegisterWebhooks is BenchmarkRegister with one webhook receiver set: each
// registration also inserts its outbox row in the same transaction (the issue's "the outbox must
// not halve registration throughput"; compare with BenchmarkRegister).
func BenchmarkRegisterWebhooks(b *testing.B) {
	d := benchStore(b)
	ctx := context.Background()
	evs := registerable(b, d)
	d.st.outbox = eventide.OutboxOptions{Receivers: []string{"https://hooks.example.com/eventide"}}
	defer func() { d.st.outbox = eventide.OutboxOptions{} }()
	for b.Loop() {
		u := benchUser.Add(1)
		uid := fmt.Sprintf("ffffffff%016x", u)
		if _, _, err := d.st.Register(ctx, evs[int(u*7919)%len(evs)], uid, d.now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRegisterParallel8 is BenchmarkRegister from 8 goroutines at once (the 8
// workers); the writer connection serialises them.
func BenchmarkRegisterParallel8(b *testing.B) {
	d := benchStore(b)
	ctx := context.Background()
	evs := registerable(b, d)
	b.SetParallelism(max(1, 8/runtimeProcs()))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			u := benchUser.Add(1)
			uid := fmt.Sprintf("ffffffff%016x", u)
			if _, _, err := d.st.Register(ctx, evs[int(u*7919)%len(evs)], uid, d.now); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCountColumnVsIndexedCount compares the two ways of knowing an event's counts: the
// columns kept in the registration's transaction (read with the row), and two COUNTs over
// registrations_event_status_created.
func BenchmarkCountColumnVsIndexedCount(b *testing.B) {
	d := benchStore(b)
	ctx := context.Background()
	b.Run("column", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			var c, w int
			if err := d.st.r.QueryRowContext(ctx, `SELECT confirmed, waitlisted FROM events WHERE id = ?`,
				d.events[(i*7)%len(d.events)]).Scan(&c, &w); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("indexed-count", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			var c, w int
			if err := d.st.r.QueryRowContext(ctx, `SELECT
				(SELECT count(*) FROM registrations WHERE event_id = ?1 AND status = 'CONFIRMED'),
				(SELECT count(*) FROM registrations WHERE event_id = ?1 AND status = 'WAITLISTED')`,
				d.events[(i*7)%len(d.events)]).Scan(&c, &w); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkNextEventEnd is what a cache miss of the events page's count costs besides the count:
// the earliest end among the counted events, beside the count itself, unfiltered and filtered.
func BenchmarkNextEventEnd(b *testing.B) {
	d := benchStore(b)
	ctx := context.Background()
	pub := []eventide.EventStatus{eventide.EventPublished}
	for _, c := range []struct {
		name string
		q    eventide.EventQuery
	}{
		{"upcoming", eventide.EventQuery{Statuses: pub, EndsAfter: &d.now}},
		{"city", eventide.EventQuery{Statuses: pub, EndsAfter: &d.now, City: "porto"}},
		{"tag", eventide.EventQuery{Statuses: pub, EndsAfter: &d.now, Tag: "jazz"}},
	} {
		b.Run(c.name+"/next-end", func(b *testing.B) {
			for b.Loop() {
				if e, err := d.st.NextEventEnd(ctx, c.q); err != nil || e.IsZero() {
					b.Fatal(err, e)
				}
			}
		})
		b.Run(c.name+"/count", func(b *testing.B) {
			for b.Loop() {
				if _, err := d.st.CountEvents(ctx, c.q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
