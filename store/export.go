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
	for _, c := range []*mongo.Collection{s.users, s.venues, s.events, s.regs} {
		if err := exportAll(ctx, c, x); err != nil {
			return fmt.Errorf("%s: %w", c.Name(), err)
		}
	}
	return nil
}

// ExportCollections are the collections Export reads, in its order: what a reader of another
// copy of this store's documents (the files of an earlier version's FerretDB) hands to
// DecodeExport.
func ExportCollections() []string {
	return []string{collUsers, collVenues, collEvents, collRegistrations}
}

// DecodeExport decodes raw, one document of collection (one of ExportCollections), into the
// record Export would have made of it, with the same document types and converters, and hands
// it to x. A collection x has no func for is skipped without decoding.
func DecodeExport(collection string, raw bson.Raw, x Exporter) error {
	dec, err := x.decoder(collection)
	if err != nil || dec == nil {
		return err
	}
	return dec(raw)
}

// decoder returns what turns a document of collection into the record x takes; nil when x
// takes none.
func (x Exporter) decoder(collection string) (func(bson.Raw) error, error) {
	switch collection {
	case collUsers:
		return exportOne(toUser, x.User), nil
	case collVenues:
		return exportOne(toVenue, x.Venue), nil
	case collEvents:
		return exportOne(toEvent, x.Event), nil
	case collRegistrations:
		return exportOne(toRegistration, x.Registration), nil
	}
	return nil, fmt.Errorf("store: %q is not a collection of this store", collection)
}

func exportOne[D any, T any](conv func(*D) T, fn func(T) error) func(bson.Raw) error {
	if fn == nil {
		return nil
	}
	return func(raw bson.Raw) error {
		var d D
		if err := bson.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("decoding the document with _id %s: %w", raw.Lookup("_id"), err)
		}
		return fn(conv(&d))
	}
}

func exportAll(ctx context.Context, c *mongo.Collection, x Exporter) error {
	dec, err := x.decoder(c.Name())
	if err != nil || dec == nil {
		return err
	}
	cur, err := c.Find(ctx, bson.D{}, options.Find().SetBatchSize(exportBatch))
	if err != nil {
		return mapErr(err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		if err := dec(cur.Current); err != nil {
			return err
		}
	}
	return mapErr(cur.Err())
}
