package store

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/eventide/server/eventide"
)

// A cursor is the keyset position of an item: the connection's kind, its sort key and its id,
// base64url-encoded. Keyset positions stay valid while items are inserted: the next page starts
// strictly after the last item seen, so nothing is skipped or repeated.
type cursor struct {
	kind string // "e" events, "v" venues, "a" attendees, "u" users
	key  string // the sort key: milliseconds for time-ordered kinds, the name key for venues
	id   bson.ObjectID
}

func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.kind + ":" + c.id.Hex() + ":" + c.key))
}

func timeKey(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// decodeCursor parses an after argument of the given kind; anything else is BAD_USER_INPUT.
func decodeCursor(kind, s string) (cursor, error) {
	bad := eventide.InvalidField("after", "not a valid cursor for this list")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) > 512 {
		return cursor{}, bad
	}
	parts := strings.SplitN(string(raw), ":", 3)
	if len(parts) != 3 || parts[0] != kind {
		return cursor{}, bad
	}
	id, err := bson.ObjectIDFromHex(parts[1])
	if err != nil {
		return cursor{}, bad
	}
	if kind != "v" {
		if _, err := strconv.ParseInt(parts[2], 10, 64); err != nil {
			return cursor{}, bad
		}
	}
	return cursor{kind: kind, key: parts[2], id: id}, nil
}

func (c cursor) timeValue() time.Time {
	ms, _ := strconv.ParseInt(c.key, 10, 64)
	return time.UnixMilli(ms).UTC()
}

// pageSize clamps first to 0..MaxPageSize; a negative value is BAD_USER_INPUT.
func pageSize(first int) (int, error) {
	if first < 0 {
		return 0, eventide.InvalidField("first", "must not be negative")
	}
	return min(first, eventide.MaxPageSize), nil
}

// afterFilter is the keyset condition "strictly after (key, id)" for fields keyField and _id.
func afterFilter(keyField string, key any, id bson.ObjectID) bson.D {
	return bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: keyField, Value: bson.D{{Key: "$gt", Value: key}}}},
		bson.D{{Key: keyField, Value: key}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: id}}}},
	}}}
}
