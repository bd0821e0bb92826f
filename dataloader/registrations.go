package dataloader

import (
	"context"

	"github.com/eventide/server/eventide"
)

// newRegistrationLoader loads the viewer's registration by event id: nil, without error, when the
// viewer has none there or is anonymous (then nothing is read at all).
func newRegistrationLoader(src Source, viewer *eventide.User, c Config) *Loader[*eventide.Registration] {
	return NewLoader(func(ctx context.Context, eventIDs []string) (map[string]*eventide.Registration, error) {
		if viewer == nil {
			return nil, nil
		}
		rs, err := src.RegistrationsOf(ctx, viewer.ID, eventIDs)
		if err != nil {
			return nil, err
		}
		m := make(map[string]*eventide.Registration, len(rs))
		for _, r := range rs {
			m[r.EventID] = r
		}
		return m, nil
	}, nil, c)
}
