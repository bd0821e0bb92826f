package store

import (
	"context"
	"errors"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventide/server/eventide"
)

type registrationDoc struct {
	ID        bson.ObjectID `bson:"_id"`
	EventID   bson.ObjectID `bson:"eventId"`
	UserID    bson.ObjectID `bson:"userId"`
	Status    string        `bson:"status"`
	CreatedAt time.Time     `bson:"createdAt"`
	UpdatedAt time.Time     `bson:"updatedAt"`
	// CancelReason says why the organizer removed it or the event was cancelled.
	CancelReason string `bson:"cancelReason,omitempty"`
	// EventStartsAt and EventEndsAt copy the event's times (kept in step by UpdateEvent, and by
	// the repair after a write stopped halfway), so that a user's list is one index walk.
	EventStartsAt time.Time `bson:"eventStartsAt"`
	EventEndsAt   time.Time `bson:"eventEndsAt"`
	// Outbox holds webhook messages about this registration written with its change and not
	// yet moved to the outbox collection (webhooks.go).
	Outbox []embeddedMsg `bson:"outbox,omitempty"`
}

func toRegistration(d *registrationDoc) *eventide.Registration {
	return &eventide.Registration{
		ID: d.ID.Hex(), EventID: d.EventID.Hex(), UserID: d.UserID.Hex(),
		Status: eventide.RegistrationStatus(d.Status), CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
		CancelReason: d.CancelReason,
	}
}

var returnAfter = options.FindOneAndUpdate().SetReturnDocument(options.After)

// maxSeatRetries bounds how often a seat claim is retried when another replica changed the
// capacity between our read and our conditional update.
const maxSeatRetries = 5

// Register implements eventide.RegistrationStore. See the DESIGN note on Store.eventLocks.
func (s *Store) Register(ctx context.Context, eventID, userID string, at time.Time) (*eventide.Registration, *eventide.Event, error) {
	eid, err := parseID("event", eventID)
	if err != nil {
		return nil, nil, err
	}
	uid, err := parseID("user", userID)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, writeBudget)
	defer cancel()
	unlock := s.lockEvent(eid.Hex())
	defer unlock()

	ev, err := s.lockedEvent(ctx, eid)
	if err != nil {
		return nil, nil, err
	}
	if err := registrable(ev, at); err != nil {
		return nil, nil, err
	}
	var existing registrationDoc
	err = s.regs.FindOne(ctx, bson.D{{Key: "eventId", Value: eid}, {Key: "userId", Value: uid}}).Decode(&existing)
	switch {
	case err == nil && existing.Status != string(eventide.RegistrationCancelled):
		return toRegistration(&existing), toEvent(ev), nil
	case err != nil && !errors.Is(err, mongo.ErrNoDocuments):
		return nil, nil, mapErr(err)
	}

	// The seat's $inc also begins the repair mark; the registration's write follows; the end
	// clears the mark. Stopped in between, the event is recounted (DESIGN.md).
	m := newMark()
	status, ev, err := s.takeSeatOrWaitlist(ctx, ev, m)
	if err != nil {
		s.halfway(ctx, eid, m, err)
		return nil, nil, err
	}
	t := msTime(at)
	var reg registrationDoc
	// The webhook message goes into the registration's own write (webhooks.go).
	var msgs []embeddedMsg
	typ := eventide.WebhookRegistrationConfirmed
	if status == eventide.RegistrationWaitlisted {
		typ = eventide.WebhookRegistrationWaitlisted
	}
	if existing.ID.IsZero() {
		reg = registrationDoc{ID: bson.NewObjectID(), EventID: eid, UserID: uid, Status: string(status), CreatedAt: t, UpdatedAt: t,
			EventStartsAt: ev.StartsAt, EventEndsAt: ev.EndsAt}
		if s.emitting() {
			msgs = []embeddedMsg{regMessage(typ, &reg)}
			reg.Outbox = msgs
		}
		_, err = s.regs.InsertOne(ctx, reg)
		reg.Outbox = nil
	} else {
		// Re-registering after a cancellation is a new arrival.
		reg = existing
		reg.Status, reg.CreatedAt, reg.UpdatedAt, reg.CancelReason, reg.Outbox = string(status), t, t, "", nil
		reg.EventStartsAt, reg.EventEndsAt = ev.StartsAt, ev.EndsAt
		if s.emitting() {
			msgs = []embeddedMsg{regMessage(typ, &reg)}
		}
		var res *mongo.UpdateResult
		res, err = s.regs.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: reg.ID}, {Key: "status", Value: string(eventide.RegistrationCancelled)}},
			withPush(bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: reg.Status}, {Key: "createdAt", Value: t}, {Key: "updatedAt", Value: t},
				{Key: "cancelReason", Value: ""}, {Key: "eventStartsAt", Value: ev.StartsAt}, {Key: "eventEndsAt", Value: ev.EndsAt}}}}, msgs...))
		if err == nil && res.MatchedCount == 0 {
			err = mongo.WriteException{WriteErrors: []mongo.WriteError{{Code: 11000, Message: "registration changed concurrently"}}}
		}
	}
	if err != nil {
		if !mongo.IsDuplicateKeyError(err) {
			s.halfway(ctx, eid, m, err)
			return nil, nil, mapErr(err)
		}
		// Another replica registered the same user first: give the seat back and return theirs.
		if _, uerr := s.inc(ctx, eid, status, -1, nil); uerr != nil {
			s.halfway(ctx, eid, m, uerr)
			return nil, nil, uerr
		}
		s.end(ctx, eid, m)
		var d registrationDoc
		if ferr := findOne(ctx, s.regs, bson.D{{Key: "eventId", Value: eid}, {Key: "userId", Value: uid}}, &d, "registration", eventID); ferr != nil {
			return nil, nil, ferr
		}
		ev2, ferr := s.eventDoc(ctx, eid)
		if ferr != nil {
			return nil, nil, ferr
		}
		return toRegistration(&d), toEvent(ev2), nil
	}
	s.moveOutbox(ctx, s.regs, reg.ID, msgs...)
	if s.afterRegistration != nil {
		s.afterRegistration()
	}
	if err := s.withdrawIfCancelled(ctx, eid, &reg, m); err != nil {
		return nil, nil, err
	}
	s.end(ctx, eid, m)
	out := toRegistration(&reg)
	eventide.NoteRegistrations(ctx, out)
	return out, toEvent(ev), nil
}

