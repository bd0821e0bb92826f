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

// calendarSecrets holds one document per user that ever reset their calendar URL:
// {_id: the user's id, secret, createdAt}.
func (s *Store) calendarSecrets() *mongo.Collection { return s.db.Collection("calendarSecrets") }

// CalendarRegistrations implements eventide.RegistrationStore.
func (s *Store) CalendarRegistrations(ctx context.Context, userID string, limit int) ([]*eventide.Registration, error) {
	uid, err := bson.ObjectIDFromHex(userID)
	if err != nil || limit <= 0 {
		return nil, nil
	}
	return findAll(ctx, s.regs, bson.D{{Key: "userId", Value: uid}}, toRegistration,
		options.Find().SetSort(bson.D{{Key: "createdAt", Value: -1}, {Key: "_id", Value: -1}}).SetLimit(int64(limit)))
}

// CalendarSecret implements eventide.CalendarStore.
func (s *Store) CalendarSecret(ctx context.Context, userID string) (string, error) {
	var d struct {
		Secret string `bson:"secret"`
	}
	err := s.calendarSecrets().FindOne(ctx, bson.D{{Key: "_id", Value: userID}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return "", nil
	}
	if err != nil {
		return "", mapErr(err)
	}
	return d.Secret, nil
}

// SetCalendarSecret implements eventide.CalendarStore with one upsert.
func (s *Store) SetCalendarSecret(ctx context.Context, userID, secret string) error {
	if _, err := bson.ObjectIDFromHex(userID); err != nil {
		return eventide.NotFound("user", userID)
	}
	_, err := s.calendarSecrets().UpdateOne(ctx, bson.D{{Key: "_id", Value: userID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "secret", Value: secret}, {Key: "createdAt", Value: time.Now().UTC()}}}},
		options.UpdateOne().SetUpsert(true))
	return mapErr(err)
}
