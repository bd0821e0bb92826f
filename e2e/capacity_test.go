package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestCapacityExactUnderConcurrency races 40 registrations for 10 seats on the embedded store,
// where FerretDB's conditional updates are not atomic on their own.
func TestCapacityExactUnderConcurrency(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Org")
	users := make([]session, 40)
	for i := range users {
		users[i] = ts.signUp(fmt.Sprintf("Racer %d", i))
	}
	rounds := 3
	if testing.Short() {
		rounds = 1
	}
	for round := range rounds {
		id := ts.publishedEvent(org, fmt.Sprintf("Hot ticket %d", round), 10, 24*time.Hour)
		statuses := make([]string, len(users))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, u := range users {
			wg.Go(func() {
				<-start
				var out struct{ RegisterForEvent struct{ Status string } }
				ts.mustData(u.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": id}, &out)
				statuses[i] = out.RegisterForEvent.Status
			})
		}
		close(start)
		wg.Wait()

		confirmed, waitlisted := 0, 0
		for _, s := range statuses {
			switch s {
			case "CONFIRMED":
				confirmed++
			case "WAITLISTED":
				waitlisted++
			}
		}
		if confirmed != 10 || waitlisted != 30 {
			t.Fatalf("round %d: %d confirmed, %d waitlisted; want 10 and 30", round, confirmed, waitlisted)
		}
		counts := func() (int, int, int) {
			var ev struct {
				Event struct {
					AttendeeCount, WaitlistCount int
					Attendees                    struct{ TotalCount int }
				}
			}
			ts.mustData(org.Token, `query($id: ID!){ event(id: $id){ attendeeCount waitlistCount attendees(first: 100){ totalCount } } }`, map[string]any{"id": id}, &ev)
			return ev.Event.AttendeeCount, ev.Event.WaitlistCount, ev.Event.Attendees.TotalCount
		}
		if a, w, _ := counts(); a != 10 || w != 30 {
			t.Fatalf("round %d: counts %d/%d, want 10/30", round, a, w)
		}

		// Before the cancellation: who waits, and since when.
		type waiting struct {
			user      int
			createdAt string
		}
		viewerReg := func(i int) (status, createdAt string) {
			var out struct {
				Event struct {
					ViewerRegistration struct{ Status, CreatedAt string }
				}
			}
			ts.mustData(users[i].Token, `query($id: ID!){ event(id: $id){ viewerRegistration { status createdAt } } }`, map[string]any{"id": id}, &out)
			return out.Event.ViewerRegistration.Status, out.Event.ViewerRegistration.CreatedAt
		}
		oldest := waiting{user: -1}
		for i, s := range statuses {
			if s != "WAITLISTED" {
				continue
			}
			if _, at := viewerReg(i); oldest.user < 0 || at < oldest.createdAt {
				oldest = waiting{user: i, createdAt: at}
			}
		}
		// One confirmed attendee cancels.
		for i, s := range statuses {
			if s == "CONFIRMED" {
				ts.mustData(users[i].Token, `mutation($id: ID!){ cancelRegistration(eventId: $id){ status } }`, map[string]any{"id": id}, nil)
				break
			}
		}
		if a, w, _ := counts(); a != 10 || w != 29 {
			t.Fatalf("round %d: after one cancellation counts %d/%d, want 10/29", round, a, w)
		}
		promoted := 0
		for i, s := range statuses {
			if s != "WAITLISTED" {
				continue
			}
			if now, at := viewerReg(i); now == "CONFIRMED" {
				promoted++
				// Arrival times have millisecond precision; ties are broken by id in the store.
				if at != oldest.createdAt {
					t.Fatalf("round %d: user %d (arrived %s) was promoted, but user %d waited longest (%s)", round, i, at, oldest.user, oldest.createdAt)
				}
			}
		}
		if promoted != 1 {
			t.Fatalf("round %d: %d waitlisted registrations promoted, want 1", round, promoted)
		}
	}
}

// TestRegisterTwiceRacing checks that one user racing themself gets one registration.
func TestRegisterTwiceRacing(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Org")
	u := ts.signUp("Double")
	id := ts.publishedEvent(org, "Once", 5, 24*time.Hour)
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			var out struct{ RegisterForEvent struct{ ID string } }
			ts.mustData(u.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": id}, &out)
			ids[i] = out.RegisterForEvent.ID
		})
	}
	wg.Wait()
	for _, got := range ids[1:] {
		if got != ids[0] {
			t.Fatalf("registration ids differ: %v", ids)
		}
	}
	var ev struct{ Event struct{ AttendeeCount int } }
	ts.mustData(org.Token, `query($id: ID!){ event(id: $id){ attendeeCount } }`, map[string]any{"id": id}, &ev)
	if ev.Event.AttendeeCount != 1 {
		t.Fatalf("attendeeCount = %d, want 1", ev.Event.AttendeeCount)
	}
}
