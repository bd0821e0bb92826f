package store

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventide/server/eventide"
)

type eventDoc struct {
	ID           bson.ObjectID  `bson:"_id"`
	Title        string         `bson:"title"`
	Description  string         `bson:"description"`
	StartsAt     time.Time      `bson:"startsAt"`
	EndsAt       time.Time      `bson:"endsAt"`
	Status       string         `bson:"status"`
	Capacity     int            `bson:"capacity"`
	Tags         []string       `bson:"tags"`
	VenueID      *bson.ObjectID `bson:"venueId,omitempty"`
	CityKey      string         `bson:"cityKey,omitempty"`
	City         string         `bson:"city,omitempty"`
	OrganizerID  bson.ObjectID  `bson:"organizerId"`
	Confirmed    int            `bson:"confirmed"`
	Waitlisted   int            `bson:"waitlisted"`
	CancelReason string         `bson:"cancelReason,omitempty"`
	// Pending holds the marks of multi-step registration writes under way (or stopped
	// halfway): token → the instant the write began. Rev counts the changes to the counters
	// and the marks, so that a repair writes only if nothing changed since its read.
	Pending map[string]time.Time `bson:"pending,omitempty"`
	Rev     int64                `bson:"rev"`
	// Outbox holds webhook messages about this event written with its change and not yet
	// moved to the outbox collection (webhooks.go).
	Outbox    []embeddedMsg `bson:"outbox,omitempty"`
	CreatedAt time.Time     `bson:"createdAt"`
	UpdatedAt time.Time     `bson:"updatedAt"`
	TimeZone  string        `bson:"timeZone,omitempty"`
	Online    bool          `bson:"online,omitempty"`
	OnlineURL string        `bson:"onlineUrl,omitempty"`
	// Revision counts edits (UpdateEvent), for the iCalendar SEQUENCE; rev above is the
	// counters' own.
	Revision int `bson:"revision,omitempty"`
}

func toEvent(d *eventDoc) *eventide.Event {
	e := &eventide.Event{
		ID: d.ID.Hex(), Title: d.Title, Description: d.Description,
		StartsAt: d.StartsAt.UTC(), EndsAt: d.EndsAt.UTC(), Status: eventide.EventStatus(d.Status),
		Capacity: d.Capacity, Tags: d.Tags, City: d.City, OrganizerID: d.OrganizerID.Hex(),
		ConfirmedCount: d.Confirmed, WaitlistCount: d.Waitlisted, CancelReason: d.CancelReason,
		CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		TimeZone: d.TimeZone, Online: d.Online, OnlineURL: d.OnlineURL, Revision: d.Revision,
	}
	if e.TimeZone == "" {
		// Stored before events had zones: its venue's city's.
		e.TimeZone = eventide.CityTimeZone(d.City)
	}
	if e.Tags == nil {
		e.Tags = []string{}
	}
	if d.VenueID != nil {
		e.VenueID = d.VenueID.Hex()
	}
	return e
}

// editableFields are the fields UpdateEvent writes; the counters are only ever changed by $inc.
func (d *eventDoc) editableFields() bson.D {
	return bson.D{
		{Key: "title", Value: d.Title}, {Key: "description", Value: d.Description},
		{Key: "startsAt", Value: d.StartsAt}, {Key: "endsAt", Value: d.EndsAt},
		{Key: "status", Value: d.Status}, {Key: "capacity", Value: d.Capacity}, {Key: "tags", Value: d.Tags},
		{Key: "venueId", Value: d.VenueID}, {Key: "city", Value: d.City}, {Key: "cityKey", Value: d.CityKey},
		{Key: "cancelReason", Value: d.CancelReason}, {Key: "updatedAt", Value: d.UpdatedAt},
		{Key: "timeZone", Value: d.TimeZone}, {Key: "online", Value: d.Online}, {Key: "onlineUrl", Value: d.OnlineURL},
	}
}

