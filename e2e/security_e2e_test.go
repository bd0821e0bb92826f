package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eventide/server/auth"
	"github.com/eventide/server/config"
)

// End-to-end proof of the security work through the real server: real HTTP on loopback, real
// websockets, the embedded store and, where replicas share state, a real redis-server. Each test
// sets the small limits it needs on its own server.

// httpRes is one HTTP exchange with the GraphQL body decoded.
type httpRes struct {
	Status int
	Header http.Header
	Raw    []byte
	gqlResponse
}

// hdr builds request headers from key, value pairs.
func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// from is the header of a client at addr, as a trusted proxy in front of the server reports it.
func from(addr string) http.Header { return hdr("X-Forwarded-For", addr) }

// exchange sends one request to /graphql; body is sent as is.
func (ts *testServer) exchange(method string, body []byte, h http.Header) *httpRes {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.base+"/graphql", bytes.NewReader(body))
	if err != nil {
		ts.t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("request: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := &httpRes{Status: res.StatusCode, Header: res.Header, Raw: raw}
	if err := json.Unmarshal(raw, &out.gqlResponse); err != nil {
		ts.t.Fatalf("response %d is not JSON: %v: %s", res.StatusCode, err, raw)
	}
	out.gqlResponse.Status = res.StatusCode
	return out
}

// gql posts a JSON GraphQL request. op, when set, is sent as operationName; token, when set, as
// a bearer token; h adds headers (a forwarded address, say).
func (ts *testServer) gql(h http.Header, token, op, query string, vars map[string]any) *httpRes {
	ts.t.Helper()
	req := map[string]any{"query": query, "variables": vars}
	if op != "" {
		req["operationName"] = op
	}
	body, _ := json.Marshal(req)
	all := hdr("Content-Type", "application/json")
	if token != "" {
		all.Set("Authorization", "Bearer "+token)
	}
	for k, v := range h {
		all[k] = v
	}
	return ts.exchange(http.MethodPost, body, all)
}

// errExt is the first error's extension key, or nil.
func (r *httpRes) errExt(key string) any {
	if len(r.Errors) == 0 {
		return nil
	}
	return r.Errors[0].Extensions[key]
}

func (r *httpRes) String() string {
	return fmt.Sprintf("status %d, headers %v, body %s", r.Status, r.Header, r.Raw)
}

const loginMutation = `mutation SignIn($e: String!, $p: String!){ login(email: $e, password: $p){ token user { id } } }`

// login tries to sign in from a client with headers h.
func (ts *testServer) login(h http.Header, email, password string) *httpRes {
	ts.t.Helper()
	return ts.gql(h, "", "", loginMutation, map[string]any{"e": email, "p": password})
}

// mustLogin signs in and returns the session.
func (ts *testServer) mustLogin(h http.Header, email, password string) session {
	ts.t.Helper()
	r := ts.login(h, email, password)
	var out struct {
		Login struct {
			Token string
			User  struct{ ID string }
		}
	}
	if r.Status != http.StatusOK || len(r.Errors) > 0 || json.Unmarshal(r.Data, &out) != nil || out.Login.Token == "" {
		ts.t.Fatalf("login %s: %s", email, r)
	}
	return session{Token: out.Login.Token, ID: out.Login.User.ID}
}

// newAccount signs up email from a client with headers h.
func (ts *testServer) newAccount(h http.Header, email, password string) session {
	ts.t.Helper()
	r := ts.gql(h, "", "", `mutation Join($i: SignUpInput!){ signUp(input: $i){ token user { id } } }`,
		map[string]any{"i": map[string]any{"email": email, "password": password, "name": "Someone"}})
	var out struct {
		SignUp struct {
			Token string
			User  struct{ ID string }
		}
	}
	if r.Status != http.StatusOK || len(r.Errors) > 0 || json.Unmarshal(r.Data, &out) != nil || out.SignUp.Token == "" {
		ts.t.Fatalf("signUp %s: %s", email, r)
	}
	return session{Token: out.SignUp.Token, ID: out.SignUp.User.ID}
}

// secEvent is a SecurityEvent as the API returns it.
type secEvent struct {
	ID        string
	Type      string
	Severity  string
	At        time.Time
	IP        *string
	UserID    *string
	Email     *string
	UserAgent *string
	Operation *string
	Message   string
}

func (e secEvent) String() string {
	s := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	return fmt.Sprintf("{%s %s ip=%s user=%s email=%s op=%s ua=%s %q}", e.Type, e.Severity, s(e.IP), s(e.UserID),
		s(e.Email), s(e.Operation), s(e.UserAgent), e.Message)
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

const secEventFields = `id type severity at ip userId email userAgent operation message`

// securityEvents lists security events as admin sees them.
func (ts *testServer) securityEvents(admin session, filter map[string]any, last int) []secEvent {
	ts.t.Helper()
	r := ts.gql(nil, admin.Token, "", `query AdminEvents($f: SecurityEventFilter, $n: Int){ securityEvents(filter: $f, last: $n){ `+secEventFields+` } }`,
		map[string]any{"f": filter, "n": last})
	var out struct{ SecurityEvents []secEvent }
	if r.Status != http.StatusOK || len(r.Errors) > 0 {
		ts.t.Fatalf("securityEvents: %s", r)
	}
	if err := json.Unmarshal(r.Data, &out); err != nil {
		ts.t.Fatalf("securityEvents: %v: %s", err, r.Raw)
	}
	return out.SecurityEvents
}

// only keeps the events that match keep.
func only(events []secEvent, keep func(secEvent) bool) []secEvent {
	var out []secEvent
	for _, e := range events {
		if keep(e) {
			out = append(out, e)
		}
	}
	return out
}

// one returns the only event that matches keep, failing the test unless there is exactly one.
func one(t *testing.T, events []secEvent, what string, keep func(secEvent) bool) secEvent {
	t.Helper()
	got := only(events, keep)
	if len(got) != 1 {
		t.Fatalf("%d events %s, want 1; all events:\n%v", len(got), what, events)
	}
	return got[0]
}

// wsDial opens a websocket to ts with the graphql-transport-ws subprotocol and headers h; it
// returns the HTTP answer when the upgrade is refused.
func (ts *testServer) wsDial(ctx context.Context, h http.Header) (*websocket.Conn, *http.Response, error) {
	return websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.base, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: h})
}

