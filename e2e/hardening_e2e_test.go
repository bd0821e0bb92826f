package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// tooComplex checks a QUERY_TOO_COMPLEX refusal of limit what, with the measured value and the
// limit in the extensions and the message.
func tooComplex(t *testing.T, r *httpRes, what string, measured, max int) {
	t.Helper()
	if r.code() != "QUERY_TOO_COMPLEX" || len(r.Errors) != 1 {
		t.Fatalf("want QUERY_TOO_COMPLEX: %s", r)
	}
	if r.errExt("limit") != what || r.errExt("measured") != float64(measured) || r.errExt("max") != float64(max) {
		t.Fatalf("want limit %s, measured %d, max %d: %s", what, measured, max, r)
	}
	if msg := r.Errors[0].Message; !strings.Contains(msg, fmt.Sprint(max)) {
		t.Fatalf("the message does not name the limit %d: %q", max, msg)
	}
	if r.Data != nil && string(r.Data) != "null" {
		t.Fatalf("a refused query ran: %s", r)
	}
}

// accepted checks that a query ran without errors.
func accepted(t *testing.T, r *httpRes) {
	t.Helper()
	if r.Status != http.StatusOK || len(r.Errors) > 0 || len(r.Data) == 0 || string(r.Data) == "null" {
		t.Fatalf("want a clean answer: %s", r)
	}
}

