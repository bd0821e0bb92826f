package e2e

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// End-to-end proof that the costly steps are charged as such (issue 11, findings 3 and 5):
// password hashing (one signUp or login per document, a sign-up budget, a taken email refused
// before hashing) and the store work of connections and counts in the complexity check. Hashes
// are counted, not timed: the server's auth counts every bcrypt run (app.auth.Hashes).

// aliased is a mutation document of n aliased copies of field, each given by body(i).
func aliased(n int, body func(i int) string) string {
	var b strings.Builder
	b.WriteString("mutation {")
	for i := range n {
		fmt.Fprintf(&b, " a%d: %s", i, body(i))
	}
	return b.String() + " }"
}

func signUpField(email string) string {
	return fmt.Sprintf(`signUp(input: {email: %q, password: "password-123", name: "Someone"}) { token }`, email)
}

// hashesDuring is how many bcrypt runs the server made while fn ran.
func (ts *testServer) hashesDuring(fn func()) uint64 {
	before := ts.app.Auth().Hashes()
	fn()
	return ts.app.Auth().Hashes() - before
}

// errorsByAlias maps each error's top-level response name to its code.
func errorsByAlias(t *testing.T, r *httpRes) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range r.Errors {
		if len(e.Path) == 0 {
			t.Fatalf("an error without a path: %s", r)
		}
		c, _ := e.Extensions["code"].(string)
		out[fmt.Sprint(e.Path[0])] = c
	}
	return out
}

// TestAliasedCredentialsHashOnce: a document of many signUp or login fields executes one; the
// others are RATE_LIMITED, and at most one password hash is computed for the whole request.
func TestAliasedCredentialsHashOnce(t *testing.T) {
	ts := startServer(t, nil)
	const n = 30

	t.Run("SignUps", func(t *testing.T) {
		tag := time.Now().UnixNano()
		email := func(i int) string { return fmt.Sprintf("alias-%d-%d@example.com", tag, i) }
		var r *httpRes
		hashes := ts.hashesDuring(func() {
			r = ts.gql(nil, "", "", aliased(n, func(i int) string { return signUpField(email(i)) }), nil)
		})
		if hashes != 1 {
			t.Fatalf("%d password hashes for one request, want 1: %s", hashes, r)
		}
		codes := errorsByAlias(t, r)
		if len(codes) != n-1 {
			t.Fatalf("%d errors, want %d: %s", len(codes), n-1, r)
		}
		for i := 1; i < n; i++ {
			if c := codes[fmt.Sprintf("a%d", i)]; c != "RATE_LIMITED" {
				t.Fatalf("a%d: code %q, want RATE_LIMITED: %s", i, c, r)
			}
		}
		if _, ok := codes["a0"]; ok {
			t.Fatalf("the first signUp failed: %s", r)
		}
		// The first account exists, the second does not.
		ts.mustLogin(nil, email(0), "password-123")
		if c := ts.login(nil, email(1), "password-123").code(); c != "UNAUTHENTICATED" {
			t.Fatalf("a refused signUp created its account: login code %q", c)
		}
	})

	t.Run("SignUpsForATakenEmail", func(t *testing.T) {
		// The finding: 30 aliased signUps of an address that exists cost 30 hashes.
		taken := fmt.Sprintf("taken-%d@example.com", time.Now().UnixNano())
		ts.newAccount(nil, taken, "password-123")
		var r *httpRes
		hashes := ts.hashesDuring(func() {
			r = ts.gql(nil, "", "", aliased(n, func(int) string { return signUpField(taken) }), nil)
		})
		if hashes != 0 {
			t.Fatalf("%d password hashes for signUps of a taken email, want 0: %s", hashes, r)
		}
		firstThenRateLimited(t, errorsByAlias(t, r), n, "BAD_USER_INPUT")
	})

	t.Run("Logins", func(t *testing.T) {
		var r *httpRes
		hashes := ts.hashesDuring(func() {
			r = ts.gql(nil, "", "", aliased(n, func(int) string {
				return fmt.Sprintf(`login(email: %q, password: "wrong-password") { token }`, testAdminEmail)
			}), nil)
		})
		if hashes != 1 {
			t.Fatalf("%d password comparisons for one request, want 1: %s", hashes, r)
		}
		firstThenRateLimited(t, errorsByAlias(t, r), n, "UNAUTHENTICATED")
	})

	t.Run("SignUpThenLogin", func(t *testing.T) {
		email := fmt.Sprintf("mixed-%d@example.com", time.Now().UnixNano())
		doc := `mutation { s: ` + signUpField(email) + ` l: login(email: "` + email + `", password: "password-123") { token } }`
		var r *httpRes
		hashes := ts.hashesDuring(func() { r = ts.gql(nil, "", "", doc, nil) })
		codes := errorsByAlias(t, r)
		if hashes != 1 || len(codes) != 1 || codes["l"] != "RATE_LIMITED" {
			t.Fatalf("%d hashes, errors %v: %s", hashes, codes, r)
		}
	})

	t.Run("OneLoginStillWorks", func(t *testing.T) {
		hashes := ts.hashesDuring(func() { ts.mustLogin(nil, testAdminEmail, testAdminPassword) })
		if hashes != 1 {
			t.Fatalf("%d hashes for one login", hashes)
		}
	})
}