// wsOpen opens an acknowledged graphql-transport-ws connection with headers h and init payload.
func (ts *testServer) wsOpen(h http.Header, init map[string]any) *wsClient {
	ts.t.Helper()
	// The context bounds the socket's whole life, not one read: a long test on a loaded machine
	// (TestSecuritySubscriberThatNeverReads took 31 s in CI at load 10) must not lose its socket.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	ts.t.Cleanup(cancel)
	conn, res, err := ts.wsDial(ctx, h)
	if err != nil {
		ts.t.Fatalf("dial: %v (%v)", err, res)
	}
	ts.t.Cleanup(func() { _ = conn.CloseNow() })
	c := &wsClient{t: ts.t, conn: conn, ctx: ctx}
	c.send(map[string]any{"type": "connection_init", "payload": init})
	if m := c.next(); m["type"] != "connection_ack" {
		ts.t.Fatalf("init answered %v", m)
	}
	return c
}

// in returns ts reporting to t, for helpers called from a subtest.
func (ts *testServer) in(t testing.TB) *testServer {
	return &testServer{t: t, app: ts.app, base: ts.base, logs: ts.logs}
}

// until reads the messages of operation id up to its "complete" or "error" and returns them.
func (c *wsClient) until(id string) []map[string]any {
	c.t.Helper()
	var out []map[string]any
	for {
		m := c.next()
		if m["id"] != id {
			c.t.Fatalf("a message for %v while waiting for %s: %v", m["id"], id, m)
		}
		out = append(out, m)
		if m["type"] == "complete" || m["type"] == "error" {
			return out
		}
	}
}

// refusedWith checks that operation id ended with an error of code and nothing else.
func (c *wsClient) refusedWith(id, code string) {
	c.t.Helper()
	msgs := c.until(id)
	if wsErrorCode(msgs[0]) != code {
		c.t.Fatalf("operation %s answered %v, want an error with code %s", id, msgs, code)
	}
	for _, m := range msgs[1:] {
		if m["type"] == "next" {
			c.t.Fatalf("operation %s answered %v after its error", id, msgs)
		}
	}
}

// wsErrorCode is the code of the first error a websocket message carries: an "error" message's
// payload is a list of errors, a "next" message's payload a response with errors.
func wsErrorCode(m map[string]any) string {
	var errs []any
	switch p := m["payload"].(type) {
	case []any:
		errs = p
	case map[string]any:
		errs, _ = p["errors"].([]any)
	}
	if len(errs) == 0 {
		return ""
	}
	e, _ := errs[0].(map[string]any)
	ext, _ := e["extensions"].(map[string]any)
	c, _ := ext["code"].(string)
	return c
}

// closeStatus reads until the server closes the connection and returns its close status.
func closeStatus(t *testing.T, c *websocket.Conn) (websocket.StatusCode, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		_, _, err := c.Read(ctx)
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("the connection ended without a close frame: %v", err)
		}
		return ce.Code, ce.Reason
	}
}