// withdrawIfCancelled closes the one window the seat's condition leaves open across replicas:
// the event was cancelled (on any replica) after this registration claimed its seat and before
// the registration was written, so the cancellation's cascade may have passed it by. Read after
// the write, the event's status settles it: the cascade began after the status change, so either
// it saw this registration or this read sees the status. The withdrawal is conditional on the
// registration's status, as the cascade's updates are, so exactly one of them cancels it and
// gives its counter back. Stopped halfway, the mark's repair cascades and recounts.
func (s *Store) withdrawIfCancelled(ctx context.Context, eid bson.ObjectID, reg *registrationDoc, m *mark) error {
	ev, err := s.eventDoc(ctx, eid)
	if err != nil {
		s.halfway(ctx, eid, m, err)
		return err
	}
	if ev.Status != string(eventide.EventCancelled) {
		return nil
	}
	refused := registrable(ev, time.Time{})
	was := eventide.RegistrationStatus(reg.Status)
	var msgs []embeddedMsg
	if s.emitting() {
		c := *reg
		c.Outbox, c.Status, c.UpdatedAt, c.CancelReason = nil, string(eventide.RegistrationCancelled), now(), ev.CancelReason
		msgs = []embeddedMsg{regMessage(eventide.WebhookRegistrationCancelled, &c)}
	}
	res, err := s.regs.UpdateOne(ctx, bson.D{{Key: "_id", Value: reg.ID}, {Key: "status", Value: string(was)}},
		withPush(bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: string(eventide.RegistrationCancelled)},
			{Key: "cancelReason", Value: ev.CancelReason}, {Key: "updatedAt", Value: now()}}}}, msgs...))
	if err == nil && res.ModifiedCount > 0 {
		s.moveOutbox(ctx, s.regs, reg.ID, msgs...)
		_, err = s.inc(ctx, eid, was, -1, nil)
	}
	if err != nil {
		s.halfway(ctx, eid, m, err)
		return mapErr(err)
	}
	s.end(ctx, eid, m)
	return refused
}

