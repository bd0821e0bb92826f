package storecache

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eventide/server/cache"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/respcache"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// memoryStore is a Store over fake through a memory-only Switch.
func memoryStore(t *testing.T, fake *fakeStore, now func() time.Time) *Store {
	t.Helper()
	sw := cache.NewSwitch(context.Background(), nil, cache.NewMemory(cache.MemoryOptions{MaxEntries: 1000, TTL: time.Minute}), 0, nil)
	t.Cleanup(func() { _ = sw.Close() })
	return NewStore(fake, sw, StoreOptions{TTL: time.Minute, Now: now})
}

func TestStoreReadsThroughInOneQueryPerBatch(t *testing.T) {
	fake := newFakeStore()
	for _, id := range []string{"a", "b", "c"} {
		fake.addEvent(id, time.Hour)
	}
	s := memoryStore(t, fake, nil)
	ctx := context.Background()

	got, err := s.EventsByIDs(ctx, []string{"a", "b", "a", "missing", "c"})
	if err != nil || len(got) != 3 {
		t.Fatalf("got %d events, err %v", len(got), err)
	}
	if n := fake.reads.Load(); n != 1 {
		t.Fatalf("cold batch: %d store reads, want 1", n)
	}
	if _, err := s.EventsByIDs(ctx, []string{"c", "b", "a"}); err != nil {
		t.Fatal(err)
	}
	if n := fake.reads.Load(); n != 1 {
		t.Fatalf("warm batch read the store (%d reads)", n)
	}
	_, err = s.EventByID(ctx, "missing")
	if !eventide.IsCode(err, eventide.CodeNotFound) {
		t.Fatalf("missing id: %v", err)
	}
	st := s.Stats(ctx)
	if st.Hits != 3 || st.Misses != 5 {
		t.Fatalf("hits %d misses %d, want 3 and 5", st.Hits, st.Misses)
	}
}

