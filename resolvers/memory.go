package resolvers

import (
	"errors"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/memstats"
	"github.com/eventide/server/pubsub"
)

// memorySubscribeError presents a refused memoryStats subscription: too many subscribers is
// RATE_LIMITED (try again later), a sampler already stopped means the server is shutting down;
// anything else (the client went away) is passed on.
func memorySubscribeError(err error) error {
	switch {
	case errors.Is(err, pubsub.ErrTooManySubscribers):
		return eventide.Errorf(eventide.CodeRateLimited, "too many memory subscribers; try again later")
	case errors.Is(err, memstats.ErrStopped):
		return eventide.Errorf(eventide.CodeUnavailable, "the server is shutting down; subscribe again once it is back")
	default:
		return err
	}
}
