package e2e

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The attendee's and the organizer's journeys through HTTP and websockets: a user's own list, an
// event's list for its organizer, waitlist positions, removal, an event's cancellation, and
// myRegistrations.

const (
	registerMut = `mutation($id: ID!){ registerForEvent(eventId: $id){ id status waitlistPosition } }`
	cancelMut   = `mutation($id: ID!){ cancelRegistration(eventId: $id){ id status } }`
	myRegsQuery = `query($s: RegistrationStatus, $u: Boolean, $first: Int, $after: String){ me { registrations(status: $s, upcoming: $u, first: $first, after: $after){
		totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status waitlistPosition cancelReason updatedAt event { id title } } } } } }`
	eventRegsQuery = `query($id: ID!, $s: RegistrationStatus, $first: Int, $after: String){ event(id: $id){ registrations(status: $s, first: $first, after: $after){
		totalCount pageInfo { hasNextPage endCursor } edges { node { id status waitlistPosition cancelReason createdAt updatedAt user { id } } } } } }`
)

type regNode struct {
	ID               string
	Status           string
	WaitlistPosition *int
	CancelReason     *string
	UpdatedAt        string
	Event            struct{ ID, Title string }
	User             struct{ ID string }
}

type regConn struct {
	TotalCount int
	PageInfo   struct {
		HasNextPage bool
		EndCursor   string
	}
	Edges []struct{ Node regNode }
}

// myRegistrationTitles pages through the viewer's registrations, per at a time.
func (ts *testServer) myRegistrationTitles(s session, vars map[string]any, per int) (titles []string, total int) {
	ts.t.Helper()
	after := any(nil)
	for range 50 {
		v := map[string]any{"first": per, "after": after}
		for k, x := range vars {
			v[k] = x
		}
		var out struct {
			Me struct{ Registrations regConn }
		}
		ts.mustData(s.Token, myRegsQuery, v, &out)
		c := out.Me.Registrations
		for _, e := range c.Edges {
			titles = append(titles, e.Node.Event.Title+":"+e.Node.Status)
		}
		if !c.PageInfo.HasNextPage {
			return titles, c.TotalCount
		}
		after = c.PageInfo.EndCursor
	}
	ts.t.Fatal("no end of pages")
	return nil, 0
}

func (ts *testServer) eventRegistrations(s session, id string, status any) regConn {
	ts.t.Helper()
	var out struct {
		Event struct{ Registrations regConn }
	}
	ts.mustData(s.Token, eventRegsQuery, map[string]any{"id": id, "s": status, "first": 50}, &out)
	return out.Event.Registrations
}

func TestAttendeeJourney(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Journey Org")
	ann, bob := ts.signUp("Ann"), ts.signUp("Bob")
	later := ts.publishedEvent(org, "Later", 5, 72*time.Hour)
	soon := ts.publishedEvent(org, "Soon", 1, 24*time.Hour)
	full := ts.publishedEvent(org, "Middle", 1, 48*time.Hour)
	dropped := ts.publishedEvent(org, "Dropped", 5, 96*time.Hour)
	ts.mustData(bob.Token, registerMut, map[string]any{"id": full}, nil)
	for _, id := range []string{later, soon, full, dropped} {
		ts.mustData(ann.Token, registerMut, map[string]any{"id": id}, nil)
	}
	ts.mustData(ann.Token, cancelMut, map[string]any{"id": dropped}, nil)

	want := []string{"Soon:CONFIRMED", "Middle:WAITLISTED", "Later:CONFIRMED", "Dropped:CANCELLED"}
	for _, per := range []int{1, 3, 20} {
		got, total := ts.myRegistrationTitles(ann, nil, per)
		if !slices.Equal(got, want) || total != 4 {
			t.Fatalf("per %d: %v (total %d), want %v", per, got, total, want)
		}
	}
	if got, total := ts.myRegistrationTitles(ann, map[string]any{"s": "WAITLISTED", "u": true}, 5); !slices.Equal(got, []string{"Middle:WAITLISTED"}) || total != 1 {
		t.Fatalf("waitlisted upcoming: %v %d", got, total)
	}
	if got, _ := ts.myRegistrationTitles(ann, map[string]any{"u": false}, 5); len(got) != 0 {
		t.Fatalf("past: %v", got)
	}
	// The waitlisted one has its place; the others have none.
	var out struct {
		Me struct{ Registrations regConn }
	}
	ts.mustData(ann.Token, myRegsQuery, map[string]any{"first": 10}, &out)
	for _, e := range out.Me.Registrations.Edges {
		if (e.Node.Status == "WAITLISTED") != (e.Node.WaitlistPosition != nil) || (e.Node.WaitlistPosition != nil && *e.Node.WaitlistPosition != 1) {
			t.Fatalf("%s %s: position %v", e.Node.Event.Title, e.Node.Status, e.Node.WaitlistPosition)
		}
	}

	t.Run("ErrForbidden", func(t *testing.T) {
		q := `query($u: ID!){ user(id: $u){ registrations { totalCount } } }`
		ts.mustCode("FORBIDDEN", bob.Token, q, map[string]any{"u": ann.ID})
		ts.mustCode("FORBIDDEN", org.Token, q, map[string]any{"u": ann.ID})
		ts.mustCode("UNAUTHENTICATED", "", q, map[string]any{"u": ann.ID})
		var got struct {
			User struct{ Registrations struct{ TotalCount int } }
		}
		ts.mustData(ts.admin().Token, q, map[string]any{"u": ann.ID}, &got)
		if got.User.Registrations.TotalCount != 4 {
			t.Fatalf("admin sees %d", got.User.Registrations.TotalCount)
		}
		ts.mustCode("BAD_USER_INPUT", ann.Token, myRegsQuery, map[string]any{"after": "junk"})
	})
}

