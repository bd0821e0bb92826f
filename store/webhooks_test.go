package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/store/embedded"
)

// TestOutboxSweepMovesLeftMessages: a message left in its registration's document (a process
// that died between the change and the move) is moved by the sweep, once however often the
// sweep runs, and pulled from the document.
func TestOutboxSweepMovesLeftMessages(t *testing.T) {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	rs := []string{"http://a.example/h", "http://b.example/h"}
	st, err := Open(ctx, Options{URI: srv.URI(), Database: "sweep", PoolSize: 5, ConnectTimeout: 5 * time.Second,
		ServerSelectionTimeout: 5 * time.Second, MaxConnIdleTime: time.Minute, Outbox: eventide.OutboxOptions{Receivers: rs}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })

	// What a register that died after its insert leaves: the registration with its message.
	reg := registrationDoc{ID: bson.NewObjectID(), EventID: bson.NewObjectID(), UserID: bson.NewObjectID(),
		Status: string(eventide.RegistrationConfirmed), CreatedAt: now(), UpdatedAt: now()}
	msg := regMessage(eventide.WebhookRegistrationConfirmed, &reg)
	reg.Outbox = []embeddedMsg{msg}
	if _, err := st.regs.InsertOne(ctx, reg); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := st.sweepOutbox(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := st.WebhookDeliveries(ctx, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].ID != msg.ID.Hex() || ds[1].ID != msg.ID.Hex() || ds[0].Receiver == ds[1].Receiver {
		t.Fatalf("deliveries after two sweeps: %+v", ds)
	}
	var left registrationDoc
	if err := st.regs.FindOne(ctx, bson.D{{Key: "_id", Value: reg.ID}}).Decode(&left); err != nil || len(left.Outbox) != 0 {
		t.Fatalf("the message is still in its document: %+v %v", left.Outbox, err)
	}
	// Moving it again (a replica that read it before the pull) inserts nothing new.
	if err := st.moveOutboxErr(ctx, st.regs, reg.ID, []embeddedMsg{msg}); err != nil {
		t.Fatal(err)
	}
	if n, _, err := st.WebhookBacklog(ctx); err != nil || n != 2 {
		t.Fatalf("backlog %d %v, want 2", n, err)
	}
}

// TestOutboxCascadeRepair: a cancelEvent that stopped after its edit (the event CANCELLED and
// marked, its registrations still active, as a crash between the steps leaves it) is finished by
// the repair, and each registration it cancels then gets its registration.cancelled message, as
// if the cascade had run in the write itself.
func TestOutboxCascadeRepair(t *testing.T) {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	const r = "http://a.example/h"
	st, err := Open(ctx, Options{URI: srv.URI(), Database: "cascade", PoolSize: 5, ConnectTimeout: 5 * time.Second,
		ServerSelectionTimeout: 5 * time.Second, MaxConnIdleTime: time.Minute, Outbox: eventide.OutboxOptions{Receivers: []string{r}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })

	org := &eventide.User{Name: "Org", Email: "org@example.com", Role: eventide.RoleOrganizer}
	if err := st.CreateUser(ctx, org); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(time.Hour)
	e := &eventide.Event{Title: "E", Status: eventide.EventPublished, Capacity: 2, OrganizerID: org.ID,
		StartsAt: start, EndsAt: start.Add(time.Hour)}
	if err := st.CreateEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	regs := map[string]bool{}
	for i, name := range []string{"A", "B", "C"} {
		u := &eventide.User{Name: name, Email: name + "@example.com", Role: eventide.RoleUser}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		reg, _, err := st.Register(ctx, e.ID, u.ID, time.Now().Add(time.Duration(i)*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		regs[reg.ID] = true
	}
	before, err := st.WebhookDeliveries(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	// The edit of a cancelEvent whose process died right after it, a lease ago.
	eid, _ := bson.ObjectIDFromHex(e.ID)
	m := &mark{token: bson.NewObjectID().Hex(), at: msTime(time.Now().Add(-2 * repairLease))}
	if _, err := st.events.UpdateOne(ctx, bson.D{{Key: "_id", Value: eid}}, withBegin(nil, bson.D{
		{Key: "status", Value: string(eventide.EventCancelled)}, {Key: "cancelReason", Value: "storm"}}, m)); err != nil {
		t.Fatal(err)
	}
	// A read repairs it; the sweep moves whatever the repair's moves left.
	got, err := st.EventByID(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ConfirmedCount != 0 || got.WaitlistCount != 0 {
		t.Fatalf("after the repair: %d confirmed, %d waitlisted; want none", got.ConfirmedCount, got.WaitlistCount)
	}
	if _, err := st.sweepOutbox(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := st.WebhookDeliveries(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	cancelled := map[string]bool{}
	for _, d := range after[:len(after)-len(before)] {
		var b struct {
			Data struct{ Registration eventide.WebhookRegistration }
		}
		if err := json.Unmarshal(d.Body, &b); err != nil {
			t.Fatal(err)
		}
		if d.Type != eventide.WebhookRegistrationCancelled || b.Data.Registration.Status != "CANCELLED" || !regs[b.Data.Registration.ID] {
			t.Fatalf("after the repair: %s %s", d.Type, d.Body)
		}
		cancelled[b.Data.Registration.ID] = true
	}
	if len(cancelled) != len(regs) {
		t.Fatalf("the repair reported %d of the %d registrations it cancelled", len(cancelled), len(regs))
	}
}
