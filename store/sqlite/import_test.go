package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

// legacy is what an earlier store held: one organizer, two attendees and a late one, a venue,
// and an event of capacity 2 whose counters had drifted (it says 3 confirmed, 0 waitlisted)
// with a registration waitlisted beside a free seat (one of the confirmed ones was cancelled).
type legacy struct {
	users  []*eventide.User
	venue  *eventide.Venue
	event  *eventide.Event
	regs   []*eventide.Registration
	hashes [][]byte
}

func newLegacy() *legacy {
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	l := &legacy{}
	for i, name := range []string{"Org", "Ann", "Bob", "Cy"} {
		role := eventide.RoleUser
		if i == 0 {
			role = eventide.RoleOrganizer
		}
		hash := []byte(fmt.Sprintf("$2a$04$hash-of-%s", name))
		l.hashes = append(l.hashes, hash)
		l.users = append(l.users, &eventide.User{ID: fmt.Sprintf("65e1a0000000000000000a%02d", i), Name: name,
			Email: fmt.Sprintf("%s@Example.com", name), Role: role, PasswordHash: hash,
			CreatedAt: at.Add(time.Duration(i) * time.Minute), UpdatedAt: at.Add(time.Hour)})
	}
	capacity := 100
	l.venue = &eventide.Venue{ID: "65e1a00000000000000000b1", Name: "Hall", Address: "Main St", City: "Lisbon",
		Capacity: &capacity, CreatedByID: l.users[0].ID, CreatedAt: at}
	l.event = &eventide.Event{ID: "65e1a00000000000000000c1", Title: "Old talk", Description: "kept",
		StartsAt: time.Now().Add(48 * time.Hour).Truncate(time.Millisecond).UTC(), EndsAt: time.Now().Add(50 * time.Hour).Truncate(time.Millisecond).UTC(),
		Status: eventide.EventPublished, Capacity: 2, Tags: []string{"go", "db"}, VenueID: l.venue.ID, City: "Lisbon",
		OrganizerID: l.users[0].ID, ConfirmedCount: 3, WaitlistCount: 0, CreatedAt: at, UpdatedAt: at.Add(time.Minute)}
	statuses := []eventide.RegistrationStatus{eventide.RegistrationConfirmed, eventide.RegistrationCancelled, eventide.RegistrationWaitlisted}
	for i, st := range statuses {
		l.regs = append(l.regs, &eventide.Registration{ID: fmt.Sprintf("65e1a0000000000000000d%02d", i), EventID: l.event.ID,
			UserID: l.users[i+1].ID, Status: st, CreatedAt: at.Add(time.Duration(i+1) * time.Second), UpdatedAt: at.Add(time.Hour)})
	}
	return l
}

func (l *legacy) fill(im *Importer) error {
	for _, u := range l.users {
		if err := im.User(u); err != nil {
			return err
		}
	}
	if err := im.Venue(l.venue); err != nil {
		return err
	}
	if err := im.Event(l.event); err != nil {
		return err
	}
	for _, r := range l.regs {
		if err := im.Registration(r); err != nil {
			return err
		}
	}
	return nil
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	st := openTest(t)
	l := newLegacy()
	n, err := st.Import(ctx, "ferretdb:/old", l.fill)
	if err != nil {
		t.Fatal(err)
	}
	want := ImportCounts{Users: 4, Venues: 1, Events: 1, Registrations: 3, Recounted: 1, Promoted: 1}
	if n != want {
		t.Fatalf("counts %+v, want %+v", n, want)
	}
	t.Run("UsersKeepIdsHashesRolesTimes", func(t *testing.T) {
		for i, want := range l.users {
			u, err := st.UserByEmail(ctx, want.Email)
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != want.ID || !bytes.Equal(u.PasswordHash, l.hashes[i]) || u.Role != want.Role ||
				!u.CreatedAt.Equal(want.CreatedAt) || !u.UpdatedAt.Equal(want.UpdatedAt) || u.Email != eventide.NormalizeEmail(want.Email) {
				t.Fatalf("user %+v, want %+v", u, want)
			}
		}
	})
	t.Run("EventCountsRecomputedAndSeatFilled", func(t *testing.T) {
		ev, err := st.EventByID(ctx, l.event.ID)
		if err != nil {
			t.Fatal(err)
		}
		if ev.ConfirmedCount != 2 || ev.WaitlistCount != 0 || ev.Title != l.event.Title || ev.VenueID != l.venue.ID ||
			!ev.StartsAt.Equal(l.event.StartsAt) || !ev.CreatedAt.Equal(l.event.CreatedAt) {
			t.Fatalf("event %+v", ev)
		}
		att, err := st.Attendees(ctx, ev.ID, eventide.Page{First: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(att.Items) != 2 || att.Items[0].UserID != l.users[1].ID || att.Items[1].UserID != l.users[3].ID {
			t.Fatalf("attendees %+v", att.Items)
		}
		now := time.Now()
		tagged, err := st.CountEvents(ctx, eventide.EventQuery{Tag: "db", Statuses: []eventide.EventStatus{eventide.EventPublished}, EndsAfter: &now})
		if err != nil || tagged != 1 {
			t.Fatalf("tag filter counts %d (%v)", tagged, err)
		}
	})
	t.Run("RecordedOnce", func(t *testing.T) {
		if src, err := st.Imported(ctx); err != nil || src != "ferretdb:/old" {
			t.Fatalf("imported %q (%v)", src, err)
		}
		if _, err := st.Import(ctx, "again", l.fill); !errors.Is(err, ErrNotEmpty) {
			t.Fatalf("second import: %v, want ErrNotEmpty", err)
		}
	})
}

// TestImportFailureLeavesNothing fails the import at each of its writes in turn: every time, the
// database is left empty, with no import recorded, and a later import succeeds.
func TestImportFailureLeavesNothing(t *testing.T) {
	ctx := context.Background()
	f := &faulty{Store: openTest(t)}
	l := newLegacy()
	for after := 0; ; after++ {
		f.FailWritesAfter(after)
		_, err := f.Import(ctx, "old", l.fill)
		f.Heal()
		if err == nil {
			if after < 10 {
				t.Fatalf("import succeeded with a failure after %d writes", after)
			}
			break
		}
		if empty, err := f.Empty(ctx); err != nil || !empty {
			t.Fatalf("after a failure at write %d the database is not empty (%v)", after, err)
		}
		if src, _ := f.Imported(ctx); src != "" {
			t.Fatalf("after a failure at write %d an import is recorded: %q", after, src)
		}
	}
	if ev, err := f.EventByID(ctx, l.event.ID); err != nil || ev.ConfirmedCount != 2 {
		t.Fatalf("after the import that succeeded: %+v %v", ev, err)
	}
}

// TestImportRefusesData: a database with data is not imported into.
func TestImportRefusesData(t *testing.T) {
	ctx := context.Background()
	st := openTest(t)
	if err := st.CreateUser(ctx, &eventide.User{Name: "New", Email: "new@example.com", Role: eventide.RoleUser}); err != nil {
		t.Fatal(err)
	}
	if empty, _ := st.Empty(ctx); empty {
		t.Fatal("Empty with a user")
	}
	if _, err := st.Import(ctx, "old", newLegacy().fill); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("import into a store with data: %v", err)
	}
}