func TestOrganizerJourney(t *testing.T) {
	ts := startServer(t, nil)
	org, other := ts.organizer("Host"), ts.organizer("Other Host")
	id := ts.publishedEvent(org, "Workshop", 2, 24*time.Hour)
	us := make([]session, 5)
	for i := range us {
		us[i] = ts.signUp(fmt.Sprintf("Guest %d", i))
		ts.mustData(us[i].Token, registerMut, map[string]any{"id": id}, nil)
	}
	ts.mustData(us[4].Token, cancelMut, map[string]any{"id": id}, nil)
	c := ts.eventRegistrations(org, id, nil)
	var got []string
	for _, e := range c.Edges {
		pos := 0
		if e.Node.WaitlistPosition != nil {
			pos = *e.Node.WaitlistPosition
		}
		got = append(got, fmt.Sprintf("%s:%d", e.Node.Status, pos))
		if e.Node.UpdatedAt == "" {
			t.Fatal("no updatedAt")
		}
	}
	if want := []string{"CONFIRMED:0", "CONFIRMED:0", "WAITLISTED:1", "WAITLISTED:2", "CANCELLED:0"}; !slices.Equal(got, want) || c.TotalCount != 5 {
		t.Fatalf("organizer sees %v (total %d), want %v", got, c.TotalCount, want)
	}
	t.Run("ErrForbidden", func(t *testing.T) {
		ts.mustCode("FORBIDDEN", other.Token, eventRegsQuery, map[string]any{"id": id})
		ts.mustCode("FORBIDDEN", us[0].Token, eventRegsQuery, map[string]any{"id": id})
		ts.mustCode("UNAUTHENTICATED", "", eventRegsQuery, map[string]any{"id": id})
		ts.mustCode("FORBIDDEN", other.Token, `mutation($r: ID!){ removeRegistration(id: $r){ id } }`, map[string]any{"r": c.Edges[0].Node.ID})
		ts.mustCode("FORBIDDEN", us[1].Token, `mutation($r: ID!){ removeRegistration(id: $r){ id } }`, map[string]any{"r": c.Edges[0].Node.ID})
		ts.mustCode("NOT_FOUND", org.Token, `mutation($r: ID!){ removeRegistration(id: $r){ id } }`, map[string]any{"r": "0123456789abcdef01234567"})
	})
	// What the caches hold before the removal (the viewer's registration, an anonymous
	// response) must not outlive it.
	evq := `query($id: ID!){ event(id: $id){ attendeeCount waitlistCount viewerRegistration { status waitlistPosition } } }`
	anonq := `query($id: ID!){ event(id: $id){ attendeeCount waitlistCount } }`
	anon := func() string {
		var a struct {
			Event struct{ AttendeeCount, WaitlistCount int }
		}
		ts.mustData("", anonq, map[string]any{"id": id}, &a)
		return fmt.Sprintf("%d/%d", a.Event.AttendeeCount, a.Event.WaitlistCount)
	}
	for range 2 {
		if got := anon(); got != "2/2" {
			t.Fatalf("anonymous counts %s before the removal", got)
		}
	}
	var pre struct {
		Event struct{ ViewerRegistration struct{ Status string } }
	}
	ts.mustData(us[2].Token, evq, map[string]any{"id": id}, &pre)
	if pre.Event.ViewerRegistration.Status != "WAITLISTED" {
		t.Fatalf("us2 before: %+v", pre)
	}
	// Removing a confirmed guest promotes the first in line; the removed one sees the reason.
	var rm struct {
		RemoveRegistration struct {
			Status       string
			CancelReason string
		}
	}
	ts.mustData(org.Token, `mutation($r: ID!){ removeRegistration(id: $r, reason: "double booking"){ status cancelReason } }`,
		map[string]any{"r": c.Edges[0].Node.ID}, &rm)
	if rm.RemoveRegistration.Status != "CANCELLED" || rm.RemoveRegistration.CancelReason != "double booking" {
		t.Fatalf("removed: %+v", rm)
	}
	var ev struct {
		Event struct {
			AttendeeCount, WaitlistCount int
			ViewerRegistration           struct {
				Status           string
				WaitlistPosition *int
			}
		}
	}
	if got := anon(); got != "2/1" {
		t.Fatalf("anonymous counts %s right after the removal, want 2/1", got)
	}
	ts.mustData(us[2].Token, evq, map[string]any{"id": id}, &ev)
	if ev.Event.ViewerRegistration.Status != "CONFIRMED" || ev.Event.AttendeeCount != 2 || ev.Event.WaitlistCount != 1 {
		t.Fatalf("after the removal: %+v", ev)
	}
	ts.mustData(us[3].Token, evq, map[string]any{"id": id}, &ev)
	if p := ev.Event.ViewerRegistration.WaitlistPosition; p == nil || *p != 1 {
		t.Fatalf("us3 position %v, want 1", p)
	}
	// Cancelling the event cancels every registration with its reason; counts agree.
	ts.mustData(org.Token, `mutation($id: ID!){ cancelEvent(id: $id, reason: "speaker ill"){ id } }`, map[string]any{"id": id}, nil)
	c = ts.eventRegistrations(org, id, nil)
	withReason := 0
	for _, e := range c.Edges {
		if e.Node.Status != "CANCELLED" {
			t.Fatalf("after cancelEvent: %+v", e.Node)
		}
		if e.Node.CancelReason != nil && *e.Node.CancelReason == "speaker ill" {
			withReason++
		}
	}
	if withReason != 3 { // the three still registered; the removed and the one who left keep theirs
		t.Fatalf("%d registrations carry the event's reason, want 3", withReason)
	}
	if got := anon(); got != "0/0" {
		t.Fatalf("anonymous counts %s right after the cancellation, want 0/0", got)
	}
	ts.mustData(us[2].Token, evq, map[string]any{"id": id}, &ev)
	if ev.Event.AttendeeCount != 0 || ev.Event.WaitlistCount != 0 || ev.Event.ViewerRegistration.Status != "CANCELLED" {
		t.Fatalf("a cancelled event says %+v", ev)
	}
	if n := ts.eventRegistrations(org, id, "CANCELLED").TotalCount; n != 5 {
		t.Fatalf("%d cancelled, want 5", n)
	}
}

