package store

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventide/server/eventide"
)

// The attendee's and the organizer's lists of registrations, and the cascades of an event's
// changes onto its registrations.

// RegistrationByID implements eventide.RegistrationJourneys.
func (s *Store) RegistrationByID(ctx context.Context, id string) (*eventide.Registration, error) {
	rid, err := parseID("registration", id)
	if err != nil {
		return nil, err
	}
	var d registrationDoc
	if err := findOne(ctx, s.regs, bson.D{{Key: "_id", Value: rid}}, &d, "registration", id); err != nil {
		return nil, err
	}
	return toRegistration(&d), nil
}

func eventRegsFilter(eid bson.ObjectID, status eventide.RegistrationStatus) bson.D {
	f := bson.D{{Key: "eventId", Value: eid}}
	if status != "" {
		f = append(f, bson.E{Key: "status", Value: string(status)})
	}
	return f
}

// EventRegistrations implements eventide.RegistrationJourneys: in arrival order, on the
// (event, arrival) index, or the (event, status, arrival) one for one status.
func (s *Store) EventRegistrations(ctx context.Context, eventID string, status eventide.RegistrationStatus, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	eid, err := parseID("event", eventID)
	if err != nil {
		return nil, err
	}
	return s.arrivalPage(ctx, eventRegsFilter(eid, status), "g", page)
}

// CountEventRegistrations implements eventide.RegistrationJourneys.
func (s *Store) CountEventRegistrations(ctx context.Context, eventID string, status eventide.RegistrationStatus) (int, error) {
	eid, err := bson.ObjectIDFromHex(eventID)
	if err != nil {
		return 0, nil
	}
	n, err := s.regs.CountDocuments(ctx, eventRegsFilter(eid, status))
	return int(n), mapErr(err)
}

// pastKey is where the past half of a user's registrations begins in cursor keys: above every
// start in milliseconds. A past one's key is 2*pastKey - start, so that its keys order past
// registrations latest first. The
// SQLite store encodes its cursors the same way.
const pastKey = int64(1) << 52

// userRegsFilter selects a user's registrations under f in one half of the list.
func userRegsFilter(uid bson.ObjectID, f eventide.RegistrationFilter, upcoming bool) bson.D {
	op := "$lte"
	if upcoming {
		op = "$gt"
	}
	q := bson.D{{Key: "userId", Value: uid}, {Key: "eventEndsAt", Value: bson.D{{Key: op, Value: msTime(f.Now)}}}}
	if f.Status != "" {
		q = append(q, bson.E{Key: "status", Value: string(f.Status)})
	}
	return q
}

// UserRegistrations implements eventide.RegistrationJourneys on the (user, event start) index:
// the upcoming half forwards, the past half backwards.
func (s *Store) UserRegistrations(ctx context.Context, userID string, f eventide.RegistrationFilter, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	n, err := pageSize(page.First)
	if err != nil {
		return nil, err
	}
	var after *cursor
	if page.After != "" {
		c, err := decodeCursor("m", page.After)
		if err != nil {
			return nil, err
		}
		after = &c
	}
	uid, err := bson.ObjectIDFromHex(userID)
	if err != nil {
		return &eventide.Conn[*eventide.Registration]{Items: []*eventide.Registration{}, Cursors: []string{}}, nil
	}
	type item struct {
		d   registrationDoc
		key int64
	}
	var items []item
	half := func(upcoming bool) error {
		if f.Upcoming != nil && *f.Upcoming != upcoming {
			return nil
		}
		filter := userRegsFilter(uid, f, upcoming)
		dir := 1
		if !upcoming {
			dir = -1
		}
		if after != nil {
			k, _ := strconv.ParseInt(after.key, 10, 64)
			switch {
			case upcoming && k >= pastKey:
				return nil
			case upcoming:
				filter = append(filter, afterFilter("eventStartsAt", time.UnixMilli(k).UTC(), after.id)...)
			case k >= pastKey:
				at := time.UnixMilli(2*pastKey - k).UTC()
				filter = append(filter, bson.E{Key: "$or", Value: bson.A{
					bson.D{{Key: "eventStartsAt", Value: bson.D{{Key: "$lt", Value: at}}}},
					bson.D{{Key: "eventStartsAt", Value: at}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: after.id}}}},
				}})
			}
		}
		docs, err := findAll(ctx, s.regs, filter, func(d *registrationDoc) registrationDoc { return *d },
			options.Find().SetSort(bson.D{{Key: "eventStartsAt", Value: dir}, {Key: "_id", Value: dir}}).SetLimit(int64(n+1-len(items))))
		for _, d := range docs {
			k := d.EventStartsAt.UnixMilli()
			if !upcoming {
				k = 2*pastKey - k
			}
			items = append(items, item{d: d, key: k})
		}
		return err
	}
	if err := half(true); err != nil {
		return nil, err
	}
	if len(items) <= n {
		if err := half(false); err != nil {
			return nil, err
		}
	}
	return pageOf(items, n, func(it *item) *eventide.Registration { return toRegistration(&it.d) }, func(it *item) cursor {
		return cursor{kind: "m", key: strconv.FormatInt(it.key, 10), id: it.d.ID}
	}), nil
}

