package dataloader

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eventide/server/eventide"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeSource holds users and records every batch it is asked for.
type fakeSource struct {
	mu      sync.Mutex
	batches [][]string
	fail    error
}

func (f *fakeSource) record(keys []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, slices.Clone(keys))
	return f.fail
}

func (f *fakeSource) calls() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.batches)
}

func (f *fakeSource) UsersByIDs(_ context.Context, ids []string) ([]*eventide.User, error) {
	if err := f.record(ids); err != nil {
		return nil, err
	}
	var out []*eventide.User
	for i := len(ids) - 1; i >= 0; i-- { // reverse order: the loader must restore key order
		if ids[i] != "missing" {
			out = append(out, &eventide.User{ID: ids[i], Name: "user " + ids[i]})
		}
	}
	return out, nil
}

func (f *fakeSource) VenuesByIDs(context.Context, []string) ([]*eventide.Venue, error) {
	return nil, nil
}

func (f *fakeSource) EventsByIDs(context.Context, []string) ([]*eventide.Event, error) {
	return nil, nil
}

func (f *fakeSource) RegistrationsOf(_ context.Context, userID string, eventIDs []string) ([]*eventide.Registration, error) {
	if err := f.record(eventIDs); err != nil {
		return nil, err
	}
	return []*eventide.Registration{{ID: "r1", EventID: eventIDs[0], UserID: userID}}, nil
}

func (f *fakeSource) WaitlistPositions(_ context.Context, ids []string) (map[string]int, error) {
	if err := f.record(ids); err != nil {
		return nil, err
	}
	m := map[string]int{}
	for i, id := range ids {
		if id != "confirmed" {
			m[id] = i + 1
		}
	}
	return m, nil
}

// TestPositionsAreOneBatch: the waitlist positions of a page of registrations are one read, and
// a registration not waitlisted has none (0).
func TestPositionsAreOneBatch(t *testing.T) {
	src := &fakeSource{}
	// The batch goes when its fourth key arrives, however slowly a loaded machine starts the
	// goroutines (with the default 1 ms wait it could go out in two).
	l := New(src, nil, Options{Config: Config{Wait: time.Hour, MaxBatch: 4}})
	ctx := context.Background()
	var wg sync.WaitGroup
	got := make([]int, 4)
	for i, id := range []string{"w1", "confirmed", "w2", "w3"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := l.Positions.Load(ctx, id)
			if err != nil {
				t.Error(err)
			}
			got[i] = n
		}()
	}
	wg.Wait()
	if calls := src.calls(); len(calls) != 1 || len(calls[0]) != 4 {
		t.Fatalf("batches %v, want one of 4 ids", calls)
	}
	if got[1] != 0 || got[0] == 0 || got[2] == 0 || got[3] == 0 {
		t.Fatalf("positions %v", got)
	}
}

func TestLoadManyIsOneBatchInKeyOrder(t *testing.T) {
	src := &fakeSource{}
	l := New(src, nil, Options{})
	users, errs := l.Users.LoadMany(context.Background(), []string{"a", "b", "missing", "a", "c"})
	if got := src.calls(); len(got) != 1 || !slices.Equal(got[0], []string{"a", "b", "missing", "c"}) {
		t.Fatalf("batches %v, want one of a b missing c", got)
	}
	for i, want := range []string{"a", "b", "", "a", "c"} {
		if want == "" {
			if !eventide.IsCode(errs[i], eventide.CodeNotFound) || users[i] != nil {
				t.Fatalf("key %d: %v %v, want NOT_FOUND", i, users[i], errs[i])
			}
			continue
		}
		if errs[i] != nil || users[i].ID != want {
			t.Fatalf("key %d: %v %v, want %s", i, users[i], errs[i], want)
		}
	}
	// Remembered: no second batch.
	if u, err := l.Users.Load(context.Background(), "b"); err != nil || u.ID != "b" || len(src.calls()) != 1 {
		t.Fatalf("memo: %v %v, %d batches", u, err, len(src.calls()))
	}
}