// TestWaitlistPositionsUnderRacingCancellations: ten wait behind one seat; five people ahead
// cancel at once; those left are numbered 1..n in arrival order with no gap or repeat.
func TestWaitlistPositionsUnderRacingCancellations(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Race Org")
	id := ts.publishedEvent(org, "Tiny", 1, 24*time.Hour)
	us := make([]session, 11)
	for i := range us {
		us[i] = ts.signUp(fmt.Sprintf("Racer %d", i))
		ts.mustData(us[i].Token, registerMut, map[string]any{"id": id}, nil)
	}
	var wg sync.WaitGroup
	for _, i := range []int{0, 2, 4, 5, 7} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := ts.do(us[i].Token, cancelMut, map[string]any{"id": id})
			if len(r.Errors) > 0 {
				t.Errorf("cancel %d: %+v", i, r.Errors)
			}
		}()
	}
	wg.Wait()
	c := ts.eventRegistrations(org, id, "WAITLISTED")
	var order []string
	for i, e := range c.Edges {
		if e.Node.WaitlistPosition == nil || *e.Node.WaitlistPosition != i+1 {
			t.Fatalf("waitlisted #%d has position %v", i+1, e.Node.WaitlistPosition)
		}
		order = append(order, e.Node.User.ID)
	}
	// us[0] left with the seat: us[1] got it; us[3], 6, 8, 9, 10 wait in that order.
	want := []string{us[3].ID, us[6].ID, us[8].ID, us[9].ID, us[10].ID}
	if !slices.Equal(order, want) {
		t.Fatalf("waitlist %v, want %v", order, want)
	}
	var ev struct {
		Event struct{ ViewerRegistration struct{ Status string } }
	}
	ts.mustData(us[1].Token, `query($id: ID!){ event(id: $id){ viewerRegistration { status } } }`, map[string]any{"id": id}, &ev)
	if ev.Event.ViewerRegistration.Status != "CONFIRMED" {
		t.Fatalf("the first in line is %s", ev.Event.ViewerRegistration.Status)
	}
}

