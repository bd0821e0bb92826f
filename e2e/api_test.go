package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

func TestAuth(t *testing.T) {
	ts := startServer(t, nil)

	t.Run("SignUpAndMe", func(t *testing.T) {
		s := ts.signUp("Ada Lovelace")
		var out struct {
			Me struct{ ID, Name, Email, Role string }
		}
		ts.mustData(s.Token, `{ me { id name email role } }`, nil, &out)
		if out.Me.ID != s.ID || out.Me.Name != "Ada Lovelace" || out.Me.Role != "USER" || !strings.Contains(out.Me.Email, "@example.com") {
			t.Fatalf("me = %+v", out.Me)
		}
	})
	t.Run("AnonymousMeIsNull", func(t *testing.T) {
		r := ts.do("", `{ me { id } }`, nil)
		if string(r.Data) != `{"me":null}` || len(r.Errors) > 0 {
			t.Fatalf("data %s errors %+v", r.Data, r.Errors)
		}
	})
	t.Run("ErrEmailTakenCaseInsensitive", func(t *testing.T) {
		q := `mutation($i: SignUpInput!){ signUp(input: $i){ token } }`
		in := map[string]any{"email": "Case.Test@Example.com", "password": "password-123", "name": "A"}
		ts.mustData("", q, map[string]any{"i": in}, nil)
		in["email"] = "case.test@EXAMPLE.COM"
		r := ts.mustCode("BAD_USER_INPUT", "", q, map[string]any{"i": in})
		if r.Errors[0].Extensions["field"] != "email" {
			t.Fatalf("field = %v", r.Errors[0].Extensions["field"])
		}
	})
	t.Run("ErrBadSignUpInput", func(t *testing.T) {
		q := `mutation($i: SignUpInput!){ signUp(input: $i){ token } }`
		for field, in := range map[string]map[string]any{
			"email":    {"email": "not-an-email", "password": "password-123", "name": "A"},
			"password": {"email": "short@example.com", "password": "short", "name": "A"},
			"name":     {"email": "noname@example.com", "password": "password-123", "name": "  "},
		} {
			r := ts.mustCode("BAD_USER_INPUT", "", q, map[string]any{"i": in})
			if r.Errors[0].Extensions["field"] != field {
				t.Fatalf("%s: field = %v", field, r.Errors[0].Extensions["field"])
			}
		}
	})
	t.Run("LoginWrongPasswordAndUnknownEmailAlike", func(t *testing.T) {
		q := `mutation($e: String!, $p: String!){ login(email: $e, password: $p){ token } }`
		wrong := ts.mustCode("UNAUTHENTICATED", "", q, map[string]any{"e": testAdminEmail, "p": "wrong-password"})
		unknown := ts.mustCode("UNAUTHENTICATED", "", q, map[string]any{"e": "nobody@example.com", "p": "wrong-password"})
		if wrong.Errors[0].Message != unknown.Errors[0].Message {
			t.Fatalf("messages differ: %q vs %q", wrong.Errors[0].Message, unknown.Errors[0].Message)
		}
	})
	t.Run("LoginCaseInsensitive", func(t *testing.T) {
		ts.mustData("", `mutation{ login(email: "ADMIN@test.local", password: "admin-password"){ token user { role } } }`, nil, nil)
	})
	t.Run("ErrInvalidToken", func(t *testing.T) {
		r := ts.mustCode("UNAUTHENTICATED", "garbage.token.here", `{ me { id } }`, nil)
		if r.Status != http.StatusUnauthorized {
			t.Fatalf("status = %d", r.Status)
		}
	})
	t.Run("RoleChangeTakesEffectOnNextRequest", func(t *testing.T) {
		s := ts.signUp("Promoted")
		ts.mustCode("FORBIDDEN", s.Token, `mutation{ createVenue(input:{name:"x", address:"y", city:"z"}){ id } }`, nil)
		ts.mustData(ts.admin().Token, `mutation($u: ID!){ setUserRole(userId: $u, role: ORGANIZER){ role } }`, map[string]any{"u": s.ID}, nil)
		// Same token, new role.
		ts.mustData(s.Token, `mutation{ createVenue(input:{name:"x", address:"y", city:"z"}){ id } }`, nil, nil)
	})
}