// registrable says why an event takes no registrations at instant at, or nil.
func registrable(ev *eventDoc, at time.Time) error {
	switch eventide.EventStatus(ev.Status) {
	case eventide.EventDraft:
		return eventide.NotFound("event", ev.ID.Hex())
	case eventide.EventCancelled:
		return eventide.InvalidField("eventId", "the event is cancelled and takes no registrations")
	}
	if !ev.EndsAt.After(at) {
		return eventide.InvalidField("eventId", "the event has ended and takes no registrations")
	}
	return nil
}

// takeSeatOrWaitlist claims a seat atomically when one is free, else joins the waitlist, and
// returns the status and the event after the change.
func (s *Store) takeSeatOrWaitlist(ctx context.Context, ev *eventDoc, m *mark) (eventide.RegistrationStatus, *eventDoc, error) {
	claimed, err := s.claimSeat(ctx, ev, m, true)
	if err != nil {
		return "", nil, err
	}
	if claimed != nil {
		return eventide.RegistrationConfirmed, claimed, nil
	}
	var after eventDoc
	err = s.events.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: ev.ID}, {Key: "status", Value: string(eventide.EventPublished)}},
		withBegin(bson.D{{Key: "waitlisted", Value: 1}}, bson.D{{Key: "updatedAt", Value: now()}}, m),
		returnAfter).Decode(&after)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", nil, s.noLongerRegistrable(ctx, ev.ID)
	}
	if err != nil {
		return "", nil, mapErr(err)
	}
	return eventide.RegistrationWaitlisted, &after, nil
}

// noLongerRegistrable is the error of a seat or waitlist update whose condition on the event's
// status failed: the event was cancelled (or unpublished) since it was read.
func (s *Store) noLongerRegistrable(ctx context.Context, eid bson.ObjectID) error {
	ev, err := s.eventDoc(ctx, eid)
	if err != nil {
		return err
	}
	if err := registrable(ev, time.Time{}); err != nil {
		return err
	}
	return eventide.Errorf(eventide.CodeUnavailable, "the event is changing; try again")
}

// claimSeat increments the confirmed counter if, and only if, it is below the capacity; it
// returns the event after the increment, or nil when the event is full. For a registration
// (register), the event must also still be published: a cancellation on another replica stops
// new seats at once (a promotion into a raised capacity has no such condition). A non-nil m
// begins its mark in the same atomic update.
func (s *Store) claimSeat(ctx context.Context, ev *eventDoc, m *mark, register bool) (*eventDoc, error) {
	for range maxSeatRetries {
		if register && ev.Status != string(eventide.EventPublished) {
			return nil, s.noLongerRegistrable(ctx, ev.ID)
		}
		if ev.Confirmed >= ev.Capacity {
			return nil, nil
		}
		filter := bson.D{{Key: "_id", Value: ev.ID}, {Key: "capacity", Value: ev.Capacity}, {Key: "confirmed", Value: bson.D{{Key: "$lt", Value: ev.Capacity}}}}
		if register {
			filter = append(filter, bson.E{Key: "status", Value: string(eventide.EventPublished)})
		}
		var after eventDoc
		err := s.events.FindOneAndUpdate(ctx, filter,
			withBegin(bson.D{{Key: "confirmed", Value: 1}}, bson.D{{Key: "updatedAt", Value: now()}}, m),
			returnAfter).Decode(&after)
		if err == nil {
			return &after, nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, mapErr(err)
		}
		// Full, cancelled, or the capacity changed under us: read again and decide again.
		if ev, err = s.eventDoc(ctx, ev.ID); err != nil {
			return nil, err
		}
	}
	return nil, eventide.Errorf(eventide.CodeUnavailable, "the event is changing too fast; try again")
}