// nextRegistration reads the next myRegistrations payload from c.
func nextRegistration(t *testing.T, c *wsClient) regNode {
	t.Helper()
	m := c.next()
	if m["type"] != "next" && m["type"] != "data" {
		t.Fatalf("got %v", m)
	}
	b, _ := json.Marshal(m["payload"])
	var p struct {
		Data   struct{ MyRegistrations regNode }
		Errors []gqlError
	}
	if err := json.Unmarshal(b, &p); err != nil || len(p.Errors) > 0 {
		t.Fatalf("payload %s: %v", b, err)
	}
	return p.Data.MyRegistrations
}

const myRegsSub = `subscription { myRegistrations { id status waitlistPosition cancelReason user { id } event { id } } }`

// TestMyRegistrations: the viewer hears of their registrations as they change — waitlisted,
// promoted when someone ahead leaves, cancelled with the event — and of nobody else's, on both
// websocket subprotocols.
func TestMyRegistrations(t *testing.T) {
	ts := startServer(t, nil)
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(proto, func(t *testing.T) {
			ts := ts.in(t)
			org := ts.organizer("Sub Org " + proto)
			first, me := ts.signUp("First"), ts.signUp("Me")
			id := ts.publishedEvent(org, "Sub "+proto, 1, 24*time.Hour)
			c := ts.dialWS(proto, map[string]any{"Authorization": "Bearer " + me.Token})
			start := "subscribe"
			if proto == "graphql-ws" {
				start = "start"
			}
			c.send(map[string]any{"id": "1", "type": start, "payload": map[string]any{"query": myRegsSub}})
			// The subscription starts asynchronously: someone else's registration is not ours,
			// so wait for ours by registering until the first message arrives.
			ts.mustData(first.Token, registerMut, map[string]any{"id": id}, nil)
			time.Sleep(200 * time.Millisecond)
			ts.mustData(me.Token, registerMut, map[string]any{"id": id}, nil)
			r := nextRegistration(t, c)
			if r.Status != "WAITLISTED" || r.User.ID != me.ID || r.WaitlistPosition == nil || *r.WaitlistPosition != 1 {
				t.Fatalf("first message %+v, want my WAITLISTED at 1", r)
			}
			ts.mustData(first.Token, cancelMut, map[string]any{"id": id}, nil)
			if r = nextRegistration(t, c); r.Status != "CONFIRMED" || r.User.ID != me.ID || r.WaitlistPosition != nil {
				t.Fatalf("after the one ahead left: %+v, want my promotion", r)
			}
			ts.mustData(org.Token, `mutation($id: ID!){ cancelEvent(id: $id, reason: "rain"){ id } }`, map[string]any{"id": id}, nil)
			if r = nextRegistration(t, c); r.Status != "CANCELLED" || r.CancelReason == nil || *r.CancelReason != "rain" || r.Event.ID != id {
				t.Fatalf("after the event was cancelled: %+v", r)
			}
		})
	}
}

// TestMyRegistrationsAcrossReplicas: a promotion made on replica a reaches the subscriber on
// replica b over Redis.
func TestMyRegistrationsAcrossReplicas(t *testing.T) {
	a, b := startReplicas(t, nil)
	org := a.organizer("Replica Org")
	first, me := a.signUp("Replica First"), a.signUp("Replica Me")
	id := a.publishedEvent(org, "Across", 1, 24*time.Hour)
	a.mustData(first.Token, registerMut, map[string]any{"id": id}, nil)
	a.mustData(me.Token, registerMut, map[string]any{"id": id}, nil)
	c := b.dialWS("graphql-transport-ws", map[string]any{"Authorization": "Bearer " + me.Token})
	c.subscribe("1", myRegsSub, nil)
	time.Sleep(300 * time.Millisecond) // the subscription starts asynchronously
	a.mustData(first.Token, cancelMut, map[string]any{"id": id}, nil)
	if r := nextRegistration(t, c); r.Status != "CONFIRMED" || r.User.ID != me.ID {
		t.Fatalf("on replica b: %+v, want my promotion", r)
	}
}

// TestMyRegistrationsEndsAtExpiry: the subscription belongs to the session: an expired token
// closes the socket with 4403.
func TestMyRegistrationsEndsAtExpiry(t *testing.T) {
	cfg := testConfig(t)
	cfg.JWTTTL = 3 * time.Second
	ts := startServer(t, cfg)
	me := ts.signUp("Expiring")
	c := ts.dialWS("graphql-transport-ws", map[string]any{"Authorization": "Bearer " + me.Token})
	c.subscribe("1", myRegsSub, nil)
	if code, reason := closeStatus(t, c.conn); code != 4403 {
		t.Fatalf("closed with %d %q, want 4403", code, reason)
	}
	anon := ts.dialWS("graphql-transport-ws", map[string]any{})
	anon.subscribe("1", myRegsSub, nil)
	if b, _ := json.Marshal(anon.next()); !strings.Contains(string(b), "UNAUTHENTICATED") {
		t.Fatalf("anonymous myRegistrations: %s", b)
	}
}