// TestQueryLimits runs, through HTTP, a document exactly at each limit (accepted) and one just
// over it (QUERY_TOO_COMPLEX with the measured value and the limit).
func TestQueryLimits(t *testing.T) {
	cfg := testConfig(t)
	ts := startServer(t, cfg)
	if cfg.QueryMaxDepth != 12 || cfg.QueryMaxComplexity != 1000 || cfg.QueryMaxAliases != 30 || cfg.QueryMaxTokens != 2000 {
		t.Fatalf("the default limits changed: %d %d %d %d", cfg.QueryMaxDepth, cfg.QueryMaxComplexity, cfg.QueryMaxAliases, cfg.QueryMaxTokens)
	}
	user := ts.signUp("Limits")
	run := func(query string, vars map[string]any) *httpRes { return ts.gql(nil, user.Token, "", query, vars) }

	t.Run("Depth", func(t *testing.T) {
		// events 1, edges 2, node 3, organizer 4, organizedEvents 5 ... id 12.
		chain := func(leaf string) string {
			return `{ events(first: 1) { edges { node { organizer { organizedEvents(first: 1) { edges { node { organizer { organizedEvents(first: 1) { edges { node { ` +
				leaf + ` } } } } } } } } } } } }`
		}
		accepted(t, run(chain("id"), nil))
		tooComplex(t, run(chain("organizer { id }"), nil), "depth", 13, 12)
	})

	t.Run("ComplexityWithFirst", func(t *testing.T) {
		// me { id name email role } costs 5; events(first: a) { edges { node { attendees(first: b)
		// { edges { node { id } } } } } } costs 11 + a * (14 + 2b) (each events and attendees page
		// is a store query of 11, each edge and node 1, the id once per page): with a = 6 and
		// b = 75, 995. 1000 in all.
		q := func(me string) string {
			return `query($a: Int, $b: Int) { me { ` + me + ` } events(first: $a) { edges { node { attendees(first: $b) { edges { node { id } } } } } } }`
		}
		accepted(t, run(q("id name email role"), map[string]any{"a": 6, "b": 75}))
		tooComplex(t, run(q("id name email role createdAt"), map[string]any{"a": 6, "b": 75}), "complexity", 1001, 1000)
		// The same document, remembered as passed: the multipliers of this request count.
		tooComplex(t, run(q("id name email role"), map[string]any{"a": 6, "b": 76}), "complexity", 1012, 1000)
		tooComplex(t, run(q("id name email role"), map[string]any{"a": 7, "b": 75}), "complexity", 1164, 1000)
		accepted(t, run(q("id name email role"), map[string]any{"a": 6, "b": 75}))
		// Written in the document, and first capped at 100.
		accepted(t, run(`{ me { id name email role } events(first: 6) { edges { node { attendees(first: 75) { edges { node { id } } } } } } }`, nil))
		tooComplex(t, run(`{ events(first: 100) { edges { node { attendees(first: 500) { edges { node { id } } } } } } }`, nil), "complexity", 21411, 1000)
	})

	t.Run("Aliases", func(t *testing.T) {
		q := func(n int) string {
			var b strings.Builder
			b.WriteString("{ ")
			for i := range n {
				fmt.Fprintf(&b, "a%d: me { id } ", i)
			}
			return b.String() + "}"
		}
		accepted(t, run(q(30), nil))
		tooComplex(t, run(q(31), nil), "aliases", 31, 30)
	})

	t.Run("Tokens", func(t *testing.T) {
		// { me { id } } is 6 tokens; each comment line is one more.
		q := func(n int) string { return "{ me { id } }\n" + strings.Repeat("# padding\n", n-6) }
		accepted(t, run(q(2000), nil))
		tooComplex(t, run(q(2001), nil), "tokens", 2001, 2000)
	})

	t.Run("HugeRepeatedField", func(t *testing.T) {
		doc := "{ me { " + strings.Repeat("name ", 200<<10/5) + "} }"
		if len(doc) < 200<<10 || int64(len(doc)) > cfg.HTTPMaxBodyBytes/2 {
			t.Fatalf("document of %d bytes", len(doc))
		}
		r := run(doc, nil)
		if r.Status == http.StatusRequestEntityTooLarge || r.code() != "QUERY_TOO_COMPLEX" {
			t.Fatalf("200 KB of one field: %.300s", r)
		}
	})

	t.Run("FiveThousandTypenames", func(t *testing.T) {
		r := run("{ "+strings.Repeat("__typename ", 5000)+"}", nil)
		if r.code() != "QUERY_TOO_COMPLEX" {
			t.Fatalf("5000 __typename: %.300s", r)
		}
	})

	t.Run("RepeatsRefusedBelowTheTokenLimit", func(t *testing.T) {
		// Within the token limit, a field repeated hundreds of times still never reaches the
		// validator, whose merge check is quadratic in it.
		r := run("{ "+strings.Repeat("__typename ", 500)+"}", nil)
		if r.code() != "QUERY_TOO_COMPLEX" || r.errExt("limit") != "repeats" {
			t.Fatalf("500 __typename: %.300s", r)
		}
		accepted(t, run("{ "+strings.Repeat("__typename ", 20)+"}", nil))
	})

	t.Run("OverWebsocket", func(t *testing.T) {
		c := ts.wsOpen(nil, map[string]any{"Authorization": "Bearer " + user.Token})
		c.subscribe("deep", "{ "+strings.Repeat("__typename ", 5000)+"}", nil)
		c.refusedWith("deep", "QUERY_TOO_COMPLEX")
	})
}

