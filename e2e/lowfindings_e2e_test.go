package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/eventide/server/internal/server"
)

// End-to-end proof of issue 11's low findings: every error a client can cause carries
// extensions.code on every transport and is never INTERNAL_SERVER_ERROR nor an ERROR log line;
// a response carries at most 50 errors; SEED_DEMO is refused in production; attendees' names are
// for signed-in viewers.

// lowClient is a short-timeout HTTP client: a request the server holds open (a subscription
// over plain POST) fails the test instead of hanging it.
var lowClient = &http.Client{Timeout: 10 * time.Second}

// rawExchange sends req and returns the status, the Content-Type and the body.
func rawExchange(t testing.TB, req *http.Request) (int, string, []byte) {
	t.Helper()
	res, err := lowClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), raw
}

// errorsOf decodes a GraphQL response body's errors; a body that is not a GraphQL response with
// errors fails the test.
func errorsOf(t testing.TB, what string, raw []byte) []gqlError {
	t.Helper()
	var r struct {
		Errors []gqlError `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Errors) == 0 {
		t.Fatalf("%s: not a GraphQL error response (%v): %.600s", what, err, raw)
	}
	return r.Errors
}

// lowTransport sends one GraphQL request ({query, variables, operationName, extensions}) over
// some transport and returns the errors of its answer.
type lowTransport struct {
	name string
	send func(t *testing.T, ts *testServer, req map[string]any) []gqlError
}

func postTransport(t *testing.T, ts *testServer, req map[string]any) []gqlError {
	body, _ := json.Marshal(req)
	r, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	_, _, raw := rawExchange(t, r)
	return errorsOf(t, "POST", raw)
}

func getTransport(t *testing.T, ts *testServer, req map[string]any) []gqlError {
	q := url.Values{}
	for k, v := range req {
		if s, ok := v.(string); ok {
			q.Set(k, s)
		} else {
			b, _ := json.Marshal(v)
			q.Set(k, string(b))
		}
	}
	r, _ := http.NewRequest(http.MethodGet, ts.base+"/graphql?"+q.Encode(), nil)
	_, _, raw := rawExchange(t, r)
	return errorsOf(t, "GET", raw)
}

// sseTransport posts with Accept: text/event-stream and collects the errors of every event.
func sseTransport(t *testing.T, ts *testServer, req map[string]any) []gqlError {
	body, _ := json.Marshal(req)
	r, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "text/event-stream")
	_, ct, raw := rawExchange(t, r)
	if !strings.HasPrefix(ct, "text/event-stream") {
		return errorsOf(t, "SSE", raw)
	}
	var errs []gqlError
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			errs = append(errs, errorsOf(t, "SSE event", []byte(data))...)
		}
	}
	if len(errs) == 0 {
		t.Fatalf("SSE: no error event: %s", raw)
	}
	return errs
}

// wsTransport subscribes over a fresh websocket of subprotocol and collects the errors of every
// message up to the operation's end.
func wsTransport(subprotocol string) func(t *testing.T, ts *testServer, req map[string]any) []gqlError {
	return func(t *testing.T, ts *testServer, req map[string]any) []gqlError {
		c := ts.in(t).dialWS(subprotocol, nil)
		defer c.conn.CloseNow()
		start := "subscribe"
		if subprotocol == "graphql-ws" {
			start = "start"
		}
		var payload any = req
		if p, ok := req["payload"]; ok { // a payload that is not a request object at all
			payload = p
		}
		c.send(map[string]any{"id": "1", "type": start, "payload": payload})
		return wsErrors(t, c, "1")
	}
}

// wsErrors reads c up to operation id's complete (or a lone error) and returns every error it
// carried: an error message's payload is a list of errors (or one), a next/data message's payload
// a response.
func wsErrors(t *testing.T, c *wsClient, id string) []gqlError {
	t.Helper()
	var errs []gqlError
	for {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		_, b, err := c.conn.Read(ctx)
		cancel()
		if err != nil {
			if len(errs) > 0 { // graphql-transport-ws: an error ends the operation
				return errs
			}
			t.Fatalf("websocket: %v", err)
		}
		var m struct {
			ID      string          `json:"id"`
			Type    string          `json:"type"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("websocket message %s: %v", b, err)
		}
		switch m.Type {
		case "ka", "ping", "pong":
			continue
		case "complete":
			if len(errs) == 0 {
				t.Fatalf("operation %s completed without an error", id)
			}
			return errs
		case "error", "connection_error":
			var list []gqlError
			if json.Unmarshal(m.Payload, &list) != nil {
				var one gqlError
				if err := json.Unmarshal(m.Payload, &one); err != nil {
					t.Fatalf("error payload %s: %v", m.Payload, err)
				}
				list = []gqlError{one}
			}
			errs = append(errs, list...)
			if m.Type == "connection_error" {
				return errs
			}
		case "next", "data":
			var r struct{ Errors []gqlError }
			_ = json.Unmarshal(m.Payload, &r)
			errs = append(errs, r.Errors...)
		default:
			t.Fatalf("unexpected message %s", b)
		}
	}
}

