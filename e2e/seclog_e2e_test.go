package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/internal/redistest"
)

// End-to-end proof that the security log keeps what matters (issue 11, findings 6 and 8): an
// ordinary user cannot wipe it, repeated refusals are counted rather than repeated, every event
// is also a log line, admin writes leave a trace, replicas of different deployments on one Redis
// keep their events apart, and admins can find users to promote.

// countedEvent is a SecurityEvent with its repeat count.
type countedEvent struct {
	secEvent
	Count int
}

func (ts *testServer) countedEvents(admin session, filter map[string]any, last int) []countedEvent {
	ts.t.Helper()
	r := ts.gql(nil, admin.Token, "", `query($f: SecurityEventFilter, $n: Int){ securityEvents(filter: $f, last: $n){ `+secEventFields+` count } }`,
		map[string]any{"f": filter, "n": last})
	var out struct{ SecurityEvents []countedEvent }
	if r.Status != http.StatusOK || len(r.Errors) > 0 || json.Unmarshal(r.Data, &out) != nil {
		ts.t.Fatalf("securityEvents: %s", r)
	}
	return out.SecurityEvents
}

// TestSecurityLogSurvivesAFlood replays finding 6: after a BRUTE_FORCE_SUSPECTED, two throwaway
// accounts send 120 admin queries (ACCESS_DENIED each) and an anonymous client 150 forged tokens
// (TOKEN_INVALID, LOW), into a log of SECURITY_MAX_EVENTS=100. The alarm must still be there,
// and the refusals be one counted event per account.
func TestSecurityLogSurvivesAFlood(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.SecurityMaxEvents = 100
	cfg.BruteForceThreshold = 3
	cfg.ThrottleTTL = time.Hour // one window for the whole test
	ts := startServer(t, cfg)
	admin := ts.mustLogin(from("192.0.2.1"), testAdminEmail, testAdminPassword)

	const victim = "flood-victim@example.com"
	ts.newAccount(from("192.0.2.2"), victim, "victim-password-1")
	for i := range cfg.BruteForceThreshold {
		if r := ts.login(from("203.0.113.66"), victim, fmt.Sprint("guess-", i)); r.code() != "UNAUTHENTICATED" {
			t.Fatalf("guess %d: %s", i, r)
		}
	}
	if got := ts.securityEvents(admin, map[string]any{"types": []string{"BRUTE_FORCE_SUSPECTED"}}, 10); len(got) != 1 {
		t.Fatalf("the alarm was not raised: %v", got)
	}

	a := ts.newAccount(from("198.51.100.1"), "throwaway-a@example.com", "password-123")
	b := ts.newAccount(from("198.51.100.2"), "throwaway-b@example.com", "password-123")
	for i := range 120 {
		u := []session{a, b}[i%2]
		if r := ts.gql(from("198.51.100.9"), u.Token, "", `{ serverInfo { pid } }`, nil); r.code() != "FORBIDDEN" {
			t.Fatalf("request %d: %s", i, r)
		}
	}
	for i := range 150 {
		if r := ts.gql(from("198.51.100.50"), "forged-token", "", `{ me { id } }`, nil); r.code() != "UNAUTHENTICATED" {
			t.Fatalf("forged token %d: %s", i, r)
		}
	}

	alarm := ts.securityEvents(admin, map[string]any{"types": []string{"BRUTE_FORCE_SUSPECTED"}}, 10)
	if len(alarm) != 1 || str(alarm[0].Email) != victim {
		t.Fatalf("after the flood, BRUTE_FORCE_SUSPECTED events = %v; the alarm was pushed out", alarm)
	}
	denied := ts.securityEvents(admin, map[string]any{"types": []string{"ACCESS_DENIED"}}, 1000)
	if len(denied) != 2 {
		t.Fatalf("%d ACCESS_DENIED events for 120 refusals of two accounts, want 2 (one each): %v", len(denied), denied)
	}
	for _, u := range []session{a, b} {
		one(t, denied, "ACCESS_DENIED for "+u.ID, func(e secEvent) bool { return str(e.UserID) == u.ID })
	}
	for _, e := range ts.countedEvents(admin, map[string]any{"types": []string{"ACCESS_DENIED"}}, 10) {
		if e.Count != 60 {
			t.Fatalf("ACCESS_DENIED %v counts %d refusals, want 60", e.secEvent, e.Count)
		}
	}
	// The LOW flood was kept as well as its share allows: it is the newest that stay.
	if low := ts.securityEvents(admin, map[string]any{"types": []string{"TOKEN_INVALID"}}, 1000); len(low) == 0 || len(low) >= 100 {
		t.Fatalf("%d TOKEN_INVALID events kept in a log of 100", len(low))
	}
}