func TestConcurrentLoadsShareABatch(t *testing.T) {
	src := &fakeSource{}
	// A wait long enough that 20 goroutines all enqueue on a loaded machine.
	l := New(src, nil, Options{Config: Config{Wait: 200 * time.Millisecond}})
	var wg sync.WaitGroup
	var ok atomic.Int64
	for i := range 20 {
		wg.Go(func() {
			if u, err := l.Users.Load(context.Background(), fmt.Sprint(i%10)); err == nil && u.ID == fmt.Sprint(i%10) {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 20 {
		t.Fatalf("%d of 20 loads succeeded", ok.Load())
	}
	if got := src.calls(); len(got) != 1 || len(got[0]) != 10 {
		t.Fatalf("batches %v, want one batch of the 10 distinct keys", got)
	}
}

func TestMaxBatchSplits(t *testing.T) {
	src := &fakeSource{}
	l := New(src, nil, Options{Config: Config{MaxBatch: 4}})
	keys := make([]string, 10)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
	}
	_, errs := l.Users.LoadMany(context.Background(), keys)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	sizes := []int{}
	for _, b := range src.calls() {
		sizes = append(sizes, len(b))
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{2, 4, 4}) {
		t.Fatalf("batch sizes %v, want 4 4 2", sizes)
	}
}

func TestPrefetchThenLoad(t *testing.T) {
	src := &fakeSource{}
	l := New(src, nil, Options{Config: Config{Wait: time.Hour}}) // a Load alone would never be sent
	ctx := context.Background()
	l.Users.Prefetch(ctx, []string{"x", "y"})
	for _, k := range []string{"y", "x"} {
		if u, err := l.Users.Load(ctx, k); err != nil || u.ID != k {
			t.Fatalf("%s: %v %v", k, u, err)
		}
	}
	if len(src.calls()) != 1 {
		t.Fatalf("%d batches", len(src.calls()))
	}
}

func TestFailedBatchIsNotRemembered(t *testing.T) {
	src := &fakeSource{fail: errors.New("store down")}
	l := New(src, nil, Options{})
	ctx := context.Background()
	if _, err := l.Users.Load(ctx, "a"); err == nil {
		t.Fatal("no error")
	}
	src.mu.Lock()
	src.fail = nil
	src.mu.Unlock()
	if u, err := l.Users.Load(ctx, "a"); err != nil || u.ID != "a" {
		t.Fatalf("retry: %v %v", u, err)
	}
}

func TestClearAndPrimeAndMemoBound(t *testing.T) {
	src := &fakeSource{}
	l := New(src, nil, Options{Config: Config{MaxMemo: 2}})
	ctx := context.Background()
	l.Users.Prime("p", &eventide.User{ID: "p", Name: "primed"})
	if u, _ := l.Users.Load(ctx, "p"); u.Name != "primed" || len(src.calls()) != 0 {
		t.Fatalf("primed value not used: %v", u)
	}
	l.Users.Clear()
	if u, _ := l.Users.Load(ctx, "p"); u.Name != "user p" {
		t.Fatalf("after Clear: %v", u)
	}
	// The memo holds 2 keys: a third is loaded but not remembered.
	_, _ = l.Users.Load(ctx, "q")
	_, _ = l.Users.Load(ctx, "r")
	_, _ = l.Users.Load(ctx, "r")
	if n := len(src.calls()); n != 4 {
		t.Fatalf("%d batches, want 4 (p, q, r, r again)", n)
	}
}

func TestViewerRegistrations(t *testing.T) {
	src := &fakeSource{}
	ctx := context.Background()
	anon := New(src, nil, Options{})
	if r, err := anon.Registrations.Load(ctx, "e1"); r != nil || err != nil || len(src.calls()) != 0 {
		t.Fatalf("anonymous: %v %v, %d reads", r, err, len(src.calls()))
	}
	l := New(src, &eventide.User{ID: "u1"}, Options{})
	rs, errs := l.Registrations.LoadMany(ctx, []string{"e1", "e2"})
	if errs[0] != nil || errs[1] != nil || rs[0] == nil || rs[0].UserID != "u1" || rs[1] != nil {
		t.Fatalf("got %v %v", rs, errs)
	}
}

func TestPanickingSourceIsAnError(t *testing.T) {
	l := NewLoader(func(context.Context, []string) (map[string]int, error) { panic("boom") }, nil, Config{})
	if _, err := l.Load(context.Background(), "k"); err == nil {
		t.Fatal("no error from a panicking fetch")
	}
}

func TestLoadHonoursContext(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	l := NewLoader(func(context.Context, []string) (map[string]int, error) { <-block; return nil, nil }, nil, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Load(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
}

// BenchmarkLoaderBatch measures a loader's own cost for one page's relation: 20 resolvers each
// loading one of 10 distinct keys concurrently after a Prefetch of them (as the events resolver
// does), against a source that answers at once. BENCHMARKS.md.
func BenchmarkLoaderBatch(b *testing.B) {
	src := &nopSource{}
	keys := make([]string, 10)
	for i := range keys {
		keys[i] = fmt.Sprintf("6650a1f2c3d4e5f6a7b8c9%02d", i)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		l := New(src, nil, Options{})
		l.Users.Prefetch(ctx, keys)
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				if _, err := l.Users.Load(ctx, keys[i%10]); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
	}
}

type nopSource struct{ fakeSource }

func (*nopSource) UsersByIDs(_ context.Context, ids []string) ([]*eventide.User, error) {
	out := make([]*eventide.User, len(ids))
	for i, id := range ids {
		out[i] = &eventide.User{ID: id}
	}
	return out, nil
}