func fromEvent(e *eventide.Event) (eventDoc, error) {
	org, err := bson.ObjectIDFromHex(e.OrganizerID)
	if err != nil {
		return eventDoc{}, eventide.InvalidField("organizerId", "not a valid id")
	}
	d := eventDoc{
		Title: e.Title, Description: e.Description, StartsAt: msTime(e.StartsAt), EndsAt: msTime(e.EndsAt),
		Status: string(e.Status), Capacity: e.Capacity, Tags: e.Tags, City: e.City, CityKey: eventide.FoldCity(e.City),
		OrganizerID: org, Confirmed: e.ConfirmedCount, Waitlisted: e.WaitlistCount, CancelReason: e.CancelReason,
		CreatedAt: msTime(e.CreatedAt), UpdatedAt: msTime(e.UpdatedAt),
		TimeZone: eventide.ZoneOr(e.TimeZone), Online: e.Online, OnlineURL: e.OnlineURL, Revision: e.Revision,
	}
	if d.Tags == nil {
		d.Tags = []string{}
	}
	if e.VenueID != "" {
		v, err := bson.ObjectIDFromHex(e.VenueID)
		if err != nil {
			return eventDoc{}, eventide.InvalidField("venueId", "not a valid id")
		}
		d.VenueID = &v
	}
	if e.ID != "" {
		id, err := bson.ObjectIDFromHex(e.ID)
		if err != nil {
			return eventDoc{}, eventide.NotFound("event", e.ID)
		}
		d.ID = id
	}
	return d, nil
}

// CreateEvent implements eventide.EventStore. It sets ID, CreatedAt and UpdatedAt.
func (s *Store) CreateEvent(ctx context.Context, e *eventide.Event) error {
	t := now()
	e.ID, e.CreatedAt, e.UpdatedAt = "", t, t
	d, err := fromEvent(e)
	if err != nil {
		return err
	}
	d.ID, d.Revision = bson.NewObjectID(), 0
	if _, err := s.events.InsertOne(ctx, d); err != nil {
		return mapErr(err)
	}
	*e = *toEvent(&d)
	return nil
}

// EventByID implements eventide.EventStore.
func (s *Store) EventByID(ctx context.Context, id string) (*eventide.Event, error) {
	oid, err := parseID("event", id)
	if err != nil {
		return nil, err
	}
	d, err := s.eventDoc(ctx, oid)
	if err != nil {
		return nil, err
	}
	return toEvent(s.healed(ctx, d)), nil
}

func (s *Store) eventDoc(ctx context.Context, oid bson.ObjectID) (*eventDoc, error) {
	var d eventDoc
	if err := findOne(ctx, s.events, bson.D{{Key: "_id", Value: oid}}, &d, "event", oid.Hex()); err != nil {
		return nil, err
	}
	return &d, nil
}

// EventsByIDs implements eventide.EventStore with one $in query.
func (s *Store) EventsByIDs(ctx context.Context, ids []string) ([]*eventide.Event, error) {
	oids := parseIDs(ids)
	if len(oids) == 0 {
		return nil, nil
	}
	return findAll(ctx, s.events, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}}}, func(d *eventDoc) *eventide.Event {
		return toEvent(s.healed(ctx, d))
	})
}

