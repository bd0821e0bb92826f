package ferretfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/store"
	"github.com/eventide/server/store/embedded"
)

// startFerret starts FerretDB (store/embedded, as earlier versions ran it) on dir and connects a
// client; stop closes both, leaving FerretDB's files behind.
func startFerret(t *testing.T, dir string) (cl *mongo.Client, uri string, stop func()) {
	t.Helper()
	ctx := context.Background()
	fdb, err := embedded.Start(ctx, embedded.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	cl, err = mongo.Connect(mongoopts.Client().ApplyURI(fdb.URI()))
	if err != nil {
		_ = fdb.Close(ctx)
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = cl.Disconnect(ctx)
			_ = fdb.Close(ctx)
		}
	}
	t.Cleanup(stop)
	return cl, fdb.URI(), stop
}

// everyType is one document per kind of value FerretDB's SQLite backend writes (FerretDB
// v1.24 refuses an array inside an array, at any depth).
func everyType() []bson.D {
	oid := bson.NewObjectID()
	return []bson.D{
		{
			{Key: "_id", Value: oid},
			{Key: "double", Value: 42.13},
			{Key: "negZero", Value: math.Copysign(0, -1)},
			{Key: "zero", Value: 0.0},
			{Key: "maxDouble", Value: math.MaxFloat64},
			{Key: "minDouble", Value: -math.MaxFloat64},
			{Key: "tinyDouble", Value: math.SmallestNonzeroFloat64},
			{Key: "wholeDouble", Value: 3.0},
			{Key: "string", Value: "héllo \"quoted\" \\ \u2028 <tag> & 😀\n\t"},
			{Key: "emptyString", Value: ""},
			{Key: "binGeneric", Value: bson.Binary{Subtype: 0, Data: []byte{0, 1, 2, 0xff}}},
			{Key: "binUUID", Value: bson.Binary{Subtype: 4, Data: bytes.Repeat([]byte{0xab}, 16)}},
			{Key: "binUser", Value: bson.Binary{Subtype: 0x80, Data: []byte("user-defined")}},
			{Key: "binEmpty", Value: bson.Binary{Subtype: 0, Data: []byte{}}},
			{Key: "objectId", Value: bson.NewObjectID()},
			{Key: "true", Value: true},
			{Key: "false", Value: false},
			{Key: "date", Value: bson.DateTime(1_700_000_000_123)},
			{Key: "dateBeforeEpoch", Value: bson.DateTime(-1_234_567_891)},
			{Key: "null", Value: nil},
			{Key: "regex", Value: bson.Regex{Pattern: `^a.*"b"\d$`, Options: "im"}},
			{Key: "regexNoOptions", Value: bson.Regex{Pattern: "x"}},
			{Key: "int", Value: int32(7)},
			{Key: "intMin", Value: int32(math.MinInt32)},
			{Key: "intMax", Value: int32(math.MaxInt32)},
			{Key: "timestamp", Value: bson.Timestamp{T: 1_700_000_000, I: 7}},
			{Key: "timestampMax", Value: bson.Timestamp{T: math.MaxUint32, I: math.MaxUint32}},
			{Key: "long", Value: int64(1<<53 + 1)},
			{Key: "longMin", Value: int64(math.MinInt64)},
			{Key: "longMax", Value: int64(math.MaxInt64)},
		},
		{
			{Key: "_id", Value: "a string id"},
			{Key: "z", Value: bson.D{
				{Key: "y", Value: int32(1)},
				{Key: "b", Value: bson.D{{Key: "deep", Value: bson.A{"x", int64(2)}}}},
				{Key: "n", Value: nil},
				{Key: "when", Value: bson.DateTime(86_400_000)},
			}},
			{Key: "a", Value: bson.D{}},
			{Key: "m", Value: bson.A{
				1.5, "two", int32(3), int64(4), true, nil, bson.DateTime(5), oid,
				bson.Binary{Subtype: 0, Data: []byte{9}}, bson.Regex{Pattern: "p", Options: "s"},
				bson.Timestamp{T: 1, I: 2}, bson.D{{Key: "in", Value: bson.A{int32(1), bson.D{}}}}, bson.D{},
			}},
			{Key: "emptyArray", Value: bson.A{}},
			{Key: "ünïcode kéy", Value: "v"},
		},
		{{Key: "_id", Value: int32(3)}},
		{{Key: "_id", Value: int64(4)}, {Key: "only", Value: 0.5}},
	}
}

