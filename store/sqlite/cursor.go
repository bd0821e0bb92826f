package sqlite

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/eventide/server/eventide"
)

// A cursor is the keyset position of an item, encoded exactly as the MongoDB store encodes it:
// base64url of "kind:id:key", where key is milliseconds for time-ordered kinds ("e" events, "a"
// attendees, "u" users) and the folded name for venues ("v").
type cursor struct {
	kind string
	key  string
	id   string
}

func (c cursor) encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.kind + ":" + c.id + ":" + c.key))
}

func timeCursor(kind string, t int64, id string) string {
	return cursor{kind: kind, key: strconv.FormatInt(t, 10), id: id}.encode()
}

// decodeCursor parses an after argument of the given kind; anything else is BAD_USER_INPUT.
func decodeCursor(kind, s string) (cursor, error) {
	bad := eventide.InvalidField("after", "not a valid cursor for this list")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) > 512 {
		return cursor{}, bad
	}
	parts := strings.SplitN(string(raw), ":", 3)
	if len(parts) != 3 || parts[0] != kind || !validID(normID(parts[1])) {
		return cursor{}, bad
	}
	if kind != "v" {
		if _, err := strconv.ParseInt(parts[2], 10, 64); err != nil {
			return cursor{}, bad
		}
	}
	return cursor{kind: kind, key: parts[2], id: normID(parts[1])}, nil
}

func (c cursor) ms() int64 {
	v, _ := strconv.ParseInt(c.key, 10, 64)
	return v
}