// TestAccessDeniedCountedOnce: 120 refusals of one user for one field are one event that counts
// them; renaming the operation does not make new events; another field, another user and an
// anonymous client each get their own.
func TestAccessDeniedCountedOnce(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.ThrottleTTL = time.Hour
	ts := startServer(t, cfg)
	admin := ts.mustLogin(from("192.0.2.1"), testAdminEmail, testAdminPassword)
	u := ts.newAccount(from("198.51.100.1"), "prober@example.com", "password-123")
	for i := range 120 {
		q := `{ serverInfo { pid } }`
		if i%3 == 0 {
			q = fmt.Sprintf(`query Probe%d { serverInfo { pid } }`, i) // a fresh name each time
		}
		if r := ts.gql(from("198.51.100.1"), u.Token, "", q, nil); r.code() != "FORBIDDEN" {
			t.Fatalf("request %d: %s", i, r)
		}
	}
	got := ts.countedEvents(admin, map[string]any{"types": []string{"ACCESS_DENIED"}, "userId": u.ID}, 100)
	if len(got) != 1 {
		t.Fatalf("%d ACCESS_DENIED events for 120 refusals, want 1: %v", len(got), got)
	}
	if e := got[0]; e.Count != 120 || e.Severity != "MEDIUM" || !strings.Contains(e.Message, "serverInfo") ||
		!strings.Contains(e.Message, "120") {
		t.Fatalf("ACCESS_DENIED = %v count %d, want count 120 named in the message", e.secEvent, e.Count)
	}

	t.Run("OtherFieldOtherEvent", func(t *testing.T) {
		ts := ts.in(t)
		if r := ts.gql(from("198.51.100.1"), u.Token, "", `{ databaseStats { connected } }`, nil); r.code() != "FORBIDDEN" {
			t.Fatalf("databaseStats: %s", r)
		}
		if got := ts.countedEvents(admin, map[string]any{"types": []string{"ACCESS_DENIED"}, "userId": u.ID}, 100); len(got) != 2 || got[0].Count != 1 {
			t.Fatalf("after another field: %v", got)
		}
	})
	t.Run("AnonymousByClient", func(t *testing.T) {
		ts := ts.in(t)
		for range 5 {
			if r := ts.gql(from("198.51.100.77"), "", "", `{ serverInfo { pid } }`, nil); r.code() != "UNAUTHENTICATED" {
				t.Fatalf("anonymous: %s", r)
			}
		}
		got := ts.countedEvents(admin, map[string]any{"types": []string{"ACCESS_DENIED"}, "ip": "198.51.100.77"}, 100)
		if len(got) != 1 || got[0].Count != 5 || got[0].UserID != nil {
			t.Fatalf("anonymous refusals: %v", got)
		}
	})
}