// inc adds delta to the counter for status and returns the event after the change. A non-nil
// m begins its mark in the same atomic update.
func (s *Store) inc(ctx context.Context, eid bson.ObjectID, status eventide.RegistrationStatus, delta int, m *mark) (*eventDoc, error) {
	field := "confirmed"
	if status == eventide.RegistrationWaitlisted {
		field = "waitlisted"
	}
	var after eventDoc
	err := s.events.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: eid}},
		withBegin(bson.D{{Key: field, Value: delta}}, bson.D{{Key: "updatedAt", Value: now()}}, m),
		returnAfter).Decode(&after)
	if err != nil {
		return nil, mapErr(err)
	}
	return &after, nil
}

// promoteOldest moves the oldest waitlisted registration of an event to CONFIRMED and returns it,
// or nil when nobody waits. It does not touch the counters.
func (s *Store) promoteOldest(ctx context.Context, eid bson.ObjectID) (*registrationDoc, error) {
	if s.emitting() {
		return s.promoteOldestWithMessage(ctx, eid)
	}
	var d registrationDoc
	err := s.regs.FindOneAndUpdate(ctx,
		bson.D{{Key: "eventId", Value: eid}, {Key: "status", Value: string(eventide.RegistrationWaitlisted)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: string(eventide.RegistrationConfirmed)}, {Key: "updatedAt", Value: now()}}}},
		options.FindOneAndUpdate().SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}).SetReturnDocument(options.After),
	).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, mapErr(err)
	}
	eventide.NoteRegistrations(ctx, toRegistration(&d))
	return &d, nil
}

// promoteOldestWithMessage is promoteOldest that also writes the registration.promoted message
// into the promoted registration's update: it reads the oldest waitlisted registration, then
// promotes it by a findOneAndUpdate conditional on its still waiting (another replica may have
// promoted or cancelled it between; then it reads again).
func (s *Store) promoteOldestWithMessage(ctx context.Context, eid bson.ObjectID) (*registrationDoc, error) {
	waiting := bson.D{{Key: "eventId", Value: eid}, {Key: "status", Value: string(eventide.RegistrationWaitlisted)}}
	for range maxSeatRetries {
		var d registrationDoc
		err := s.regs.FindOne(ctx, waiting, options.FindOne().SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}).
			SetProjection(bson.D{{Key: "outbox", Value: 0}})).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil, nil
		}
		if err != nil {
			return nil, mapErr(err)
		}
		t := now()
		d.Status, d.UpdatedAt = string(eventide.RegistrationConfirmed), t
		msg := regMessage(eventide.WebhookRegistrationPromoted, &d)
		err = s.regs.FindOneAndUpdate(ctx,
			bson.D{{Key: "_id", Value: d.ID}, {Key: "status", Value: string(eventide.RegistrationWaitlisted)}},
			withPush(bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: d.Status}, {Key: "updatedAt", Value: t}}}}, msg)).Err()
		if errors.Is(err, mongo.ErrNoDocuments) {
			continue
		}
		if err != nil {
			return nil, mapErr(err)
		}
		s.moveOutbox(ctx, s.regs, d.ID, msg)
		eventide.NoteRegistrations(ctx, toRegistration(&d))
		return &d, nil
	}
	return nil, eventide.Errorf(eventide.CodeUnavailable, "the waitlist is changing too fast; try again")
}

// fillSeats promotes waitlisted registrations while seats are free.
func (s *Store) fillSeats(ctx context.Context, eid bson.ObjectID) error {
	for {
		ev, err := s.eventDoc(ctx, eid)
		if err != nil {
			return err
		}
		if ev.Waitlisted <= 0 || ev.Confirmed >= ev.Capacity {
			return nil
		}
		claimed, err := s.claimSeat(ctx, ev, nil, false)
		if err != nil || claimed == nil {
			return err
		}
		promoted, err := s.promoteOldest(ctx, eid)
		if err != nil {
			return err
		}
		if promoted == nil {
			_, err := s.inc(ctx, eid, eventide.RegistrationConfirmed, -1, nil)
			return err
		}
		if _, err := s.inc(ctx, eid, eventide.RegistrationWaitlisted, -1, nil); err != nil {
			return err
		}
	}
}

