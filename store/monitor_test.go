package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/store/embedded"
)

func describe(m *event.ServerMonitor, kind string) {
	m.ServerDescriptionChanged(&event.ServerDescriptionChangedEvent{NewDescription: event.ServerDescription{Kind: kind}})
}

func isUnavailable(err error) bool {
	var e *eventide.Error
	return errors.As(err, &e) && e.Code == eventide.CodeUnavailable
}

// TestMonitorUp: the store is known down only after it was up and went Unknown; Up is cancelled
// then, with an UNAVAILABLE cause, and a fresh one follows when the server is back; Close cancels
// it for good.
func TestMonitorUp(t *testing.T) {
	m := newMonitor(slog.New(slog.DiscardHandler), 5, nil, nil)
	sm := m.serverMonitor()
	describe(sm, "Unknown") // before the first connection: not known down
	if m.Up().Err() != nil {
		t.Fatal("known down before it was ever up")
	}
	describe(sm, "Standalone")
	up := m.Up()
	if up.Err() != nil {
		t.Fatal("down while up")
	}
	describe(sm, "Standalone") // a heartbeat: no change
	if m.Up() != up {
		t.Fatal("a heartbeat replaced Up")
	}
	describe(sm, "Unknown")
	if up.Err() == nil || m.Up().Err() == nil {
		t.Fatal("not known down after the server went Unknown")
	}
	if !isUnavailable(context.Cause(up)) {
		t.Fatalf("cause %v, want UNAVAILABLE", context.Cause(up))
	}
	describe(sm, "Standalone")
	if m.Up().Err() != nil {
		t.Fatal("still down after the server came back")
	}
	m.close()
	if !isUnavailable(context.Cause(m.Up())) {
		t.Fatal("Up not cancelled by close")
	}
	describe(sm, "Standalone")
	if m.Up().Err() == nil {
		t.Fatal("a heartbeat after close revived Up")
	}
}

// TestMapErrClosed: a closed client or pool (a call racing the shutdown) is UNAVAILABLE, not
// INTERNAL_SERVER_ERROR.
func TestMapErrClosed(t *testing.T) {
	for _, err := range []error{
		mongo.ErrClientDisconnected,
		topology.ErrPoolClosed,
		fmt.Errorf("find: %w", topology.ErrPoolClosed),
		mongo.CommandError{Message: "x", Wrapped: topology.ErrPoolClosed},
		topology.ErrServerClosed,
	} {
		if got := mapErr(err); !isUnavailable(got) {
			t.Errorf("mapErr(%v) = %v, want UNAVAILABLE", err, got)
		}
	}
}

// TestClosedStoreIsUnavailable: calls on a store after Close are UNAVAILABLE.
func TestClosedStoreIsUnavailable(t *testing.T) {
	srv, err := embedded.Start(context.Background(), embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close(context.Background()) })
	st := openTestStore(t, srv.URI())
	if st.Up().Err() != nil {
		t.Fatal("open store known down")
	}
	if err := st.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UserByID(context.Background(), "6b0f61961e09889585043d73"); !isUnavailable(err) {
		t.Fatalf("UserByID after Close: %v, want UNAVAILABLE", err)
	}
	if err := st.Ping(context.Background()); !isUnavailable(err) {
		t.Fatalf("Ping after Close: %v", err)
	}
}