// UpdateEvent implements eventide.EventStore.
func (s *Store) UpdateEvent(ctx context.Context, id string, change func(*eventide.Event) error) (*eventide.Event, error) {
	oid, err := parseID("event", id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, writeBudget)
	defer cancel()
	unlock := s.lockEvent(oid.Hex())
	defer unlock()
	cur, err := s.lockedEvent(ctx, oid)
	if err != nil {
		return nil, err
	}
	e := toEvent(cur)
	if err := change(e); err != nil {
		return nil, err
	}
	if e.Capacity < cur.Confirmed {
		return nil, eventide.InvalidField("capacity", "%d registrations are confirmed; capacity cannot be lower", cur.Confirmed)
	}
	e.UpdatedAt = now()
	d, err := fromEvent(e)
	if err != nil {
		return nil, err
	}
	// A capacity raise promotes in further steps, a cancellation cancels the registrations, new
	// times are copied onto them: the edit itself begins the repair mark.
	cancelling := d.Status == string(eventide.EventCancelled) && cur.Status != string(eventide.EventCancelled)
	retimed := !d.StartsAt.Equal(cur.StartsAt) || !d.EndsAt.Equal(cur.EndsAt)
	var m *mark
	if d.Capacity > cur.Capacity || cancelling || retimed {
		m = newMark()
	}
	// The filter on the old updatedAt makes a concurrent edit from another replica fail loudly
	// instead of being overwritten.
	// The event.* message goes into the edit itself (webhooks.go).
	var msgs []embeddedMsg
	if typ := eventide.EventChangeType(eventide.EventStatus(cur.Status), e.Status); typ != "" && s.emitting() {
		after := *e
		after.ID = oid.Hex()
		msgs = []embeddedMsg{toEmbedded(eventide.EventMessage(bson.NewObjectID().Hex(), typ, e.UpdatedAt, &after))}
	}
	res, err := s.events.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: oid}, {Key: "updatedAt", Value: cur.UpdatedAt}},
		withPush(withBegin(bson.D{{Key: "revision", Value: 1}}, d.editableFields(), m), msgs...))
	if err != nil {
		if m != nil {
			s.halfway(ctx, oid, m, err)
		}
		return nil, mapErr(err)
	}
	if res.MatchedCount == 0 {
		return nil, eventide.Errorf(eventide.CodeBadUserInput, "the event changed while it was being updated; try again")
	}
	s.moveOutbox(ctx, s.events, oid, msgs...)
	if m != nil {
		var err error
		switch {
		case cancelling:
			err = s.cancelAllOf(ctx, oid, d.CancelReason)
		case d.Capacity > cur.Capacity:
			err = s.fillSeats(ctx, oid)
		}
		if err == nil && retimed {
			d.ID = oid
			err = s.syncEventTimes(ctx, &d)
		}
		if err != nil {
			s.halfway(ctx, oid, m, err)
			return nil, err
		}
		s.end(ctx, oid, m)
	}
	d2, err := s.eventDoc(ctx, oid)
	if err != nil {
		return nil, err
	}
	return toEvent(d2), nil
}