// CancelRegistration implements eventide.RegistrationStore.
func (s *Store) CancelRegistration(ctx context.Context, eventID, userID string, at time.Time) (*eventide.Registration, *eventide.Event, error) {
	eid, err := parseID("event", eventID)
	if err != nil {
		return nil, nil, err
	}
	uid, err := parseID("user", userID)
	if err != nil {
		return nil, nil, err
	}
	active := bson.D{{Key: "eventId", Value: eid}, {Key: "userId", Value: uid}, {Key: "status", Value: bson.D{{Key: "$ne", Value: string(eventide.RegistrationCancelled)}}}}
	noActive := eventide.Errorf(eventide.CodeNotFound, "you have no active registration for event %q", eventID)
	return s.cancel(ctx, eid, active, "", at, noActive)
}

// RemoveRegistration implements eventide.RegistrationJourneys like CancelRegistration, by id.
func (s *Store) RemoveRegistration(ctx context.Context, id, reason string, at time.Time) (*eventide.Registration, *eventide.Event, error) {
	noActive := eventide.Errorf(eventide.CodeNotFound, "no active registration %q", id)
	rid, err := bson.ObjectIDFromHex(id)
	if err != nil {
		return nil, nil, noActive
	}
	var d registrationDoc
	if err := s.regs.FindOne(ctx, bson.D{{Key: "_id", Value: rid}}).Decode(&d); errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil, noActive
	} else if err != nil {
		return nil, nil, mapErr(err)
	}
	active := bson.D{{Key: "_id", Value: rid}, {Key: "status", Value: bson.D{{Key: "$ne", Value: string(eventide.RegistrationCancelled)}}}}
	return s.cancel(ctx, d.EventID, active, reason, at, noActive)
}

// cancel cancels the active registration of event eid that filter selects, with reason, and
// gives a seat it held to the oldest waitlisted one: marked and repaired (DESIGN.md).
func (s *Store) cancel(ctx context.Context, eid bson.ObjectID, active bson.D, reason string, at time.Time, noActive error) (*eventide.Registration, *eventide.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, writeBudget)
	defer cancel()
	unlock := s.lockEvent(eid.Hex())
	defer unlock()

	var found registrationDoc
	if err := s.regs.FindOne(ctx, active, options.FindOne().SetProjection(bson.D{{Key: "outbox", Value: 0}})).Decode(&found); errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil, noActive
	} else if err != nil {
		return nil, nil, mapErr(err)
	}
	// The registration.cancelled message goes into the cancellation's own update; its body
	// names the registration, so the update is conditional on the one read (by id).
	var msgs []embeddedMsg
	if s.emitting() {
		c := found
		c.Status, c.UpdatedAt, c.CancelReason = string(eventide.RegistrationCancelled), msTime(at), reason
		msgs = []embeddedMsg{regMessage(eventide.WebhookRegistrationCancelled, &c)}
		active = bson.D{{Key: "_id", Value: found.ID}, {Key: "createdAt", Value: found.CreatedAt},
			{Key: "status", Value: bson.D{{Key: "$ne", Value: string(eventide.RegistrationCancelled)}}}}
	}
	cur, err := s.lockedEvent(ctx, eid)
	if err != nil {
		return nil, nil, err
	}
	if !cur.EndsAt.After(at) {
		return nil, nil, eventide.InvalidField("eventId", "the event has ended; its registrations stay as they were")
	}
	// The cancellation, the promotion and the counters are separate documents: the mark goes
	// first, so that a stop anywhere after it is repaired (DESIGN.md).
	m := newMark()
	if ok, err := s.begin(ctx, eid, m); err != nil {
		s.halfway(ctx, eid, m, err)
		return nil, nil, err
	} else if !ok {
		return nil, nil, noActive
	}
	var reg registrationDoc
	err = s.regs.FindOneAndUpdate(ctx, active,
		withPush(bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: string(eventide.RegistrationCancelled)}, {Key: "updatedAt", Value: msTime(at)},
			{Key: "cancelReason", Value: reason}}}}, msgs...),
		options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&reg)
	if errors.Is(err, mongo.ErrNoDocuments) {
		// Another replica cancelled it between our read and our write.
		s.end(ctx, eid, m)
		return nil, nil, noActive
	}
	if err != nil {
		s.halfway(ctx, eid, m, err)
		return nil, nil, mapErr(err)
	}
	was := eventide.RegistrationStatus(reg.Status)
	reg.Status, reg.UpdatedAt, reg.CancelReason = string(eventide.RegistrationCancelled), msTime(at), reason
	out := toRegistration(&reg)
	eventide.NoteRegistrations(ctx, out)
	switch was {
	case eventide.RegistrationWaitlisted:
		_, err = s.inc(ctx, eid, eventide.RegistrationWaitlisted, -1, nil)
	case eventide.RegistrationConfirmed:
		// The freed seat goes straight to the oldest waitlisted registration; only when nobody
		// waits does the confirmed count drop.
		var promoted *registrationDoc
		if promoted, err = s.promoteOldest(ctx, eid); err == nil {
			if promoted != nil {
				_, err = s.inc(ctx, eid, eventide.RegistrationWaitlisted, -1, nil)
			} else if _, err = s.inc(ctx, eid, eventide.RegistrationConfirmed, -1, nil); err == nil {
				// A replica may have waitlisted someone between our two steps.
				err = s.fillSeats(ctx, eid)
			}
		}
	}
	if err != nil {
		s.halfway(ctx, eid, m, err)
		return nil, nil, err
	}
	s.end(ctx, eid, m)
	s.moveOutbox(ctx, s.regs, reg.ID, msgs...)
	ev, err := s.eventDoc(ctx, eid)
	if err != nil {
		return nil, nil, err
	}
	return out, toEvent(ev), nil
}

