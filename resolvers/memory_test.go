package resolvers

import (
	"context"
	"errors"
	"testing"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/memstats"
)

func TestMemoryStatsSubscriptionRefused(t *testing.T) {
	t.Run("ErrTooManySubscribers", func(t *testing.T) {
		s := memstats.New(memstats.Options{MaxSubscribers: 1})
		r := &subscriptionResolver{&Resolver{Memory: s}}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if _, err := r.MemoryStats(ctx, nil); err != nil {
			t.Fatal(err)
		}
		_, err := r.MemoryStats(ctx, nil)
		if !eventide.IsCode(err, eventide.CodeRateLimited) {
			t.Fatalf("err = %v, want RATE_LIMITED", err)
		}
	})
	t.Run("ErrShuttingDown", func(t *testing.T) {
		s := memstats.New(memstats.Options{})
		stopped, stop := context.WithCancel(context.Background())
		stop()
		_ = s.Run(stopped) // returns at once: the sampler is stopped, as at shutdown
		r := &subscriptionResolver{&Resolver{Memory: s}}
		_, err := r.MemoryStats(context.Background(), nil)
		if !eventide.IsCode(err, eventide.CodeUnavailable) {
			t.Fatalf("err = %v, want SERVICE_UNAVAILABLE", err)
		}
	})
	t.Run("ErrClientGone", func(t *testing.T) {
		r := &subscriptionResolver{&Resolver{Memory: memstats.New(memstats.Options{})}}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := r.MemoryStats(ctx, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want the context's error", err)
		}
	})
}
