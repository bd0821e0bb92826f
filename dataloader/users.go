package dataloader

import (
	"context"

	"github.com/eventide/server/eventide"
)

// newUserLoader loads users by id; a missing id is NOT_FOUND for that key only.
func newUserLoader(src Source, c Config) *Loader[*eventide.User] {
	return NewLoader(func(ctx context.Context, ids []string) (map[string]*eventide.User, error) {
		us, err := src.UsersByIDs(ctx, ids)
		if err != nil {
			return nil, err
		}
		m := make(map[string]*eventide.User, len(us))
		for _, u := range us {
			m[u.ID] = u
		}
		return m, nil
	}, func(id string) error { return eventide.NotFound("user", id) }, c)
}