// TestSecurityEventsInTheServerLog: every event logged is one line msg=security_event with its
// id, type, severity, address, user, operation and message, so the record outlives the ring.
func TestSecurityEventsInTheServerLog(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.BruteForceThreshold = 100
	ts := startServer(t, cfg)
	admin := ts.mustLogin(from("192.0.2.1"), testAdminEmail, testAdminPassword)
	const ip = "198.51.100.33"
	u := ts.newAccount(from(ip), "logged@example.com", "password-123")
	for range 3 {
		if r := ts.login(from(ip), "logged@example.com", "wrong"); r.code() != "UNAUTHENTICATED" {
			t.Fatalf("wrong password: %s", r)
		}
	}
	if r := ts.gql(from(ip), u.Token, "Peek", `query Peek { serverInfo { pid } }`, nil); r.code() != "FORBIDDEN" {
		t.Fatalf("peek: %s", r)
	}
	events := ts.securityEvents(admin, map[string]any{"ip": ip}, 100)
	if len(events) != 5 { // SIGNED_UP, 3 LOGIN_FAILED, ACCESS_DENIED
		t.Fatalf("events from %s: %v", ip, events)
	}
	lines := map[string][]string{}
	for line := range strings.SplitSeq(ts.logs.String(), "\n") {
		if strings.Contains(line, " msg=security_event ") {
			lines[field(line, "id")] = append(lines[field(line, "id")], line)
		}
	}
	for _, e := range events {
		ls := lines[e.ID]
		if len(ls) != 1 {
			t.Fatalf("event %v has %d log lines, want 1:\n%s", e, len(ls), strings.Join(ls, "\n"))
		}
		l := ls[0]
		if field(l, "type") != e.Type || field(l, "severity") != e.Severity || field(l, "ip") != ip ||
			!strings.Contains(l, "message=") {
			t.Fatalf("log line %q does not describe %v", l, e)
		}
		if e.UserID != nil && field(l, "user_id") != *e.UserID {
			t.Fatalf("log line %q lacks user_id=%s", l, *e.UserID)
		}
		if e.Operation != nil && field(l, "operation") != *e.Operation {
			t.Fatalf("log line %q lacks operation=%s", l, *e.Operation)
		}
	}
	// MEDIUM and above are warnings, so a server logging at LOG_LEVEL=warn still records them.
	for _, e := range events {
		if e.Type == "ACCESS_DENIED" && !strings.Contains(lines[e.ID][0], "level=WARN") {
			t.Fatalf("ACCESS_DENIED logged below WARN: %s", lines[e.ID][0])
		}
	}
}

// TestAdminWritesAreSecurityEvents: setUserRole is a ROLE_CHANGED naming who changed whom from
// what to what; purgeCache an ADMIN_ACTION.
func TestAdminWritesAreSecurityEvents(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	ts := startServer(t, cfg)
	admin := ts.mustLogin(from("192.0.2.1"), testAdminEmail, testAdminPassword)
	u := ts.newAccount(from("198.51.100.1"), "promoted@example.com", "password-123")

	ts.mustData(admin.Token, `mutation($u: ID!){ setUserRole(userId: $u, role: ORGANIZER){ id role } }`, map[string]any{"u": u.ID}, nil)
	e := one(t, ts.securityEvents(admin, map[string]any{"types": []string{"ROLE_CHANGED"}}, 10), "ROLE_CHANGED", func(secEvent) bool { return true })
	if e.Severity != "MEDIUM" || str(e.UserID) != admin.ID || str(e.Email) != testAdminEmail ||
		!strings.Contains(e.Message, u.ID) || !strings.Contains(e.Message, "promoted@example.com") ||
		!strings.Contains(e.Message, "from USER to ORGANIZER") {
		t.Fatalf("ROLE_CHANGED = %v", e)
	}

	var purged struct{ PurgeCache int }
	ts.mustData(admin.Token, `mutation { purgeCache }`, nil, &purged)
	e = one(t, ts.securityEvents(admin, map[string]any{"types": []string{"ADMIN_ACTION"}}, 10), "ADMIN_ACTION", func(secEvent) bool { return true })
	if e.Severity != "MEDIUM" || str(e.UserID) != admin.ID || !strings.Contains(e.Message, "purgeCache") ||
		!strings.Contains(e.Message, fmt.Sprint(purged.PurgeCache)) {
		t.Fatalf("ADMIN_ACTION = %v (purged %d)", e, purged.PurgeCache)
	}

	t.Run("FailedChangeIsNoEvent", func(t *testing.T) {
		ts := ts.in(t)
		before := len(ts.securityEvents(admin, map[string]any{"types": []string{"ROLE_CHANGED"}}, 100))
		ts.mustCode("NOT_FOUND", admin.Token, `mutation($u: ID!){ setUserRole(userId: $u, role: ADMIN){ id } }`,
			map[string]any{"u": "000000000000000000000000"})
		if got := ts.securityEvents(admin, map[string]any{"types": []string{"ROLE_CHANGED"}}, 100); len(got) != before {
			t.Fatalf("ROLE_CHANGED events after a failed change: %v", got)
		}
	})
	t.Run("AdminChangesSomeoneElsesEvent", func(t *testing.T) {
		ts := ts.in(t)
		org := ts.organizer("Olga Organizer")
		id := ts.draftEvent(org, "Not the admin's", 10, 48*time.Hour)
		ts.mustData(org.Token, `mutation($id: ID!){ publishEvent(id: $id){ id } }`, map[string]any{"id": id}, nil) // her own: no event
		ts.mustData(admin.Token, `mutation($id: ID!){ cancelEvent(id: $id, reason: "spam"){ id } }`, map[string]any{"id": id}, nil)
		got := ts.securityEvents(admin, map[string]any{"types": []string{"ADMIN_ACTION"}}, 10)
		if len(got) != 2 || str(got[0].UserID) != admin.ID || !strings.Contains(got[0].Message, "cancelEvent") ||
			!strings.Contains(got[0].Message, id) || !strings.Contains(got[0].Message, org.ID) {
			t.Fatalf("ADMIN_ACTION events: %v", got)
		}
	})
}

