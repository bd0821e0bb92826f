package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestMigrationZones: a database written before venues had zones (every migration before the
// one that adds them) gets its venues' zones from their known cities, UTC otherwise, and its
// events their venue's zone; online is off and revisions start at 0.
func TestMigrationZones(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "eventide.db")
	mine := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "calendar_secrets") })
	if mine < 0 {
		t.Fatal("no migration adds calendar_secrets")
	}
	all := migrations
	migrations = all[:mine]
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	err = migrate(ctx, db)
	migrations = all
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO venues (id, name, name_key, address, city, city_key, created_by, created_at) VALUES
			('aaaaaaaaaaaaaaaaaaaaaaa1', 'Hall', 'hall', 'A', 'Lisbon', 'lisbon', 'u', 0),
			('aaaaaaaaaaaaaaaaaaaaaaa2', 'Club', 'club', 'B', 'Vienna', 'vienna', 'u', 0),
			('aaaaaaaaaaaaaaaaaaaaaaa3', 'Barn', 'barn', 'C', 'Smallville', 'smallville', 'u', 0)`,
		`INSERT INTO events (id, title, description, starts_at, ends_at, status, capacity, venue_id, organizer_id, created_at, updated_at) VALUES
			('bbbbbbbbbbbbbbbbbbbbbbb1', 'A', '', 0, 1, 'PUBLISHED', 5, 'aaaaaaaaaaaaaaaaaaaaaaa2', 'u', 0, 0),
			('bbbbbbbbbbbbbbbbbbbbbbb2', 'B', '', 0, 1, 'PUBLISHED', 5, NULL, 'u', 0, 0)`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	st, err := Open(ctx, Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	for id, want := range map[string]string{"aaaaaaaaaaaaaaaaaaaaaaa1": "Europe/Lisbon", "aaaaaaaaaaaaaaaaaaaaaaa2": "Europe/Vienna", "aaaaaaaaaaaaaaaaaaaaaaa3": "UTC"} {
		v, err := st.VenueByID(ctx, id)
		if err != nil || v.TimeZone != want {
			t.Errorf("venue %s: %+v, %v; want zone %s", id, v, err, want)
		}
	}
	for id, want := range map[string]string{"bbbbbbbbbbbbbbbbbbbbbbb1": "Europe/Vienna", "bbbbbbbbbbbbbbbbbbbbbbb2": "UTC"} {
		e, err := st.EventByID(ctx, id)
		if err != nil || e.TimeZone != want || e.Online || e.OnlineURL != "" || e.Revision != 0 {
			t.Errorf("event %s: %+v, %v; want zone %s", id, e, err, want)
		}
	}
}
