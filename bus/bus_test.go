package bus

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eventide/server/cache"
	"github.com/eventide/server/internal/redistest"
)

// deadSwitch is a shared cache whose Redis is at an address where nothing listens: it starts in
// the fallback and never serves.
func deadSwitch(t *testing.T) *cache.Switch {
	t.Helper()
	r := cache.NewRedis(cache.RedisOptions{Addrs: []string{redistest.DeadAddr(t)}, TTL: time.Minute})
	sw := cache.NewSwitch(context.Background(), r, cache.NewMemory(cache.MemoryOptions{MaxEntries: 100, TTL: time.Hour}), time.Hour, nil)
	t.Cleanup(func() { _ = sw.Close() })
	return sw
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ignore([]byte) error { return nil }

// TestBusHoldsBounded: while Redis is down the bus holds at most MaxHeld messages of held topics
// (the rest, and every message of other topics, are dropped and counted), and sends none while
// Redis does not serve.
func TestBusHoldsBounded(t *testing.T) {
	b := New(deadSwitch(t), nil)
	b.Handle(Topic{Name: "held", Hold: true, Receive: ignore})
	b.Handle(Topic{Name: "other", Receive: ignore})
	for range MaxHeld + 10 {
		b.hold(message{topic: "held", payload: []byte("x")})
	}
	b.hold(message{topic: "other", payload: []byte("e")})
	if len(b.held) != MaxHeld || b.dropped.Load() != 11 {
		t.Fatalf("held %d, dropped %d; want %d and 11", len(b.held), b.dropped.Load(), MaxHeld)
	}
	b.resends = []time.Time{time.Now().Add(-time.Second)}
	b.sendHeld(time.Now())
	if len(b.held) != MaxHeld || len(b.resends) != 1 || b.sent.Load() != 0 {
		t.Fatalf("sent while Redis was down: held %d, resends %d, sent %d", len(b.held), len(b.resends), b.sent.Load())
	}
}

// TestBusQueueBounded: a publisher never waits on the bus: with its sender stopped, the queue
// takes MaxQueued messages and drops and counts the rest.
func TestBusQueueBounded(t *testing.T) {
	b := New(deadSwitch(t), nil)
	b.Handle(Topic{Name: "t", Receive: ignore})
	b.Start()
	b.Close() // the sender is gone: nothing drains the queue
	for range MaxQueued + 7 {
		b.Publish("t", []byte("x"))
	}
	if len(b.queue) != MaxQueued || b.dropped.Load() != 7 {
		t.Fatalf("queued %d, dropped %d; want %d and 7", len(b.queue), b.dropped.Load(), MaxQueued)
	}
}

// TestBusWithoutRedisIsLocal: without Redis the bus neither queues nor starts anything.
func TestBusWithoutRedisIsLocal(t *testing.T) {
	mem := cache.NewSwitch(context.Background(), nil, cache.NewMemory(cache.MemoryOptions{MaxEntries: 10, TTL: time.Hour}), time.Hour, nil)
	defer mem.Close()
	b := New(mem, nil)
	b.Handle(Topic{Name: "t", Receive: ignore})
	b.Start()
	defer b.Close()
	b.Publish("t", []byte("x"))
	if b.Enabled() || len(b.queue) != 0 || b.dropped.Load() != 0 || b.Subscribed() {
		t.Fatalf("without Redis: enabled %v, queued %d, dropped %d, subscribed %v", b.Enabled(), len(b.queue), b.dropped.Load(), b.Subscribed())
	}
}
