package dataloader

import (
	"context"

	"github.com/eventide/server/eventide"
)

// newVenueLoader loads venues by id; a missing id is NOT_FOUND for that key only.
func newVenueLoader(src Source, c Config) *Loader[*eventide.Venue] {
	return NewLoader(func(ctx context.Context, ids []string) (map[string]*eventide.Venue, error) {
		vs, err := src.VenuesByIDs(ctx, ids)
		if err != nil {
			return nil, err
		}
		m := make(map[string]*eventide.Venue, len(vs))
		for _, v := range vs {
			m[v.ID] = v
		}
		return m, nil
	}, func(id string) error { return eventide.NotFound("venue", id) }, c)
}
