package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/store/embedded"
)

// TestBackfillEventTimes: registrations an earlier version wrote, without their event's times,
// get them at the next start (once), so a user's list orders them like new ones.
func TestBackfillEventTimes(t *testing.T) {
	srv, err := embedded.Start(context.Background(), embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	st := openTestStore(t, srv.URI())
	ctx := context.Background()
	u := &eventide.User{Name: "Old", Email: "old@example.com", Role: eventide.RoleUser}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	var ids []string
	for _, in := range []time.Duration{3 * time.Hour, time.Hour, 2 * time.Hour} {
		e := &eventide.Event{Title: "E", Status: eventide.EventPublished, Capacity: 5, OrganizerID: u.ID,
			StartsAt: now.Add(in), EndsAt: now.Add(in + time.Hour)}
		if err := st.CreateEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
		eid, _ := bson.ObjectIDFromHex(e.ID)
		uid, _ := bson.ObjectIDFromHex(u.ID)
		// As an earlier version wrote it: no eventStartsAt, no eventEndsAt.
		if _, err := st.regs.InsertOne(ctx, bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "eventId", Value: eid},
			{Key: "userId", Value: uid}, {Key: "status", Value: "CONFIRMED"}, {Key: "createdAt", Value: now}, {Key: "updatedAt", Value: now}}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(st *Store) []string {
		c, err := st.UserRegistrations(ctx, u.ID, eventide.RegistrationFilter{Now: now}, eventide.Page{First: 10})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range c.Items {
			out = append(out, r.EventID)
		}
		return out
	}
	if got := list(st); slices.Equal(got, []string{ids[1], ids[2], ids[0]}) {
		t.Fatal("the old registrations are in order before the backfill: the test proves nothing")
	}
	// The store was opened on an empty database: its marker says done. An upgrade from an
	// earlier version has none.
	if _, err := st.db.Collection("meta").DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	st2 := openTestStore(t, srv.URI())
	if got, want := list(st2), []string{ids[1], ids[2], ids[0]}; !slices.Equal(got, want) {
		t.Fatalf("after the restart %v, want by start %v", got, want)
	}
}