// eventFilter translates an EventQuery into a filter document.
func eventFilter(q eventide.EventQuery) bson.D {
	var and bson.A
	statuses := q.Statuses
	if q.NoDrafts {
		statuses = slices.DeleteFunc(slices.Clone(statuses), func(s eventide.EventStatus) bool { return s == eventide.EventDraft })
		if len(q.Statuses) > 0 && len(statuses) == 0 {
			// Only drafts were asked for and none may be seen.
			return bson.D{{Key: "_id", Value: bson.NilObjectID}}
		}
		if len(statuses) == 0 {
			statuses = []eventide.EventStatus{eventide.EventPublished, eventide.EventCancelled}
		}
	}
	if len(statuses) > 0 {
		var plain bson.A
		hasDraft := false
		for _, st := range statuses {
			if st == eventide.EventDraft && q.DraftsOf != "" {
				hasDraft = true
				continue
			}
			plain = append(plain, string(st))
		}
		if hasDraft {
			org, _ := bson.ObjectIDFromHex(q.DraftsOf)
			or := bson.A{bson.D{{Key: "status", Value: string(eventide.EventDraft)}, {Key: "organizerId", Value: org}}}
			if len(plain) > 0 {
				or = append(or, bson.D{{Key: "status", Value: bson.D{{Key: "$in", Value: plain}}}})
			}
			and = append(and, bson.D{{Key: "$or", Value: or}})
		} else {
			and = append(and, bson.D{{Key: "status", Value: bson.D{{Key: "$in", Value: plain}}}})
		}
	}
	if q.StartsFrom != nil {
		and = append(and, bson.D{{Key: "startsAt", Value: bson.D{{Key: "$gte", Value: msTime(*q.StartsFrom)}}}})
	}
	if q.StartsTo != nil {
		and = append(and, bson.D{{Key: "startsAt", Value: bson.D{{Key: "$lt", Value: msTime(*q.StartsTo)}}}})
	}
	if q.EndsAfter != nil {
		and = append(and, bson.D{{Key: "endsAt", Value: bson.D{{Key: "$gt", Value: msTime(*q.EndsAfter)}}}})
	}
	if q.City != "" {
		and = append(and, bson.D{{Key: "cityKey", Value: eventide.FoldCity(q.City)}})
	}
	if q.Tag != "" {
		and = append(and, bson.D{{Key: "tags", Value: q.Tag}})
	}
	if q.OrganizerID != "" {
		org, err := bson.ObjectIDFromHex(q.OrganizerID)
		if err != nil {
			return bson.D{{Key: "_id", Value: bson.NilObjectID}}
		}
		and = append(and, bson.D{{Key: "organizerId", Value: org}})
	}
	if q.VenueID != "" {
		v, err := bson.ObjectIDFromHex(q.VenueID)
		if err != nil {
			return bson.D{{Key: "_id", Value: bson.NilObjectID}}
		}
		and = append(and, bson.D{{Key: "venueId", Value: v}})
	}
	if q.Search != "" {
		re := bson.Regex{Pattern: regexp.QuoteMeta(q.Search), Options: "i"}
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "title", Value: re}}, bson.D{{Key: "description", Value: re}},
		}}})
	}
	switch len(and) {
	case 0:
		return bson.D{}
	case 1:
		return and[0].(bson.D)
	}
	return bson.D{{Key: "$and", Value: and}}
}

// Events implements eventide.EventStore: by startsAt, then id, with keyset cursors.
func (s *Store) Events(ctx context.Context, q eventide.EventQuery, page eventide.Page) (*eventide.Conn[*eventide.Event], error) {
	n, err := pageSize(page.First)
	if err != nil {
		return nil, err
	}
	filter := eventFilter(q)
	if page.After != "" {
		c, err := decodeCursor("e", page.After)
		if err != nil {
			return nil, err
		}
		filter = bson.D{{Key: "$and", Value: bson.A{filter, afterFilter("startsAt", c.timeValue(), c.id)}}}
	}
	docs, err := findAll(ctx, s.events, filter, func(d *eventDoc) eventDoc { return *s.healed(ctx, d) },
		options.Find().SetSort(bson.D{{Key: "startsAt", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(n+1)))
	if err != nil {
		return nil, err
	}
	return pageOf(docs, n, toEvent, func(d *eventDoc) cursor {
		return cursor{kind: "e", key: timeKey(d.StartsAt), id: d.ID}
	}), nil
}

// NextEventEnd implements eventide.EventStore: the first of the matching events by endsAt. No
// index leads with endsAt here, so it reads the rows CountEvents reads (a top-1 sort, on a cache
// miss only).
func (s *Store) NextEventEnd(ctx context.Context, q eventide.EventQuery) (time.Time, error) {
	var d struct {
		EndsAt time.Time `bson:"endsAt"`
	}
	err := s.events.FindOne(ctx, eventFilter(q), options.FindOne().
		SetSort(bson.D{{Key: "endsAt", Value: 1}, {Key: "_id", Value: 1}}).
		SetProjection(bson.D{{Key: "endsAt", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, mapErr(err)
	}
	return d.EndsAt.UTC(), nil
}

// CountEvents implements eventide.EventStore.
func (s *Store) CountEvents(ctx context.Context, q eventide.EventQuery) (int, error) {
	n, err := s.events.CountDocuments(ctx, eventFilter(q))
	return int(n), mapErr(err)
}