// CountUserRegistrations implements eventide.RegistrationJourneys.
func (s *Store) CountUserRegistrations(ctx context.Context, userID string, f eventide.RegistrationFilter) (int, error) {
	uid, err := bson.ObjectIDFromHex(userID)
	if err != nil {
		return 0, nil
	}
	total := 0
	for _, upcoming := range []bool{true, false} {
		if f.Upcoming != nil && *f.Upcoming != upcoming {
			continue
		}
		n, err := s.regs.CountDocuments(ctx, userRegsFilter(uid, f, upcoming))
		if err != nil {
			return 0, mapErr(err)
		}
		total += int(n)
	}
	return total, nil
}

// WaitlistPositions implements eventide.RegistrationJourneys: one $in read of the batch, then a
// count on the (event, status, arrival) index per waitlisted registration.
func (s *Store) WaitlistPositions(ctx context.Context, ids []string) (map[string]int, error) {
	out := map[string]int{}
	oids := parseIDs(ids)
	if len(oids) == 0 {
		return out, nil
	}
	docs, err := findAll(ctx, s.regs, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}},
		{Key: "status", Value: string(eventide.RegistrationWaitlisted)}}, func(d *registrationDoc) registrationDoc { return *d })
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		ahead := append(bson.D{{Key: "eventId", Value: d.EventID}, {Key: "status", Value: string(eventide.RegistrationWaitlisted)}},
			bson.E{Key: "$or", Value: bson.A{
				bson.D{{Key: "createdAt", Value: bson.D{{Key: "$lt", Value: d.CreatedAt}}}},
				bson.D{{Key: "createdAt", Value: d.CreatedAt}, {Key: "_id", Value: bson.D{{Key: "$lt", Value: d.ID}}}},
			}})
		n, err := s.regs.CountDocuments(ctx, ahead)
		if err != nil {
			return nil, mapErr(err)
		}
		out[d.ID.Hex()] = int(n) + 1
	}
	return out, nil
}

// cancelAllOf cancels every active registration of an event with reason, and takes what it
// cancelled off the counters. The event is CANCELLED already (so nothing joins it meanwhile) and
// marked: a stop in between is finished by the repair (cascadeLocked).
func (s *Store) cancelAllOf(ctx context.Context, eid bson.ObjectID, reason string) error {
	if s.emitting() {
		took, docs, err := s.cancelEachWithMessage(ctx, eid, reason)
		for _, st := range []eventide.RegistrationStatus{eventide.RegistrationConfirmed, eventide.RegistrationWaitlisted} {
			if took[st] > 0 && err == nil {
				_, err = s.inc(ctx, eid, st, -took[st], nil)
			}
		}
		for i := range docs {
			eventide.NoteRegistrations(ctx, toRegistration(&docs[i]))
		}
		return err
	}
	active := bson.D{{Key: "eventId", Value: eid}, {Key: "status", Value: bson.D{{Key: "$ne", Value: string(eventide.RegistrationCancelled)}}}}
	docs, err := findAll(ctx, s.regs, active, func(d *registrationDoc) registrationDoc { return *d })
	if err != nil {
		return err
	}
	t := now()
	for _, st := range []eventide.RegistrationStatus{eventide.RegistrationConfirmed, eventide.RegistrationWaitlisted} {
		res, err := s.regs.UpdateMany(ctx, bson.D{{Key: "eventId", Value: eid}, {Key: "status", Value: string(st)}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: string(eventide.RegistrationCancelled)},
				{Key: "cancelReason", Value: reason}, {Key: "updatedAt", Value: t}}}})
		if err != nil {
			return mapErr(err)
		}
		if res.ModifiedCount > 0 {
			if _, err := s.inc(ctx, eid, st, -int(res.ModifiedCount), nil); err != nil {
				return err
			}
		}
	}
	for i := range docs {
		docs[i].Status, docs[i].CancelReason, docs[i].UpdatedAt = string(eventide.RegistrationCancelled), reason, t
		eventide.NoteRegistrations(ctx, toRegistration(&docs[i]))
	}
	return nil
}