// everyErrorCoded fails unless every error has a code, none is INTERNAL_SERVER_ERROR, and the
// first has want (and field, when given).
func everyErrorCoded(t *testing.T, errs []gqlError, want, field string) {
	t.Helper()
	for _, e := range errs {
		code, _ := e.Extensions["code"].(string)
		if code == "" || code == "INTERNAL_SERVER_ERROR" {
			t.Fatalf("an error with code %q: %+v (all: %+v)", code, e, errs)
		}
	}
	if want != "" && errs[0].Extensions["code"] != want {
		t.Fatalf("code %v, want %s: %+v", errs[0].Extensions["code"], want, errs)
	}
	if field != "" && errs[0].Extensions["field"] != field {
		t.Fatalf("field %v, want %s: %+v", errs[0].Extensions["field"], field, errs)
	}
}

// noErrorLines fails when the server logged at ERROR since mark (a byte offset in its log).
func noErrorLines(t *testing.T, ts *testServer, mark int) {
	t.Helper()
	logs := ts.logs.String()
	for line := range strings.SplitSeq(logs[mark:], "\n") {
		if strings.Contains(line, "level=ERROR") {
			t.Fatalf("a client's mistake was logged as an error: %s", line)
		}
	}
}

func apq(version any, hash string) map[string]any {
	return map[string]any{"persistedQuery": map[string]any{"version": version, "sha256Hash": hash}}
}

