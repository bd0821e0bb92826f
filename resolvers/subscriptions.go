package resolvers

import (
	"context"
	"errors"

	"github.com/eventide/server/eventide"
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
func whileVisible(ctx context.Context, in <-chan *eventide.Event) <-chan *eventide.Event {
	out := make(chan *eventide.Event, cap(in))
	go func() {
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
					eventide.EndSubscription(ctx, eventide.Errorf(eventide.CodeForbidden, "you may no longer see this draft"))
					return
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}