func TestRoles(t *testing.T) {
	ts := startServer(t, nil)
	user := ts.signUp("Plain User")
	org := ts.organizer("Org")
	createVenue := `mutation{ createVenue(input:{name:"Hall", address:"Main St 1", city:"Lisbon", capacity: 100}){ id } }`

	t.Run("ErrAnonymousMutation", func(t *testing.T) {
		ts.mustCode("UNAUTHENTICATED", "", createVenue, nil)
		ts.mustCode("UNAUTHENTICATED", "", `mutation{ registerForEvent(eventId: "000000000000000000000000"){ id } }`, nil)
	})
	t.Run("ErrUserCannotOrganize", func(t *testing.T) {
		ts.mustCode("FORBIDDEN", user.Token, createVenue, nil)
		ts.mustCode("FORBIDDEN", user.Token, `mutation{ createEvent(input:{title:"t", startsAt:"2030-01-01T10:00:00Z", endsAt:"2030-01-01T12:00:00Z", capacity: 5}){ id } }`, nil)
	})
	t.Run("ErrOnlyAdminsSetRoles", func(t *testing.T) {
		ts.mustCode("FORBIDDEN", org.Token, `mutation($u: ID!){ setUserRole(userId: $u, role: ADMIN){ id } }`, map[string]any{"u": org.ID})
	})
	t.Run("ErrOtherOrganizersEvent", func(t *testing.T) {
		other := ts.organizer("Other Org")
		id := ts.publishedEvent(org, "Mine", 10, 24*time.Hour)
		ts.mustCode("FORBIDDEN", other.Token, `mutation($id: ID!){ cancelEvent(id: $id, reason: "no"){ id } }`, map[string]any{"id": id})
		ts.mustCode("FORBIDDEN", other.Token, `mutation($id: ID!){ updateEvent(id: $id, input: {title: "x"}){ id } }`, map[string]any{"id": id})
		// An admin may.
		ts.mustData(ts.admin().Token, `mutation($id: ID!){ updateEvent(id: $id, input: {title: "Renamed"}){ title } }`, map[string]any{"id": id}, nil)
	})
	t.Run("EmailVisibleToSelfAndAdminOnly", func(t *testing.T) {
		q := `query($id: ID!){ user(id: $id){ email } }`
		var out struct{ User struct{ Email *string } }
		ts.mustData(org.Token, q, map[string]any{"id": user.ID}, &out)
		if out.User.Email != nil {
			t.Fatalf("another user sees email %q", *out.User.Email)
		}
		ts.mustData(user.Token, q, map[string]any{"id": user.ID}, &out)
		if out.User.Email == nil {
			t.Fatal("user does not see own email")
		}
		out.User.Email = nil
		ts.mustData(ts.admin().Token, q, map[string]any{"id": user.ID}, &out)
		if out.User.Email == nil {
			t.Fatal("admin does not see email")
		}
	})
}