// TestEveryErrorHasACode sends each bad request shape over POST, GET, Server-Sent Events and
// both websocket subprotocols: every error in every answer has extensions.code (the expected one
// where the shape decides it), none is INTERNAL_SERVER_ERROR, and nothing is logged at ERROR.
func TestEveryErrorHasACode(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Org")
	eventID := ts.publishedEvent(org, "Coded", 10, 24*time.Hour)
	mark := len(ts.logs.String())

	query := `{ events(first: 1) { totalCount } }`
	sum := sha256.Sum256([]byte(query))
	hash := hex.EncodeToString(sum[:])
	search := `query($s: String) { events(filter: {search: $s}) { totalCount } }`

	type shape struct {
		name        string
		req         map[string]any
		code, field string
		only        string // "http": a shape of HTTP only (a subscription needs no stream elsewhere)
	}
	shapes := []shape{
		{name: "NoQuery", req: map[string]any{}, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "ParseFailed", req: map[string]any{"query": "{ events("}, code: "GRAPHQL_PARSE_FAILED"},
		{name: "UnknownField", req: map[string]any{"query": "{ nope }"}, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "OperationNotFound", req: map[string]any{"query": "query A { __typename }", "operationName": "C"}, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "OperationAmbiguous", req: map[string]any{"query": "query A { __typename } query B { __typename }"}, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "VariableOfWrongType", req: map[string]any{"query": `query($n: Int) { events(first: $n) { totalCount } }`, "variables": map[string]any{"n": "ten"}}, code: "BAD_USER_INPUT"},
		{name: "VariableMissing", req: map[string]any{"query": `query($n: Int!) { events(first: $n) { totalCount } }`}, code: "BAD_USER_INPUT"},
		{name: "APQHashMismatch", req: map[string]any{"query": query, "extensions": apq(1, strings.Repeat("0", 64))}, code: "BAD_REQUEST"},
		{name: "APQUnknownVersion", req: map[string]any{"query": query, "extensions": apq(2, hash)}, code: "BAD_REQUEST"},
		{name: "APQExtensionNotAnObject", req: map[string]any{"query": query, "extensions": map[string]any{"persistedQuery": "yes"}}, code: "BAD_REQUEST"},
		{name: "APQNotFound", req: map[string]any{"extensions": apq(1, strings.Repeat("1", 64))}, code: "PERSISTED_QUERY_NOT_FOUND"},
		{name: "NULInSearchLiteral", req: map[string]any{"query": `{ events(filter: {search: "a\u0000b"}) { totalCount } }`}, code: "BAD_USER_INPUT", field: "search"},
		{name: "NULInSearchVariable", req: map[string]any{"query": search, "variables": map[string]any{"s": "a\x00b"}}, code: "BAD_USER_INPUT", field: "search"},
		{name: "EscapeInID", req: map[string]any{"query": `query($id: ID!) { event(id: $id) { id } }`, "variables": map[string]any{"id": "x\x1b[2J"}}, code: "BAD_USER_INPUT", field: "id"},
		{name: "SubscriptionWithoutStream", req: map[string]any{"query": `subscription($id: ID!) { eventUpdated(id: $id) { id } }`, "variables": map[string]any{"id": eventID}}, code: "BAD_REQUEST", only: "http"},
	}
	transports := []lowTransport{
		{"POST", postTransport},
		{"GET", getTransport},
		{"SSE", sseTransport},
		{"graphql-transport-ws", wsTransport("graphql-transport-ws")},
		{"graphql-ws", wsTransport("graphql-ws")},
	}
	for _, tr := range transports {
		for _, s := range shapes {
			if s.only == "http" && (tr.name != "POST" && tr.name != "GET") {
				continue
			}
			t.Run(tr.name+"/"+s.name, func(t *testing.T) {
				code := s.code
				if tr.name == "GET" && s.name == "SubscriptionWithoutStream" {
					code = "" // GET runs queries only: any code (405, say) will do
				}
				everyErrorCoded(t, tr.send(t, ts, s.req), code, s.field)
			})
		}
	}

	// Shapes only one transport can carry.
	t.Run("GET/VariablesNotJSON", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodGet, ts.base+"/graphql?query="+url.QueryEscape("{ __typename }")+"&variables=%7B", nil)
		_, _, raw := rawExchange(t, r)
		everyErrorCoded(t, errorsOf(t, "GET", raw), "BAD_REQUEST", "")
	})
	t.Run("GET/ExtensionsNotJSON", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodGet, ts.base+"/graphql?query="+url.QueryEscape("{ __typename }")+"&extensions=%5B", nil)
		_, _, raw := rawExchange(t, r)
		everyErrorCoded(t, errorsOf(t, "GET", raw), "BAD_REQUEST", "")
	})
	t.Run("GET/BadEscape", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodGet, ts.base+"/graphql?query=%zz", nil)
		_, _, raw := rawExchange(t, r)
		everyErrorCoded(t, errorsOf(t, "GET", raw), "BAD_REQUEST", "")
	})
	t.Run("GET/Mutation", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodGet, ts.base+"/graphql?query="+url.QueryEscape("mutation { resetCalendarToken }"), nil)
		_, _, raw := rawExchange(t, r)
		everyErrorCoded(t, errorsOf(t, "GET", raw), "", "")
	})
	t.Run("PUT", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodPut, ts.base+"/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
		r.Header.Set("Content-Type", "application/json")
		_, _, raw := rawExchange(t, r)
		everyErrorCoded(t, errorsOf(t, "PUT", raw), "", "")
	})
	t.Run("GET/UpgradeNotWebsocket", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodGet, ts.base+"/graphql?query="+url.QueryEscape("{ __typename }"), nil)
		r.Header.Set("Upgrade", "h2c")
		_, ct, raw := rawExchange(t, r)
		everyErrorCoded(t, errorsOf(t, "Upgrade: h2c", raw), "BAD_REQUEST", "")
		if !strings.HasPrefix(ct, "application/") || !strings.Contains(ct, "json") {
			t.Fatalf("Content-Type %q for a JSON body", ct)
		}
	})
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		for _, p := range []any{5, "query", map[string]any{"query": 5}} {
			t.Run(fmt.Sprintf("%s/PayloadNotARequest/%v", proto, p), func(t *testing.T) {
				everyErrorCoded(t, wsTransport(proto)(t, ts, map[string]any{"payload": p}), "BAD_REQUEST", "")
			})
		}
	}
	t.Run("graphql-ws/SecondInit", func(t *testing.T) {
		c := ts.in(t).dialWS("graphql-ws", nil)
		defer c.conn.CloseNow()
		c.send(map[string]any{"type": "connection_init", "payload": map[string]any{}})
		everyErrorCoded(t, wsErrors(t, c, "1"), "BAD_REQUEST", "")
	})
	t.Run("graphql-ws/InvalidTokenInInit", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(ts.base, "http")+"/graphql",
			&websocket.DialOptions{Subprotocols: []string{"graphql-ws"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		c := &wsClient{t: t, conn: conn, ctx: ctx}
		c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer not-a-token"}})
		everyErrorCoded(t, wsErrors(t, c, ""), "UNAUTHENTICATED", "")
	})
	noErrorLines(t, ts, mark)
}

