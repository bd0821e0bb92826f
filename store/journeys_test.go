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

// TestRegisterRacingACancellationOnAnotherReplica: replica B cancels the event after replica A's
// registration claimed its seat and before A's check, so B's cascade may pass the registration
// by. A must withdraw it: the registration ends CANCELLED with the event's reason, the
// registration fails with the cancelled event's error, and the counts agree (nobody confirmed
// at a cancelled event). Then, with the event cancelled, a seat cannot even be claimed.
func TestRegisterRacingACancellationOnAnotherReplica(t *testing.T) {
	srv, err := embedded.Start(context.Background(), embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	a, b := openTestStore(t, srv.URI()), openTestStore(t, srv.URI())
	ctx := context.Background()
	org := &eventide.User{Name: "Org", Email: "org@example.com", Role: eventide.RoleOrganizer}
	if err := a.CreateUser(ctx, org); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(time.Hour)
	e := &eventide.Event{Title: "E", Status: eventide.EventPublished, Capacity: 1, OrganizerID: org.ID,
		StartsAt: start, EndsAt: start.Add(time.Hour)}
	if err := a.CreateEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	var users []*eventide.User
	for _, name := range []string{"first", "second", "third"} {
		u := &eventide.User{Name: name, Email: name + "@example.com", Role: eventide.RoleUser}
		if err := a.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	cancelOnB := func() {
		if _, err := b.UpdateEvent(ctx, e.ID, func(ev *eventide.Event) error {
			ev.Status, ev.CancelReason = eventide.EventCancelled, "venue flooded"
			return nil
		}); err != nil {
			t.Errorf("cancel on replica B: %v", err)
		}
	}
	// The first takes the one seat, the second the waitlist; B cancels right after the second's
	// write, before its check.
	if _, _, err := a.Register(ctx, e.ID, users[0].ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	a.afterRegistration = cancelOnB
	_, _, err = a.Register(ctx, e.ID, users[1].ID, time.Now())
	a.afterRegistration = nil
	if !eventide.IsCode(err, eventide.CodeBadUserInput) {
		t.Fatalf("registering while the event was cancelled: %v, want the cancelled event's BAD_USER_INPUT", err)
	}
	eid, _ := bson.ObjectIDFromHex(e.ID)
	for _, u := range users[:2] {
		uid, _ := bson.ObjectIDFromHex(u.ID)
		var d registrationDoc
		if err := a.regs.FindOne(ctx, bson.D{{Key: "eventId", Value: eid}, {Key: "userId", Value: uid}}).Decode(&d); err != nil {
			t.Fatal(err)
		}
		if d.Status != string(eventide.RegistrationCancelled) || d.CancelReason != "venue flooded" {
			t.Errorf("%s's registration is %s (%q), want CANCELLED (venue flooded)", u.Name, d.Status, d.CancelReason)
		}
	}
	wantCounts(t, a, eid, 0, 0, 0)

	// Read before the cancellation, the event still looks published: the seat's own condition
	// refuses it.
	stale, err := a.eventDoc(ctx, eid)
	if err != nil {
		t.Fatal(err)
	}
	stale.Status, stale.Confirmed = string(eventide.EventPublished), 0
	if _, err := a.claimSeat(ctx, stale, nil, true); !eventide.IsCode(err, eventide.CodeBadUserInput) {
		t.Fatalf("a seat claimed at a cancelled event: %v", err)
	}
	wantCounts(t, a, eid, 0, 0, 0)
}
