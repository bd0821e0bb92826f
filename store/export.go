package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventide/server/eventide"
)

// Exporter receives the records Export reads; a nil func skips that kind. The values are the
// callee's.
type Exporter struct {
	User         func(*eventide.User) error
	Venue        func(*eventide.Venue) error
	Event        func(*eventide.Event) error
	Registration func(*eventide.Registration) error
}

// exportBatch is how many documents one getMore brings: memory stays bounded by it whatever the
// size of a collection.
const exportBatch = 500

// Export streams every user (with its password hash and role), venue, event (counters as
// stored) and registration (every status), in that order, each as the store holds it, to x. It
// stops at the first error, from the store or from x.
func (s *Store) Export(ctx context.Context, x Exporter) error {
	if err := exportAll(ctx, s.users, toUser, x.User); err != nil {
		return fmt.Errorf("users: %w", err)
	}
	if err := exportAll(ctx, s.venues, toVenue, x.Venue); err != nil {
		return fmt.Errorf("venues: %w", err)
	}
	if err := exportAll(ctx, s.events, toEvent, x.Event); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if err := exportAll(ctx, s.regs, toRegistration, x.Registration); err != nil {
		return fmt.Errorf("registrations: %w", err)
	}
	return nil
}

func exportAll[D any, T any](ctx context.Context, c *mongo.Collection, conv func(*D) T, fn func(T) error) error {
	if fn == nil {
		return nil
	}
	cur, err := c.Find(ctx, bson.D{}, options.Find().SetBatchSize(exportBatch))
	if err != nil {
		return mapErr(err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d D
		if err := cur.Decode(&d); err != nil {
			return mapErr(err)
		}
		if err := fn(conv(&d)); err != nil {
			return err
		}
	}
	return mapErr(cur.Err())
}
