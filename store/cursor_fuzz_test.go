package store

import (
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/eventide/server/eventide"
)

// FuzzDecodeCursor feeds arbitrary after arguments to the cursor parser: it never panics, it
// refuses with BAD_USER_INPUT, and what it accepts encodes back to a cursor that decodes the same.
func FuzzDecodeCursor(f *testing.F) {
	id := bson.NewObjectID()
	for _, c := range []cursor{{kind: "e", key: "1700000000000", id: id}, {kind: "v", key: "hall", id: id}, {kind: "a", key: "0", id: id}} {
		f.Add(c.kind, c.encode())
	}
	f.Add("e", "")
	f.Add("e", "not base64!")
	f.Add("v", "djo6")
	f.Fuzz(func(t *testing.T, kind, s string) {
		c, err := decodeCursor(kind, s)
		if err != nil {
			if !eventide.IsCode(err, eventide.CodeBadUserInput) {
				t.Fatalf("decodeCursor(%q, %q) error %v is not BAD_USER_INPUT", kind, s, err)
			}
			return
		}
		if c.kind != kind {
			t.Fatalf("accepted a %q cursor as %q", c.kind, kind)
		}
		again, err := decodeCursor(kind, c.encode())
		if err != nil || again != c {
			t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
		}
	})
}

// FuzzParseID feeds arbitrary ids to the id parser: it never panics, a malformed id is NOT_FOUND,
// and an accepted one is its own canonical hex form.
func FuzzParseID(f *testing.F) {
	f.Add(bson.NewObjectID().Hex())
	f.Add("")
	f.Add("zzzzzzzzzzzzzzzzzzzzzzzz")
	f.Add("5F0000000000000000000000")
	f.Fuzz(func(t *testing.T, s string) {
		oid, err := parseID("event", s)
		if err != nil {
			if !eventide.IsCode(err, eventide.CodeNotFound) {
				t.Fatalf("parseID(%q) error %v is not NOT_FOUND", s, err)
			}
			return
		}
		if len(s) != 24 || oid.IsZero() && s != bson.NilObjectID.Hex() {
			t.Fatalf("parseID(%q) accepted %v", s, oid)
		}
	})
}