// RegistrationFor implements eventide.RegistrationStore.
func (s *Store) RegistrationFor(ctx context.Context, eventID, userID string) (*eventide.Registration, error) {
	eid, err := parseID("event", eventID)
	if err != nil {
		return nil, err
	}
	uid, err := parseID("user", userID)
	if err != nil {
		return nil, err
	}
	var d registrationDoc
	if err := findOne(ctx, s.regs, bson.D{{Key: "eventId", Value: eid}, {Key: "userId", Value: uid}}, &d, "registration", eventID); err != nil {
		return nil, err
	}
	return toRegistration(&d), nil
}

// Attendees implements eventide.RegistrationStore: confirmed registrations in arrival order.
func (s *Store) Attendees(ctx context.Context, eventID string, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	eid, err := parseID("event", eventID)
	if err != nil {
		return nil, err
	}
	filter := bson.D{{Key: "eventId", Value: eid}, {Key: "status", Value: string(eventide.RegistrationConfirmed)}}
	return s.arrivalPage(ctx, filter, "a", page)
}

// arrivalPage is a page of the registrations filter matches, in arrival order (createdAt, _id),
// with cursors of kind: an event's attendees and its organizer's list.
func (s *Store) arrivalPage(ctx context.Context, filter bson.D, kind string, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	n, err := pageSize(page.First)
	if err != nil {
		return nil, err
	}
	if page.After != "" {
		c, err := decodeCursor(kind, page.After)
		if err != nil {
			return nil, err
		}
		filter = append(filter, afterFilter("createdAt", c.timeValue(), c.id)...)
	}
	docs, err := findAll(ctx, s.regs, filter, func(d *registrationDoc) registrationDoc { return *d },
		options.Find().SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(n+1)))
	if err != nil {
		return nil, err
	}
	return pageOf(docs, n, toRegistration, func(d *registrationDoc) cursor {
		return cursor{kind: kind, key: timeKey(d.CreatedAt), id: d.ID}
	}), nil
}

// RegistrationsOf returns userID's registrations at the events that have one, in no particular
// order, with one $in query (the viewerRegistration loader's batch).
func (s *Store) RegistrationsOf(ctx context.Context, userID string, eventIDs []string) ([]*eventide.Registration, error) {
	uid, err := bson.ObjectIDFromHex(userID)
	if err != nil {
		return nil, nil
	}
	eids := parseIDs(eventIDs)
	if len(eids) == 0 {
		return nil, nil
	}
	return findAll(ctx, s.regs, bson.D{{Key: "userId", Value: uid}, {Key: "eventId", Value: bson.D{{Key: "$in", Value: eids}}}}, toRegistration)
}
