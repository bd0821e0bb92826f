package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/internal/testutil"
)

// TestStoreOutage points the server at a separate store through MONGO_URI, stops that store, and
// checks that what the cache holds is still served, that queries needing the store fail fast with
// a code, /readyz says so, the log shows the disconnect, and everything recovers when the store
// returns, without restarting the server.
func TestStoreOutage(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	ctx := context.Background()
	db := startStoreAt(t, dir, addr)

	cfg := testConfig(t)
	cfg.MongoURI = db.URI()
	cfg.MongoServerSelectionTimeout = time.Second
	cfg.MongoConnectTimeout = time.Second
	ts := startServer(t, cfg)
	org := ts.organizer("Org")
	cachedID := ts.publishedEvent(org, "Read before the outage", 10, 24*time.Hour)
	id := ts.publishedEvent(org, "Resilient", 10, 24*time.Hour)
	q := `query($id: ID!){ event(id: $id){ id title } }`
	ts.mustData("", q, map[string]any{"id": cachedID}, nil)

	if err := db.Close(ctx); err != nil {
		t.Fatal(err)
	}

	t.Run("CachedReadsStillServed", func(t *testing.T) {
		ts.mustData("", q, map[string]any{"id": cachedID}, nil)
	})

	t.Run("QueriesFailFastWithCode", func(t *testing.T) {
		began := time.Now()
		r := ts.do("", q, map[string]any{"id": id})
		took := time.Since(began)
		if r.code() != "SERVICE_UNAVAILABLE" {
			t.Fatalf("code = %q (%+v)", r.code(), r.Errors)
		}
		// Bounded by the server-selection timeout (1s), with slack for a loaded machine.
		if took > 5*time.Second {
			t.Fatalf("query took %v with a 1s server-selection timeout", took)
		}
		if strings.Contains(r.Errors[0].Message, "127.0.0.1") {
			t.Fatalf("error leaks internals: %q", r.Errors[0].Message)
		}
	})
	t.Run("ReadyzNamesTheStore", func(t *testing.T) {
		res, err := http.Get(ts.base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var body struct {
			Status string
			Checks map[string]struct{ Status string }
		}
		_ = json.NewDecoder(res.Body).Decode(&body)
		if res.StatusCode != http.StatusServiceUnavailable || body.Checks["store"].Status != "down" {
			t.Fatalf("readyz %d %+v", res.StatusCode, body)
		}
	})
	t.Run("LogShowsDisconnect", func(t *testing.T) {
		if !testutil.Within(15*time.Second, func() bool {
			return strings.Contains(ts.logs.String(), "store disconnected") || strings.Contains(ts.logs.String(), "store heartbeat failed")
		}) {
			t.Fatalf("no disconnect in the log:\n%s", ts.logs.String())
		}
	})

	startStoreAt(t, dir, addr)

	t.Run("Recovers", func(t *testing.T) {
		if r := ts.untilAnswered(30*time.Second, q, map[string]any{"id": id}); len(r.Errors) > 0 {
			t.Fatalf("not recovered: %+v", r.Errors)
		}
		res, err := http.Get(ts.base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("readyz %d after recovery", res.StatusCode)
		}
	})
}