// TestProductionHardening: in production, introspection is for admins only and validation
// errors suggest no names; in development both are open.
func TestProductionHardening(t *testing.T) {
	prod := startServer(t, productionConfig(t))
	dev := startServer(t, nil)
	const introspect = `query Schema { __schema { queryType { name } types { name } } }`

	t.Run("IntrospectionRefusedToNonAdmins", func(t *testing.T) {
		prod := prod.in(t)
		user := prod.signUp("Curious")
		admin := prod.admin()
		for _, who := range []struct{ name, token, code string }{{"anonymous", "", "UNAUTHENTICATED"}, {"USER", user.Token, "FORBIDDEN"}} {
			for _, q := range []string{
				introspect,
				`{ __type(name: "Event") { fields { name } } }`,
				`query Sneaky { s: __schema { queryType { name } } }`,
				`query Sneaky { ...F } fragment F on Query { ... on Query { __type(name: "User") { name } } }`,
			} {
				r := prod.gql(nil, who.token, "", q, nil)
				if r.code() != who.code || strings.Contains(string(r.Data), `"name"`) {
					t.Fatalf("%s introspecting in production with %s: %s", who.name, q, r)
				}
			}
		}
		// One event per client counts its four refusals (repeats are counted, not repeated).
		denied := prod.countedEvents(admin, map[string]any{"types": []string{"ACCESS_DENIED"}}, 20)
		if len(denied) != 2 || str(denied[0].UserID) != user.ID || str(denied[0].Operation) != "Schema" || denied[0].Count != 4 ||
			!strings.Contains(denied[0].Message, "introspection") || denied[1].UserID != nil || denied[1].Count != 4 {
			t.Fatalf("ACCESS_DENIED events: %v", denied)
		}
		// __typename is not introspection.
		accepted(t, prod.gql(nil, "", "", `{ __typename }`, nil))
	})
	t.Run("IntrospectionAllowedToAdmins", func(t *testing.T) {
		admin := prod.in(t).admin()
		r := prod.in(t).gql(nil, admin.Token, "", introspect, nil)
		accepted(t, r)
		if !strings.Contains(string(r.Data), `"name":"Query"`) {
			t.Fatalf("admin's introspection: %s", r)
		}
	})
	t.Run("IntrospectionOpenInDevelopment", func(t *testing.T) {
		accepted(t, dev.in(t).gql(nil, "", "", introspect, nil))
	})
	t.Run("NoSuggestionsInProduction", func(t *testing.T) {
		for _, q := range []string{`{ evnts { id } }`, `{ events(frist: 1) { totalCount } }`, `{ me { nme } }`} {
			r := prod.in(t).gql(nil, "", "", q, nil)
			if r.code() != "GRAPHQL_VALIDATION_FAILED" {
				t.Fatalf("%s: %s", q, r)
			}
			if strings.Contains(string(r.Raw), "Did you mean") {
				t.Fatalf("production suggests names for %s: %s", q, r)
			}
			if d := dev.in(t).gql(nil, "", "", q, nil); !strings.Contains(string(d.Raw), "Did you mean") {
				t.Fatalf("development suggests nothing for %s (so this test proves nothing): %s", q, d)
			}
		}
	})
}

// TestCSRFPrevention: a POST a cross-site form could send without a preflight is refused unless
// it carries a header only a preflighted request can.
func TestCSRFPrevention(t *testing.T) {
	ts := startServer(t, nil)
	body := []byte(`{"query":"{ me { id } }"}`)
	for _, ct := range []string{"text/plain", "text/plain; charset=utf-8", "", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		t.Run("Refused/"+ct, func(t *testing.T) {
			h := http.Header{}
			if ct != "" {
				h.Set("Content-Type", ct)
			}
			r := ts.in(t).exchange(http.MethodPost, body, h)
			if r.Status != http.StatusBadRequest || r.code() != "BAD_REQUEST" || !strings.Contains(r.Errors[0].Message, "cross-site request forgery") {
				t.Fatalf("Content-Type %q: %s", ct, r)
			}
		})
	}
	for _, ct := range []string{"text/plain", ""} {
		for _, preflight := range []string{"Apollo-Require-Preflight", "X-Apollo-Operation-Name"} {
			t.Run("WithPreflightHeader/"+ct+"/"+preflight, func(t *testing.T) {
				h := hdr(preflight, "true")
				if ct != "" {
					h.Set("Content-Type", ct)
				}
				r := ts.in(t).exchange(http.MethodPost, body, h)
				accepted(t, r)
			})
		}
	}
	t.Run("JSONWorks", func(t *testing.T) {
		accepted(t, ts.in(t).exchange(http.MethodPost, body, hdr("Content-Type", "application/json")))
	})
	t.Run("NotJSONEvenPreflighted", func(t *testing.T) {
		r := ts.in(t).exchange(http.MethodPost, []byte("query=%7B+me+%7B+id+%7D+%7D"), hdr("Content-Type", "application/x-www-form-urlencoded", "Apollo-Require-Preflight", "1"))
		if r.Status < 400 || r.Status >= 500 || r.code() != "BAD_REQUEST" {
			t.Fatalf("form body: %s", r)
		}
	})
}

