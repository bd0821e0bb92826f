package store

import (
	"context"
	"testing"
	"time"

	"github.com/eventide/server/store/embedded"
)

// startTestStore starts an in-process FerretDB in a temp dir and opens the store on it; both end
// with the test.
func startTestStore(t *testing.T) *Store {
	t.Helper()
	srv, err := embedded.Start(context.Background(), embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	return openTestStore(t, srv.URI())
}

func openTestStore(t *testing.T, uri string) *Store {
	t.Helper()
	st, err := Open(context.Background(), Options{
		URI: uri, Database: "storetest", PoolSize: 5, ConnectTimeout: 5 * time.Second,
		ServerSelectionTimeout: 5 * time.Second, MaxConnIdleTime: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

// TestOpenTwice reopens a store whose indexes exist, as every restart of `go run .` does.
func TestOpenTwice(t *testing.T) {
	srv, err := embedded.Start(context.Background(), embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	openTestStore(t, srv.URI())
	st := openTestStore(t, srv.URI())
	specs, err := st.events.Indexes().ListSpecifications(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 6 { // _id_ + 5
		t.Fatalf("events has %d indexes, want 6", len(specs))
	}
}
