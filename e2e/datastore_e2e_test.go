package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	mongoopts "go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventide/server/auth"
	"github.com/eventide/server/config"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/store"
	"github.com/eventide/server/store/embedded"
)

// oldDataDir is a DATA_DIR as an earlier version left it: FerretDB's files in DATA_DIR/embedded,
// written through the MongoDB store as that version's server did.
type oldDataDir struct {
	dir                  string
	org                  *eventide.User
	fans                 []*eventide.User // fans[i] signed in with password "old-password-i"
	venue                *eventide.Venue
	event, draft, second *eventide.Event
}

func writeOldDataDir(t *testing.T, cfg *config.Config) *oldDataDir {
	t.Helper()
	ctx := context.Background()
	o := &oldDataDir{dir: cfg.DataDir}
	fdb, err := embedded.Start(ctx, embedded.Options{Dir: filepath.Join(o.dir, "embedded")})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fdb.Close(ctx) }()
	st, err := store.Open(ctx, store.Options{URI: fdb.URI(), Database: cfg.MongoDatabase, PoolSize: 4,
		ConnectTimeout: 10 * time.Second, ServerSelectionTimeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close(ctx) }()
	hasher, err := auth.New(4, "old-secret-old-secret-old-secret!", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	user := func(name string, role eventide.Role, password string) *eventide.User {
		hash, err := hasher.Hash(password)
		if err != nil {
			t.Fatal(err)
		}
		u := &eventide.User{Name: name, Email: strings.ToLower(name) + "@old.example.com", Role: role, PasswordHash: hash}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	o.org = user("Olga", eventide.RoleOrganizer, "old-organizer-password")
	for i := range 5 {
		o.fans = append(o.fans, user(fmt.Sprintf("Fan%d", i), eventide.RoleUser, fmt.Sprintf("old-password-%d", i)))
	}
	capacity := 80
	o.venue = &eventide.Venue{Name: "Old Hall", Address: "1 Old St", City: "Porto", Capacity: &capacity, CreatedByID: o.org.ID}
	if err := st.CreateVenue(ctx, o.venue); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(72 * time.Hour).UTC()
	event := func(title string, status eventide.EventStatus, capacity int) *eventide.Event {
		e := &eventide.Event{Title: title, Description: "written by the old version", StartsAt: start, EndsAt: start.Add(2 * time.Hour),
			Status: status, Capacity: capacity, Tags: []string{"legacy"}, VenueID: o.venue.ID, City: o.venue.City, OrganizerID: o.org.ID}
		if err := st.CreateEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	o.event = event("Old meetup", eventide.EventPublished, 2)
	o.second = event("Old workshop", eventide.EventPublished, 10)
	o.draft = event("Old draft", eventide.EventDraft, 5)
	at := time.Now()
	step := func() time.Time { at = at.Add(time.Millisecond * 10); return at }
	// Fan0, Fan1 confirmed; Fan2, Fan3 waitlisted; Fan1 cancels: Fan2 is promoted; Fan4 waits
	// behind Fan3.
	for _, i := range []int{0, 1, 2, 3} {
		if _, _, err := st.Register(ctx, o.event.ID, o.fans[i].ID, step()); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.CancelRegistration(ctx, o.event.ID, o.fans[1].ID, step()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Register(ctx, o.event.ID, o.fans[4].ID, step()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Register(ctx, o.second.ID, o.fans[0].ID, step()); err != nil {
		t.Fatal(err)
	}
	// The second event's counter drifted, as a crash between two steps left it in the old store.
	cl, err := mongo.Connect(mongoopts.Client().ApplyURI(fdb.URI()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cl.Disconnect(ctx) }()
	oid, _ := bson.ObjectIDFromHex(o.second.ID)
	if _, err := cl.Database(cfg.MongoDatabase).Collection("events").UpdateOne(ctx, bson.D{{Key: "_id", Value: oid}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "confirmed", Value: 4}}}}); err != nil {
		t.Fatal(err)
	}
	return o
}

type eventCounts struct {
	Event struct {
		Title         string
		Status        string
		AttendeeCount int
		WaitlistCount int
		Venue         *struct{ ID, Name, City string }
		Attendees     struct {
			Edges []struct{ Node struct{ ID string } }
		}
		ViewerRegistration *struct{ Status string }
	}
}

func (ts *testServer) eventCounts(token, id string) eventCounts {
	ts.t.Helper()
	var out eventCounts
	ts.mustData(token, `query($id: ID!){ event(id: $id){ title status attendeeCount waitlistCount venue { id name city }
		attendees(first: 100){ edges { node { id } } } viewerRegistration { status } } }`, map[string]any{"id": id}, &out)
	return out
}

// TestImportEarlierEmbeddedStore starts the server on a DATA_DIR an earlier version wrote with
// its FerretDB store: every record is found through the API (logins with the old passwords, the
// old ids, every registration status, the waitlist order, counts agreeing with the
// registrations, a drifted one corrected), one log line says what was imported, the old files
// are kept aside, and a second start imports nothing.
func TestImportEarlierEmbeddedStore(t *testing.T) {
	cfg := testConfig(t)
	old := writeOldDataDir(t, cfg)
	ts := startServer(t, cfg)

	t.Run("LogLineWithCounts", func(t *testing.T) {
		logs := ts.logs.String()
		if !strings.Contains(logs, "imported the earlier version's embedded store") ||
			!strings.Contains(logs, "users=6 venues=1 events=3 registrations=6") ||
			!strings.Contains(logs, "counts_corrected=1") {
			t.Fatalf("no import line with the counts in:\n%s", logs)
		}
	})
	t.Run("OldDirectoryKeptAside", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(old.dir, "embedded")); !os.IsNotExist(err) {
			t.Fatalf("DATA_DIR/embedded still there: %v", err)
		}
		aside, _ := filepath.Glob(filepath.Join(old.dir, "embedded.imported-*"))
		if len(aside) != 1 {
			t.Fatalf("moved aside: %v", aside)
		}
		if files, _ := os.ReadDir(aside[0]); len(files) == 0 {
			t.Fatalf("%s is empty", aside[0])
		}
	})
	fans := make([]session, len(old.fans))
	t.Run("LoginsWithOldPasswordsAndIds", func(t *testing.T) {
		for i, u := range old.fans {
			fans[i] = ts.mustLogin(nil, u.Email, fmt.Sprintf("old-password-%d", i))
			if fans[i].ID != u.ID {
				t.Fatalf("%s logs in as %s, was %s", u.Email, fans[i].ID, u.ID)
			}
		}
		org := ts.mustLogin(nil, old.org.Email, "old-organizer-password")
		var me struct{ Me struct{ ID, Role string } }
		ts.mustData(org.Token, `{ me { id role } }`, nil, &me)
		if me.Me.ID != old.org.ID || me.Me.Role != "ORGANIZER" {
			t.Fatalf("organizer is %+v", me.Me)
		}
		if r := ts.do("", `mutation{ login(email: "fan0@old.example.com", password: "wrong"){ token } }`, nil); len(r.Errors) == 0 {
			t.Fatal("a wrong password logs in")
		}
		draft := ts.eventCounts(org.Token, old.draft.ID)
		if draft.Event.Title != "Old draft" || draft.Event.Status != "DRAFT" {
			t.Fatalf("draft: %+v", draft.Event)
		}
	})
	t.Run("RegistrationsCountsAndWaitlist", func(t *testing.T) {
		ev := ts.eventCounts(fans[0].Token, old.event.ID)
		if ev.Event.AttendeeCount != 2 || ev.Event.WaitlistCount != 2 || ev.Event.Venue == nil || ev.Event.Venue.ID != old.venue.ID ||
			ev.Event.Venue.City != "Porto" || len(ev.Event.Attendees.Edges) != 2 {
			t.Fatalf("event: %+v", ev.Event)
		}
		want := map[int]string{0: "CONFIRMED", 1: "CANCELLED", 2: "CONFIRMED", 3: "WAITLISTED", 4: "WAITLISTED"}
		for i, st := range want {
			if got := ts.eventCounts(fans[i].Token, old.event.ID).Event.ViewerRegistration; got == nil || got.Status != st {
				t.Fatalf("fan %d: %+v, want %s", i, got, st)
			}
		}
		second := ts.eventCounts(fans[0].Token, old.second.ID)
		if second.Event.AttendeeCount != 1 || len(second.Event.Attendees.Edges) != 1 {
			t.Fatalf("drifted event: attendeeCount %d, %d listed", second.Event.AttendeeCount, len(second.Event.Attendees.Edges))
		}
		// Waitlist order kept: a cancellation promotes Fan3 (waiting since before Fan4).
		ts.mustData(fans[0].Token, `mutation($id: ID!){ cancelRegistration(eventId: $id){ status } }`, map[string]any{"id": old.event.ID}, nil)
		if got := ts.eventCounts(fans[3].Token, old.event.ID).Event.ViewerRegistration; got == nil || got.Status != "CONFIRMED" {
			t.Fatalf("fan 3 after a seat freed: %+v", got)
		}
		if got := ts.eventCounts(fans[4].Token, old.event.ID).Event.ViewerRegistration; got == nil || got.Status != "WAITLISTED" {
			t.Fatalf("fan 4 after a seat freed: %+v", got)
		}
		var list struct {
			Events struct{ TotalCount int }
		}
		ts.mustData("", `{ events(filter: {tag: "legacy"}){ totalCount } }`, nil, &list)
		if list.Events.TotalCount != 2 {
			t.Fatalf("published legacy events: %d", list.Events.TotalCount)
		}
	})
	t.Run("SecondStartImportsNothing", func(t *testing.T) {
		ts.stop()
		ts2 := startServer(t, cfg)
		if strings.Contains(ts2.logs.String(), "imported") {
			t.Fatalf("second start imported again:\n%s", ts2.logs.String())
		}
		fan := ts2.mustLogin(nil, old.fans[4].Email, "old-password-4")
		if got := ts2.eventCounts(fan.Token, old.event.ID).Event; got.AttendeeCount != 2 || got.WaitlistCount != 1 {
			t.Fatalf("after restart: %+v", got)
		}
	})
}