// TestSignUpTakenEmailNotHashed: an email already taken (in any case) is refused before its
// password is hashed.
func TestSignUpTakenEmailNotHashed(t *testing.T) {
	ts := startServer(t, nil)
	email := fmt.Sprintf("once-%d@example.com", time.Now().UnixNano())
	if h := ts.hashesDuring(func() { ts.newAccount(nil, email, "password-123") }); h != 1 {
		t.Fatalf("%d hashes for one sign-up", h)
	}
	var r *httpRes
	h := ts.hashesDuring(func() {
		r = ts.gql(nil, "", "", `mutation($i: SignUpInput!){ signUp(input: $i){ token } }`,
			map[string]any{"i": map[string]any{"email": strings.ToUpper(email), "password": "another-password", "name": "Again"}})
	})
	if r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "email") {
		t.Fatalf("want BAD_USER_INPUT naming the email: %s", r)
	}
	if h != 0 {
		t.Fatalf("the taken email's password was hashed %d times", h)
	}
}

// TestSignUpBudget: sign-ups have their own budget per client (SIGNUP_THROTTLE_LIMIT), spent
// before any hashing, with 429 and Retry-After, one RATE_LIMITED security event; another client
// keeps its own.
func TestSignUpBudget(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.SignupThrottleLimit = 3
	cfg.ThrottleTTL = time.Hour // one sign-up earned back every 20 minutes: none during the test
	ts := startServer(t, cfg)
	admin := ts.mustLogin(from("192.0.2.1"), testAdminEmail, testAdminPassword)
	a, b := from("198.51.100.7"), from("198.51.100.8")
	tag := time.Now().UnixNano()
	for i := range cfg.SignupThrottleLimit {
		ts.newAccount(a, fmt.Sprintf("budget-%d-%d@example.com", tag, i), "password-123")
	}
	var r *httpRes
	h := ts.hashesDuring(func() {
		r = ts.gql(a, "", "", `mutation($i: SignUpInput!){ signUp(input: $i){ token } }`,
			map[string]any{"i": map[string]any{"email": fmt.Sprintf("budget-%d-x@example.com", tag), "password": "password-123", "name": "Over"}})
	})
	refused(t, r, cfg.SignupThrottleLimit)
	if h != 0 {
		t.Fatalf("a refused sign-up hashed %d times", h)
	}
	// A second refusal in the window is not logged again.
	ts.gql(a, "", "", `mutation { signUp(input: {email: "budget-y@example.com", password: "password-123", name: "Over"}) { token } }`, nil)
	ev := one(t, ts.securityEvents(admin, map[string]any{"types": []string{"RATE_LIMITED"}, "ip": "198.51.100.7"}, 10),
		"RATE_LIMITED for the sign-up budget", func(secEvent) bool { return true })
	if str(ev.Operation) != "signup" || !strings.Contains(ev.Message, "sign-ups") {
		t.Fatalf("event %v", ev)
	}
	// Another address has its own budget.
	ts.newAccount(b, fmt.Sprintf("budget-%d-b@example.com", tag), "password-123")
}

// webAppPages are the documents the web app sends (API.md's domain queries), at page sizes up to
// the cap of 100, with the variables they are sent with: each must fit the default complexity.
// EventCards previews five attendees per event, a store query each, so it pages by 30 (see
// querylimit's TestStoreWorkIsCharged).
func webAppPages(eventID, venueID string) []struct {
	name, doc string
	vars      map[string]any
} {
	return []struct {
		name, doc string
		vars      map[string]any
	}{
		{"EventsPage", `query EventsPage($filter: EventFilter, $first: Int = 100, $after: String) {
  events(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id title description startsAt endsAt status capacity tags attendeeCount waitlistCount cancelReason createdAt updatedAt
      viewerRegistration { id status createdAt }
      venue { id name address city capacity }
      organizer { id name }
    } }
  }
}`, map[string]any{"first": 100, "filter": map[string]any{"city": "Porto", "tag": "test", "search": "page", "from": time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)}}},
		{"EventCards", `query EventCards {
  events(first: 30) {
    totalCount
    edges { node { id title startsAt attendeeCount capacity venue { name city } organizer { name }
      attendees(first: 5) { edges { node { id name } } } } }
    pageInfo { hasNextPage endCursor }
  }
}`, nil},
		{"EventDetail", `query EventDetail($id: ID!) {
  event(id: $id) {
    id title description startsAt endsAt status capacity tags attendeeCount waitlistCount cancelReason createdAt updatedAt
    venue { id name address city capacity events(first: 5) { edges { node { id title startsAt } } } }
    organizer { id name organizedEvents(first: 5) { totalCount edges { node { id title startsAt } } } }
    viewerRegistration { id status createdAt }
    attendees(first: 100) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name } } }
  }
}`, map[string]any{"id": eventID}},
		{"VenuePage", `query VenuePage($id: ID!) {
  venue(id: $id) {
    id name address city capacity
    events(first: 100) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id title startsAt endsAt status capacity attendeeCount waitlistCount organizer { id name } } }
    }
  }
}`, map[string]any{"id": venueID}},
		{"Venues", `query Venues($city: String) {
  venues(city: $city, first: 100) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name address city capacity } } }
}`, map[string]any{"city": "Porto"}},
		{"Dashboard", `query Dashboard {
  me {
    id name email role createdAt
    organizedEvents(first: 100) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { id title status startsAt endsAt capacity attendeeCount waitlistCount tags venue { id name city } } }
    }
  }
}`, nil},
	}
}

