package sqlite

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/store/storetest"
	"github.com/eventide/server/storecache"
)

// The store can be read through the cache as the MongoDB store is.
var _ storecache.Backing = (*Store)(nil)

// faulty is a Store whose write transactions can be failed after a number of statements, as a
// crash or a full disk between two steps would.
type faulty struct {
	*Store
	left atomic.Int64
}

func (f *faulty) FailWritesAfter(n int) {
	f.left.Store(int64(n))
	fn := func() error {
		if f.left.Add(-1) < 0 {
			return eventide.Errorf(eventide.CodeUnavailable, "injected failure between two steps")
		}
		return nil
	}
	f.fault.Store(&fn)
}

func (f *faulty) Heal() { f.fault.Store(nil) }

func openTest(t testing.TB) *Store {
	t.Helper()
	st, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "eventide.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return &faulty{Store: openTest(t)} })
}

// TestContractSearchWalk runs the contract with every search answered by walking the events in
// page order (as searches with many matches are), not from the list of matches.
func TestContractSearchWalk(t *testing.T) {
	defer func(n int) { fewMatchesLimit = n }(fewMatchesLimit)
	fewMatchesLimit = 0
	storetest.Run(t, func(t *testing.T) storetest.Store { return &faulty{Store: openTest(t)} })
}

// TestContractOutbox runs the webhook outbox contract.
func TestContractOutbox(t *testing.T) {
	storetest.RunOutbox(t, func(t *testing.T, o eventide.OutboxOptions) storetest.OutboxStore {
		st, err := Open(context.Background(), Options{Path: filepath.Join(t.TempDir(), "eventide.db"), Outbox: o})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		return &faulty{Store: st}
	})
}