// TestAPQMistakesAreBadRequest: a persisted-query hash that does not match its query, and an
// unknown APQ version, are the client's mistakes: BAD_REQUEST with a message that says so, no
// ERROR log line; an unknown hash is still PERSISTED_QUERY_NOT_FOUND and a right one still runs.
func TestAPQMistakesAreBadRequest(t *testing.T) {
	ts := startServer(t, nil)
	mark := len(ts.logs.String())
	query := `{ events(first: 1) { totalCount } }`
	sum := sha256.Sum256([]byte(query))
	hash := hex.EncodeToString(sum[:])
	post := func(req map[string]any) *httpRes {
		body, _ := json.Marshal(req)
		return ts.exchange(http.MethodPost, body, hdr("Content-Type", "application/json"))
	}
	for _, tc := range []struct {
		name, code, says string
		req              map[string]any
	}{
		{"HashMismatch", "BAD_REQUEST", "hash", map[string]any{"query": query, "extensions": apq(1, strings.Repeat("0", 64))}},
		{"UnknownVersion", "BAD_REQUEST", "version", map[string]any{"query": query, "extensions": apq(3, hash)}},
		{"UnknownHash", "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound", map[string]any{"extensions": apq(1, strings.Repeat("2", 64))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(tc.req)
			if r.code() != tc.code || !strings.Contains(r.Errors[0].Message, tc.says) {
				t.Fatalf("want %s saying %q: %s", tc.code, tc.says, r)
			}
		})
	}
	if r := post(map[string]any{"query": query, "extensions": apq(1, hash)}); len(r.Errors) > 0 {
		t.Fatalf("a right hash: %s", r)
	}
	noErrorLines(t, ts, mark)
}