const usersQuery = `query($s: String, $r: Role, $n: Int, $a: String){ users(search: $s, role: $r, first: $n, after: $a){
	edges { cursor node { id name email role } } pageInfo { hasNextPage endCursor } totalCount } }`

type usersPage struct {
	Users struct {
		Edges []struct {
			Cursor string
			Node   struct {
				ID, Name, Role string
				Email          *string
			}
		}
		PageInfo struct {
			HasNextPage bool
			EndCursor   *string
		}
		TotalCount int
	}
}

func (p usersPage) names() []string {
	var out []string
	for _, e := range p.Users.Edges {
		out = append(out, e.Node.Name)
	}
	return out
}

// TestSecurityBridgeUnderKeyPrefix: two deployments (MONGO_DATABASE) on one Redis do not see each
// other's security events; two replicas of one deployment still do.
func TestSecurityBridgeUnderKeyPrefix(t *testing.T) {
	redis := redistest.Start(t)
	server := func(db string) *testServer {
		cfg := withRedis(t, testConfig(t), redis)
		cfg.MongoDatabase = db
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		return startServer(t, cfg)
	}
	a, a2, other := server("tenant_a"), server("tenant_a"), server("tenant_b")
	adminA2, adminOther := a2.admin(), other.admin()
	// Keep logging on a until its replica a2 has one: then other, on the same Redis, had every
	// chance to receive it too.
	for i := 0; ; i++ {
		ip := fmt.Sprintf("203.0.113.%d", i+1)
		if r := a.login(from(ip), "nobody@example.com", "x"); r.code() != "UNAUTHENTICATED" {
			t.Fatalf("login on a: %s", r)
		}
		time.Sleep(100 * time.Millisecond)
		if got := a2.securityEvents(adminA2, map[string]any{"types": []string{"LOGIN_FAILED"}, "ip": ip}, 10); len(got) == 1 {
			break
		}
		if i == 50 {
			t.Fatal("a's events never reached its replica a2")
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := other.securityEvents(adminOther, map[string]any{"types": []string{"LOGIN_FAILED"}}, 100); len(got) != 0 {
		t.Fatalf("deployment tenant_b received tenant_a's events: %v", got)
	}
}
