package storecache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventide/server/bus"
	"github.com/eventide/server/cache"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/redistest"
	"github.com/eventide/server/pubsub"
)

// onRedis is one replica's shared cache on srv under prefix and its bus, not started (register
// the topics first), both closed when the test ends.
func onRedis(t *testing.T, srv *redistest.Server, prefix string) (*cache.Switch, *bus.Bus) {
	t.Helper()
	r := cache.NewRedis(cache.RedisOptions{Addrs: []string{srv.Addr()}, Prefix: prefix, TTL: time.Minute})
	sw := cache.NewSwitch(context.Background(), r, cache.NewMemory(cache.MemoryOptions{MaxEntries: 100, TTL: time.Minute}), 50*time.Millisecond, nil)
	b := bus.New(sw, nil)
	t.Cleanup(func() { b.Close(); _ = sw.Close() })
	return sw, b
}

// TestRegistrationRelayAcrossReplicas: registrations published on replica a reach their users'
// subscribers on a and b, each user only theirs, in order; an event's cancellation of 600
// registrations travels in messages of at most regsPerMessage.
func TestRegistrationRelayAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	type replica struct {
		bus   *bus.Bus
		relay *RegistrationRelay
	}
	newReplica := func() replica {
		_, b := onRedis(t, srv, "test:regs:")
		rr := NewRegistrationRelay(b, pubsub.New[*eventide.Registration](1024, 100))
		b.Start()
		return replica{b, rr}
	}
	a, b := newReplica(), newReplica()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := func(r replica, user string) <-chan *eventide.Registration {
		ch, err := r.relay.Subscribe(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	bU1, bU2, aU1 := sub(b, "u1"), sub(b, "u2"), sub(a, "u1")
	var regs []*eventide.Registration
	for i := range 600 {
		regs = append(regs, &eventide.Registration{ID: fmt.Sprint(i), EventID: "e", UserID: "u1", Status: eventide.RegistrationCancelled,
			CancelReason: "rain", CreatedAt: time.UnixMilli(1), UpdatedAt: time.UnixMilli(2)})
	}
	regs = append(regs, &eventide.Registration{ID: "x", EventID: "e", UserID: "u2", Status: eventide.RegistrationConfirmed})
	sent := a.bus.Sent()
	a.relay.Publish(regs)
	for name, ch := range map[string]<-chan *eventide.Registration{"same replica": aU1, "other replica": bU1} {
		for i := range 600 {
			select {
			case g := <-ch:
				if g.ID != fmt.Sprint(i) || g.UserID != "u1" || g.CancelReason != "rain" || g.Status != eventide.RegistrationCancelled {
					t.Fatalf("%s: #%d is %+v", name, i, g)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("%s: only %d of 600 arrived", name, i)
			}
		}
	}
	select {
	case g := <-bU2:
		if g.ID != "x" {
			t.Fatalf("u2 got %+v", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("u2 got nothing")
	}
	select {
	case g := <-bU1:
		t.Fatalf("u1 got more: %+v", g)
	case <-time.After(100 * time.Millisecond):
	}
	if n := a.bus.Sent() - sent; n != 3 {
		t.Fatalf("%d bus messages for 601 registrations, want 3 (at most %d each)", n, regsPerMessage)
	}
}

// TestTwoReplicasShareInvalidationsAndEvents runs two Stores (two replicas) on one Redis over one
// backing store: a write through one is seen by the other at once, its invalidation arrives over
// pub/sub, and so do eventUpdated messages.
func TestTwoReplicasShareInvalidationsAndEvents(t *testing.T) {
	srv := redistest.Start(t)
	fake := newFakeStore()
	fake.addEvent("a", time.Hour)
	type replica struct {
		store  *Store
		bus    *bus.Bus
		events *EventRelay
	}
	newReplica := func() replica {
		sw, b := onRedis(t, srv, "test:two:")
		st := NewStore(fake, sw, StoreOptions{TTL: time.Minute, Bus: b})
		ev := NewEventRelay(b, pubsub.New[*eventide.Event](4, 100))
		b.Start()
		return replica{st, b, ev}
	}
	a, b := newReplica(), newReplica()
	ctx := context.Background()

	if e, _ := b.store.EventByID(ctx, "a"); e.ConfirmedCount != 0 {
		t.Fatal("unexpected count")
	}
	reads := fake.reads.Load()
	if _, _, err := a.store.Register(ctx, "a", "u1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if e, _ := b.store.EventByID(ctx, "a"); e.ConfirmedCount != 1 {
		t.Fatalf("replica b reads count %d after a's write returned", e.ConfirmedCount)
	}
	if fake.reads.Load() != reads+1 {
		t.Fatal("b did not reload the invalidated event")
	}
	for deadline := time.Now().Add(5 * time.Second); b.store.RemoteInvalidations() < 1; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("b never received a's invalidation")
		}
	}
	if a.store.RemoteInvalidations() != 0 {
		t.Fatal("a received its own invalidation")
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := b.events.Subscribe(sctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var mine <-chan *eventide.Event
	if mine, err = a.events.Subscribe(sctx, "a"); err != nil {
		t.Fatal(err)
	}
	a.events.Publish("a", &eventide.Event{ID: "a", Title: "Changed", ConfirmedCount: 1, Tags: []string{}})
	for name, c := range map[string]<-chan *eventide.Event{"other replica": ch, "same replica": mine} {
		select {
		case e := <-c:
			if e.Title != "Changed" || e.ConfirmedCount != 1 {
				t.Fatalf("%s got %+v", name, e)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s never got the eventUpdated message", name)
		}
	}
	select {
	case e := <-mine:
		t.Fatalf("same replica got the message twice: %+v", e)
	case <-time.After(100 * time.Millisecond):
	}
}
