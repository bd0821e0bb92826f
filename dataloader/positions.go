package dataloader

import (
	"context"
)

// newPositionLoader loads waitlist positions by registration id, one count per waitlisted
// registration of the batch on the (event, status, arrival) index; 0 for one not waitlisted now.
func newPositionLoader(src Source, c Config) *Loader[int] {
	return NewLoader(func(ctx context.Context, ids []string) (map[string]int, error) {
		return src.WaitlistPositions(ctx, ids)
	}, nil, c)
}
