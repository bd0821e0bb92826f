package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/store/sqlite"
)

// A small -seed-scale: the data directory opens the way the server opens it, and holds exactly
// what was asked for, in the mix the doc comment promises.
func TestSeedScale(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, []string{"-seed-scale", "events=200,registrations=2000,users=300", "-data-dir", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "300 users, 200 events (180 published") || !strings.Contains(stdout.String(), "2000 registrations") {
		t.Errorf("summary: %s", stdout.String())
	}

	path := filepath.Join(dir, "eventide.db")
	st, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := st.CountUsers(ctx); err != nil || n != 300 {
		t.Errorf("users %d, %v", n, err)
	}
	now := time.Now()
	upcoming, err := st.CountEvents(ctx, eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventPublished}, EndsAfter: &now})
	if err != nil || upcoming < 150 || upcoming >= 180 { // published less the tenth that ended
		t.Errorf("upcoming published events %d, %v", upcoming, err)
	}
	lisbon, err := st.CountEvents(ctx, eventide.EventQuery{Statuses: []eventide.EventStatus{eventide.EventPublished}, EndsAfter: &now, City: "lisbon"})
	if err != nil || lisbon == 0 || lisbon*5 > upcoming {
		t.Errorf("upcoming in Lisbon %d of %d, %v", lisbon, upcoming, err)
	}
	_ = st.Close(ctx)

	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []struct {
		query string
		want  int
	}{
		{`SELECT count(*) FROM events`, 200},
		{`SELECT count(*) FROM events WHERE status = 'DRAFT'`, 10},
		{`SELECT count(*) FROM events WHERE status = 'CANCELLED'`, 10},
		{`SELECT count(*) FROM registrations`, 2000},
		{`SELECT count(DISTINCT city) FROM events`, 10},
		{`SELECT count(*) FROM venues`, 10},
		{`SELECT count(*) FROM events e JOIN venues v ON v.id = e.venue_id AND v.city_key = e.city_key`, 200}, // each at a venue of its city
		{`SELECT count(DISTINCT tag) FROM event_tags`, 20},
		// Registrations only on published events, 11 or 12 each (2000 over 180), the counters
		// agreeing with the rows, at most 10 confirmed (the default capacity).
		{`SELECT count(*) FROM registrations r JOIN events e ON e.id = r.event_id WHERE e.status != 'PUBLISHED'`, 0},
		{`SELECT count(*) FROM (SELECT event_id, count(*) n FROM registrations GROUP BY event_id) WHERE n NOT IN (11, 12)`, 0},
		{`SELECT count(*) FROM events e WHERE confirmed != (SELECT count(*) FROM registrations WHERE event_id = e.id AND status = 'CONFIRMED')
			OR waitlisted != (SELECT count(*) FROM registrations WHERE event_id = e.id AND status = 'WAITLISTED')`, 0},
		{`SELECT count(*) FROM events WHERE status = 'PUBLISHED' AND confirmed != 10`, 0},
	} {
		var got int
		if err := db.QueryRowContext(ctx, c.query).Scan(&got); err != nil || got != c.want {
			t.Errorf("%s: %d (%v), want %d", c.query, got, err, c.want)
		}
	}

	// A second seed into the same directory is refused, and leaves it as it was.
	err = run(ctx, []string{"-seed-scale", "events=10", "-data-dir", dir, "-quiet"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "already holds 300 users") {
		t.Errorf("second seed: %v", err)
	}
	var users int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&users); err != nil || users != 300 {
		t.Errorf("users after the refused seed: %d, %v", users, err)
	}
}

func TestSeedScaleOptions(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-seed-scale", "events=10"}, "needs -data-dir"},
		{[]string{"-data-dir", "x"}, "goes with -seed-scale"},
		{[]string{"-seed-scale", "events=0", "-data-dir", "x"}, "events=N"},
		{[]string{"-seed-scale", "registrations=10", "-data-dir", "x"}, "events=N"},
		{[]string{"-seed-scale", "events=10,rooms=3", "-data-dir", "x"}, "rooms=3"},
		{[]string{"-seed-scale", "events=-1", "-data-dir", "x"}, "whole number"},
		{[]string{"-seed-scale", "events=10,users=0", "-data-dir", "x"}, "users and capacity"},
		{[]string{"-seed-scale", "events=2000000", "-data-dir", "x"}, "from 0 to 1000000"},
		{[]string{"-scenario", "login", "-cold"}, "-cold goes with"},
	} {
		_, err := parseOptions(c.args, &bytes.Buffer{})
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want usage error with %q", c.args, err, c.want)
		}
	}
	o, err := parseOptions([]string{"-seed-scale", "events=100_000", "-data-dir", "d"}, &bytes.Buffer{})
	if err != nil || *o.seedScale != (scaleSpec{events: 100000, registrations: 1000000, users: 100000, capacity: 10}) {
		t.Errorf("defaults: %+v, %v", o, err)
	}
}

// event-detail-cold purges before every request and asks, as the admin, for the attendees of
// listed events other than the load-test ones; -total-count puts totalCount on the page.
func TestRunColdDetailAndTotalCount(t *testing.T) {
	f := newFake(t)
	rep, _, err := runTool(t, "-url", f.url(), "-scenario", "event-detail", "-cold", "-warmup", "0s", "-duration", "300ms", "-workers", "1")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Scenario != scEventDetailCold || rep.Run.Errors != 0 || rep.Run.Requests == 0 {
		t.Fatalf("%s: %+v", rep.Scenario, rep.Run)
	}
	details := f.count("EventAttendees")
	if f.count("Purge") != details || details == 0 {
		t.Errorf("server: %d purges for %d detail pages", f.count("Purge"), details)
	}
	if demo := f.count("EventAttendees demo-1") + f.count("EventAttendees demo-2"); demo != details {
		t.Errorf("%d of %d detail pages were of the non-load events demo-1 and demo-2", demo, details)
	}

	if _, _, err := runTool(t, "-url", f.url(), "-warmup", "0s", "-duration", "200ms", "-workers", "1", "-total-count"); err != nil {
		t.Fatal(err)
	}
	if n, pages := f.count("EventsPage totalCount"), f.count("EventsPage"); n == 0 || n != pages {
		t.Errorf("%d of %d pages asked for totalCount", n, pages)
	}
}
