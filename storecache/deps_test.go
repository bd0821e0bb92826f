package storecache

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/respcache"
)

// stillHolds reports whether every token d recorded still has its value in s's cache: what the
// response cache checks on a hit.
func stillHolds(t *testing.T, s *Store, d *respcache.Deps) bool {
	t.Helper()
	keys, vals, _, ok := d.Result()
	if !ok {
		t.Fatal("deps tainted")
	}
	got, err := s.c.Get(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if got[i] == nil || !bytes.Equal(got[i], vals[i]) {
			return false
		}
	}
	return true
}

// TestDepsOfAPage: a page read records the list's token and each event's, cold and warm alike;
// a registration (which changes one event's counts) and a new event (which changes the list)
// each break what was recorded, and a clock-bound page records when it stops being right.
func TestDepsOfAPage(t *testing.T) {
	fake, _, now, s := threeEvents(t)

	read := func() *respcache.Deps {
		t.Helper()
		d := &respcache.Deps{}
		ctx := respcache.WithDeps(context.Background(), d)
		n := now()
		if _, err := s.Events(ctx, eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventPublished}, EndsAfter: &n}, eventide.Page{First: 2}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, temp := range []string{"cold", "warm"} {
		d := read()
		keys, _, until, ok := d.Result()
		keys = slices.Sorted(slices.Values(keys))
		if !ok || !slices.Equal(keys, []string{"te:a", "te:b", "tl:e"}) {
			t.Fatalf("%s page depends on %v (ok %v), want te:a te:b tl:e", temp, keys, ok)
		}
		// Event a ends first (the fake's events end an hour after they start).
		if want := fake.events["a"].EndsAt.UnixMilli(); until != want {
			t.Fatalf("%s page valid until %d, want %d (when event a ends)", temp, until, want)
		}
		if !stillHolds(t, s, d) {
			t.Fatalf("%s page's tokens changed with no write", temp)
		}
	}

	d := read()
	if _, _, err := s.Register(context.Background(), "b", "u1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if stillHolds(t, s, d) {
		t.Fatal("a registration left the page's tokens as they were: its counts would be served stale")
	}
	d = read()
	e := &eventide.Event{Status: eventide.EventPublished, StartsAt: now(), EndsAt: now().Add(time.Hour), Tags: []string{}}
	if err := s.CreateEvent(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if stillHolds(t, s, d) {
		t.Fatal("a new event left the list's token as it was")
	}
}

// TestDepsTaintedByDirectReads: whatever the cache does not answer (a count at an instant other than now, a
// cursor too long to key, sign-in's read by email) makes the response one not to keep.
func TestDepsTaintedByDirectReads(t *testing.T) {
	fake := newFakeStore()
	fake.addEvent("a", time.Hour)
	s := memoryStore(t, fake, nil)
	n := time.Now().Add(time.Hour)
	for name, read := range map[string]func(ctx context.Context){
		"count at another instant": func(ctx context.Context) {
			_, _ = s.CountEvents(ctx, eventide.EventQuery{EndsAfter: &n})
		},
		"long cursor": func(ctx context.Context) {
			_, _ = s.Events(ctx, eventide.EventQuery{}, eventide.Page{First: 2, After: strings.Repeat("x", maxCachedCursor+1)})
		},
		"long id": func(ctx context.Context) {
			_, _ = s.EventsByIDs(ctx, []string{strings.Repeat("x", maxCachedID+1)})
		},
		"user by email": func(ctx context.Context) { _, _ = s.UserByEmail(ctx, "a@b.c") },
	} {
		d := &respcache.Deps{}
		func() {
			defer func() { _ = recover() }() // the fake implements only what the cache reads through
			read(respcache.WithDeps(context.Background(), d))
		}()
		if _, _, _, ok := d.Result(); ok {
			t.Errorf("%s: deps not tainted", name)
		}
	}
}
