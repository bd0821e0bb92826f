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

// The webhook outbox on MongoDB (DESIGN.md, "Webhooks"). A message is written INTO the document
// whose change it reports, in the same single-document update ($push outbox: the registration
// inserted, cancelled or promoted; the event edited), so it exists if and only if the change
// does. Afterwards it is moved to the webhook_outbox collection, one document per receiver keyed
// by eventide.DeliveryKey (the message id is fixed when the message is written, so a second move
// of the same message inserts nothing new), and pulled from its document. A crash between the
// two leaves the message in its document, where the sweep (at Open and every repairLease) finds
// it and moves it. The worker claims the oldest pending row of a receiver with a conditional
// findOneAndUpdate that takes a lease, so one replica at a time delivers it.

var _ eventide.WebhookOutbox = (*Store)(nil)

// embeddedMsg is a message waiting in its document's outbox array to be moved.
type embeddedMsg struct {
	ID         bson.ObjectID `bson:"id"`
	Type       string        `bson:"type"`
	OccurredAt time.Time     `bson:"occurredAt"`
	Body       []byte        `bson:"body"`
}

type outboxDoc struct {
	Key           string        `bson:"_id"`
	MessageID     bson.ObjectID `bson:"messageId"`
	Receiver      string        `bson:"receiver"`
	Type          string        `bson:"type"`
	Body          []byte        `bson:"body"`
	OccurredAt    time.Time     `bson:"occurredAt"`
	Status        string        `bson:"status"`
	Attempts      int           `bson:"attempts"`
	LastError     string        `bson:"lastError"`
	NextAttemptAt time.Time     `bson:"nextAttemptAt"`
	LeaseOwner    string        `bson:"leaseOwner"`
	LeaseUntil    time.Time     `bson:"leaseUntil"`
	UpdatedAt     time.Time     `bson:"updatedAt"`
}

func toDelivery(d *outboxDoc) *eventide.WebhookDelivery {
	return &eventide.WebhookDelivery{
		Key: d.Key, ID: d.MessageID.Hex(), Receiver: d.Receiver, Type: d.Type, Body: d.Body,
		OccurredAt: d.OccurredAt.UTC(), Status: eventide.DeliveryStatus(d.Status), Attempts: d.Attempts,
		LastError: d.LastError, NextAttemptAt: d.NextAttemptAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}
}

// emitting reports whether writes add to the outbox (WEBHOOK_URLS is set).
func (s *Store) emitting() bool { return len(s.outbox.Receivers) > 0 }

func toEmbedded(m eventide.WebhookMessage) embeddedMsg {
	id, _ := bson.ObjectIDFromHex(m.ID)
	return embeddedMsg{ID: id, Type: m.Type, OccurredAt: msTime(m.OccurredAt), Body: m.Body}
}

// regMessage is a registration.* message about d (as it is after the change), with a new id.
func regMessage(typ string, d *registrationDoc) embeddedMsg {
	return toEmbedded(eventide.RegistrationMessage(bson.NewObjectID().Hex(), typ, now(), toRegistration(d)))
}

// withPush adds $push outbox of msgs to an update document; nothing when msgs is empty.
func withPush(u bson.D, msgs ...embeddedMsg) bson.D {
	if len(msgs) == 0 {
		return u
	}
	each := make(bson.A, len(msgs))
	for i, m := range msgs {
		each[i] = m
	}
	return append(u, bson.E{Key: "$push", Value: bson.D{{Key: "outbox", Value: bson.D{{Key: "$each", Value: each}}}}})
}

// moveOutbox moves msgs, found in the document id of coll, to the outbox collection and pulls
// them from the document. A failure is logged: the sweep moves them later.
func (s *Store) moveOutbox(ctx context.Context, coll *mongo.Collection, id bson.ObjectID, msgs ...embeddedMsg) {
	if len(msgs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), repairTimeout)
	defer cancel()
	if err := s.moveOutboxErr(ctx, coll, id, msgs); err != nil {
		s.log.Warn("store: webhook messages stay in their document until the next sweep", "collection", coll.Name(),
			"id", id.Hex(), "error", err)
	}
}

func (s *Store) moveOutboxErr(ctx context.Context, coll *mongo.Collection, id bson.ObjectID, msgs []embeddedMsg) error {
	done := make(bson.A, 0, len(msgs))
	for _, m := range msgs {
		for _, r := range s.outbox.Receivers {
			d := outboxDoc{
				Key: eventide.DeliveryKey(m.ID.Hex(), r), MessageID: m.ID, Receiver: r, Type: m.Type, Body: m.Body,
				OccurredAt: m.OccurredAt, Status: string(eventide.DeliveryPending), NextAttemptAt: m.OccurredAt, UpdatedAt: m.OccurredAt,
			}
			if _, err := s.hooks.InsertOne(ctx, d); err != nil && !mongo.IsDuplicateKeyError(err) {
				return mapErr(err)
			}
		}
		done = append(done, m)
	}
	// $pullAll removes exactly these elements (FerretDB has no $pull with a condition); each is
	// encoded from the same struct as when it was pushed, so it is equal to the stored one.
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$pullAll", Value: bson.D{{Key: "outbox", Value: done}}}}); err != nil {
		return mapErr(err)
	}
	if s.outbox.Notify != nil {
		s.outbox.Notify()
	}
	return nil
}