// TestDecodeEveryType writes a document of every type FerretDB writes through FerretDB itself,
// and reads the files back: each document decodes to the same BSON, byte for byte (types, key
// order, -0), as FerretDB returns it to a find.
func TestDecodeEveryType(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cl, _, stop := startFerret(t, dir)
	c := cl.Database("types").Collection("all")
	want := everyType()
	for _, d := range want {
		if _, err := c.InsertOne(ctx, d); err != nil {
			t.Fatalf("insert %v: %v", d, err)
		}
	}
	// FerretDB cannot store NaN or ±Inf (sjson writes a double as a JSON number): none reaches
	// the files, so the reader never meets one.
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "special", Value: f}}); err == nil {
			t.Fatalf("FerretDB stored the double %v: the reader must learn its encoding", f)
		}
	}
	cur, err := c.Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var fromFerret []bson.Raw
	for cur.Next(ctx) {
		fromFerret = append(fromFerret, slices.Clone(cur.Current))
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	stop()
	d, err := Open(ctx, filepath.Join(dir, "types.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var got []bson.Raw
	if err := d.Each(ctx, "all", func(r bson.Raw) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || len(fromFerret) != len(want) {
		t.Fatalf("%d documents read, %d from FerretDB, %d written", len(got), len(fromFerret), len(want))
	}
	for i := range want {
		if i == 0 {
			want[i][2].Value = 0.0 // FerretDB stores -0 as 0 (sjson.go reads "-0" as -0 all the same)
		}
		w, err := bson.Marshal(want[i])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[i], fromFerret[i]) {
			t.Errorf("document %d:\nread      %s\nFerretDB  %s", i, got[i], fromFerret[i])
		}
		if !bytes.Equal(got[i], w) {
			t.Errorf("document %d:\nread      %s\nwritten   %s", i, got[i], bson.Raw(w))
		}
	}
}

// TestDecodeSJSON covers what FerretDB's files do not hold but its format allows: -0, integers
// beyond a double's precision, escaped keys.
func TestDecodeSJSON(t *testing.T) {
	raw, err := decodeSJSON([]byte(`{"$s":{"p":{"z":{"t":"double"},"l":{"t":"long"},"k\"q":{"t":"string"},"ts":{"t":"timestamp"}},` +
		`"$k":["z","l","k\"q","ts"]},"z":-0,"l":9007199254740993,"k\"q":"v","ts":18446744073709551615}`))
	if err != nil {
		t.Fatal(err)
	}
	if z := raw.Lookup("z").Double(); z != 0 || !math.Signbit(z) {
		t.Errorf("-0 read as %v", z)
	}
	if l := raw.Lookup("l").Int64(); l != 1<<53+1 {
		t.Errorf("long read as %d", l)
	}
	if v := raw.Lookup(`k"q`).StringValue(); v != "v" {
		t.Errorf("escaped key: %q", v)
	}
	if ts, i := raw.Lookup("ts").Timestamp(); ts != math.MaxUint32 || i != math.MaxUint32 {
		t.Errorf("timestamp read as %d, %d", ts, i)
	}
	for _, bad := range []struct{ doc, want string }{
		{`{"$s":{"p":{"i":{"t":"int"}},"$k":["i"]},"i":2147483648}`, `field "i": int`},
		{`{"$s":{"p":{"d":{"t":"double"}},"$k":["d"]},"d":"NaN"}`, `field "d": double`},
		{`{"$s":{"p":{"a":{"t":"array","i":[{"t":"int"}]}},"$k":["a"]},"a":[1,2]}`, "1 items in the schema, 2 in the array"},
		{`{"$s":{"p":{"b":{"t":"binData"}},"$k":["b"]},"b":"AA=="}`, "binData without a subtype"},
		{`{"$s":{"p":{"n":{"t":"null"}},"$k":["n"]},"n":1}`, `field "n": null`},
		{`{"$s":{"p":{},"$k":[],"x":1}}`, `unknown field "x"`},
		{`{"$s":{"p":{},"$k":[]}} {}`, "data after the JSON value"},
	} {
		if _, err := decodeSJSON([]byte(bad.doc)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want %q", bad.doc, err, bad.want)
		}
	}
}

// oldStore is an earlier version's DATA_DIR/embedded: FerretDB's files written through the
// MongoDB store, with an extra collection the store does not know.
type oldStore struct {
	dir      string
	exported records // what the MongoDB store's Export returned over FerretDB
}

type records struct {
	Users         []*eventide.User
	Venues        []*eventide.Venue
	Events        []*eventide.Event
	Registrations []*eventide.Registration
}

func (r *records) exporter() store.Exporter {
	return store.Exporter{
		User:         func(u *eventide.User) error { r.Users = append(r.Users, u); return nil },
		Venue:        func(v *eventide.Venue) error { r.Venues = append(r.Venues, v); return nil },
		Event:        func(e *eventide.Event) error { r.Events = append(r.Events, e); return nil },
		Registration: func(g *eventide.Registration) error { r.Registrations = append(r.Registrations, g); return nil },
	}
}

const database = "eventide"

func writeOldStore(t *testing.T) *oldStore {
	t.Helper()
	ctx := context.Background()
	o := &oldStore{dir: t.TempDir()}
	cl, uri, stop := startFerret(t, o.dir)
	st, err := store.Open(ctx, store.Options{URI: uri, Database: database, PoolSize: 4,
		ConnectTimeout: 10 * time.Second, ServerSelectionTimeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close(ctx) }()
	var users []*eventide.User
	for i, role := range []eventide.Role{eventide.RoleOrganizer, eventide.RoleUser, eventide.RoleUser, eventide.RoleAdmin} {
		u := &eventide.User{Name: "U" + string(rune('a'+i)), Email: string(rune('a'+i)) + "@old.example.com", Role: role, PasswordHash: []byte("$2a$04$hash-" + string(rune('a'+i)))}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		users = append(users, u)
	}
	capacity := 50
	v := &eventide.Venue{Name: "Hall", Address: "1 St", City: "Lisboa", Capacity: &capacity, CreatedByID: users[0].ID}
	if err := st.CreateVenue(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateVenue(ctx, &eventide.Venue{Name: "Park", Address: "2 St", City: "Faro", CreatedByID: users[0].ID}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Millisecond)
	var events []*eventide.Event
	for i, e := range []*eventide.Event{
		{Title: "With venue", Status: eventide.EventPublished, Capacity: 1, Tags: []string{"a", "b"}, VenueID: v.ID, City: v.City},
		{Title: "Online", Description: "no venue, no tags", Status: eventide.EventDraft, Capacity: 10},
		{Title: "Cancelled", Status: eventide.EventCancelled, Capacity: 3, Tags: []string{"c"}, CancelReason: "rain"},
	} {
		e.StartsAt, e.EndsAt, e.OrganizerID = start.Add(time.Duration(i)*time.Hour), start.Add(time.Duration(i+2)*time.Hour), users[0].ID
		if err := st.CreateEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
	}
	at := time.Now()
	for _, u := range users[1:] {
		at = at.Add(10 * time.Millisecond)
		if _, _, err := st.Register(ctx, events[0].ID, u.ID, at); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.CancelRegistration(ctx, events[0].ID, users[3].ID, at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// A write stopped halfway left a mark (a nested object of dates) on the draft.
	oid, _ := bson.ObjectIDFromHex(events[1].ID)
	if _, err := cl.Database(database).Collection("events").UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "pending.tok", Value: time.Now()}}}}); err != nil {
		t.Fatal(err)
	}
	// A collection the store does not know (an operator's, or a later feature's).
	if _, err := cl.Database(database).Collection("audit").InsertMany(ctx, []any{
		bson.D{{Key: "what", Value: "login"}, {Key: "n", Value: int32(1)}},
		bson.D{{Key: "what", Value: "logout"}, {Key: "tags", Value: bson.A{"x"}}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Export(ctx, o.exported.exporter()); err != nil {
		t.Fatal(err)
	}
	if n := []int{len(o.exported.Users), len(o.exported.Venues), len(o.exported.Events), len(o.exported.Registrations)}; !slices.Equal(n, []int{4, 2, 3, 3}) {
		t.Fatalf("exported through FerretDB: %v", n)
	}
	_ = st.Close(ctx)
	stop()
	return o
}

// fileSums is every file in dir with the SHA-256 of its bytes.
func fileSums(t *testing.T, dir string) map[string][sha256.Size]byte {
	t.Helper()
	sums := map[string][sha256.Size]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sums[e.Name()] = sha256.Sum256(b)
	}
	return sums
}

// TestExportAsThroughFerretDB reads the files of a store FerretDB wrote: every record comes out
// as the MongoDB store's Export made it through FerretDB (same fields, same order), the extra
// collection is ignored, and the files are not touched.
func TestExportAsThroughFerretDB(t *testing.T) {
	ctx := context.Background()
	o := writeOldStore(t)
	before := fileSums(t, o.dir)

	var got records
	if err := Export(ctx, o.dir, database, got.exporter()); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, o.exported) {
		t.Fatalf("read from the files:\n%+v\nexported through FerretDB:\n%+v", got, o.exported)
	}
	if e := got.Events[1]; e.VenueID != "" || len(e.Tags) != 0 || e.Status != eventide.EventDraft {
		t.Fatalf("online draft: %+v", e)
	}
	if e := got.Events[0]; e.ConfirmedCount != 1 || e.WaitlistCount != 1 || e.VenueID == "" {
		t.Fatalf("event with venue: %+v", e)
	}

	t.Run("UnknownCollectionIgnored", func(t *testing.T) {
		d, err := Open(ctx, filepath.Join(o.dir, database+".sqlite"))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if !slices.Contains(d.Collections(), "audit") {
			t.Fatalf("collections %v: the files hold no extra collection, nothing is tested", d.Collections())
		}
		var n int
		if err := d.Each(ctx, "audit", func(bson.Raw) error { n++; return nil }); err != nil || n != 2 {
			t.Fatalf("audit: %d documents, %v", n, err)
		}
	})
	t.Run("FilesUntouched", func(t *testing.T) {
		if after := fileSums(t, o.dir); !reflect.DeepEqual(before, after) {
			t.Fatalf("files before %v, after %v", keys(before), keys(after))
		}
	})
	t.Run("SkipsKindsNotAsked", func(t *testing.T) {
		var n int
		if err := Export(ctx, o.dir, database, store.Exporter{Venue: func(*eventide.Venue) error { n++; return nil }}); err != nil || n != 2 {
			t.Fatalf("venues only: %d, %v", n, err)
		}
	})
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestCorruptRow: a row that does not decode stops the export with an error naming the
// collection and the row; the same row in a collection the store does not read is ignored.
func TestCorruptRow(t *testing.T) {
	ctx := context.Background()
	o := writeOldStore(t)
	for _, tc := range []struct {
		name, collection, doc string
		want                  []string
	}{
		{"UnknownType", "events", `{"$s":{"p":{"_id":{"t":"objectId"},"x":{"t":"decimal"}},"$k":["_id","x"]},"_id":"65a1b2c3d4e5f60718293a4b","x":"1.5"}`,
			[]string{`collection "events"`, "row 2", `field "x"`, `unknown sjson type "decimal"`}},
		{"NotJSON", "users", `{"$s":{"p":{}`, []string{`collection "users"`, "row 2", "not a JSON object"}},
		{"NoSchema", "venues", `{"_id":"x"}`, []string{`collection "venues"`, "row 2", "no schema"}},
		{"SchemaMismatch", "registrations", `{"$s":{"p":{"_id":{"t":"objectId"}},"$k":["_id","extra"]},"_id":"65a1b2c3d4e5f60718293a4b"}`,
			[]string{`collection "registrations"`, "row 2", "2 keys in the schema, 1 fields"}},
		{"BadObjectID", "events", `{"$s":{"p":{"_id":{"t":"objectId"}},"$k":["_id"]},"_id":"zz"}`,
			[]string{`collection "events"`, "row 2", `objectId "zz"`}},
		{"NotAnEvent", "events", `{"$s":{"p":{"_id":{"t":"objectId"},"title":{"t":"int"}},"$k":["_id","title"]},"_id":"65a1b2c3d4e5f60718293a4b","title":3}`,
			[]string{`collection "events"`, "row 2", "65a1b2c3d4e5f60718293a4b", "title"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, o.dir)
			setRow(t, dir, tc.collection, 2, tc.doc)
			var got records
			err := Export(ctx, dir, database, got.exporter())
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not say %q", err, w)
				}
			}
		})
	}
	t.Run("InUnknownCollectionIgnored", func(t *testing.T) {
		dir := copyDir(t, o.dir)
		setRow(t, dir, "audit", 1, `{"$s":{"p":{"x":{"t":"decimal"}},"$k":["x"]},"x":"1"}`)
		var got records
		if err := Export(ctx, dir, database, got.exporter()); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, o.exported) {
			t.Fatalf("read %+v", got)
		}
	})
}

