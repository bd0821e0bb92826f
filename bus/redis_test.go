package bus

import (
	"context"
	"testing"
	"time"

	"github.com/eventide/server/cache"
	"github.com/eventide/server/internal/redistest"
	"github.com/eventide/server/internal/testutil"
)

// replica is one bus on a shared cache over srv, under prefix, with one topic whose messages it
// hands to got.
type replica struct {
	bus *Bus
	got chan string
}

func newReplica(t *testing.T, srv *redistest.Server, prefix string) replica {
	t.Helper()
	r := cache.NewRedis(cache.RedisOptions{Addrs: []string{srv.Addr()}, Prefix: prefix, TTL: time.Minute})
	sw := cache.NewSwitch(context.Background(), r, cache.NewMemory(cache.MemoryOptions{MaxEntries: 100, TTL: time.Minute}), 50*time.Millisecond, nil)
	rep := replica{bus: New(sw, nil), got: make(chan string, 16)}
	rep.bus.Handle(Topic{Name: "t", Receive: func(p []byte) error {
		select {
		case rep.got <- string(p):
		default:
		}
		return nil
	}})
	rep.bus.Start()
	t.Cleanup(func() { rep.bus.Close(); _ = sw.Close() })
	return rep
}

func eventually(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	testutil.Eventually(t, d, what, ok)
}

// received drains what r got within d.
func received(r replica, d time.Duration) []string {
	var out []string
	for timeout := time.After(d); ; {
		select {
		case m := <-r.got:
			out = append(out, m)
		case <-timeout:
			return out
		}
	}
}

// TestBusAcrossReplicas: a message reaches the other replica of its deployment, not its sender
// and not a deployment under another key prefix on the same Redis; with Redis gone publishers
// never wait and the bus says it does not hear itself; once Redis is back messages cross again.
func TestBusAcrossReplicas(t *testing.T) {
	srv := redistest.Start(t)
	a1 := newReplica(t, srv, "eventide:alpha:v2:")
	a2 := newReplica(t, srv, "eventide:alpha:v2:")
	b := newReplica(t, srv, "eventide:beta:v2:")
	all := func() bool { return a1.bus.Subscribed() && a2.bus.Subscribed() && b.bus.Subscribed() }
	eventually(t, 10*time.Second, "the buses never heard their own probes", all)

	a1.bus.Publish("t", []byte("hello"))
	b.bus.Publish("t", []byte("beta's"))
	if got := received(a2, time.Second); len(got) != 1 || got[0] != "hello" {
		t.Fatalf("a2 got %q, want a1's message only", got)
	}
	if got := received(a1, 100*time.Millisecond); len(got) != 0 {
		t.Fatalf("a1 got %q: its own message, or another deployment's", got)
	}
	if got := received(b, 100*time.Millisecond); len(got) != 0 {
		t.Fatalf("beta got %q: alpha's message, or its own", got)
	}

	srv.Stop()
	done := make(chan struct{})
	go func() {
		for range 10 * MaxQueued {
			a1.bus.Publish("t", []byte("outage"))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish waited on Redis")
	}
	eventually(t, 10*time.Second, "a bus still says it hears itself with Redis gone", func() bool {
		return !a1.bus.Subscribed() && !a2.bus.Subscribed()
	})

	srv.Restart()
	eventually(t, 15*time.Second, "the buses did not hear themselves again after Redis returned", all)
	received(a2, 0)
	eventually(t, 10*time.Second, "no message crossed after Redis returned", func() bool {
		a1.bus.Publish("t", []byte("back"))
		for _, m := range received(a2, 100*time.Millisecond) {
			if m == "back" {
				return true
			}
		}
		return false
	})
}
