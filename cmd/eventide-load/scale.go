package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/eventide/server/store/sqlite"
)

// scaleSpec is -seed-scale: the sizes of the synthetic data set written into -data-dir.
type scaleSpec struct {
	events, registrations, users, capacity int
}

// scaleKeys are -seed-scale's keys; the most any of them may ask for.
var scaleKeys = map[string]int{"events": 1_000_000, "registrations": 10_000_000, "users": 1_000_000, "capacity": 100_000}

// parseScale reads "events=N,registrations=M,users=U[,capacity=C]". Registrations default to
// ten per event, users to the number of events, capacity (seats per event) to 10.
func parseScale(s string) (scaleSpec, error) {
	sp := scaleSpec{events: -1, registrations: -1, users: -1, capacity: 10}
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		limit, known := scaleKeys[k]
		if !ok || !known {
			return sp, fmt.Errorf("%q is not key=count with key one of events, registrations, users, capacity", part)
		}
		n, err := strconv.Atoi(strings.ReplaceAll(v, "_", ""))
		if err != nil || n < 0 || n > limit {
			return sp, fmt.Errorf("%s: %q must be a whole number from 0 to %d", k, v, limit)
		}
		switch k {
		case "events":
			sp.events = n
		case "registrations":
			sp.registrations = n
		case "users":
			sp.users = n
		case "capacity":
			sp.capacity = n
		}
	}
	if sp.events < 1 {
		return sp, errors.New("events=N (N >= 1) is required")
	}
	if sp.registrations < 0 {
		sp.registrations = 10 * sp.events
	}
	if sp.users < 0 {
		sp.users = sp.events
	}
	if sp.users < 1 || sp.capacity < 1 {
		return sp, errors.New("users and capacity must be >= 1")
	}
	return sp, nil
}

// scaleDBFile is the embedded store's file under DATA_DIR: the server's sqlitePath (internal/server).
const scaleDBFile = "eventide.db"

// scaleCounts is what a seeded data directory holds, counted with SQL after seeding.
type scaleCounts struct {
	Users, Events, Published, Upcoming, Registrations int
	Bytes                                             int64
}

// seedScale writes sp's synthetic data set straight through the embedded store into
// dir/eventide.db (no server running), the way the server opens it, and prints what it holds.
// It refuses a store that already has users: seeding twice would mix two data sets. The admin
// comes from the server's ADMIN_EMAIL/ADMIN_PASSWORD at its start; the load users and events
// the scenarios sign in as and register for come from a later -seed against the server.
func seedScale(ctx context.Context, sp scaleSpec, dir string, out, log io.Writer) (scaleCounts, error) {
	path := filepath.Join(dir, scaleDBFile)
	began := time.Now()
	st, err := sqlite.Open(ctx, sqlite.Options{Path: path})
	if err != nil {
		return scaleCounts{}, fmt.Errorf("opening %s: %w", path, err)
	}
	defer st.Close(context.Background())
	n, err := st.CountUsers(ctx)
	if err != nil {
		return scaleCounts{}, err
	}
	if n > 0 {
		return scaleCounts{}, fmt.Errorf("%s already holds %d users: seed an empty -data-dir", path, n)
	}
	fmt.Fprintf(log, "eventide-load: seeding %s: %d events, %d registrations, %d users, %d seats each\n",
		path, sp.events, sp.registrations, sp.users, sp.capacity)
	if _, _, err := st.Seed(ctx, sqlite.SeedOptions{Events: sp.events, Registrations: sp.registrations,
		Users: sp.users, Capacity: sp.capacity}); err != nil {
		return scaleCounts{}, fmt.Errorf("seeding %s: %w", path, err)
	}
	seeded := time.Since(began)
	if err := st.Close(ctx); err != nil {
		return scaleCounts{}, err
	}
	c, err := countScale(ctx, path)
	if err != nil {
		return c, err
	}
	fmt.Fprintf(out, "seeded %s in %v: %d users, %d events (%d published, %d published and upcoming), %d registrations; %.1f MiB on disk\n",
		path, seeded.Round(time.Millisecond), c.Users, c.Events, c.Published, c.Upcoming, c.Registrations, float64(c.Bytes)/(1<<20))
	return c, nil
}

// countScale reopens the store file read-only (through the same driver) and counts its rows.
func countScale(ctx context.Context, path string) (scaleCounts, error) {
	var c scaleCounts
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return c, err
	}
	defer db.Close()
	now := time.Now().UnixMilli()
	for _, q := range []struct {
		dst   *int
		query string
		args  []any
	}{
		{&c.Users, `SELECT count(*) FROM users`, nil},
		{&c.Events, `SELECT count(*) FROM events`, nil},
		{&c.Published, `SELECT count(*) FROM events WHERE status = 'PUBLISHED'`, nil},
		{&c.Upcoming, `SELECT count(*) FROM events WHERE status = 'PUBLISHED' AND ends_at > ?`, []any{now}},
		{&c.Registrations, `SELECT count(*) FROM registrations`, nil},
	} {
		if err := db.QueryRowContext(ctx, q.query, q.args...).Scan(q.dst); err != nil {
			return c, fmt.Errorf("counting %s: %w", path, err)
		}
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			c.Bytes += fi.Size()
		}
	}
	return c, nil
}