// cancelEachWithMessage cancels every active registration of event eid with reason, each by
// its own update that also pushes its registration.cancelled message into the document (one
// update per registration: the message names it, so an UpdateMany cannot carry it), and moves
// the messages to the outbox. A stop anywhere leaves each registration either active without a
// message or cancelled with its message in the document (moved by the sweep), never cancelled
// without one. It returns how many it took from each status and the registrations as they are
// now. A registration that changed status between the read and its update is read again, for
// at most maxSeatRetries rounds.
func (s *Store) cancelEachWithMessage(ctx context.Context, eid bson.ObjectID, reason string) (map[eventide.RegistrationStatus]int, []registrationDoc, error) {
	took := map[eventide.RegistrationStatus]int{}
	var done []registrationDoc
	active := bson.D{{Key: "eventId", Value: eid}, {Key: "status", Value: bson.D{{Key: "$ne", Value: string(eventide.RegistrationCancelled)}}}}
	for range maxSeatRetries {
		docs, err := findAll(ctx, s.regs, active, func(d *registrationDoc) registrationDoc { return *d },
			options.Find().SetProjection(bson.D{{Key: "outbox", Value: 0}}))
		if err != nil || len(docs) == 0 {
			return took, done, err
		}
		t := now()
		for _, d := range docs {
			was := d.Status
			d.Status, d.CancelReason, d.UpdatedAt = string(eventide.RegistrationCancelled), reason, t
			msg := regMessage(eventide.WebhookRegistrationCancelled, &d)
			res, err := s.regs.UpdateOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "status", Value: was}},
				withPush(bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: d.Status},
					{Key: "cancelReason", Value: reason}, {Key: "updatedAt", Value: t}}}}, msg))
			if err != nil {
				return took, done, mapErr(err)
			}
			if res.MatchedCount == 0 {
				continue // changed meanwhile: the next round reads it again
			}
			took[eventide.RegistrationStatus(was)]++
			done = append(done, d)
			s.moveOutbox(ctx, s.regs, d.ID, msg)
		}
	}
	return took, done, eventide.Errorf(eventide.CodeUnavailable, "the event's registrations are changing too fast; try again")
}

// syncEventTimes copies an event's times onto its registrations that differ.
func (s *Store) syncEventTimes(ctx context.Context, d *eventDoc) error {
	_, err := s.regs.UpdateMany(ctx, bson.D{{Key: "eventId", Value: d.ID}, {Key: "$or", Value: bson.A{
		bson.D{{Key: "eventStartsAt", Value: bson.D{{Key: "$ne", Value: d.StartsAt}}}},
		bson.D{{Key: "eventEndsAt", Value: bson.D{{Key: "$ne", Value: d.EndsAt}}}},
	}}}, bson.D{{Key: "$set", Value: bson.D{{Key: "eventStartsAt", Value: d.StartsAt}, {Key: "eventEndsAt", Value: d.EndsAt}}}})
	return mapErr(err)
}

// cascadeLocked is the repair's first step: it finishes what an event's edit began on its
// registrations — cancelled with a cancelled event, its times copied — before the recount.
// Idempotent: each update matches only registrations not yet changed.
func (s *Store) cascadeLocked(ctx context.Context, d *eventDoc) error {
	if d.Status == string(eventide.EventCancelled) && s.emitting() {
		// Each registration the cascade had not reached yet gets its registration.cancelled
		// message in its own cancelling update, as cancelAllOf gives it; the recount follows.
		if _, _, err := s.cancelEachWithMessage(ctx, d.ID, d.CancelReason); err != nil {
			return err
		}
	} else if d.Status == string(eventide.EventCancelled) {
		_, err := s.regs.UpdateMany(ctx, bson.D{{Key: "eventId", Value: d.ID}, {Key: "status", Value: bson.D{{Key: "$ne", Value: string(eventide.RegistrationCancelled)}}}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "status", Value: string(eventide.RegistrationCancelled)},
				{Key: "cancelReason", Value: d.CancelReason}, {Key: "updatedAt", Value: now()}}}})
		if err != nil {
			return mapErr(err)
		}
	}
	return s.syncEventTimes(ctx, d)
}

// backfillEventTimes gives the registrations written before they carried their event's times
// (an older version's data) those times, once: a document in the meta collection records that it
// was done, so later starts do not scan the registrations again.
func (s *Store) backfillEventTimes(ctx context.Context) error {
	meta := s.db.Collection("meta")
	const done = "registrations.eventTimes"
	if err := meta.FindOne(ctx, bson.D{{Key: "_id", Value: done}}).Err(); err == nil {
		return nil
	} else if !errors.Is(err, mongo.ErrNoDocuments) {
		return mapErr(err)
	}
	if err := s.fillEventTimes(ctx); err != nil {
		return err
	}
	_, err := meta.UpdateOne(ctx, bson.D{{Key: "_id", Value: done}}, bson.D{{Key: "$set", Value: bson.D{{Key: "at", Value: now()}}}},
		options.UpdateOne().SetUpsert(true))
	return mapErr(err)
}

func (s *Store) fillEventTimes(ctx context.Context) error {
	type ref struct {
		EventID bson.ObjectID `bson:"eventId"`
	}
	refs, err := findAll(ctx, s.regs, bson.D{{Key: "eventStartsAt", Value: bson.D{{Key: "$exists", Value: false}}}},
		func(r *ref) bson.ObjectID { return r.EventID }, options.Find().SetProjection(bson.D{{Key: "eventId", Value: 1}}))
	if err != nil {
		return err
	}
	slices.SortFunc(refs, func(a, b bson.ObjectID) int { return bytes.Compare(a[:], b[:]) })
	ids := slices.Compact(refs)
	for _, id := range ids {
		d, err := s.eventDoc(ctx, id)
		if errors.Is(err, mongo.ErrNoDocuments) || eventide.IsCode(err, eventide.CodeNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := s.syncEventTimes(ctx, d); err != nil {
			return err
		}
	}
	return nil
}
