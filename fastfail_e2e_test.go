package main

import (
	"context"
	"testing"
	"time"

	"github.com/eventide/server/config"
	"github.com/eventide/server/internal/redistest"
	"github.com/eventide/server/store/embedded"
)

// startReplicasOn is startReplicas with the Redis server handed back, so a test can kill it.
func startReplicasOn(t *testing.T, tweak func(*config.Config)) (a, b *testServer, redis *redistest.Server) {
	t.Helper()
	redis = redistest.Start(t)
	db, err := embedded.Start(context.Background(), embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	replica := func() *testServer {
		cfg := withRedis(t, testConfig(t), redis)
		cfg.MongoURI = db.URI()
		if tweak != nil {
			tweak(cfg)
		}
		return startServer(t, cfg)
	}
	return replica(), replica(), redis
}

// TestReplicasAgreeSoonDuringRedisOutage: two replicas on one store lose their shared Redis, so
// neither can tell the other about its writes. A write on a must be visible on b within
// CACHE_FALLBACK_TTL (2s by default) + 1s, not after CACHE_TTL (60s here).
func TestReplicasAgreeSoonDuringRedisOutage(t *testing.T) {
	const fallbackTTL = 2 * time.Second // the default of CACHE_FALLBACK_TTL
	a, b, redis := startReplicasOn(t, func(c *config.Config) {
		c.CacheTTL = 60 * time.Second
		c.ThrottleLimit = 1 << 30
	})
	org := a.organizer("Org")
	id := a.publishedEvent(org, "Before", 10, 24*time.Hour)
	q := `query($id: ID!){ event(id: $id){ title } }`
	title := func(ts *testServer) string {
		var ev struct{ Event struct{ Title string } }
		ts.mustData("", q, map[string]any{"id": id}, &ev)
		return ev.Event.Title
	}

	redis.Stop()
	// Both replicas notice (the first failed call switches to memory) and b caches the event in
	// memory.
	for _, ts := range []*testServer{a, b} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			title(ts)
			if _, _, detail := ts.readyCache(); detail == "memory (fallback)" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no fallback after Redis was killed")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := title(b); got != "Before" {
		t.Fatalf("b reads %q", got)
	}
	if got := title(b); got != "Before" { // from b's memory now
		t.Fatalf("b reads %q", got)
	}

	for round, want := range []string{"After 1", "After 2"} {
		a.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": id, "t": want}, nil)
		if got := title(a); got != want {
			t.Fatalf("round %d: a reads %q after its own write", round, got)
		}
		written := time.Now()
		bound := written.Add(fallbackTTL + time.Second)
		polls := 0
		for {
			got := title(b)
			polls++
			if got == want {
				t.Logf("round %d: b saw a's write after %v (%d polls)", round, time.Since(written).Round(time.Millisecond), polls)
				break
			}
			if time.Now().After(bound) {
				t.Fatalf("round %d: b still reads %q more than CACHE_FALLBACK_TTL + 1s (%v) after a's write of %q",
					round, got, fallbackTTL+time.Second, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
