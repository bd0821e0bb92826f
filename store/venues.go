package store

import (
	"context"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventide/server/eventide"
)

type venueDoc struct {
	ID          bson.ObjectID `bson:"_id"`
	Name        string        `bson:"name"`
	NameKey     string        `bson:"nameKey"`
	Address     string        `bson:"address"`
	City        string        `bson:"city"`
	CityKey     string        `bson:"cityKey"`
	Capacity    *int          `bson:"capacity,omitempty"`
	CreatedByID string        `bson:"createdById"`
	CreatedAt   time.Time     `bson:"createdAt"`
	TimeZone    string        `bson:"timeZone,omitempty"`
}

func toVenue(d *venueDoc) *eventide.Venue {
	v := &eventide.Venue{
		ID: d.ID.Hex(), Name: d.Name, Address: d.Address, City: d.City, Capacity: d.Capacity,
		CreatedByID: d.CreatedByID, CreatedAt: d.CreatedAt.UTC(), TimeZone: d.TimeZone,
	}
	if v.TimeZone == "" {
		// Stored before venues had zones.
		v.TimeZone = eventide.CityTimeZone(d.City)
	}
	return v
}

// CreateVenue implements eventide.VenueStore.
func (s *Store) CreateVenue(ctx context.Context, v *eventide.Venue) error {
	d := venueDoc{
		ID: bson.NewObjectID(), Name: v.Name, NameKey: eventide.FoldName(v.Name), Address: v.Address,
		City: v.City, CityKey: eventide.FoldCity(v.City), Capacity: v.Capacity, CreatedByID: v.CreatedByID, CreatedAt: now(),
		TimeZone: eventide.ZoneOr(v.TimeZone),
	}
	if _, err := s.venues.InsertOne(ctx, d); err != nil {
		return mapErr(err)
	}
	*v = *toVenue(&d)
	return nil
}

// VenueByID implements eventide.VenueStore.
func (s *Store) VenueByID(ctx context.Context, id string) (*eventide.Venue, error) {
	oid, err := parseID("venue", id)
	if err != nil {
		return nil, err
	}
	var d venueDoc
	if err := findOne(ctx, s.venues, bson.D{{Key: "_id", Value: oid}}, &d, "venue", id); err != nil {
		return nil, err
	}
	return toVenue(&d), nil
}

// VenuesByIDs implements eventide.VenueStore with one $in query.
func (s *Store) VenuesByIDs(ctx context.Context, ids []string) ([]*eventide.Venue, error) {
	oids := parseIDs(ids)
	if len(oids) == 0 {
		return nil, nil
	}
	return findAll(ctx, s.venues, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}}}, toVenue)
}

func venueFilter(city string) bson.D {
	if city == "" {
		return bson.D{}
	}
	return bson.D{{Key: "cityKey", Value: eventide.FoldCity(city)}}
}

// Venues implements eventide.VenueStore: by name (case-insensitive), then id.
func (s *Store) Venues(ctx context.Context, city string, page eventide.Page) (*eventide.Conn[*eventide.Venue], error) {
	n, err := pageSize(page.First)
	if err != nil {
		return nil, err
	}
	filter := venueFilter(city)
	if page.After != "" {
		c, err := decodeCursor("v", page.After)
		if err != nil {
			return nil, err
		}
		filter = append(filter, afterFilter("nameKey", c.key, c.id)...)
	}
	docs, err := findAll(ctx, s.venues, filter, func(d *venueDoc) venueDoc { return *d },
		options.Find().SetSort(bson.D{{Key: "nameKey", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(n+1)))
	if err != nil {
		return nil, err
	}
	return pageOf(docs, n, toVenue, func(d *venueDoc) cursor { return cursor{kind: "v", key: d.NameKey, id: d.ID} }), nil
}

// CountVenues implements eventide.VenueStore.
func (s *Store) CountVenues(ctx context.Context, city string) (int, error) {
	n, err := s.venues.CountDocuments(ctx, venueFilter(city))
	return int(n), mapErr(err)
}

// UpdateVenue implements eventide.VenueStore. The venue and its events' copies of its city and
// zone are two writes; the second is idempotent, and a crash between them is repaired by the
// next update of the venue.
func (s *Store) UpdateVenue(ctx context.Context, id string, change func(*eventide.Venue) error) (*eventide.Venue, error) {
	oid, err := parseID("venue", id)
	if err != nil {
		return nil, err
	}
	var d venueDoc
	if err := findOne(ctx, s.venues, bson.D{{Key: "_id", Value: oid}}, &d, "venue", id); err != nil {
		return nil, err
	}
	cur := toVenue(&d)
	v := *cur
	if err := change(&v); err != nil {
		return nil, err
	}
	v.ID, v.TimeZone = cur.ID, eventide.ZoneOr(v.TimeZone)
	set := bson.D{
		{Key: "name", Value: v.Name}, {Key: "nameKey", Value: eventide.FoldName(v.Name)}, {Key: "address", Value: v.Address},
		{Key: "city", Value: v.City}, {Key: "cityKey", Value: eventide.FoldCity(v.City)}, {Key: "timeZone", Value: v.TimeZone},
	}
	update := bson.D{{Key: "$set", Value: append(set, bson.E{Key: "capacity", Value: v.Capacity})}}
	if v.Capacity == nil {
		update = bson.D{{Key: "$set", Value: set}, {Key: "$unset", Value: bson.D{{Key: "capacity", Value: ""}}}}
	}
	if _, err := s.venues.UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}}, update); err != nil {
		return nil, mapErr(err)
	}
	if _, err := s.events.UpdateMany(ctx, bson.D{{Key: "venueId", Value: oid}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "city", Value: v.City}, {Key: "cityKey", Value: eventide.FoldCity(v.City)}, {Key: "timeZone", Value: v.TimeZone},
	}}}); err != nil {
		return nil, mapErr(err)
	}
	return &v, nil
}

// pageOf turns up to n+1 documents into a page of n with cursors; the extra one only says that a
// next page exists.
func pageOf[D any, T any](docs []D, n int, conv func(*D) T, cur func(*D) cursor) *eventide.Conn[T] {
	c := &eventide.Conn[T]{HasNextPage: len(docs) > n}
	if len(docs) > n {
		docs = docs[:n]
	}
	c.Items = make([]T, len(docs))
	c.Cursors = make([]string, len(docs))
	for i := range docs {
		c.Items[i] = conv(&docs[i])
		c.Cursors[i] = cur(&docs[i]).encode()
	}
	return c
}
