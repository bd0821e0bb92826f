package webhook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/testutil"
	"github.com/eventide/server/store/sqlite"
)

func TestBackoff(t *testing.T) {
	base := time.Second
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 12: 2048 * time.Second, 13: time.Hour, 40: time.Hour} {
		for range 50 {
			d := Backoff(base, attempt)
			if d < want/2 || d > want {
				t.Fatalf("Backoff(1s, %d) = %v, want within [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
	seen := map[time.Duration]bool{}
	for range 20 {
		seen[Backoff(base, 3)] = true
	}
	if len(seen) < 2 {
		t.Fatal("no jitter")
	}
}

func TestSign(t *testing.T) {
	// RFC 4231, test case 2.
	want := "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got := Sign("Jefe", []byte("what do ya want for nothing?")); got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

// storeWithMessage opens a real SQLite store writing messages for receiver and makes one change
// (an event published), so that one delivery is pending.
func storeWithMessage(t *testing.T, receiver string) *sqlite.Store {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: filepath.Join(t.TempDir(), "e.db"), Outbox: eventide.OutboxOptions{Receivers: []string{receiver}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(ctx) })
	org := &eventide.User{Name: "Org", Email: "org@example.com", Role: eventide.RoleOrganizer}
	if err := st.CreateUser(ctx, org); err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(24 * time.Hour)
	e := &eventide.Event{Title: "E", StartsAt: at, EndsAt: at.Add(time.Hour), Status: eventide.EventDraft, Capacity: 5, OrganizerID: org.ID}
	if err := st.CreateEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error { x.Status = eventide.EventPublished; return nil }); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRunStopsDuringAnAttempt: a shutdown while a receiver hangs ends Run at once; the attempt
// it cut short is not counted and the delivery stays PENDING for the next start.
func TestRunStopsDuringAnAttempt(t *testing.T) {
	arrived := make(chan struct{}, 1)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server notices a closed connection once the body is read
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	defer rcv.Close()
	st := storeWithMessage(t, rcv.URL)
	w := New(st, Options{Receivers: []string{rcv.URL}, Secret: "s", Timeout: time.Minute, MaxAttempts: 3, Backoff: time.Second, Retention: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of the shutdown")
	}
	ds, err := st.WebhookDeliveries(context.Background(), "", 10)
	if err != nil || len(ds) != 1 || ds[0].Status != eventide.DeliveryPending || ds[0].Attempts != 0 {
		t.Fatalf("after the shutdown: %+v %v", ds, err)
	}
}

// TestRetentionAndGauges: a delivered message leaves the outbox after WEBHOOK_RETENTION, and the
// backlog gauges follow the outbox.
func TestRetentionAndGauges(t *testing.T) {
	var hold atomic.Bool
	hold.Store(true)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer rcv.Close()
	st := storeWithMessage(t, rcv.URL)
	w := New(st, Options{Receivers: []string{rcv.URL}, Secret: "s", Timeout: time.Second, MaxAttempts: 100,
		Backoff: 50 * time.Millisecond, Retention: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	waitFor(t, "depth 1", func() bool { return value(w.depth) == 1 && value(w.oldest) > 0 })
	waitFor(t, "a retry", func() bool { return value(w.results.WithLabelValues("retry")) >= 1 })
	hold.Store(false)
	waitFor(t, "delivered", func() bool { return value(w.results.WithLabelValues("delivered")) == 1 })
	waitFor(t, "depth 0", func() bool { return value(w.depth) == 0 && value(w.oldest) == 0 })
	waitFor(t, "purged", func() bool {
		ds, err := st.WebhookDeliveries(context.Background(), "", 10)
		return err == nil && len(ds) == 0
	})
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, what, ok)
}

// value reads a gauge or counter.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}