// TestWebsocketGuards: the origin check, the init timeout, the cap on sockets per client and on
// subscriptions per socket.
func TestWebsocketGuards(t *testing.T) {
	cfg := testConfig(t)
	cfg.CORSOrigins = []string{"https://app.example"}
	cfg.WSMaxConnectionsPerClient = 3
	cfg.WSMaxSubscriptionsPerConnection = 2
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	ts := startServer(t, cfg)
	admin := ts.admin()

	t.Run("Origin", func(t *testing.T) {
		ts := ts.in(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, origin := range []string{"https://evil.example", "http://app.example", "https://app.example.evil.example"} {
			conn, res, err := ts.wsDial(ctx, hdr("Origin", origin, "X-Forwarded-For", "192.0.2.1"))
			if err == nil {
				conn.CloseNow()
				t.Fatalf("origin %s opened a websocket", origin)
			}
			if res == nil || res.StatusCode != http.StatusForbidden {
				t.Fatalf("origin %s: %v %v", origin, res, err)
			}
			var body gqlResponse
			if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.code() != "FORBIDDEN" {
				t.Fatalf("origin %s: body %+v %v", origin, body, err)
			}
		}
		ts.wsOpen(hdr("Origin", "https://app.example", "X-Forwarded-For", "192.0.2.2"), nil)
		ts.wsOpen(hdr("X-Forwarded-For", "192.0.2.3"), nil) // no Origin: not a browser
	})

	t.Run("ConnectionsPerClient", func(t *testing.T) {
		ts := ts.in(t)
		c := from("192.0.2.20")
		var open []*wsClient
		for range cfg.WSMaxConnectionsPerClient {
			open = append(open, ts.wsOpen(c, nil))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, res, err := ts.wsDial(ctx, c)
		if err == nil {
			conn.CloseNow()
			t.Fatal("one websocket too many was opened")
		}
		if res == nil || res.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("the extra upgrade: %v %v", res, err)
		}
		var body gqlResponse
		if err := json.NewDecoder(res.Body).Decode(&body); err != nil || body.code() != "RATE_LIMITED" {
			t.Fatalf("the extra upgrade's body: %+v %v", body, err)
		}
		// The refusal is a security event, once per client and window however often it repeats.
		for range 3 {
			if conn, _, err := ts.wsDial(ctx, c); err == nil {
				conn.CloseNow()
				t.Fatal("one websocket too many was opened")
			}
		}
		refusals := only(ts.securityEvents(admin, map[string]any{"types": []string{"RATE_LIMITED"}, "ip": "192.0.2.20"}, 100), func(e secEvent) bool {
			return str(e.Operation) == "websockets" && str(e.IP) == "192.0.2.20"
		})
		if len(refusals) != 1 || !strings.Contains(refusals[0].Message, "3 open websockets") {
			t.Fatalf("RATE_LIMITED events for the websocket cap: %v", refusals)
		}
		// Another client is not counted with this one.
		ts.wsOpen(from("192.0.2.21"), nil)
		// Closing one frees its place.
		open[0].conn.Close(websocket.StatusNormalClosure, "")
		deadline := time.Now().Add(5 * time.Second)
		for {
			conn, _, err := ts.wsDial(ctx, c)
			if err == nil {
				conn.CloseNow()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no place freed by a closed socket: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("SubscriptionsPerConnection", func(t *testing.T) {
		ts := ts.in(t)
		c := ts.wsOpen(from("192.0.2.30"), map[string]any{"Authorization": "Bearer " + admin.Token})
		const sub = `subscription { memoryStats(intervalMs: 250) { goroutines } }`
		c.subscribe("1", sub, nil)
		c.subscribe("2", sub, nil)
		seen := map[string]int{}
		// Both deliver their first sample at once.
		for seen["1"] == 0 || seen["2"] == 0 {
			m := c.next()
			if m["type"] != "next" || wsErrorCode(m) != "" {
				t.Fatalf("a subscription within the cap: %v", m)
			}
			seen[m["id"].(string)]++
		}
		c.subscribe("3", sub, nil)
		var refused map[string]any
		for refused == nil {
			m := c.next()
			switch {
			case m["id"] == "3" && wsErrorCode(m) != "":
				refused = m
			case m["id"] == "3":
				t.Fatalf("the third subscription was accepted: %v", m)
			case m["type"] != "next" || wsErrorCode(m) != "":
				t.Fatalf("a subscription within the cap: %v", m)
			default:
				seen[m["id"].(string)]++
			}
		}
		if code := wsErrorCode(refused); code != "RATE_LIMITED" {
			t.Fatalf("the third subscription: %v", refused)
		}
		// The first two keep working.
		before := map[string]int{"1": seen["1"], "2": seen["2"]}
		for seen["1"] < before["1"]+2 || seen["2"] < before["2"]+2 {
			m := c.next()
			if m["id"] == "3" && m["type"] == "complete" {
				continue
			}
			if m["type"] != "next" || wsErrorCode(m) != "" {
				t.Fatalf("after the refusal: %v", m)
			}
			seen[m["id"].(string)]++
		}
		// Completing one frees its place.
		c.send(map[string]any{"id": "1", "type": "complete"})
		deadline := time.Now().Add(5 * time.Second)
		for n := 4; ; n++ {
			id := fmt.Sprint(n)
			c.subscribe(id, sub, nil)
			var m map[string]any
			for m = c.next(); m["id"] != id; m = c.next() {
			}
			if m["type"] == "next" && wsErrorCode(m) == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no place freed by a completed subscription: %v", m)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestWebsocketInitTimeout: a socket that never sends connection_init is closed by the server
// with 4408 after its init timeout (10 s, so this test runs in parallel with others).
func TestWebsocketInitTimeout(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	initialised := ts.wsOpen(nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := ts.wsDial(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if code, reason := closeStatus(t, conn); code != 4408 {
		t.Fatalf("closed with %d %q, want 4408 (graphql-transport-ws: connection initialisation timeout)", code, reason)
	}
	// A socket that sent its init in time is still open past the timeout.
	c := initialised
	c.subscribe("1", `{ __typename }`, nil)
	if m := c.next(); m["type"] != "next" {
		t.Fatalf("after the timeout: %v", m)
	}
}

// TestForwardedFor: X-Forwarded-For names the client only when the peer is a trusted proxy.
func TestForwardedFor(t *testing.T) {
	ipOfFailedLogin := func(t *testing.T, trusted []netip.Prefix, xff ...string) string {
		cfg := testConfig(t)
		cfg.TrustedProxies = trusted
		ts := startServer(t, cfg)
		admin := ts.admin()
		h := http.Header{}
		for _, v := range xff {
			h.Add("X-Forwarded-For", v)
		}
		if r := ts.login(h, "who@example.com", "nope"); r.code() != "UNAUTHENTICATED" {
			t.Fatalf("login: %s", r)
		}
		e := one(t, ts.securityEvents(admin, map[string]any{"types": []string{"LOGIN_FAILED"}}, 10), "LOGIN_FAILED", func(secEvent) bool { return true })
		return str(e.IP)
	}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

	t.Run("Untrusted", func(t *testing.T) {
		if ip := ipOfFailedLogin(t, nil, "203.0.113.9"); ip != "127.0.0.1" {
			t.Fatalf("ip = %q, want the peer 127.0.0.1: the header of an untrusted peer was believed", ip)
		}
		if ip := ipOfFailedLogin(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "203.0.113.9"); ip != "127.0.0.1" {
			t.Fatalf("ip = %q with another proxy trusted", ip)
		}
	})
	t.Run("Trusted", func(t *testing.T) {
		if ip := ipOfFailedLogin(t, loopback, "203.0.113.9"); ip != "203.0.113.9" {
			t.Fatalf("ip = %q, want the forwarded 203.0.113.9", ip)
		}
		// The nearest untrusted hop is the client: what it wrote to the left is not believed.
		if ip := ipOfFailedLogin(t, loopback, "198.51.100.1, 203.0.113.9"); ip != "203.0.113.9" {
			t.Fatalf("ip = %q for a chain, want 203.0.113.9", ip)
		}
		if ip := ipOfFailedLogin(t, loopback, "garbage"); ip != "127.0.0.1" {
			t.Fatalf("ip = %q for a malformed header, want the peer", ip)
		}
	})
}

// TestSecuritySubscriberThatNeverReads: an admin subscribed to securityEvents who never reads
// does not slow the server down. Events are logged in bursts that a second admin, who reads,
// receives in full before the next burst; the one who never reads fills its socket and is
// dropped (counted in eventide_security_subscribers_dropped_total), and the server answers every
// request meanwhile.
func TestSecuritySubscriberThatNeverReads(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.ThrottleLimit = 100_000
	ts := startServer(t, cfg)
	admin := ts.admin()
	// Long strings make each event about 1 KB on the wire, so the socket fills sooner.
	long := ts.newAccount(nil, strings.Repeat("a", 200)+"@example.com", "password-123")
	const sub = `subscription { securityEvents { ` + secEventFields + ` } }`

	// The reader counts the QUERY_REJECTED events it receives.
	reader := ts.wsOpen(nil, map[string]any{"Authorization": "Bearer " + admin.Token})
	reader.subscribe("1", sub, nil)
	received := make(chan int, 1)
	go func() {
		report := func(n int) { // the latest count only
			select {
			case <-received:
			default:
			}
			received <- n
		}
		n := 0
		for {
			m, err := reader.read()
			if err != nil {
				report(-1)
				return
			}
			if m["type"] == "next" && strings.Contains(fmt.Sprint(m["payload"]), "QUERY_REJECTED") {
				n++
				report(n)
			}
		}
	}()
	waitReader := func(want int) {
		t.Helper()
		for n := 0; n < want; {
			select {
			case n = <-received:
				if n < 0 {
					t.Fatal("the reader's socket failed")
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("the reader received %d of %d events", n, want)
			}
		}
	}

	// The one who never reads, with a small receive buffer.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := ts.dialSmallBuffer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	for _, m := range []map[string]any{
		{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + admin.Token}},
		{"id": "1", "type": "subscribe", "payload": map[string]any{"query": sub}},
	} {
		b, _ := json.Marshal(m)
		if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	// From here on it reads nothing.
	deadline := time.Now().Add(10 * time.Second)
	for ts.metric("eventide_security_subscribers") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the subscriptions did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A USER's websocket sends operations too deep to run: each logs one QUERY_REJECTED, with long
	// strings (an ACCESS_DENIED would do no more: its repeats are counted in one event). A burst is
	// fewer than a subscriber's buffer holds: only a subscriber that does not read falls behind.
	const burst = 50
	flooder := ts.wsOpen(hdr("User-Agent", strings.Repeat("a", 256)), map[string]any{"Authorization": "Bearer " + long.Token})
	flood := "query Flood" + strings.Repeat("x", 250) + ` { events { edges { node { organizer { organizedEvents { edges { node { organizer { organizedEvents { edges { node { organizer { id } } } } } } } } } } } } }`
	logged := 0
	for ts.metric("eventide_security_subscribers_dropped_total") == 0 {
		if logged >= 100_000 {
			t.Fatalf("%d events logged and the subscriber that never reads is still fed", logged)
		}
		for i := range burst {
			flooder.subscribe(fmt.Sprint(logged+i), flood, nil)
		}
		for ended := 0; ended < burst; { // each refused with an error, maybe then a complete
			m := flooder.next()
			switch {
			case m["type"] == "complete":
			case (m["type"] == "error" || m["type"] == "next") && wsErrorCode(m) == "QUERY_TOO_COMPLEX":
				ended++
			default:
				t.Fatalf("flood: %v", m)
			}
		}
		logged += burst
		// The server answers everyone else meanwhile, and the reader gets every event.
		accepted(t, ts.gql(nil, "", "", `{ events(first: 1) { totalCount } }`, nil))
		waitReader(logged)
	}
	t.Logf("the subscriber that never reads was dropped after %d events", logged)
	if n := ts.metric("eventide_security_subscribers_dropped_total"); n != 1 {
		t.Fatalf("%v subscribers dropped, want only the one that never reads", n)
	}
	if n := ts.metric("eventide_security_subscribers"); n != 1 {
		t.Fatalf("%v subscribers left, want the reader", n)
	}
	accepted(t, ts.gql(nil, admin.Token, "", `{ serverInfo { pid } }`, nil))
}

// TestCORSOrigins: HTTP and websockets agree on the origins allowed: CORS_ORIGINS, and none
// but the server's own when it is not set (production's default).
func TestCORSOrigins(t *testing.T) {
	preflight := func(t *testing.T, ts *testServer, origin string) http.Header {
		t.Helper()
		req, _ := http.NewRequest(http.MethodOptions, ts.base+"/graphql", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "apollo-require-preflight,authorization,content-type") // sorted, as browsers send it
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.Header
	}
	wsStatus := func(t *testing.T, ts *testServer, origin string) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, res, err := ts.wsDial(ctx, hdr("Origin", origin))
		if err == nil {
			conn.CloseNow()
			return http.StatusSwitchingProtocols
		}
		if res == nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}

	t.Run("UnsetMeansNoOtherOrigin", func(t *testing.T) {
		cfg := productionConfig(t)
		if len(cfg.CORSOrigins) != 0 {
			t.Fatalf("production's default CORS_ORIGINS = %v", cfg.CORSOrigins)
		}
		ts := startServer(t, cfg).in(t)
		if h := preflight(t, ts, "https://elsewhere.example"); h.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("another origin allowed over HTTP: %v", h)
		}
		if s := wsStatus(t, ts, "https://elsewhere.example"); s != http.StatusForbidden {
			t.Fatalf("another origin's websocket: %d", s)
		}
	})
	t.Run("Listed", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.CORSOrigins = []string{"https://app.example"}
		ts := startServer(t, cfg).in(t)
		h := preflight(t, ts, "https://app.example")
		if h.Get("Access-Control-Allow-Origin") != "https://app.example" ||
			!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "apollo-require-preflight") {
			t.Fatalf("the listed origin's preflight: %v", h)
		}
		if h := preflight(t, ts, "https://evil.example"); h.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("an unlisted origin allowed: %v", h)
		}
		r := ts.gql(hdr("Origin", "https://app.example"), "", "", `{ me { id } }`, nil)
		if exposed := r.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(exposed, "Ratelimit-Remaining") && !strings.Contains(exposed, "RateLimit-Remaining") {
			t.Fatalf("the rate-limit headers are not exposed to the page: %v", r.Header)
		}
		if s := wsStatus(t, ts, "https://app.example"); s != http.StatusSwitchingProtocols {
			t.Fatalf("the listed origin's websocket: %d", s)
		}
	})
}