// TestControlCharactersAreBadUserInput: a NUL byte or another C0 control character in a string
// argument is BAD_USER_INPUT naming the field, before any resolver runs, never an internal error;
// multi-line free text (an event's description) keeps tab, LF and CR.
func TestControlCharactersAreBadUserInput(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Org")
	mark := len(ts.logs.String())
	start := time.Now().Add(48 * time.Hour).UTC()
	event := func(title, description string) map[string]any {
		return map[string]any{"i": map[string]any{"title": title, "description": description,
			"startsAt": start.Format(time.RFC3339), "endsAt": start.Add(time.Hour).Format(time.RFC3339), "capacity": 5}}
	}
	const create = `mutation($i: CreateEventInput!){ createEvent(input: $i){ id description } }`
	for _, tc := range []struct {
		name, token, query, field string
		vars                      map[string]any
	}{
		{"NULInSearch", "", `query($s: String){ events(filter: {search: $s}){ totalCount } }`, "search", map[string]any{"s": "gala\x00"}},
		{"NULInSearchLiteral", "", `{ events(filter: {search: "\u0000"}){ totalCount } }`, "search", nil},
		{"BellInCity", "", `{ venues(city: "Lis\u0007bon"){ totalCount } }`, "city", nil},
		{"ControlInTag", "", `query($t: String){ events(filter: {tag: $t}){ totalCount } }`, "tag", map[string]any{"t": "a\x7f\x01"}},
		{"NewlineInEmail", "", `mutation($e: String!, $p: String!){ login(email: $e, password: $p){ token } }`, "email", map[string]any{"e": "a@b.c\nBcc: x@y.z", "p": "whatever-pass"}},
		{"EscapeInSignUpName", "", `mutation($i: SignUpInput!){ signUp(input: $i){ token } }`, "name",
			map[string]any{"i": map[string]any{"email": "ctl@example.com", "password": "password-123", "name": "Eve\x1b[31m"}}},
		{"NewlineInTitle", org.Token, create, "title", event("Two\nlines", "")},
		{"NULInDescription", org.Token, create, "description", event("Title", "text\x00more")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.gql(nil, tc.token, "", tc.query, tc.vars)
			if r.code() != "BAD_USER_INPUT" || r.errExt("field") != tc.field {
				t.Fatalf("want BAD_USER_INPUT on %s: %s", tc.field, r)
			}
		})
	}
	t.Run("DescriptionKeepsTabsAndNewlines", func(t *testing.T) {
		desc := "Line one\r\n\tindented line two\nthree"
		r := ts.gql(nil, org.Token, "", create, event("Multi-line", desc))
		var out struct{ CreateEvent struct{ Description string } }
		if len(r.Errors) > 0 || json.Unmarshal(r.Data, &out) != nil || out.CreateEvent.Description != desc {
			t.Fatalf("a multi-line description: %s", r)
		}
	})
	t.Run("SignUpWithoutControlCharactersStillWorks", func(t *testing.T) {
		ts.in(t).newAccount(nil, "plain@example.com", "password-123")
	})
	noErrorLines(t, ts, mark)
}

// TestErrorListIsCapped: 650 unknown directives in a 2 KB request answer at most 50 errors in a
// small body, the last saying how many were left out, every one coded; over HTTP and websocket.
func TestErrorListIsCapped(t *testing.T) {
	ts := startServer(t, nil)
	query := "{ __typename " + strings.Repeat("@a ", 650) + "}"
	body, _ := json.Marshal(map[string]any{"query": query})
	if len(body) > 2048 {
		t.Fatalf("the request is %d bytes, want at most 2 KB", len(body))
	}
	check := func(t *testing.T, errs []gqlError, size int) {
		t.Helper()
		if len(errs) == 0 || len(errs) > 50 {
			t.Fatalf("%d errors, want 1 to 50", len(errs))
		}
		everyErrorCoded(t, errs, "GRAPHQL_VALIDATION_FAILED", "")
		// Each unknown directive is refused once or more: at least 650 - 49 are left out.
		last := errs[len(errs)-1]
		dropped, _ := last.Extensions["droppedErrors"].(float64)
		if dropped < 601 || !strings.Contains(last.Message, fmt.Sprint(dropped)) || len(errs) != 50 {
			t.Fatalf("the 50th error does not say how many more (at least 601) were left out: %+v", last)
		}
		t.Logf("%d errors in %d bytes for a %d-byte request", len(errs), size, len(body))
		if size > 8<<10 {
			t.Fatalf("a %d-byte answer to a %d-byte request", size, len(body))
		}
	}
	t.Run("POST", func(t *testing.T) {
		r := ts.exchange(http.MethodPost, body, hdr("Content-Type", "application/json"))
		check(t, r.Errors, len(r.Raw))
	})
	t.Run("GET", func(t *testing.T) {
		r, _ := http.NewRequest(http.MethodGet, ts.base+"/graphql?query="+url.QueryEscape(query), nil)
		_, _, raw := rawExchange(t, r)
		check(t, errorsOf(t, "GET", raw), len(raw))
	})
	t.Run("graphql-transport-ws", func(t *testing.T) {
		c := ts.in(t).dialWS("graphql-transport-ws", nil)
		defer c.conn.CloseNow()
		c.subscribe("1", query, nil)
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		defer cancel()
		_, raw, err := c.conn.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ Payload []gqlError }
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		check(t, m.Payload, len(raw))
	})
}

