package store

import (
	"context"
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