func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// setRow overwrites the document in row rowid of collection (a copy's, written with SQLite).
func setRow(t *testing.T, dir, collection string, rowid int, doc string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, database+".sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var table string
	if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, collection).Scan(&table); err != nil {
		t.Fatal(err)
	}
	// FerretDB's index on _id is an expression on the JSON: SQLite would refuse a row that is
	// not JSON. Drop the table's indexes (of the copy) so that any row can be written.
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL`, table)
	if err != nil {
		t.Fatal(err)
	}
	var indexes []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		indexes = append(indexes, n)
	}
	_ = rows.Close()
	for _, n := range indexes {
		if _, err := db.Exec(`DROP INDEX "` + n + `"`); err != nil {
			t.Fatal(err)
		}
	}
	res, err := db.Exec(`UPDATE "`+table+`" SET _ferretdb_sjson = ? WHERE rowid = ?`, doc, rowid)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s has no row %d", collection, rowid)
	}
}

// TestWALNotCheckpointed reads files as a crash leaves them: the last writes only in the
// write-ahead log beside the database file.
func TestWALNotCheckpointed(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cl, _, _ := startFerret(t, dir)
	c := cl.Database(database).Collection("users")
	for i := range 5 {
		if _, err := c.InsertOne(ctx, bson.D{{Key: "_id", Value: bson.NewObjectID()}, {Key: "name", Value: "n"}, {Key: "i", Value: int32(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	crashed := copyDir(t, dir) // while FerretDB runs: as kill -9 would leave them
	if fi, err := os.Stat(filepath.Join(crashed, database+".sqlite-wal")); err != nil || fi.Size() == 0 {
		t.Fatalf("no write-ahead log to read (%v): nothing is tested", err)
	}
	before := fileSums(t, crashed)
	var n int
	if err := Export(ctx, crashed, database, store.Exporter{User: func(*eventide.User) error { n++; return nil }}); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Fatalf("%d users read, 5 written", n)
	}
	after := fileSums(t, crashed)
	for _, f := range []string{database + ".sqlite", database + ".sqlite-wal"} {
		if before[f] != after[f] {
			t.Errorf("%s changed", f)
		}
	}
}

// TestMissingDatabase: no database file at all is nothing to import; other databases without
// the store's is an error naming them.
func TestMissingDatabase(t *testing.T) {
	ctx := context.Background()
	empty := t.TempDir()
	var got records
	if err := Export(ctx, empty, database, got.exporter()); err != nil || len(got.Users) != 0 {
		t.Fatalf("empty dir: %v, %+v", err, got)
	}
	dir := t.TempDir()
	cl, _, stop := startFerret(t, dir)
	if _, err := cl.Database("other").Collection("users").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	stop()
	err := Export(ctx, dir, database, got.exporter())
	if err == nil || !strings.Contains(err.Error(), `no database "eventide" (MONGO_DATABASE)`) || !strings.Contains(err.Error(), "only other") {
		t.Fatalf("got %v", err)
	}
}