// TestSeedDemoRefusedInProduction: SEED_DEMO=true with APP_ENV=production stops start-up with
// exit status 2 and one line naming the key; development still seeds.
func TestSeedDemoRefusedInProduction(t *testing.T) {
	var stdout, stderr bytes.Buffer
	env := []string{"APP_ENV=production", "JWT_SECRET=" + strings.Repeat("s", 40), "SEED_DEMO=true",
		"DATA_DIR=" + t.TempDir(), "PORT=0", "HOST=127.0.0.1", "USE_REDIS=false"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := server.Run(ctx, nil, env, &stdout, &stderr)
	out := strings.TrimSpace(stderr.String())
	if code := server.ExitCode(err, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2 (err %v; %s)", code, err, out)
	}
	out = strings.TrimSpace(stderr.String())
	if strings.Count(out, "\n") != 0 || !strings.Contains(out, "SEED_DEMO") || !strings.Contains(out, "production") {
		t.Fatalf("want one line naming SEED_DEMO and production: %q", out)
	}
	if strings.Contains(stdout.String()+out, "demo-password") {
		t.Fatal("the demo password was printed")
	}
}

// TestAttendeesNeedASignedInViewer: an anonymous viewer gets UNAUTHENTICATED on Event.attendees
// while the counts stay public; a signed-in viewer sees the names; the anonymous error is not
// kept by the response cache, nor is a signed-in answer served to an anonymous viewer.
func TestAttendeesNeedASignedInViewer(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Org")
	id := ts.publishedEvent(org, "Private names", 10, 24*time.Hour)
	fan := ts.signUp("Fan Name")
	ts.mustData(fan.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": id}, nil)
	vars := map[string]any{"id": id}
	const names = `query($id: ID!){ event(id: $id){ attendees { totalCount edges { node { name } } } } }`

	anonymous := func() {
		t.Helper()
		r := ts.gql(nil, "", "", names, vars)
		if r.code() != "UNAUTHENTICATED" || len(r.Errors[0].Path) < 2 || r.Errors[0].Path[1] != "attendees" {
			t.Fatalf("anonymous attendees: %s", r)
		}
		if strings.Contains(string(r.Raw), "Fan Name") {
			t.Fatalf("an anonymous viewer saw a name: %s", r)
		}
	}
	anonymous()
	anonymous() // not answered from a kept response either

	var counts struct {
		Event struct{ AttendeeCount, WaitlistCount int }
	}
	ts.mustData("", `query($id: ID!){ event(id: $id){ attendeeCount waitlistCount } }`, vars, &counts)
	if counts.Event.AttendeeCount != 1 {
		t.Fatalf("anonymous attendeeCount %d, want 1", counts.Event.AttendeeCount)
	}

	var seen struct {
		Event struct {
			Attendees struct {
				TotalCount int
				Edges      []struct{ Node struct{ Name string } }
			}
		}
	}
	ts.mustData(fan.Token, names, vars, &seen)
	if seen.Event.Attendees.TotalCount != 1 || len(seen.Event.Attendees.Edges) != 1 || seen.Event.Attendees.Edges[0].Node.Name != "Fan Name" {
		t.Fatalf("a signed-in viewer sees %+v", seen)
	}
	anonymous()

	t.Run("Websocket", func(t *testing.T) {
		c := ts.in(t).dialWS("graphql-transport-ws", nil)
		defer c.conn.CloseNow()
		c.subscribe("1", names, vars)
		errs := wsErrors(t, c, "1")
		everyErrorCoded(t, errs, "UNAUTHENTICATED", "")
	})
}
