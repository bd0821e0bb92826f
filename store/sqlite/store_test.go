package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

// TestReopen opens a store twice on one file: the migrations are applied once, recorded, and the
// data is still there.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "eventide.db")
	st, err := Open(ctx, Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	u := &eventide.User{Name: "Ann", Email: "ann@example.com", Role: eventide.RoleUser}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(ctx); err != nil {
		t.Fatal(err)
	}
	st, err = Open(ctx, Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	if v, err := st.SchemaVersion(ctx); err != nil || v != len(migrations) {
		t.Fatalf("schema version %d (%v), want %d", v, err, len(migrations))
	}
	var applied, userVersion int
	if err := st.r.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil || applied != len(migrations) {
		t.Fatalf("%d migrations recorded (%v), want %d", applied, err, len(migrations))
	}
	if err := st.r.QueryRow(`PRAGMA user_version`).Scan(&userVersion); err != nil || userVersion != len(migrations) {
		t.Fatalf("user_version %d (%v)", userVersion, err)
	}
	if got, err := st.UserByEmail(ctx, "ANN@example.com"); err != nil || got.ID != u.ID {
		t.Fatalf("after reopening: %+v %v", got, err)
	}
	var mode string
	if err := st.r.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q (%v), want wal", mode, err)
	}
}

// TestFullDisk fills the file to its limit (PRAGMA max_page_count on the writer, as a full disk
// would): a registration is SERVICE_UNAVAILABLE and changes nothing, reads go on, and once space
// is back the same registration succeeds, without reopening the store.
func TestFullDisk(t *testing.T) {
	ctx := context.Background()
	st := openTest(t)
	now := time.Now()
	org := &eventide.User{Name: "Org", Email: "org@example.com", Role: eventide.RoleOrganizer}
	if err := st.CreateUser(ctx, org); err != nil {
		t.Fatal(err)
	}
	e := &eventide.Event{Title: "E", Status: eventide.EventPublished, Capacity: 1000, OrganizerID: org.ID,
		StartsAt: now.Add(time.Hour), EndsAt: now.Add(2 * time.Hour)}
	if err := st.CreateEvent(ctx, e); err != nil {
		t.Fatal(err)
	}
	var pages int
	if err := st.w.QueryRow(`PRAGMA page_count`).Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := st.w.Exec(`PRAGMA max_page_count = ` + strconv.Itoa(pages)); err != nil {
		t.Fatal(err)
	}
	// Register until a write needs a new page.
	var full error
	registered := 0
	for i := range 5000 {
		uid := "ffffffff" + hex16(uint64(i))
		if _, _, err := st.Register(ctx, e.ID, uid, now); err != nil {
			full = err
			break
		}
		registered++
	}
	if full == nil {
		t.Fatal("5000 registrations fit in a full file")
	}
	if got := eventide.ErrorCode(full); got != eventide.CodeUnavailable {
		t.Fatalf("a full file is %q (%v), want SERVICE_UNAVAILABLE", got, full)
	}
	ev, err := st.EventByID(ctx, e.ID)
	if err != nil {
		t.Fatalf("reads while full: %v", err)
	}
	if ev.ConfirmedCount != registered {
		t.Fatalf("the event counts %d, %d registrations succeeded", ev.ConfirmedCount, registered)
	}
	// The readiness probe says so while its own write fails too (here by the fault hook: under
	// max_page_count its one-row write would still fit).
	fail := func() error { return errors.New("the probe's write fails") }
	st.fault.Store(&fail)
	if err := st.DiskFull(ctx); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("DiskFull after a full write = %v, want ErrDiskFull", err)
	}
	st.fault.Store(nil)
	if _, err := st.w.Exec(`PRAGMA max_page_count = 1073741823`); err != nil {
		t.Fatal(err)
	}
	if err := st.DiskFull(ctx); err != nil {
		t.Fatalf("DiskFull once a write fits again = %v", err)
	}
	if err := st.DiskFull(ctx); err != nil {
		t.Fatalf("DiskFull again = %v", err)
	}
	_, ev, err = st.Register(ctx, e.ID, "ffffffff"+hex16(uint64(registered)), now)
	if err != nil {
		t.Fatalf("after space came back: %v", err)
	}
	if ev.ConfirmedCount != registered+1 {
		t.Fatalf("after space came back the event counts %d, want %d", ev.ConfirmedCount, registered+1)
	}
}

func hex16(n uint64) string { return fmt.Sprintf("%016x", n) }