// TestSecurityEvents causes one event of every kind through the API and reads them back from
// securityEvents: newest first, with type, severity, address, user, operation and message, and
// narrowed by each filter field.
func TestSecurityEvents(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.LoginThrottleLimit = 1000
	cfg.BruteForceThreshold = 1000
	ts := startServer(t, cfg)
	admin := ts.mustLogin(from("192.0.2.1"), testAdminEmail, testAdminPassword)
	many := ts.newAccount(from("192.0.2.45"), "many@example.com", "password-123") // for AccessDeniedOncePerOperation
	began := time.Now()

	const (
		userIP  = "192.0.2.10"
		otherIP = "192.0.2.20"
		email   = "mallory@example.com"
	)
	ua := hdr("X-Forwarded-For", userIP, "User-Agent", "e2e-agent/1.0")

	// In order, each from a known address, so that the log's order can be checked.
	user := ts.newAccount(ua, email, "password-123")
	if r := ts.login(ua, email, "wrong-password"); r.code() != "UNAUTHENTICATED" {
		t.Fatalf("wrong password: %s", r)
	}
	ts.mustLogin(ua, email, "password-123")
	if r := ts.gql(ua, "not-a-token", "", `{ me { id } }`, nil); r.Status != http.StatusUnauthorized || r.code() != "UNAUTHENTICATED" {
		t.Fatalf("bad token: %s", r)
	}
	// The operation is named in the document only: the event still names it.
	if r := ts.gql(ua, user.Token, "", `query Peek { serverInfo { pid } }`, nil); r.code() != "FORBIDDEN" {
		t.Fatalf("USER reading serverInfo: %s", r)
	}
	deep := `query Deep { events { edges { node { organizer { organizedEvents { edges { node { organizer { organizedEvents { edges { node { organizer { id } } } } } } } } } } } } }`
	if r := ts.gql(hdr("X-Forwarded-For", otherIP), "", "Deep", deep, nil); r.code() != "QUERY_TOO_COMPLEX" {
		t.Fatalf("deep query: %s", r)
	}

	all := ts.securityEvents(admin, map[string]any{"since": began.Add(-time.Second).UTC().Format(time.RFC3339Nano)}, 90)
	mine := only(all, func(e secEvent) bool { return str(e.IP) == userIP || str(e.IP) == otherIP })
	want := []string{"QUERY_REJECTED", "ACCESS_DENIED", "TOKEN_INVALID", "LOGIN_SUCCEEDED", "LOGIN_FAILED", "SIGNED_UP"}
	var got []string
	for _, e := range mine {
		got = append(got, e.Type)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events newest first = %v, want %v\n%v", got, want, mine)
	}
	for i := 1; i < len(mine); i++ {
		if mine[i].At.After(mine[i-1].At) {
			t.Fatalf("event %d is newer than event %d: %v", i, i-1, mine)
		}
	}

	t.Run("SignedUp", func(t *testing.T) {
		e := mine[5]
		if e.Severity != "INFO" || str(e.UserID) != user.ID || str(e.Email) != email || str(e.Operation) != "Join" ||
			str(e.UserAgent) != "e2e-agent/1.0" || e.Message == "" || e.ID == "" {
			t.Fatalf("SIGNED_UP = %v", e)
		}
	})
	t.Run("LoginFailed", func(t *testing.T) {
		e := mine[4]
		if e.Severity != "LOW" || str(e.Email) != email || e.UserID != nil || str(e.Operation) != "SignIn" || e.Message == "" {
			t.Fatalf("LOGIN_FAILED = %v", e)
		}
	})
	t.Run("LoginSucceeded", func(t *testing.T) {
		e := mine[3]
		if e.Severity != "INFO" || str(e.Email) != email || str(e.UserID) != user.ID || str(e.Operation) != "SignIn" {
			t.Fatalf("LOGIN_SUCCEEDED = %v", e)
		}
	})
	t.Run("TokenInvalidHeader", func(t *testing.T) {
		e := mine[2]
		if e.Severity != "LOW" || e.UserID != nil || !strings.Contains(e.Message, "Authorization") {
			t.Fatalf("TOKEN_INVALID = %v", e)
		}
	})
	t.Run("AccessDenied", func(t *testing.T) {
		e := mine[1]
		if e.Severity != "MEDIUM" || str(e.UserID) != user.ID || str(e.Email) != email || str(e.Operation) != "Peek" ||
			!strings.Contains(e.Message, "serverInfo") {
			t.Fatalf("ACCESS_DENIED = %v", e)
		}
	})
	t.Run("QueryRejected", func(t *testing.T) {
		e := mine[0]
		if e.Severity != "LOW" || str(e.IP) != otherIP || str(e.Operation) != "Deep" ||
			!strings.Contains(e.Message, "depth 13") || !strings.Contains(e.Message, "12") {
			t.Fatalf("QUERY_REJECTED = %v", e)
		}
	})

	t.Run("TokenInvalidWebsocketInit", func(t *testing.T) {
		ts := ts.in(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, _, err := ts.wsDial(ctx, from("192.0.2.30"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		b, _ := json.Marshal(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer forged"}})
		if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
		if code, reason := closeStatus(t, conn); code != 4403 {
			t.Fatalf("refused init closed with %d %q, want 4403 (graphql-transport-ws: Forbidden)", code, reason)
		}
		e := one(t, ts.securityEvents(admin, map[string]any{"ip": "192.0.2.30"}, 10), "from 192.0.2.30", func(secEvent) bool { return true })
		if e.Type != "TOKEN_INVALID" || !strings.Contains(e.Message, "connection_init") {
			t.Fatalf("event = %v", e)
		}
	})

	t.Run("SubscriptionsRefused", func(t *testing.T) {
		ts := ts.in(t)
		anon := ts.wsOpen(from("192.0.2.40"), nil)
		anon.subscribe("1", `subscription Watch { securityEvents { id } }`, nil)
		anon.refusedWith("1", "UNAUTHENTICATED")
		anon.subscribe("2", `subscription Mem { memoryStats { rssBytes } }`, nil)
		anon.refusedWith("2", "UNAUTHENTICATED")
		signedIn := ts.wsOpen(from("192.0.2.41"), map[string]any{"Authorization": "Bearer " + user.Token})
		signedIn.subscribe("1", `subscription Mem { memoryStats { rssBytes } }`, nil)
		signedIn.refusedWith("1", "FORBIDDEN")
		signedIn.subscribe("2", `subscription Watch { securityEvents { id } }`, nil)
		signedIn.refusedWith("2", "FORBIDDEN")
		denied := ts.securityEvents(admin, map[string]any{"types": []string{"ACCESS_DENIED"}, "since": began.UTC().Format(time.RFC3339Nano)}, 90)
		a := only(denied, func(e secEvent) bool { return str(e.IP) == "192.0.2.40" })
		if len(a) != 2 || a[0].UserID != nil || str(a[0].Operation) != "Mem" || str(a[1].Operation) != "Watch" ||
			!strings.Contains(a[1].Message, "securityEvents") {
			t.Fatalf("anonymous refusals = %v", a)
		}
		u := only(denied, func(e secEvent) bool { return str(e.IP) == "192.0.2.41" })
		if len(u) != 2 || str(u[0].UserID) != user.ID || str(u[0].Operation) != "Watch" || str(u[1].Operation) != "Mem" ||
			!strings.Contains(u[1].Message, "memoryStats") {
			t.Fatalf("USER refusals = %v", u)
		}
	})

	t.Run("TokenExpired", func(t *testing.T) {
		ts := ts.in(t)
		signer, err := auth.New(4, cfg.JWTSecret, -time.Minute) // the server's secret, expired at issue
		if err != nil {
			t.Fatal(err)
		}
		expired, err := signer.Issue(user.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r := ts.gql(from("192.0.2.46"), expired, "", `{ me { id } }`, nil); r.Status != http.StatusUnauthorized || r.code() != "UNAUTHENTICATED" {
			t.Fatalf("expired token: %s", r)
		}
		e := one(t, ts.securityEvents(admin, map[string]any{"ip": "192.0.2.46"}, 10), "for the expired token", func(secEvent) bool { return true })
		if e.Type != "TOKEN_INVALID" || e.UserID != nil {
			t.Fatalf("event = %v", e)
		}
	})

	t.Run("AccessDeniedOncePerOperation", func(t *testing.T) {
		ts := ts.in(t)
		c := from("192.0.2.45")
		user := many // no refusal counted yet
		r := ts.gql(c, user.Token, "", `query Many { a: serverInfo { pid } b: memoryStats { rssBytes } c: cacheStats { hits } d: serverInfo { version } }`, nil)
		if len(r.Errors) != 4 || r.code() != "FORBIDDEN" {
			t.Fatalf("four admin fields: %s", r)
		}
		e := one(t, ts.securityEvents(admin, map[string]any{"ip": "192.0.2.45", "types": []string{"ACCESS_DENIED"}}, 10), "for one operation", func(secEvent) bool { return true })
		if e.Type != "ACCESS_DENIED" || str(e.Operation) != "Many" || str(e.UserID) != user.ID {
			t.Fatalf("event = %v", e)
		}
		// Each operation is one refusal, over a websocket too; repeats of a refusal are counted
		// in its event (root fields run concurrently: which field is refused first may vary).
		ws := ts.wsOpen(c, map[string]any{"Authorization": "Bearer " + user.Token})
		for _, id := range []string{"1", "2"} {
			ws.subscribe(id, `query Twice { serverInfo { pid } cacheStats { hits } }`, nil)
			ws.refusedWith(id, "FORBIDDEN")
		}
		refusals := 0
		for _, e := range ts.countedEvents(admin, map[string]any{"ip": "192.0.2.45", "types": []string{"ACCESS_DENIED"}}, 10) {
			refusals += e.Count
		}
		if refusals != 3 {
			t.Fatalf("%d refusals counted, want 3 (one per operation)", refusals)
		}
	})

	t.Run("Filter", func(t *testing.T) {
		ts := ts.in(t)
		since := map[string]any{"since": began.UTC().Format(time.RFC3339Nano)}
		with := func(kv ...any) map[string]any {
			f := map[string]any{"since": since["since"]}
			for i := 0; i+1 < len(kv); i += 2 {
				f[kv[i].(string)] = kv[i+1]
			}
			return f
		}
		types := func(es []secEvent) []string {
			var out []string
			for _, e := range es {
				out = append(out, e.Type)
			}
			return out
		}
		if got := ts.securityEvents(admin, with("types", []string{"LOGIN_FAILED", "SIGNED_UP"}), 90); !slices.Equal(types(got), []string{"LOGIN_FAILED", "SIGNED_UP"}) {
			t.Errorf("types filter: %v", got)
		}
		for _, e := range ts.securityEvents(admin, with("minSeverity", "MEDIUM"), 90) {
			if e.Severity != "MEDIUM" && e.Severity != "HIGH" && e.Severity != "CRITICAL" {
				t.Errorf("minSeverity MEDIUM returned %v", e)
			}
		}
		if got := ts.securityEvents(admin, with("minSeverity", "MEDIUM"), 90); len(got) == 0 {
			t.Error("minSeverity MEDIUM returned nothing; the ACCESS_DENIED events are MEDIUM")
		}
		if got := ts.securityEvents(admin, with("ip", otherIP), 90); !slices.Equal(types(got), []string{"QUERY_REJECTED"}) {
			t.Errorf("ip filter: %v", got)
		}
		if got := ts.securityEvents(admin, with("ip", "198.51.100.99"), 90); len(got) != 0 {
			t.Errorf("ip filter for an unknown address: %v", got)
		}
		byUser := ts.securityEvents(admin, with("userId", user.ID), 90)
		if len(byUser) < 4 {
			t.Errorf("userId filter: %v", byUser)
		}
		for _, e := range byUser {
			if str(e.UserID) != user.ID {
				t.Errorf("userId filter returned %v", e)
			}
		}
		later := ts.securityEvents(admin, map[string]any{"since": mine[1].At.UTC().Format(time.RFC3339Nano), "ip": userIP}, 90)
		if !slices.Equal(types(later), []string{"ACCESS_DENIED"}) {
			t.Errorf("since filter: %v", later)
		}
		if got := ts.securityEvents(admin, since, 2); len(got) != 2 || got[0].ID != all[0].ID && got[0].At.Before(all[0].At) {
			t.Errorf("last 2: %v", got)
		}
		if r := ts.gql(nil, admin.Token, "", `{ securityEvents(last: 0){ id } }`, nil); r.code() != "BAD_USER_INPUT" {
			t.Errorf("last 0: %s", r)
		}
	})

	t.Run("LiveToAnAdmin", func(t *testing.T) {
		ts := ts.in(t)
		c := ts.wsOpen(nil, map[string]any{"Authorization": "Bearer " + admin.Token})
		c.subscribe("live", `subscription { securityEvents(minSeverity: LOW){ `+secEventFields+` } }`, nil)
		got := make(chan map[string]any, 1)
		go func() {
			m, err := c.read()
			for err == nil && (m["type"] == "ka" || m["type"] == "ping" || m["type"] == "pong") {
				m, err = c.read()
			}
			got <- m
		}()
		// The subscription starts asynchronously: another client fails logins until one arrives.
		for i := 0; ; i++ {
			if r := ts.login(from("192.0.2.50"), fmt.Sprintf("guess-%d@example.com", i), "nope"); r.code() != "UNAUTHENTICATED" {
				t.Fatalf("failed login answered %s", r)
			}
			select {
			case m := <-got:
				if m == nil || m["type"] != "next" {
					t.Fatalf("admin's subscription got %v", m)
				}
				raw, _ := json.Marshal(m["payload"])
				var p struct {
					Data struct{ SecurityEvents secEvent }
				}
				_ = json.Unmarshal(raw, &p)
				e := p.Data.SecurityEvents
				if e.Type != "LOGIN_FAILED" || str(e.IP) != "192.0.2.50" || !strings.HasPrefix(str(e.Email), "guess-") || e.Severity != "LOW" {
					t.Fatalf("admin received %s", raw)
				}
				return
			case <-time.After(200 * time.Millisecond):
				if i == 50 {
					t.Fatal("the admin's subscription received nothing")
				}
			}
		}
	})
}

// TestBruteForce fails BRUTE_FORCE_THRESHOLD logins for one email: one BRUTE_FORCE_SUSPECTED
// (HIGH) is logged, and that email (and the guessing client) is throttled harder from then on,
// while other clients and other accounts are not.
func TestBruteForce(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.BruteForceThreshold = 3
	cfg.LoginThrottleLimit = 10
	cfg.ThrottleTTL = time.Hour // no budget is earned back during the test
	ts := startServer(t, cfg)
	admin := ts.mustLogin(from("192.0.2.1"), testAdminEmail, testAdminPassword)
	const (
		victim   = "victim@example.com"
		attacker = "203.0.113.66"
	)
	ts.newAccount(from("192.0.2.2"), victim, "victim-password-1")
	ts.newAccount(from("192.0.2.2"), "bystander@example.com", "bystander-password-1")

	for i := range cfg.BruteForceThreshold {
		if r := ts.login(from(attacker), victim, fmt.Sprintf("guess-%d", i)); r.code() != "UNAUTHENTICATED" || r.Status != http.StatusOK {
			t.Fatalf("guess %d: %s", i, r)
		}
	}
	raised := ts.securityEvents(admin, map[string]any{"types": []string{"BRUTE_FORCE_SUSPECTED"}}, 10)
	if len(raised) != 1 {
		t.Fatalf("after %d failures: %v", cfg.BruteForceThreshold, raised)
	}
	if e := raised[0]; e.Severity != "HIGH" || str(e.Email) != victim || str(e.IP) != attacker || e.Message == "" {
		t.Fatalf("BRUTE_FORCE_SUSPECTED = %v", e)
	}

	t.Run("ThrottledHarder", func(t *testing.T) {
		ts := ts.in(t)
		// Well under LOGIN_THROTTLE_LIMIT, yet refused: the email is suspected now.
		for i := range 3 {
			r := ts.login(from(attacker), victim, fmt.Sprintf("more-%d", i))
			if r.Status != http.StatusTooManyRequests || r.code() != "RATE_LIMITED" || r.Header.Get("Retry-After") == "" {
				t.Fatalf("attempt %d after the alarm: %s", i, r)
			}
		}
		// From another client too: it is the email that is under attack.
		if r := ts.login(from("198.51.100.7"), victim, "victim-password-1"); r.code() != "RATE_LIMITED" {
			t.Fatalf("the suspected email from another client: %s", r)
		}
		// The guessing client is suspected as well: another account from it is throttled.
		if r := ts.login(from(attacker), "bystander@example.com", "x"); r.code() != "RATE_LIMITED" {
			t.Fatalf("another email from the guessing client: %s", r)
		}
	})
	t.Run("OthersUnaffected", func(t *testing.T) {
		ts := ts.in(t)
		ts.mustLogin(from("198.51.100.8"), "bystander@example.com", "bystander-password-1")
	})
	t.Run("LoggedOnce", func(t *testing.T) {
		ts := ts.in(t)
		if got := ts.securityEvents(admin, map[string]any{"types": []string{"BRUTE_FORCE_SUSPECTED"}}, 10); len(got) != 1 {
			t.Fatalf("BRUTE_FORCE_SUSPECTED logged %d times: %v", len(got), got)
		}
		limited := ts.securityEvents(admin, map[string]any{"types": []string{"RATE_LIMITED"}}, 10)
		if len(limited) == 0 || str(limited[len(limited)-1].Email) != victim {
			t.Fatalf("RATE_LIMITED events: %v", limited)
		}
	})
}

// rateHeaders checks the RateLimit-* headers of an answer.
func rateHeaders(t *testing.T, r *httpRes, limit, remaining int) {
	t.Helper()
	if got := r.Header.Get("RateLimit-Limit"); got != strconv.Itoa(limit) {
		t.Fatalf("RateLimit-Limit = %q, want %d: %s", got, limit, r)
	}
	if got := r.Header.Get("RateLimit-Remaining"); got != strconv.Itoa(remaining) {
		t.Fatalf("RateLimit-Remaining = %q, want %d: %s", got, remaining, r)
	}
	if reset, err := strconv.Atoi(r.Header.Get("RateLimit-Reset")); err != nil || reset <= 0 {
		t.Fatalf("RateLimit-Reset = %q: %s", r.Header.Get("RateLimit-Reset"), r)
	}
}

// refused checks a throttled answer: 429, Retry-After, RATE_LIMITED.
func refused(t *testing.T, r *httpRes, limit int) {
	t.Helper()
	if r.Status != http.StatusTooManyRequests || r.code() != "RATE_LIMITED" {
		t.Fatalf("want 429 RATE_LIMITED: %s", r)
	}
	if s, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After = %q: %s", r.Header.Get("Retry-After"), r)
	}
	rateHeaders(t, r, limit, 0)
}

// TestThrottle spends budgets: per client, per signed-in user, per login email and client, and
// inside a websocket.
func TestThrottle(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.ThrottleLimit = 5
	cfg.ThrottleTTL = time.Hour // one request earned back every 12 minutes: none during the test
	cfg.LoginThrottleLimit = 3
	cfg.BruteForceThreshold = 100
	ts := startServer(t, cfg)
	admin := ts.mustLogin(from("192.0.2.1"), testAdminEmail, testAdminPassword)
	const q = `{ me { id } }`

	t.Run("PerClient", func(t *testing.T) {
		ts := ts.in(t)
		a, b := from("192.0.2.10"), from("192.0.2.11")
		for i := range cfg.ThrottleLimit {
			r := ts.gql(a, "", "", q, nil)
			if r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Fatalf("request %d: %s", i+1, r)
			}
			rateHeaders(t, r, cfg.ThrottleLimit, cfg.ThrottleLimit-1-i)
		}
		refused(t, ts.gql(a, "", "", q, nil), cfg.ThrottleLimit)
		refused(t, ts.gql(a, "", "", q, nil), cfg.ThrottleLimit)
		if r := ts.gql(b, "", "", q, nil); r.Status != http.StatusOK {
			t.Fatalf("another client: %s", r)
		}
		// Logged once per window, whatever the number of refusals.
		e := one(t, ts.securityEvents(admin, map[string]any{"types": []string{"RATE_LIMITED"}, "ip": "192.0.2.10"}, 10), "for 192.0.2.10", func(secEvent) bool { return true })
		if e.Severity != "LOW" || e.Message == "" {
			t.Fatalf("RATE_LIMITED = %v", e)
		}
	})

	t.Run("SignedInUserHasItsOwnBudget", func(t *testing.T) {
		ts := ts.in(t)
		c := from("192.0.2.20")
		u := ts.newAccount(c, "budget@example.com", "password-123") // 1 of the address's 5
		for range cfg.ThrottleLimit - 1 {
			if r := ts.gql(c, "", "", q, nil); r.Status != http.StatusOK {
				t.Fatalf("anonymous: %s", r)
			}
		}
		refused(t, ts.gql(c, "", "", q, nil), cfg.ThrottleLimit)
		// Same address, signed in: the user's own budget.
		for i := range cfg.ThrottleLimit {
			r := ts.gql(c, u.Token, "", q, nil)
			if r.Status != http.StatusOK || len(r.Errors) > 0 {
				t.Fatalf("signed-in request %d: %s", i+1, r)
			}
			rateHeaders(t, r, cfg.ThrottleLimit, cfg.ThrottleLimit-1-i)
		}
		refused(t, ts.gql(c, u.Token, "", q, nil), cfg.ThrottleLimit)
		// And the user's budget follows the user, not the address.
		refused(t, ts.gql(from("192.0.2.21"), u.Token, "", q, nil), cfg.ThrottleLimit)
		e := one(t, ts.securityEvents(admin, map[string]any{"types": []string{"RATE_LIMITED"}, "userId": u.ID}, 10), "for the user", func(secEvent) bool { return true })
		if e.Message == "" {
			t.Fatalf("RATE_LIMITED = %v", e)
		}
	})

	t.Run("LoginPerEmail", func(t *testing.T) {
		ts := ts.in(t)
		const email = "popular@example.com"
		for i := range cfg.LoginThrottleLimit {
			if r := ts.login(from(fmt.Sprintf("192.0.2.%d", 100+i)), email, "nope"); r.code() != "UNAUTHENTICATED" {
				t.Fatalf("attempt %d: %s", i+1, r)
			}
		}
		r := ts.login(from("192.0.2.120"), email, "nope")
		refused(t, r, cfg.LoginThrottleLimit)
		if r.Data != nil && string(r.Data) != "null" {
			t.Fatalf("a refused login answered data: %s", r)
		}
		e := one(t, ts.securityEvents(admin, map[string]any{"types": []string{"RATE_LIMITED"}, "ip": "192.0.2.120"}, 10), "for the email", func(secEvent) bool { return true })
		if str(e.Email) != email || e.Severity != "MEDIUM" {
			t.Fatalf("RATE_LIMITED = %v", e)
		}
	})

	t.Run("LoginPerClient", func(t *testing.T) {
		ts := ts.in(t)
		c := from("192.0.2.30")
		for i := range cfg.LoginThrottleLimit {
			if r := ts.login(c, fmt.Sprintf("spray-%d@example.com", i), "nope"); r.code() != "UNAUTHENTICATED" {
				t.Fatalf("attempt %d: %s", i+1, r)
			}
		}
		refused(t, ts.login(c, "spray-x@example.com", "nope"), cfg.LoginThrottleLimit)
	})

	t.Run("InvalidTokensSpendTheAddressBudget", func(t *testing.T) {
		ts := ts.in(t)
		c := from("192.0.2.50")
		for i := range cfg.ThrottleLimit {
			r := ts.gql(c, "forged-token", "", q, nil)
			if r.Status != http.StatusUnauthorized || r.code() != "UNAUTHENTICATED" {
				t.Fatalf("bad token %d: %s", i+1, r)
			}
			rateHeaders(t, r, cfg.ThrottleLimit, cfg.ThrottleLimit-1-i)
		}
		refused(t, ts.gql(c, "forged-token", "", q, nil), cfg.ThrottleLimit)
		refused(t, ts.gql(c, "", "", q, nil), cfg.ThrottleLimit)
		// Only the requests let through were checked, so only they are logged.
		if got := ts.securityEvents(admin, map[string]any{"types": []string{"TOKEN_INVALID"}, "ip": "192.0.2.50"}, 20); len(got) != cfg.ThrottleLimit {
			t.Fatalf("%d TOKEN_INVALID events, want %d: %v", len(got), cfg.ThrottleLimit, got)
		}
	})

	t.Run("Websocket", func(t *testing.T) {
		ts := ts.in(t)
		c := ts.wsOpen(from("192.0.2.40"), nil) // the upgrade is 1 of the address's 5
		for i := range cfg.ThrottleLimit - 1 {
			id := strconv.Itoa(i)
			c.subscribe(id, q, nil)
			if m := c.next(); m["type"] != "next" || m["id"] != id || wsErrorCode(m) != "" {
				t.Fatalf("operation %d: %v", i+1, m)
			}
			if m := c.next(); m["type"] != "complete" {
				t.Fatalf("operation %d: %v", i+1, m)
			}
		}
		c.subscribe("over", q, nil)
		if m := c.next(); m["id"] != "over" || wsErrorCode(m) != "RATE_LIMITED" {
			t.Fatalf("operation over the budget: %v", m)
		}
	})
}

// TestTwoReplicasShareSecurity runs two servers on one store and one real Redis: the throttle
// budget is one for both, and a security event logged on one reaches a subscriber on the other.
func TestTwoReplicasShareSecurity(t *testing.T) {
	a, b := startReplicas(t, func(cfg *config.Config) {
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		cfg.ThrottleLimit = 6
		cfg.ThrottleTTL = time.Hour
	})

	t.Run("ThrottleShared", func(t *testing.T) {
		a, b := a.in(t), b.in(t)
		c := from("192.0.2.10")
		for i := range 6 {
			ts := []*testServer{a, b}[i%2]
			if r := ts.gql(c, "", "", `{ me { id } }`, nil); r.Status != http.StatusOK {
				t.Fatalf("request %d: %s", i+1, r)
			}
		}
		refused(t, a.gql(c, "", "", `{ me { id } }`, nil), 6)
		refused(t, b.gql(c, "", "", `{ me { id } }`, nil), 6)
	})

	t.Run("EventsCrossReplicas", func(t *testing.T) {
		a, b := a.in(t), b.in(t)
		admin := b.mustLogin(from("192.0.2.1"), testAdminEmail, testAdminPassword)
		sub := b.wsOpen(nil, map[string]any{"Authorization": "Bearer " + admin.Token})
		sub.subscribe("1", `subscription { securityEvents { `+secEventFields+` } }`, nil)
		got := make(chan map[string]any, 1)
		go func() { got <- sub.next() }()
		for i := 0; ; i++ {
			if r := a.login(from("192.0.2.60"), fmt.Sprintf("cross-%d@example.com", i), "nope"); r.code() != "UNAUTHENTICATED" {
				t.Fatalf("login on a: %s", r)
			}
			select {
			case m := <-got:
				raw, _ := json.Marshal(m["payload"])
				if m["type"] != "next" || !strings.Contains(string(raw), `"LOGIN_FAILED"`) || !strings.Contains(string(raw), `"192.0.2.60"`) {
					t.Fatalf("b's subscriber got %s", raw)
				}
				// And b's log holds it for the query too.
				one(t, b.securityEvents(admin, map[string]any{"ip": "192.0.2.60"}, 1), "on b", func(secEvent) bool { return true })
				return
			case <-time.After(200 * time.Millisecond):
				if i == 50 {
					t.Fatal("b's subscriber never got a's LOGIN_FAILED")
				}
			}
		}
	})
}

// productionConfig is a production configuration through the real loader (APP_ENV=production
// needs JWT_SECRET), on a free loopback port.
func productionConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(config.Sources{Environ: []string{
		"APP_ENV=production", "JWT_SECRET=" + strings.Repeat("p", 40), "PORT=0", "HOST=127.0.0.1",
		"DATA_DIR=" + t.TempDir(), "USE_REDIS=false", "ADMIN_EMAIL=" + testAdminEmail, "ADMIN_PASSWORD=" + testAdminPassword,
		"PASSWORD_HASH_COST=4", "LOG_LEVEL=warn",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.IsProduction() {
		t.Fatal("not a production configuration")
	}
	return cfg
}
