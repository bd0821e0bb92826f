package cache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/redistest"
	"github.com/eventide/server/pubsub"
)

// TestRegistrationRelayAcrossReplicas: registrations published on replica a reach their users'
// subscribers on a and b, each user only theirs, in order; an event's cancellation of 600
// registrations travels in messages of at most regsPerMessage.
func TestRegistrationRelayAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	type replica struct {
		bus   *Bus
		relay *RegistrationRelay
	}
	newReplica := func() replica {
		r := NewRedis(RedisOptions{Addrs: []string{srv.Addr()}, Prefix: "test:regs:", TTL: time.Minute})
		sw := NewSwitch(context.Background(), r, NewMemory(MemoryOptions{MaxEntries: 100, TTL: time.Minute}), 50*time.Millisecond, nil)
		bus := NewBus(sw, nil)
		rr := NewRegistrationRelay(bus, pubsub.New[*eventide.Registration](1024, 100))
		bus.Start()
		t.Cleanup(func() { bus.Close(); _ = sw.Close() })
		return replica{bus, rr}
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
	sent := a.bus.sent.Load()
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
	if n := a.bus.sent.Load() - sent; n != 3 {
		t.Fatalf("%d bus messages for 601 registrations, want 3 (at most %d each)", n, regsPerMessage)
	}
}
