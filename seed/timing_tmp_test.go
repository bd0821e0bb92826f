package seed

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/store"
	"github.com/eventide/server/store/embedded"
)

type timed struct {
	eventide.Store
	mu sync.Mutex
	d  map[string]time.Duration
	n  map[string]int
}

func (s *timed) rec(name string, t0 time.Time) {
	s.mu.Lock()
	s.d[name] += time.Since(t0)
	s.n[name]++
	s.mu.Unlock()
}
func (s *timed) CreateUser(ctx context.Context, u *eventide.User) error {
	defer s.rec("CreateUser", time.Now())
	return s.Store.CreateUser(ctx, u)
}
func (s *timed) CreateVenue(ctx context.Context, v *eventide.Venue) error {
	defer s.rec("CreateVenue", time.Now())
	return s.Store.CreateVenue(ctx, v)
}
func (s *timed) CreateEvent(ctx context.Context, e *eventide.Event) error {
	defer s.rec("CreateEvent", time.Now())
	return s.Store.CreateEvent(ctx, e)
}
func (s *timed) Register(ctx context.Context, a, b string, t time.Time) (*eventide.Registration, *eventide.Event, error) {
	defer s.rec("Register", time.Now())
	return s.Store.Register(ctx, a, b, t)
}
func (s *timed) CancelRegistration(ctx context.Context, a, b string, t time.Time) (*eventide.Registration, *eventide.Event, error) {
	defer s.rec("Cancel", time.Now())
	return s.Store.CancelRegistration(ctx, a, b, t)
}

func TestTiming(t *testing.T) {
	ctx := context.Background()
	srv, err := embedded.Start(ctx, embedded.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(ctx)
	st, err := store.Open(ctx, store.Options{URI: srv.URI(), Database: "seedtest", PoolSize: 5, ConnectTimeout: 5 * time.Second, ServerSelectionTimeout: 5 * time.Second, MaxConnIdleTime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ts := &timed{Store: st, d: map[string]time.Duration{}, n: map[string]int{}}
	t0 := time.Now()
	if _, err := Demo(ctx, ts, []byte("x"), time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	t.Logf("total %v", time.Since(t0))
	for k, v := range ts.d {
		t.Logf("%-12s n=%3d total=%v per=%v", k, ts.n[k], v, v/time.Duration(ts.n[k]))
	}
}
