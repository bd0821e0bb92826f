package resolvers

import (
	"context"
	"errors"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/pubsub"
)

// eventUpdatedError maps a refused eventUpdated subscription: one client's share of the
// subscribers held is that client's limit (RATE_LIMITED); a full broker is the server's
// (SERVICE_UNAVAILABLE).
func eventUpdatedError(err error) error {
	if errors.Is(err, pubsub.ErrOwnerShare) {
		return eventide.Errorf(eventide.CodeRateLimited, "this client holds too many eventUpdated subscriptions; end some first")
	}
	return eventide.Errorf(eventide.CodeUnavailable, "too many subscriptions; try again later")
}

// whileVisible forwards the updates of a draft for as long as the viewer may see drafts of it —
// its organizer, or an admin. The viewer is read anew for every update (a long-lived
// connection's viewer follows role changes): an admin demoted while watching someone else's
// draft gets FORBIDDEN instead of its next update. Published events are seen by everyone and
// need no forwarder; a draft's watchers are few.
//
// ready, when not nil, is called after every value put in the channel returned and after it is
// closed (pubsub.Notifier).
func whileVisible(ctx context.Context, in <-chan *eventide.Event, ready func(closed bool)) <-chan *eventide.Event {
	out := make(chan *eventide.Event, cap(in))
	if ready == nil {
		ready = func(bool) {}
	}
	go func() {
		defer ready(true)
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-in:
				if !ok {
					return
				}
				if !ev.VisibleTo(eventide.ViewerFrom(ctx)) {
					reqmeta.EndSubscription(ctx, eventide.Errorf(eventide.CodeForbidden, "you may no longer see this draft"))
					return
				}
				select {
				case out <- ev:
					ready(false)
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// claimReady takes the subscription's readiness notifier (pubsub.Notifier), for a forwarder that
// stands between the broker and the transport.
func claimReady(ctx context.Context) func(closed bool) { return pubsub.Claim(ctx) }

// unclaimReady gives the notifier back after a refused subscription (pubsub.Unclaim).
func unclaimReady(ctx context.Context) { pubsub.Unclaim(ctx) }

// eventReserver is an EventBus that can count a subscriber without a channel (cache.EventRelay).
type eventReserver interface {
	Reserve(ctx context.Context) (release func(), err error)
}

// shareEventUpdated lets the lean websocket transport serve further identical eventUpdated
// subscriptions of a published event from this one (pubsub.Share): each one admitted is checked
// as its own subscription would be (the event visible to its viewer) and takes its own place in
// the broker's bound and its client's share. A draft's subscription is never shared: its
// forwarder follows its own viewer.
func shareEventUpdated(ctx context.Context, r *Resolver, id string) {
	rs, ok := r.Events.(eventReserver)
	if !ok {
		return
	}
	pubsub.Share(ctx, func(mctx context.Context) (func(), error) {
		if _, err := r.visibleEvent(mctx, id); err != nil {
			return nil, err
		}
		release, err := rs.Reserve(mctx)
		if err != nil {
			return nil, eventUpdatedError(err)
		}
		return release, nil
	})
}