func TestStoreWriteInvalidatesBeforeItReturns(t *testing.T) {
	fake := newFakeStore()
	fake.addEvent("a", time.Hour)
	s := memoryStore(t, fake, nil)
	ctx := context.Background()
	if _, err := s.EventByID(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateEvent(ctx, "a", func(e *eventide.Event) error { e.Title = "Renamed"; return nil }); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.EventByID(ctx, "a"); e.Title != "Renamed" {
		t.Fatalf("read after write: %q", e.Title)
	}
	if _, _, err := s.Register(ctx, "a", "u9", time.Now()); err != nil {
		t.Fatal(err)
	}
	if e, _ := s.EventByID(ctx, "a"); e.ConfirmedCount != 1 {
		t.Fatalf("count after registering: %d", e.ConfirmedCount)
	}
}

// TestStoreStaleWriteBackIsDead interleaves a reader and a writer in the classic cache race: the
// reader takes its snapshot from the store, the writer writes and invalidates, and only then does
// the reader write its (old) value back. Later readers must not see it, and a reader that starts
// after the write must not join the old reader's load.
func TestStoreStaleWriteBackIsDead(t *testing.T) {
	fake := newFakeStore()
	fake.addEvent("a", time.Hour)
	s := memoryStore(t, fake, nil)
	ctx := context.Background()
	gate := make(chan chan struct{})
	fake.gate = gate

	old := make(chan string, 1)
	go func() {
		e, err := s.EventByID(ctx, "a")
		if err != nil {
			old <- err.Error()
			return
		}
		old <- e.Title
	}()
	release1 := recvGate(t, gate) // the reader holds the old snapshot

	fake.setTitle("a", "New title")
	if _, err := s.UpdateEvent(ctx, "a", func(e *eventide.Event) error { return nil }); err != nil {
		t.Fatal(err)
	}

	fresh := make(chan string, 1)
	go func() {
		e, _ := s.EventByID(ctx, "a")
		fresh <- e.Title
	}()
	release2 := recvGate(t, gate) // a second load: the later reader did not join the first

	close(release1)
	if got := <-old; got != "Event a" {
		t.Fatalf("the reader that began before the write got %q", got)
	}
	close(release2)
	if got := <-fresh; got != "New title" {
		t.Fatalf("the reader that began after the write got %q", got)
	}
	fake.mu.Lock()
	fake.gate = nil
	fake.mu.Unlock()
	reads := fake.reads.Load()
	if e, _ := s.EventByID(ctx, "a"); e.Title != "New title" {
		t.Fatalf("after both write-backs the cache serves %q", e.Title)
	}
	if fake.reads.Load() != reads {
		t.Fatal("the fresh value was not cached")
	}
}

func recvGate(t *testing.T, gate chan chan struct{}) chan struct{} {
	t.Helper()
	select {
	case r := <-gate:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no store read reached the gate")
		return nil
	}
}

func TestStoreCollapsesConcurrentMisses(t *testing.T) {
	fake := newFakeStore()
	fake.addEvent("a", time.Hour)
	fake.addEvent("b", time.Hour)
	s := memoryStore(t, fake, nil)
	gate := make(chan chan struct{})
	fake.gate = gate

	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range 10 {
		wg.Go(func() {
			ids := []string{"a"}
			if i%2 == 1 {
				ids = []string{"a", "b"}
			}
			if got, err := s.EventsByIDs(context.Background(), ids); err == nil && len(got) == len(ids) {
				ok.Add(1)
			}
		})
	}
	// Whatever the interleaving, "a" is read once; "b" at most once.
	var releases []chan struct{}
	releases = append(releases, recvGate(t, gate))
	deadline := time.After(200 * time.Millisecond)
collect:
	for {
		select {
		case r := <-gate:
			releases = append(releases, r)
		case <-deadline:
			break collect
		}
	}
	for _, r := range releases {
		close(r)
	}
	wg.Wait()
	if ok.Load() != 10 {
		t.Fatalf("%d of 10 callers got their events", ok.Load())
	}
	if n := fake.reads.Load(); n > 2 {
		t.Fatalf("10 concurrent callers cost %d store reads, want at most 2", n)
	}
}

func TestStoreCachesAbsentRegistration(t *testing.T) {
	fake := newFakeStore()
	fake.addEvent("a", time.Hour)
	s := memoryStore(t, fake, nil)
	ctx := context.Background()
	for range 2 {
		if _, err := s.RegistrationFor(ctx, "a", "u1"); !eventide.IsCode(err, eventide.CodeNotFound) {
			t.Fatalf("err %v", err)
		}
	}
	if n := fake.reads.Load(); n != 1 {
		t.Fatalf("absence read %d times, want once", n)
	}
	if _, _, err := s.Register(ctx, "a", "u1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if r, err := s.RegistrationFor(ctx, "a", "u1"); err != nil || r.Status != eventide.RegistrationConfirmed {
		t.Fatalf("after registering: %v %v", r, err)
	}
	// Registrations are per viewer: u2 still has none.
	if _, err := s.RegistrationFor(ctx, "a", "u2"); !eventide.IsCode(err, eventide.CodeNotFound) {
		t.Fatalf("u2: %v", err)
	}
}

// threeEvents is a memory Store over a fake holding events a, b and c, starting in 1, 2 and 3
// hours, with a clock the test moves (unix ms).
func threeEvents(t *testing.T) (*fakeStore, *atomic.Int64, func() time.Time, *Store) {
	t.Helper()
	fake := newFakeStore()
	fake.addEvent("a", time.Hour)
	fake.addEvent("b", 2*time.Hour)
	fake.addEvent("c", 3*time.Hour)
	clock := &atomic.Int64{}
	clock.Store(time.Now().UnixMilli())
	now := func() time.Time { return time.UnixMilli(clock.Load()) }
	return fake, clock, now, memoryStore(t, fake, now)
}

func TestStoreEventsPages(t *testing.T) {
	fake, clock, now, s := threeEvents(t)
	ctx := context.Background()
	page := func() []string {
		t.Helper()
		n := now()
		c, err := s.Events(ctx, eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventPublished}, EndsAfter: &n}, eventide.Page{First: 2})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range c.Items {
			ids = append(ids, e.ID)
		}
		return ids
	}
	if got := page(); len(got) != 2 || got[0] != "a" {
		t.Fatalf("page %v", got)
	}
	reads := fake.reads.Load()
	page()
	if fake.reads.Load() != reads {
		t.Fatal("warm page read the store")
	}

	t.Run("RegistrationKeepsThePage", func(t *testing.T) {
		if _, _, err := s.Register(ctx, "b", "u1", time.Now()); err != nil {
			t.Fatal(err)
		}
		before := fake.reads.Load()
		page()
		if d := fake.reads.Load() - before; d != 1 {
			t.Fatalf("page after a registration: %d reads, want 1 (the event record only)", d)
		}
	})
	t.Run("NewEventInvalidatesThePage", func(t *testing.T) {
		e := &eventide.Event{Status: eventide.EventPublished, StartsAt: now().Add(-time.Minute), EndsAt: now().Add(10 * time.Minute), Tags: []string{}}
		if err := s.CreateEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		if got := page(); got[0] != e.ID {
			t.Fatalf("page %v does not start with the new event %s", got, e.ID)
		}
	})
	t.Run("PageExpiresWhenAnItemEnds", func(t *testing.T) {
		first := page()[0]
		clock.Add((11 * time.Minute).Milliseconds()) // the first event has ended
		if got := page(); got[0] == first {
			t.Fatalf("ended event %s still listed: %v", first, got)
		}
	})
}

