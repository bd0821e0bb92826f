package store

import (
	"context"
	"regexp"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventide/server/eventide"
)

type userDoc struct {
	ID           bson.ObjectID `bson:"_id"`
	Name         string        `bson:"name"`
	Email        string        `bson:"email"`
	Role         string        `bson:"role"`
	PasswordHash []byte        `bson:"passwordHash"`
	CreatedAt    time.Time     `bson:"createdAt"`
	UpdatedAt    time.Time     `bson:"updatedAt"`
}

func toUser(d *userDoc) *eventide.User {
	return &eventide.User{
		ID: d.ID.Hex(), Name: d.Name, Email: d.Email, Role: eventide.Role(d.Role),
		PasswordHash: d.PasswordHash, CreatedAt: d.CreatedAt.UTC(), UpdatedAt: d.UpdatedAt.UTC(),
	}
}

// CreateUser implements eventide.UserStore.
func (s *Store) CreateUser(ctx context.Context, u *eventide.User) error {
	t := now()
	d := userDoc{
		ID: bson.NewObjectID(), Name: u.Name, Email: eventide.NormalizeEmail(u.Email), Role: string(u.Role),
		PasswordHash: u.PasswordHash, CreatedAt: t, UpdatedAt: t,
	}
	if _, err := s.users.InsertOne(ctx, d); err != nil {
		err = mapErr(err)
		if eventide.IsCode(err, eventide.CodeBadUserInput) {
			return eventide.InvalidField("email", "an account with this email already exists")
		}
		return err
	}
	*u = *toUser(&d)
	return nil
}

// UserByID implements eventide.UserStore.
func (s *Store) UserByID(ctx context.Context, id string) (*eventide.User, error) {
	oid, err := parseID("user", id)
	if err != nil {
		return nil, err
	}
	var d userDoc
	if err := findOne(ctx, s.users, bson.D{{Key: "_id", Value: oid}}, &d, "user", id); err != nil {
		return nil, err
	}
	return toUser(&d), nil
}

// UserByEmail implements eventide.UserStore.
func (s *Store) UserByEmail(ctx context.Context, email string) (*eventide.User, error) {
	var d userDoc
	e := eventide.NormalizeEmail(email)
	if err := findOne(ctx, s.users, bson.D{{Key: "email", Value: e}}, &d, "user", e); err != nil {
		return nil, err
	}
	return toUser(&d), nil
}

// UsersByIDs implements eventide.UserStore with one $in query.
func (s *Store) UsersByIDs(ctx context.Context, ids []string) ([]*eventide.User, error) {
	oids := parseIDs(ids)
	if len(oids) == 0 {
		return nil, nil
	}
	return findAll(ctx, s.users, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: oids}}}}, toUser)
}

// SetUserRole implements eventide.UserStore.
func (s *Store) SetUserRole(ctx context.Context, id string, role eventide.Role) (*eventide.User, error) {
	oid, err := parseID("user", id)
	if err != nil {
		return nil, err
	}
	var d userDoc
	r := s.users.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "role", Value: string(role)}, {Key: "updatedAt", Value: now()}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After))
	if err := decodeResult(r, &d, "user", id); err != nil {
		return nil, err
	}
	return toUser(&d), nil
}

// SetUserCredentials implements eventide.UserStore.
func (s *Store) SetUserCredentials(ctx context.Context, id string, hash []byte, role eventide.Role) error {
	oid, err := parseID("user", id)
	if err != nil {
		return err
	}
	res, err := s.users.UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}}, bson.D{{Key: "$set", Value: bson.D{
		{Key: "passwordHash", Value: hash}, {Key: "role", Value: string(role)}, {Key: "updatedAt", Value: now()},
	}}})
	if err != nil {
		return mapErr(err)
	}
	if res.MatchedCount == 0 {
		return eventide.NotFound("user", id)
	}
	return nil
}

// CountUsers implements eventide.UserStore.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	n, err := s.users.CountDocuments(ctx, bson.D{})
	return int(n), mapErr(err)
}

// userFilter selects the users q describes. The search is quoted, so that a client's ".*" or "("
// is matched as typed, never run as a pattern.
func userFilter(q eventide.UserQuery) []bson.D {
	var and []bson.D
	if q.Search != "" {
		re := bson.Regex{Pattern: regexp.QuoteMeta(q.Search), Options: "i"}
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "name", Value: re}}, bson.D{{Key: "email", Value: re}},
		}}})
	}
	if q.Role != "" {
		and = append(and, bson.D{{Key: "role", Value: string(q.Role)}})
	}
	return and
}

func allOf(and []bson.D) bson.D {
	switch len(and) {
	case 0:
		return bson.D{}
	case 1:
		return and[0]
	}
	a := make(bson.A, len(and))
	for i, d := range and {
		a[i] = d
	}
	return bson.D{{Key: "$and", Value: a}}
}

// Users implements eventide.UserStore: by creation time, then id.
func (s *Store) Users(ctx context.Context, q eventide.UserQuery, page eventide.Page) (*eventide.Conn[*eventide.User], error) {
	n, err := pageSize(page.First)
	if err != nil {
		return nil, err
	}
	and := userFilter(q)
	if page.After != "" {
		c, err := decodeCursor("u", page.After)
		if err != nil {
			return nil, err
		}
		and = append(and, afterFilter("createdAt", c.timeValue(), c.id))
	}
	docs, err := findAll(ctx, s.users, allOf(and), func(d *userDoc) userDoc { return *d },
		options.Find().SetSort(bson.D{{Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(int64(n+1)))
	if err != nil {
		return nil, err
	}
	return pageOf(docs, n, func(d *userDoc) *eventide.User {
		u := toUser(d)
		u.PasswordHash = nil
		return u
	}, func(d *userDoc) cursor { return cursor{kind: "u", key: timeKey(d.CreatedAt), id: d.ID} }), nil
}

// CountUsersMatching implements eventide.UserStore.
func (s *Store) CountUsersMatching(ctx context.Context, q eventide.UserQuery) (int, error) {
	n, err := s.users.CountDocuments(ctx, allOf(userFilter(q)))
	return int(n), mapErr(err)
}
