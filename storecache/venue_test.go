package storecache

import (
	"context"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/respcache"
)

func (f *fakeStore) UpdateVenue(_ context.Context, id string, change func(*eventide.Venue) error) (*eventide.Venue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.venues[id]
	if !ok {
		return nil, eventide.NotFound("venue", id)
	}
	v := *cur
	if err := change(&v); err != nil {
		return nil, err
	}
	f.venues[id] = &v
	return &v, nil
}

// TestStoreUpdateVenueInvalidates: updateVenue replaces the venue's token (its record and every
// response built from it) and the list of events (city filters read the events' copies of its
// city), before it returns.
func TestStoreUpdateVenueInvalidates(t *testing.T) {
	fake := newFakeStore()
	fake.venues["v"] = &eventide.Venue{ID: "v", Name: "Hall", City: "Lisbon", TimeZone: "Europe/Lisbon"}
	fake.addEvent("a", time.Hour)
	s := memoryStore(t, fake, nil)
	ctx := context.Background()
	page := func() {
		t.Helper()
		if _, err := s.Events(ctx, eventide.EventQuery{}, eventide.Page{First: 10}); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := s.VenueByID(ctx, "v"); err != nil || v.TimeZone != "Europe/Lisbon" {
		t.Fatalf("venue %+v, %v", v, err)
	}
	page()
	before := fake.reads.Load()
	page()
	if _, err := s.VenueByID(ctx, "v"); err != nil {
		t.Fatal(err)
	}
	if n := fake.reads.Load(); n != before {
		t.Fatalf("warm reads went to the store (%d -> %d)", before, n)
	}
	deps := &respcache.Deps{}
	dctx := respcache.WithDeps(ctx, deps)
	if _, err := s.VenueByID(dctx, "v"); err != nil {
		t.Fatal(err)
	}
	keys, vals, _, ok := deps.Result()
	if !ok || len(keys) == 0 {
		t.Fatal("a venue read recorded no token")
	}
	if _, err := s.UpdateVenue(ctx, "v", func(v *eventide.Venue) error { v.City, v.TimeZone = "Berlin", "Europe/Berlin"; return nil }); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.VenueByID(ctx, "v"); v.TimeZone != "Europe/Berlin" || v.City != "Berlin" {
		t.Fatalf("read after updateVenue: %+v", v)
	}
	// The token a kept response holds for the venue is no longer current.
	now, err := s.c.Get(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	same := true
	for i := range keys {
		same = same && string(now[i]) == string(vals[i])
	}
	if same {
		t.Fatal("updateVenue left the venue's token as it was: kept responses would still be served")
	}
	r := fake.reads.Load()
	page()
	if fake.reads.Load() == r {
		t.Fatal("the events page was served from before updateVenue")
	}
}
