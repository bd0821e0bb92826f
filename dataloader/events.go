package dataloader

import (
	"context"

	"github.com/eventide/server/eventide"
)

// newEventLoader loads events by id, counts included; a missing id is NOT_FOUND for that key
// only. It does not apply draft visibility: the resolvers do.
func newEventLoader(src Source, c Config) *Loader[*eventide.Event] {
	return NewLoader(func(ctx context.Context, ids []string) (map[string]*eventide.Event, error) {
		es, err := src.EventsByIDs(ctx, ids)
		if err != nil {
			return nil, err
		}
		m := make(map[string]*eventide.Event, len(es))
		for _, e := range es {
			m[e.ID] = e
		}
		return m, nil
	}, func(id string) error { return eventide.NotFound("event", id) }, c)
}