// TestAliasedCountsAreCostly: thirty aliased counts of all events are QUERY_TOO_COMPLEX under the
// default limit, where the web app's own pages, at up to 100 a page, all run.
func TestAliasedCountsAreCostly(t *testing.T) {
	cfg := testConfig(t)
	ts := startServer(t, cfg)
	if cfg.QueryMaxComplexity != 1000 {
		t.Fatalf("the default QUERY_MAX_COMPLEXITY changed: %d", cfg.QueryMaxComplexity)
	}
	org := ts.organizer("Pages Org")
	var venue struct{ CreateVenue struct{ ID string } }
	ts.mustData(org.Token, `mutation { createVenue(input: {name: "Hall", address: "Rua 1", city: "Porto", capacity: 500}) { id } }`, nil, &venue)
	var eventID string
	for i := range 3 {
		start := time.Now().Add(time.Duration(24+i) * time.Hour).UTC()
		var ev struct{ CreateEvent struct{ ID string } }
		ts.mustData(org.Token, `mutation($i: CreateEventInput!){ createEvent(input: $i){ id } }`, map[string]any{"i": map[string]any{
			"title": fmt.Sprintf("Page event %d", i), "startsAt": start.Format(time.RFC3339), "endsAt": start.Add(time.Hour).Format(time.RFC3339),
			"capacity": 50, "tags": []string{"test"}, "venueId": venue.CreateVenue.ID,
		}}, &ev)
		ts.mustData(org.Token, `mutation($id: ID!){ publishEvent(id: $id){ id } }`, map[string]any{"id": ev.CreateEvent.ID}, nil)
		eventID = ev.CreateEvent.ID
	}
	user := ts.signUp("Page Reader")
	ts.mustData(user.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": eventID}, nil)

	t.Run("ThirtyAliasedCountsRefused", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("{")
		for i := range 30 {
			fmt.Fprintf(&b, " c%d: events(first: 1) { totalCount }", i)
		}
		b.WriteString(" }")
		r := ts.gql(nil, "", "", b.String(), nil)
		if r.code() != "QUERY_TOO_COMPLEX" || r.errExt("limit") != "complexity" {
			t.Fatalf("want QUERY_TOO_COMPLEX (complexity): %s", r)
		}
		// One count is fine.
		accepted(t, ts.gql(nil, "", "", `{ events(first: 1) { totalCount } }`, nil))
	})

	t.Run("WebAppPagesRun", func(t *testing.T) {
		for _, p := range webAppPages(eventID, venue.CreateVenue.ID) {
			token := user.Token
			if p.name == "Dashboard" {
				token = org.Token
			}
			r := ts.gql(nil, token, p.name, p.doc, p.vars)
			if r.Status != http.StatusOK || len(r.Errors) > 0 || len(r.Data) == 0 || string(r.Data) == "null" {
				t.Fatalf("%s: %s", p.name, r)
			}
		}
		// The page found what was made: the detail lists the one attendee.
		var detail struct {
			Event struct {
				Attendees struct{ TotalCount int }
			}
		}
		ts.mustData(user.Token, webAppPages(eventID, "")[2].doc, map[string]any{"id": eventID}, &detail)
		if detail.Event.Attendees.TotalCount != 1 {
			t.Fatalf("attendees %+v", detail)
		}
	})
}

// firstThenRateLimited checks the codes of n aliased password fields: a0 ran and failed with
// first, every other one was refused with RATE_LIMITED.
func firstThenRateLimited(t *testing.T, codes map[string]string, n int, first string) {
	t.Helper()
	if codes["a0"] != first || len(codes) != n {
		t.Fatalf("want a0 %s and the rest RATE_LIMITED: %v", first, codes)
	}
	for i := 1; i < n; i++ {
		if c := codes[fmt.Sprintf("a%d", i)]; c != "RATE_LIMITED" {
			t.Fatalf("a%d: code %q, want RATE_LIMITED", i, c)
		}
	}
}