// sweepOutbox moves the messages that writes left in their documents (a crash or an outage
// between a change and its move).
func (s *Store) sweepOutbox(ctx context.Context) (int, error) {
	if !s.emitting() {
		return 0, nil
	}
	moved := 0
	for _, coll := range []*mongo.Collection{s.events, s.regs} {
		cur, err := coll.Find(ctx, bson.D{{Key: "outbox.0", Value: bson.D{{Key: "$exists", Value: true}}}},
			options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "outbox", Value: 1}}))
		if err != nil {
			return moved, mapErr(err)
		}
		var docs []struct {
			ID     bson.ObjectID `bson:"_id"`
			Outbox []embeddedMsg `bson:"outbox"`
		}
		if err := cur.All(ctx, &docs); err != nil {
			return moved, mapErr(err)
		}
		for _, d := range docs {
			if err := s.moveOutboxErr(ctx, coll, d.ID, d.Outbox); err != nil {
				return moved, err
			}
			moved += len(d.Outbox)
		}
	}
	return moved, nil
}

var byAge = bson.D{{Key: "occurredAt", Value: 1}, {Key: "messageId", Value: 1}}

// ClaimWebhook implements eventide.WebhookOutbox.
func (s *Store) ClaimWebhook(ctx context.Context, receiver, owner string, at time.Time, lease time.Duration) (*eventide.WebhookDelivery, time.Time, error) {
	var head outboxDoc
	err := s.hooks.FindOne(ctx, bson.D{{Key: "receiver", Value: receiver}, {Key: "status", Value: string(eventide.DeliveryPending)}},
		options.FindOne().SetSort(byAge)).Decode(&head)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, mapErr(err)
	}
	switch {
	case head.NextAttemptAt.After(at):
		return nil, head.NextAttemptAt.UTC(), nil
	case head.LeaseOwner != "" && head.LeaseUntil.After(at):
		return nil, head.LeaseUntil.UTC(), nil
	}
	// Claimed only if nobody claimed it since the read: the lease fields are the version.
	var d outboxDoc
	err = s.hooks.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: head.Key}, {Key: "status", Value: string(eventide.DeliveryPending)},
			{Key: "leaseOwner", Value: head.LeaseOwner}, {Key: "leaseUntil", Value: head.LeaseUntil}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "leaseOwner", Value: owner}, {Key: "leaseUntil", Value: msTime(at.Add(lease))}}},
			{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}}},
		returnAfter).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, at.Add(lease), nil // another replica has it
	}
	if err != nil {
		return nil, time.Time{}, mapErr(err)
	}
	return toDelivery(&d), time.Time{}, nil
}

// FinishWebhook implements eventide.WebhookOutbox.
func (s *Store) FinishWebhook(ctx context.Context, key, owner string, o eventide.WebhookOutcome) (bool, error) {
	res, err := s.hooks.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: key}, {Key: "leaseOwner", Value: owner}, {Key: "status", Value: string(eventide.DeliveryPending)}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "status", Value: string(o.Status)}, {Key: "lastError", Value: o.Error},
			{Key: "nextAttemptAt", Value: msTime(o.NextAttemptAt)}, {Key: "updatedAt", Value: msTime(o.At)},
			{Key: "leaseOwner", Value: ""}, {Key: "leaseUntil", Value: time.UnixMilli(0).UTC()},
		}}})
	if err != nil {
		return false, mapErr(err)
	}
	return res.MatchedCount > 0, nil
}

// ReleaseWebhook implements eventide.WebhookOutbox.
func (s *Store) ReleaseWebhook(ctx context.Context, key, owner string) error {
	_, err := s.hooks.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: key}, {Key: "leaseOwner", Value: owner}, {Key: "status", Value: string(eventide.DeliveryPending)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "leaseOwner", Value: ""}, {Key: "leaseUntil", Value: time.UnixMilli(0).UTC()}}},
			{Key: "$inc", Value: bson.D{{Key: "attempts", Value: -1}}}})
	return mapErr(err)
}

// WebhookDeliveries implements eventide.WebhookOutbox.
func (s *Store) WebhookDeliveries(ctx context.Context, status eventide.DeliveryStatus, last int) ([]*eventide.WebhookDelivery, error) {
	filter := bson.D{}
	if status != "" {
		filter = bson.D{{Key: "status", Value: string(status)}}
	}
	return findAll(ctx, s.hooks, filter, toDelivery,
		options.Find().SetSort(bson.D{{Key: "occurredAt", Value: -1}, {Key: "messageId", Value: -1}}).SetLimit(int64(last)))
}

// PurgeWebhooks implements eventide.WebhookOutbox.
func (s *Store) PurgeWebhooks(ctx context.Context, cutoff time.Time) (int, error) {
	res, err := s.hooks.DeleteMany(ctx, bson.D{
		{Key: "status", Value: bson.D{{Key: "$in", Value: bson.A{string(eventide.DeliveryDelivered), string(eventide.DeliveryFailed)}}}},
		{Key: "updatedAt", Value: bson.D{{Key: "$lt", Value: msTime(cutoff)}}},
	})
	if err != nil {
		return 0, mapErr(err)
	}
	return int(res.DeletedCount), nil
}

// WebhookBacklog implements eventide.WebhookOutbox.
func (s *Store) WebhookBacklog(ctx context.Context) (int, time.Time, error) {
	pending := bson.D{{Key: "status", Value: string(eventide.DeliveryPending)}}
	n, err := s.hooks.CountDocuments(ctx, pending)
	if err != nil {
		return 0, time.Time{}, mapErr(err)
	}
	if n == 0 {
		return 0, time.Time{}, nil
	}
	var d outboxDoc
	err = s.hooks.FindOne(ctx, pending, options.FindOne().SetSort(byAge)).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, mapErr(err)
	}
	return int(n), d.OccurredAt.UTC(), nil
}