func TestEventsDomain(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Organizer")
	user := ts.signUp("Attendee")

	var venue struct{ CreateVenue struct{ ID, City string } }
	ts.mustData(org.Token, `mutation{ createVenue(input:{name:"Small Room", address:"Rua 1", city:"Porto", capacity: 20}){ id city } }`, nil, &venue)
	venueID := venue.CreateVenue.ID

	start := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	createQ := `mutation($i: CreateEventInput!){ createEvent(input: $i){ id status title capacity tags venue { id city } organizer { id } attendeeCount waitlistCount } }`
	input := func(over map[string]any) map[string]any {
		in := map[string]any{
			"title": "Go Meetup", "description": "Talks", "startsAt": start.Format(time.RFC3339),
			"endsAt": start.Add(3 * time.Hour).Format(time.RFC3339), "capacity": 15, "tags": []string{"Tech", "go", "tech"}, "venueId": venueID,
		}
		for k, v := range over {
			in[k] = v
		}
		return map[string]any{"i": in}
	}

	var created struct {
		CreateEvent struct {
			ID, Status, Title string
			Capacity          int
			Tags              []string
			Venue             struct{ ID, City string }
			Organizer         struct{ ID string }
			AttendeeCount     int
			WaitlistCount     int
		}
	}
	t.Run("CreateEventIsDraft", func(t *testing.T) {
		ts.mustData(org.Token, createQ, input(nil), &created)
		e := created.CreateEvent
		if e.Status != "DRAFT" || e.Venue.City != "Porto" || e.Organizer.ID != org.ID || e.Capacity != 15 {
			t.Fatalf("created %+v", e)
		}
		if strings.Join(e.Tags, ",") != "tech,go" {
			t.Fatalf("tags = %v, want normalised and de-duplicated", e.Tags)
		}
	})
	eventID := created.CreateEvent.ID

	t.Run("ErrCreateEventValidation", func(t *testing.T) {
		for field, over := range map[string]map[string]any{
			"capacity": {"capacity": 21}, // over the venue's 20
			"endsAt":   {"endsAt": start.Add(-time.Hour).Format(time.RFC3339)},
			"title":    {"title": " "},
			"venueId":  {"venueId": "5f0000000000000000000000"},
		} {
			r := ts.mustCode("BAD_USER_INPUT", org.Token, createQ, input(over))
			if r.Errors[0].Extensions["field"] != field {
				t.Errorf("%s: field = %v (%s)", field, r.Errors[0].Extensions["field"], r.Errors[0].Message)
			}
		}
		ts.mustCode("BAD_USER_INPUT", org.Token, createQ, input(map[string]any{"capacity": 0}))
		ts.mustCode("BAD_USER_INPUT", org.Token, createQ, input(map[string]any{"startsAt": "tomorrow"}))
	})
	t.Run("DraftHiddenFromOthers", func(t *testing.T) {
		q := `query($id: ID!){ event(id: $id){ id status } }`
		ts.mustCode("NOT_FOUND", user.Token, q, map[string]any{"id": eventID})
		ts.mustCode("NOT_FOUND", "", q, map[string]any{"id": eventID})
		ts.mustData(org.Token, q, map[string]any{"id": eventID}, nil)
		ts.mustData(ts.admin().Token, q, map[string]any{"id": eventID}, nil)
		ts.mustCode("NOT_FOUND", user.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": eventID})
		// Drafts do not leak through lists either.
		var list struct{ Events struct{ TotalCount int } }
		ts.mustData(user.Token, `{ events(filter: {status: DRAFT}){ totalCount } }`, nil, &list)
		if list.Events.TotalCount != 0 {
			t.Fatalf("user sees %d drafts", list.Events.TotalCount)
		}
		ts.mustData(org.Token, `{ events(filter: {status: DRAFT}){ totalCount } }`, nil, &list)
		if list.Events.TotalCount != 1 {
			t.Fatalf("organizer sees %d own drafts, want 1", list.Events.TotalCount)
		}
		var orgs struct {
			User struct{ OrganizedEvents struct{ TotalCount int } }
		}
		ts.mustData(user.Token, `query($u: ID!){ user(id: $u){ organizedEvents { totalCount } } }`, map[string]any{"u": org.ID}, &orgs)
		if orgs.User.OrganizedEvents.TotalCount != 0 {
			t.Fatalf("organizedEvents shows drafts to others: %d", orgs.User.OrganizedEvents.TotalCount)
		}
	})
	t.Run("PublishUpdateAndQuery", func(t *testing.T) {
		ts.mustData(org.Token, `mutation($id: ID!){ publishEvent(id: $id){ status } }`, map[string]any{"id": eventID}, nil)
		var upd struct {
			UpdateEvent struct{ Title, Description string }
		}
		ts.mustData(org.Token, `mutation($id: ID!){ updateEvent(id: $id, input: {title: "Go Meetup #2"}){ title description } }`, map[string]any{"id": eventID}, &upd)
		if upd.UpdateEvent.Title != "Go Meetup #2" || upd.UpdateEvent.Description != "Talks" {
			t.Fatalf("update = %+v", upd.UpdateEvent)
		}
		var got struct {
			Event struct {
				ID, Title string
				Venue     struct{ Name string }
			}
			Venue  struct{ Events struct{ TotalCount int } }
			Venues struct {
				TotalCount int
				Edges      []struct{ Node struct{ ID string } }
			}
		}
		ts.mustData("", `query($id: ID!, $v: ID!){ event(id: $id){ id title venue { name } } venue(id: $v){ events { totalCount } } venues(city: "porto"){ totalCount edges { node { id } } } }`,
			map[string]any{"id": eventID, "v": venueID}, &got)
		if got.Event.Title != "Go Meetup #2" || got.Event.Venue.Name != "Small Room" || got.Venue.Events.TotalCount != 1 || got.Venues.TotalCount != 1 {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("Filters", func(t *testing.T) {
		count := func(filter string) int {
			var out struct{ Events struct{ TotalCount int } }
			ts.mustData("", `{ events(filter: `+filter+`){ totalCount } }`, nil, &out)
			return out.Events.TotalCount
		}
		for filter, want := range map[string]int{
			`{city: "PORTO"}`:                 1,
			`{city: "Nowhere"}`:               0,
			`{tag: "TECH"}`:                   1,
			`{search: "meetup #2"}`:           1,
			`{search: "(.*"}`:                 0, // a regex metacharacter is literal text
			`{venueId: "` + venueID + `"}`:    1,
			`{organizerId: "` + org.ID + `"}`: 1,
			`{from: "2000-01-01T00:00:00Z", to: "2001-01-01T00:00:00Z"}`: 0,
		} {
			if got := count(filter); got != want {
				t.Errorf("filter %s: %d events, want %d", filter, got, want)
			}
		}
	})
	t.Run("RegisterIdempotentAndViewerRegistration", func(t *testing.T) {
		q := `mutation($id: ID!){ registerForEvent(eventId: $id){ id status event { id attendeeCount } user { id } } }`
		var a, b struct {
			RegisterForEvent struct {
				ID, Status string
				Event      struct{ AttendeeCount int }
				User       struct{ ID string }
			}
		}
		ts.mustData(user.Token, q, map[string]any{"id": eventID}, &a)
		ts.mustData(user.Token, q, map[string]any{"id": eventID}, &b)
		if a.RegisterForEvent.ID != b.RegisterForEvent.ID || a.RegisterForEvent.Status != "CONFIRMED" || b.RegisterForEvent.Event.AttendeeCount != 1 {
			t.Fatalf("register twice: %+v then %+v", a, b)
		}
		var vr struct {
			Event struct {
				ViewerRegistration *struct{ ID, Status string }
				Attendees          struct {
					TotalCount int
					Edges      []struct{ Node struct{ ID string } }
				}
			}
		}
		ts.mustData(user.Token, `query($id: ID!){ event(id: $id){ viewerRegistration { id status } attendees { totalCount edges { node { id } } } } }`, map[string]any{"id": eventID}, &vr)
		if vr.Event.ViewerRegistration == nil || vr.Event.ViewerRegistration.ID != a.RegisterForEvent.ID {
			t.Fatalf("viewerRegistration = %+v", vr.Event.ViewerRegistration)
		}
		if vr.Event.Attendees.TotalCount != 1 || vr.Event.Attendees.Edges[0].Node.ID != user.ID {
			t.Fatalf("attendees = %+v", vr.Event.Attendees)
		}
		var cancel struct{ CancelRegistration struct{ Status string } }
		ts.mustData(user.Token, `mutation($id: ID!){ cancelRegistration(eventId: $id){ status } }`, map[string]any{"id": eventID}, &cancel)
		if cancel.CancelRegistration.Status != "CANCELLED" {
			t.Fatalf("cancel = %+v", cancel)
		}
		ts.mustCode("NOT_FOUND", user.Token, `mutation($id: ID!){ cancelRegistration(eventId: $id){ status } }`, map[string]any{"id": eventID})
	})
	t.Run("ErrCancelledEventTakesNoRegistrations", func(t *testing.T) {
		id := ts.publishedEvent(org, "Doomed", 5, 24*time.Hour)
		var c struct {
			CancelEvent struct{ Status, CancelReason string }
		}
		ts.mustData(org.Token, `mutation($id: ID!){ cancelEvent(id: $id, reason: "rain"){ status cancelReason } }`, map[string]any{"id": id}, &c)
		if c.CancelEvent.Status != "CANCELLED" || c.CancelEvent.CancelReason != "rain" {
			t.Fatalf("cancel = %+v", c)
		}
		ts.mustCode("BAD_USER_INPUT", user.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": id})
	})
	t.Run("ErrPastEventTakesNoRegistrations", func(t *testing.T) {
		id := ts.publishedEvent(org, "Yesterday", 5, -48*time.Hour)
		ts.mustCode("BAD_USER_INPUT", user.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": id})
		// An ended event is not in the default list.
		var out struct {
			Events struct {
				Edges []struct{ Node struct{ ID string } }
			}
		}
		ts.mustData("", `{ events(first: 100){ edges { node { id } } } }`, nil, &out)
		for _, e := range out.Events.Edges {
			if e.Node.ID == id {
				t.Fatal("ended event listed")
			}
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for _, q := range []string{
			`{ event(id: "5f0000000000000000000000"){ id } }`,
			`{ event(id: "not-an-id"){ id } }`,
			`{ user(id: "5f0000000000000000000000"){ id } }`,
			`{ venue(id: "5f0000000000000000000000"){ id } }`,
		} {
			ts.mustCode("NOT_FOUND", "", q, nil)
		}
	})
	t.Run("ErrCapacityBelowConfirmed", func(t *testing.T) {
		id := ts.publishedEvent(org, "Tight", 3, 24*time.Hour)
		for _, n := range []string{"A", "B"} {
			s := ts.signUp(n)
			ts.mustData(s.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": id}, nil)
		}
		r := ts.mustCode("BAD_USER_INPUT", org.Token, `mutation($id: ID!){ updateEvent(id: $id, input: {capacity: 1}){ id } }`, map[string]any{"id": id})
		if r.Errors[0].Extensions["field"] != "capacity" {
			t.Fatalf("field = %v", r.Errors[0].Extensions["field"])
		}
	})
}

func TestHTTPSurface(t *testing.T) {
	ts := startServer(t, nil)
	post := func(body string, header map[string]string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	codeOf := func(res *http.Response) string {
		var body struct {
			Errors []struct{ Extensions map[string]any }
		}
		_ = json.NewDecoder(res.Body).Decode(&body)
		if len(body.Errors) == 0 {
			return ""
		}
		c, _ := body.Errors[0].Extensions["code"].(string)
		return c
	}

	t.Run("ErrMalformedJSON", func(t *testing.T) {
		res := post(`{"query": "{ me { id } }"`, nil)
		if res.StatusCode != 400 || codeOf(res) != "BAD_REQUEST" {
			t.Fatalf("status %d", res.StatusCode)
		}
	})
	t.Run("ErrNotAnObject", func(t *testing.T) {
		res := post(`[1,2]`, nil)
		if res.StatusCode != 400 || codeOf(res) != "BAD_REQUEST" {
			t.Fatalf("status %d", res.StatusCode)
		}
	})
	t.Run("ErrBodyTooLarge", func(t *testing.T) {
		big := `{"query": "{ me { id } }", "variables": {"x": "` + strings.Repeat("a", 1<<20) + `"}}`
		res := post(big, nil)
		if res.StatusCode != 413 || codeOf(res) != "PAYLOAD_TOO_LARGE" {
			t.Fatalf("status %d", res.StatusCode)
		}
	})
	t.Run("ErrParseAndValidation", func(t *testing.T) {
		ts.mustCode("GRAPHQL_PARSE_FAILED", "", `{ events {`, nil)
		ts.mustCode("GRAPHQL_VALIDATION_FAILED", "", `{ nosuchfield }`, nil)
	})
	t.Run("GETQueryAndNoGETMutation", func(t *testing.T) {
		res, err := http.Get(ts.base + "/graphql?query=" + "%7B%20me%20%7B%20id%20%7D%20%7D")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("GET query status %d", res.StatusCode)
		}
		res2, err := http.Get(ts.base + "/graphql?query=" + "mutation%7B%20login(email%3A%22a%22%2Cpassword%3A%22b%22)%7Btoken%7D%7D")
		if err != nil {
			t.Fatal(err)
		}
		defer res2.Body.Close()
		if res2.StatusCode == 200 && codeOf(res2) == "" {
			t.Fatal("mutation over GET was accepted")
		}
	})
	t.Run("HealthReadyMetrics", func(t *testing.T) {
		for path, want := range map[string]string{
			"/healthz": `"ok"`, "/readyz": `"store":{"status":"up","detail":"sqlite"}`, "/metrics": "eventide_cache_hits_total",
		} {
			res, err := http.Get(ts.base + path)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			_, _ = b.ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || !strings.Contains(b.String(), want) {
				t.Fatalf("%s: %d %s", path, res.StatusCode, b.String())
			}
		}
		res, _ := http.Get(ts.base + "/metrics")
		var b bytes.Buffer
		_, _ = b.ReadFrom(res.Body)
		res.Body.Close()
		for _, m := range []string{"go_goroutines", "process_resident_memory_bytes", "eventide_http_requests_total"} {
			if !strings.Contains(b.String(), m) {
				t.Errorf("/metrics lacks %s", m)
			}
		}
	})
	t.Run("RootRedirectsAndPlayground", func(t *testing.T) {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		res, err := c.Get(ts.base + "/")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/playground" {
			t.Fatalf("/ → %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		res, err = http.Get(ts.base + "/playground")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("/playground: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
		}
	})
	t.Run("ErrUnknownPath", func(t *testing.T) {
		res, err := http.Get(ts.base + "/nope")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 404 {
			t.Fatalf("status %d", res.StatusCode)
		}
	})
	t.Run("CORS", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, ts.base+"/graphql", nil)
		req.Header.Set("Origin", "http://app.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.Header.Get("Access-Control-Allow-Origin") == "" {
			t.Fatalf("no CORS headers: %v", res.Header)
		}
	})
	t.Run("RequestIDOnInternalErrors", func(t *testing.T) {
		res := post(`{"query": "{ me { id } }"}`, map[string]string{"X-Request-ID": "abc-123"})
		if res.Header.Get("X-Request-ID") != "abc-123" {
			t.Fatalf("request id = %q", res.Header.Get("X-Request-ID"))
		}
	})
}

// TestUsersSearch: admins find users by name or email, by role, a page at a time; nobody else
// may; hostile input is BAD_USER_INPUT.
func TestUsersSearch(t *testing.T) {
	ts := startServer(t, nil)
	admin := ts.admin()
	mk := func(name, email string) session {
		r := ts.gql(nil, "", "", `mutation($i: SignUpInput!){ signUp(input: $i){ token user { id } } }`,
			map[string]any{"i": map[string]any{"email": email, "password": "password-123", "name": name}})
		var out struct {
			SignUp struct {
				Token string
				User  struct{ ID string }
			}
		}
		if len(r.Errors) > 0 || json.Unmarshal(r.Data, &out) != nil {
			t.Fatalf("signUp %s: %s", email, r)
		}
		return session{Token: out.SignUp.Token, ID: out.SignUp.User.ID}
	}
	zoe := mk("Zoë Quarantotto", "zoe@example.com")
	mk("Quentin Blake", "qb@example.org")
	mk("Ann Example", "ann.quarry@example.com")
	ts.mustData(admin.Token, `mutation($u: ID!){ setUserRole(userId: $u, role: ORGANIZER){ id } }`, map[string]any{"u": zoe.ID}, nil)

	search := func(t *testing.T, vars map[string]any) usersPage {
		t.Helper()
		var p usersPage
		ts.in(t).mustData(admin.Token, usersQuery, vars, &p)
		return p
	}
	t.Run("ByNameCaseInsensitive", func(t *testing.T) {
		p := search(t, map[string]any{"s": "QUARANT"})
		if got := p.names(); len(got) != 1 || got[0] != "Zoë Quarantotto" || p.Users.TotalCount != 1 {
			t.Fatalf("search QUARANT: %v (total %d)", got, p.Users.TotalCount)
		}
		if e := p.Users.Edges[0].Node; e.Email == nil || *e.Email != "zoe@example.com" || e.Role != "ORGANIZER" {
			t.Fatalf("admin sees %+v", e)
		}
	})
	t.Run("ByNameOrEmail", func(t *testing.T) {
		p := search(t, map[string]any{"s": "quar"}) // Zoë's name, Ann's email
		if got := p.names(); len(got) != 2 || p.Users.TotalCount != 2 {
			t.Fatalf("search quar: %v", got)
		}
		if got := search(t, map[string]any{"s": "example.org"}).names(); len(got) != 1 || got[0] != "Quentin Blake" {
			t.Fatalf("search by email: %v", got)
		}
	})
	t.Run("ByRole", func(t *testing.T) {
		if got := search(t, map[string]any{"r": "ORGANIZER"}).names(); len(got) != 1 || got[0] != "Zoë Quarantotto" {
			t.Fatalf("ORGANIZERs: %v", got)
		}
		if got := search(t, map[string]any{"s": "quar", "r": "USER"}).names(); len(got) != 1 || got[0] != "Ann Example" {
			t.Fatalf("USERs matching quar: %v", got)
		}
		if got := search(t, map[string]any{"r": "ADMIN"}); len(got.Users.Edges) != 1 || got.Users.Edges[0].Node.ID != admin.ID {
			t.Fatalf("ADMINs: %v", got.names())
		}
	})
	t.Run("RegexCharactersAreLiteral", func(t *testing.T) {
		for _, s := range []string{".*", "(", "[a-z]", `\`} {
			if p := search(t, map[string]any{"s": s}); len(p.Users.Edges) != 0 || p.Users.TotalCount != 0 {
				t.Fatalf("search %q matched %v", s, p.names())
			}
		}
	})
	t.Run("Paginates", func(t *testing.T) {
		ctx := context.Background()
		for i := range 105 {
			u := &eventide.User{Name: fmt.Sprintf("Bulk %03d", i), Email: fmt.Sprintf("bulk%03d@example.net", i), Role: eventide.RoleUser}
			if err := ts.app.Store().CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		var p usersPage // a lean selection, so that 100 of them stay under QUERY_MAX_COMPLEXITY
		ts.in(t).mustData(admin.Token, `query($n: Int){ users(search: "bulk", first: $n){ edges { node { id } } pageInfo { hasNextPage } totalCount } }`,
			map[string]any{"n": 1000}, &p)
		if len(p.Users.Edges) != 100 || !p.Users.PageInfo.HasNextPage || p.Users.TotalCount != 105 {
			t.Fatalf("first: 1000 gave %d edges, hasNextPage %v, total %d; want 100, true, 105",
				len(p.Users.Edges), p.Users.PageInfo.HasNextPage, p.Users.TotalCount)
		}
		seen := map[string]bool{}
		after := any(nil)
		pages := 0
		for {
			p := search(t, map[string]any{"s": "bulk", "n": 40, "a": after})
			pages++
			for _, e := range p.Users.Edges {
				if seen[e.Node.ID] {
					t.Fatalf("page %d repeats %s", pages, e.Node.Name)
				}
				seen[e.Node.ID] = true
			}
			if !p.Users.PageInfo.HasNextPage {
				break
			}
			if p.Users.PageInfo.EndCursor == nil || pages > 5 {
				t.Fatalf("page %d: %+v", pages, p.Users.PageInfo)
			}
			after = *p.Users.PageInfo.EndCursor
		}
		if len(seen) != 105 || pages != 3 {
			t.Fatalf("%d users over %d pages, want 105 over 3", len(seen), pages)
		}
	})
	t.Run("ErrForbidden", func(t *testing.T) {
		ts := ts.in(t)
		ts.mustCode("FORBIDDEN", zoe.Token, usersQuery, map[string]any{"s": "a"})
		ts.mustCode("UNAUTHENTICATED", "", usersQuery, map[string]any{"s": "a"})
	})
	t.Run("ErrBadUserInput", func(t *testing.T) {
		ts := ts.in(t)
		for _, vars := range []map[string]any{
			{"s": "ann\x00"}, {"s": "a\x1bb"}, {"s": strings.Repeat("a", 101)},
			{"a": "not-a-cursor"}, {"n": -1},
		} {
			ts.mustCode("BAD_USER_INPUT", admin.Token, usersQuery, vars)
		}
	})
}