func TestStoreInitInvalidatesLists(t *testing.T) {
	fake := newFakeStore()
	fake.addEvent("a", time.Hour)
	s := memoryStore(t, fake, nil)
	ctx := context.Background()
	q := eventide.EventQuery{}
	if _, err := s.Events(ctx, q, eventide.Page{First: 5}); err != nil {
		t.Fatal(err)
	}
	fake.addEvent("b", 2*time.Hour) // behind the cache's back, as a wiped and reseeded store would be
	s.Init(ctx)
	c, _ := s.Events(ctx, q, eventide.Page{First: 5})
	if len(c.Items) != 2 {
		t.Fatalf("%d events after Init, want 2", len(c.Items))
	}
}

// TestStoreCountsEventsThatHaveNotEnded: a count of events that have not ended is kept under the
// list's token until the first counted event ends — warm it reads nothing, and the response
// depending on it knows that instant — and a new event or that end gives the new count at once;
// a registration does not touch it.
func TestStoreCountsEventsThatHaveNotEnded(t *testing.T) {
	fake, clock, now, s := threeEvents(t)
	pub := []eventide.EventStatus{eventide.EventPublished}
	count := func() (int, *respcache.Deps) {
		t.Helper()
		d := &respcache.Deps{}
		n := now()
		c, err := s.CountEvents(respcache.WithDeps(context.Background(), d), eventide.EventQuery{Statuses: pub, EndsAfter: &n})
		if err != nil {
			t.Fatal(err)
		}
		return c, d
	}
	a, _ := s.EventByID(context.Background(), "a")
	for _, temp := range []string{"cold", "warm"} {
		reads := fake.reads.Load()
		n, d := count()
		if n != 3 {
			t.Fatalf("%s count %d, want 3", temp, n)
		}
		if temp == "warm" && fake.reads.Load() != reads {
			t.Fatalf("warm count read the store %d times", fake.reads.Load()-reads)
		}
		keys, _, until, ok := d.Result()
		if !ok || !slices.Equal(keys, []string{"tl:e"}) || until != a.EndsAt.UnixMilli() {
			t.Fatalf("%s count: deps %v ok %v until %d; want tl:e until event a ends (%d)", temp, keys, ok, until, a.EndsAt.UnixMilli())
		}
	}
	t.Run("RegistrationKeepsTheCount", func(t *testing.T) {
		if _, _, err := s.Register(context.Background(), "b", "u1", time.Now()); err != nil {
			t.Fatal(err)
		}
		reads := fake.reads.Load()
		if n, _ := count(); n != 3 || fake.reads.Load() != reads {
			t.Fatalf("count after a registration: %d, %d reads; want 3, none", n, fake.reads.Load()-reads)
		}
	})
	t.Run("NewEventIsCounted", func(t *testing.T) {
		e := &eventide.Event{Status: eventide.EventPublished, StartsAt: now().Add(4 * time.Hour), EndsAt: now().Add(5 * time.Hour), Tags: []string{}}
		if err := s.CreateEvent(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		if n, _ := count(); n != 4 {
			t.Fatalf("count after a new event: %d, want 4", n)
		}
	})
	t.Run("EndedEventIsNotCounted", func(t *testing.T) {
		clock.Store(a.EndsAt.UnixMilli() - 1)
		if n, _ := count(); n != 4 {
			t.Fatalf("count a millisecond before event a ends: %d, want 4", n)
		}
		clock.Store(a.EndsAt.UnixMilli()) // endsAt > now no longer holds for a
		n, d := count()
		if n != 3 {
			t.Fatalf("count once event a has ended: %d, want 3", n)
		}
		b, _ := s.EventByID(context.Background(), "b")
		if _, _, until, _ := d.Result(); until != b.EndsAt.UnixMilli() {
			t.Fatalf("new count valid until %d, want when event b ends (%d)", until, b.EndsAt.UnixMilli())
		}
		reads := fake.reads.Load()
		if n, _ := count(); n != 3 || fake.reads.Load() != reads {
			t.Fatalf("the new count was not kept: %d, %d reads", n, fake.reads.Load()-reads)
		}
	})
	t.Run("NoneLeftStaysKept", func(t *testing.T) {
		clock.Store(now().Add(24 * time.Hour).UnixMilli())
		if n, _ := count(); n != 0 {
			t.Fatalf("count with every event ended: %d", n)
		}
		reads := fake.reads.Load()
		n, d := count()
		if _, _, until, ok := d.Result(); n != 0 || !ok || until != 0 || fake.reads.Load() != reads {
			t.Fatalf("empty count: %d, until %d, ok %v, %d reads; want 0 kept without bound", n, until, ok, fake.reads.Load()-reads)
		}
	})
}

// TestStoreKeysCitiesAsTheStoresFold: two city filters the stores answer alike ("Lisbon" and
// " LISBON ", eventide.FoldCity) are one cache entry, and cities the stores tell apart are two,
// for the events and venues lists alike.
func TestStoreKeysCitiesAsTheStoresFold(t *testing.T) {
	now := time.Now()
	s := memoryStore(t, newFakeStore(), func() time.Time { return now })
	key := func(city string) (events, venues string) {
		e, _, ok := s.eventsArgs(eventide.EventQuery{City: city, Statuses: []eventide.EventStatus{eventide.EventPublished}})
		if !ok {
			t.Fatalf("the cache does not answer a city query for %q", city)
		}
		return argsKey("e", e), argsKey("v", venuesArgs(city))
	}
	e1, v1 := key("Lisbon")
	for _, same := range []string{" LISBON ", "lisbon", "\tLisbon\n"} {
		if e2, v2 := key(same); e2 != e1 || v2 != v1 {
			t.Errorf("city %q is keyed apart from %q, which the stores fold to the same %q", same, "Lisbon", eventide.FoldCity(same))
		}
	}
	if e2, v2 := key("Lisboa"); e2 == e1 || v2 == v1 {
		t.Error("two cities the stores tell apart share a cache key")
	}
}

// fakeResponses is a response cache holding n responses.
type fakeResponses struct{ n int }

func (r *fakeResponses) Purge() int { n := r.n; r.n = 0; return n }
func (r *fakeResponses) Figures() (hits, misses int64, entries int, bytes int64) {
	return 7, 3, r.n, int64(r.n) * 100
}

func TestStorePurgeEmptiesTheResponses(t *testing.T) {
	fake := newFakeStore()
	fake.addEvent("a", time.Hour)
	responses := &fakeResponses{n: 4}
	sw := cache.NewSwitch(context.Background(), nil, cache.NewMemory(cache.MemoryOptions{MaxEntries: 1000, TTL: time.Minute}), 0, nil)
	t.Cleanup(func() { _ = sw.Close() })
	s := NewStore(fake, sw, StoreOptions{TTL: time.Minute, Responses: responses})
	ctx := context.Background()
	if _, err := s.EventByID(ctx, "a"); err != nil {
		t.Fatal(err)
	}

	st := s.Stats(ctx)
	if st.ResponseHits != 7 || st.ResponseMisses != 3 || st.ResponseEntries != 4 || st.ResponseBytes != 400 {
		t.Fatalf("stats report responses %d hits, %d misses, %d entries, %d bytes; want 7, 3, 4, 400",
			st.ResponseHits, st.ResponseMisses, st.ResponseEntries, st.ResponseBytes)
	}
	cached, err := sw.Purge(ctx) // what the shared cache alone holds, refilled below
	if err != nil || cached == 0 {
		t.Fatalf("the shared cache held %d entries (err %v), want some", cached, err)
	}
	if _, err := s.EventByID(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	n, err := s.Purge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != cached+4 || responses.n != 0 {
		t.Fatalf("Purge dropped %d entries and left %d responses; want %d (the shared cache's %d and 4 responses) and 0",
			n, responses.n, cached+4, cached)
	}
}
