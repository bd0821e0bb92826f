package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// End-to-end proof of issue 13's HTTP findings (1 to 7): what browsers' GraphQL clients (Apollo
// Client, urql, graphql-sse) and the GraphQL-over-HTTP spec expect of /graphql.

// Accept headers the clients send.
const (
	urqlAccept      = "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"
	urqlSubAccept   = "text/event-stream, multipart/mixed"
	apolloAccept    = "application/graphql-response+json,application/json;q=0.9"
	apolloSubAccept = `multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json`
	graphqlResponse = "application/graphql-response+json"
	applicationJSON = "application/json"
)

// specClient is an HTTP client that gives up on an answer that does not come: a request held
// open fails the test instead of hanging it.
var specClient = &http.Client{Timeout: 5 * time.Second}

// specRes is one raw exchange.
type specRes struct {
	Status int
	Header http.Header
	Raw    []byte
}

func (r specRes) mediaType() string {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt
}

// body decodes the answer as one GraphQL response; keys lists its top-level keys.
func (r specRes) body(t *testing.T) (resp gqlResponse, keys map[string]json.RawMessage) {
	t.Helper()
	if err := json.Unmarshal(r.Raw, &keys); err != nil {
		t.Fatalf("answer %d %q is not JSON: %v: %.400s", r.Status, r.Header.Get("Content-Type"), err, r.Raw)
	}
	_ = json.Unmarshal(r.Raw, &resp)
	return resp, keys
}

func (r specRes) String() string {
	return fmt.Sprintf("%d %s %.400s", r.Status, r.Header.Get("Content-Type"), r.Raw)
}

// specDo sends method /graphql with body and headers h (Content-Type: application/json for a
// body, unless h says otherwise) and reads the whole answer.
func (ts *testServer) specDo(t *testing.T, method, query string, body any, h http.Header) specRes {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	u := ts.base + "/graphql"
	if query != "" {
		u += "?" + query
	}
	req, _ := http.NewRequest(method, u, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range h {
		req.Header[k] = v
	}
	res, err := specClient.Do(req)
	if err != nil {
		t.Fatalf("%s /graphql: %v", method, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return specRes{Status: res.StatusCode, Header: res.Header, Raw: raw}
}

func gqlBody(query string, vars map[string]any) map[string]any {
	return map[string]any{"query": query, "variables": vars}
}

// preflightWith sends a browser's CORS preflight for a POST from origin asking for headers.
func (ts *testServer) preflightWith(t *testing.T, origin, headers string) http.Header {
	t.Helper()
	req, _ := http.NewRequest(http.MethodOptions, ts.base+"/graphql", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", headers)
	res, err := specClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.Header
}

// TestCORSPreflightClientHeaders (finding 1): a preflight asking for the headers Apollo Client
// (client awareness), OpenTelemetry and Sentry send is allowed, with a Max-Age, and so are the
// headers of CORS_ALLOWED_HEADERS; a header on neither list is not.
func TestCORSPreflightClientHeaders(t *testing.T) {
	t.Parallel()
	const origin = "http://127.0.0.2:5173"
	cfg := testConfig(t)
	cfg.CORSOrigins = []string{origin}
	cfg.CORSAllowedHeaders = []string{"X-Tenant"}
	ts := startServer(t, cfg)

	for name, headers := range map[string]string{
		// What Chromium sends for Apollo Client 4's HttpLink with clientAwareness and a token:
		// lower-case, sorted, the safelisted Accept left out.
		"ApolloClient":  "apollographql-client-name,apollographql-client-version,authorization,content-type",
		"OpenTelemetry": "content-type,traceparent,tracestate",
		"Sentry":        "baggage,content-type,sentry-trace",
		"Others":        "apollo-require-preflight,x-apollo-operation-name,x-request-id",
		"Configured":    "content-type,x-tenant",
	} {
		t.Run(name, func(t *testing.T) {
			h := ts.preflightWith(t, origin, headers)
			if h.Get("Access-Control-Allow-Origin") != origin {
				t.Fatalf("preflight for %s: no Access-Control-Allow-Origin: %v", headers, h)
			}
			allowed := strings.ToLower(h.Get("Access-Control-Allow-Headers"))
			for _, want := range strings.Split(headers, ",") {
				if !strings.Contains(allowed, want) {
					t.Fatalf("preflight for %s: %q not allowed (%q)", headers, want, allowed)
				}
			}
			if h.Get("Access-Control-Max-Age") != "600" {
				t.Fatalf("Access-Control-Max-Age %q, want 600", h.Get("Access-Control-Max-Age"))
			}
		})
	}
	t.Run("UnlistedHeader", func(t *testing.T) {
		if h := ts.preflightWith(t, origin, "content-type,x-unlisted"); h.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("a header on no list was allowed: %v", h)
		}
	})
	t.Run("RequestWithTheHeaders", func(t *testing.T) {
		r := ts.specDo(t, http.MethodPost, "", gqlBody(`{ __typename }`, nil), hdr("Origin", origin,
			"apollographql-client-name", "web", "apollographql-client-version", "1.0", "traceparent",
			"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "Accept", apolloAccept))
		if r.Status != http.StatusOK || r.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Fatalf("the request after the preflight: %s %v", r, r.Header)
		}
	})
}

// TestAuthPayloadUserSeesItself (finding 2): the user login and signUp return is resolved as
// that user sees themself: its email is there, for a new user and for the admin.
func TestAuthPayloadUserSeesItself(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	email := fmt.Sprintf("self-%d@example.com", time.Now().UnixNano())
	var up struct {
		SignUp struct {
			User struct{ Email *string }
		}
	}
	ts.mustData("", `mutation($i: SignUpInput!){ signUp(input: $i){ token user { id email } } }`,
		map[string]any{"i": map[string]any{"email": email, "password": "password-123", "name": "Self"}}, &up)
	if up.SignUp.User.Email == nil || *up.SignUp.User.Email != email {
		t.Fatalf("signUp's user: email %v, want %s", up.SignUp.User.Email, email)
	}
	for who, creds := range map[string][2]string{"User": {email, "password-123"}, "Admin": {testAdminEmail, testAdminPassword}} {
		var in struct {
			Login struct{ User struct{ Email *string } }
		}
		ts.mustData("", `mutation($e: String!, $p: String!){ login(email: $e, password: $p){ user { email } } }`,
			map[string]any{"e": creds[0], "p": creds[1]}, &in)
		if in.Login.User.Email == nil || *in.Login.User.Email != creds[0] {
			t.Fatalf("%s's login: user.email %v, want %s", who, in.Login.User.Email, creds[0])
		}
	}
	// Outside the payload's user, the request's viewer holds: an anonymous one sees no email.
	var other struct {
		Login struct{ User struct{ ID string } }
	}
	ts.mustData("", `mutation($e: String!, $p: String!){ login(email: $e, password: $p){ user { id } } }`,
		map[string]any{"e": email, "p": "password-123"}, &other)
	r := ts.do("", `query($id: ID!){ user(id: $id){ email } }`, map[string]any{"id": other.Login.User.ID})
	if len(r.Errors) > 0 || string(r.Data) != `{"user":{"email":null}}` {
		t.Fatalf("an anonymous viewer's look at the user: %s %+v", r.Data, r.Errors)
	}
}

// TestAcceptNegotiation (finding 3): a stream answers only a client that prefers one, or a
// subscription that accepts Server-Sent Events; urql's default Accept gets plain JSON for its
// queries and mutations, and those are not counted as streams.
func TestAcceptNegotiation(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.WSMaxConnectionsPerClient = 1
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	ts := startServer(t, cfg)
	org := ts.organizer("Negotiating Org")
	id := ts.publishedEvent(org, "Negotiated", 10, 24*time.Hour)
	vars := map[string]any{"id": id}
	auth := func(accept string) http.Header {
		return hdr("Accept", accept, "Authorization", "Bearer "+org.Token)
	}

	for _, tc := range []struct {
		name, accept, query, want string
	}{
		{"UrqlMutation", urqlAccept, `mutation($id: ID!){ updateEvent(id: $id, input: {title: "Urql"}){ title } }`, graphqlResponse},
		{"UrqlQuery", urqlAccept, `query($id: ID!){ event(id: $id){ title } }`, graphqlResponse},
		{"JSONFirst", "application/json, text/event-stream", `query($id: ID!){ event(id: $id){ title } }`, applicationJSON},
		{"SSEWithLowerQ", "text/event-stream;q=0.5, application/json", `query($id: ID!){ event(id: $id){ title } }`, applicationJSON},
		{"SSEPreferred", "text/event-stream, application/json;q=0.5", `query($id: ID!){ event(id: $id){ title } }`, "text/event-stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.specDo(t, http.MethodPost, "", gqlBody(tc.query, vars), auth(tc.accept))
			if r.Status != http.StatusOK || r.mediaType() != tc.want {
				t.Fatalf("Accept %q: %s, want 200 %s", tc.accept, r, tc.want)
			}
			if tc.want != "text/event-stream" {
				if resp, _ := r.body(t); len(resp.Errors) > 0 || !strings.Contains(string(resp.Data), "title") {
					t.Fatalf("Accept %q: %s", tc.accept, r.Raw)
				}
			}
		})
	}

	// A subscription that accepts SSE gets SSE, even where JSON comes first; and while that
	// stream holds the client's one place, urql's mutations from the same client still run.
	const client = "192.0.2.131"
	s, status, raw := ts.sseOpen(t, hdr("Accept", urqlAccept, "X-Forwarded-For", client), "", eventUpdatedSub, vars)
	if s == nil {
		t.Fatalf("a subscription with urql's default Accept: %d %s", status, raw)
	}
	r := ts.specDo(t, http.MethodPost, "", gqlBody(`mutation($id: ID!){ updateEvent(id: $id, input: {title: "Streamed"}){ title } }`, vars),
		hdr("Accept", urqlAccept, "Authorization", "Bearer "+org.Token, "X-Forwarded-For", client))
	if r.Status != http.StatusOK || r.mediaType() != graphqlResponse {
		t.Fatalf("urql's mutation beside an open stream: %s", r)
	}
	again := 0
	s.awaitUpdate(t, 10*time.Second, "Streamed", func() {
		again++
		ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": vars["id"], "t": fmt.Sprintf("Streamed %d", again)}, nil)
	})
	// urql's own subscription Accept opens a stream too (another client: the first one's place is taken).
	if s, status, raw := ts.sseOpen(t, hdr("Accept", urqlSubAccept, "X-Forwarded-For", "192.0.2.132"), "", eventUpdatedSub, vars); s == nil {
		t.Fatalf("a subscription with urql's subscription Accept: %d %s", status, raw)
	}
}

// TestPlainPOSTSubscriptionAnswersAtOnce (finding 4): a subscription that accepts no stream is
// answered at once with a coded error, not held open until an event (Apollo Client's multipart
// request gets a multipart stream: TestMultipartSubscriptionNegotiation).
func TestPlainPOSTSubscriptionAnswersAtOnce(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	org := ts.organizer("Quiet Org")
	id := ts.publishedEvent(org, "Quiet", 10, 24*time.Hour)
	for _, accept := range []string{"application/json", apolloAccept, "multipart/mixed;q=0, application/json"} {
		t.Run(accept, func(t *testing.T) {
			r := ts.specDo(t, http.MethodPost, "", gqlBody(eventUpdatedSub, map[string]any{"id": id}), hdr("Accept", accept))
			resp, _ := r.body(t)
			if c := resp.code(); c != "BAD_REQUEST" && c != "NOT_ACCEPTABLE" {
				t.Fatalf("a subscription over plain POST (Accept %q): %s", accept, r)
			}
			everyErrorCoded(t, resp.Errors, "", "")
		})
	}
	// A persisted subscription sent by its hash alone, with urql's default Accept: negotiation
	// cannot see its text, and the POST transport refuses it at once instead of running it.
	t.Run("PersistedByHash", func(t *testing.T) {
		sum := sha256.Sum256([]byte(eventUpdatedSub))
		ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
		vars := map[string]any{"id": id}
		// Sent whole once (refused: no stream), which keeps its text.
		ts.specDo(t, http.MethodPost, "", map[string]any{"query": eventUpdatedSub, "variables": vars, "extensions": ext}, nil)
		r := ts.specDo(t, http.MethodPost, "", map[string]any{"variables": vars, "extensions": ext}, hdr("Accept", urqlAccept))
		resp, _ := r.body(t)
		if resp.code() != "BAD_REQUEST" {
			t.Fatalf("a persisted subscription by its hash: %s", r)
		}
	})
}

// TestMiddlewareErrorsInClientMediaType (finding 5): an error from the middleware (a bad token,
// a throttled client, a body too large, malformed JSON, an unsupported content type, a body that
// does not arrive) is in application/graphql-response+json when the client asks for it, else
// application/json, always with its code.
func TestMiddlewareErrorsInClientMediaType(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.HTTPMaxBodyBytes = 4096
	cfg.HTTPReadTimeout = time.Second
	cfg.ThrottleLimit = 30
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	ts := startServer(t, cfg)

	for _, accept := range []string{apolloAccept, urqlAccept, "application/json", "*/*", ""} {
		want := applicationJSON
		if strings.HasPrefix(accept, graphqlResponse) {
			want = graphqlResponse
		}
		t.Run(fmt.Sprintf("Accept=%q", accept), func(t *testing.T) {
			h := func(kv ...string) http.Header {
				out := hdr(kv...)
				if accept != "" {
					out.Set("Accept", accept)
				}
				return out
			}
			check := func(what string, r specRes, status int, code string) {
				t.Helper()
				resp, keys := r.body(t)
				if r.Status != status || r.mediaType() != want || resp.code() != code {
					t.Fatalf("%s: %s; want %d %s %s", what, r, status, want, code)
				}
				if _, ok := keys["data"]; ok {
					t.Fatalf("%s: a request error with a data key: %s", what, r.Raw)
				}
			}
			check("bad token", ts.specDo(t, http.MethodPost, "", gqlBody(`{ me { id } }`, nil), h("Authorization", "Bearer nope")),
				http.StatusUnauthorized, "UNAUTHENTICATED")
			big := gqlBody(`{ __typename }`, map[string]any{"pad": strings.Repeat("x", 5000)})
			check("too large", ts.specDo(t, http.MethodPost, "", big, h()), http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE")

			req, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", strings.NewReader(`{"query": `))
			req.Header = h("Content-Type", "application/json")
			check("malformed JSON", rawSpec(t, req), http.StatusBadRequest, "BAD_REQUEST")
			req, _ = http.NewRequest(http.MethodPost, ts.base+"/graphql", strings.NewReader(`query { __typename }`))
			req.Header = h("Content-Type", "application/graphql")
			check("content type", rawSpec(t, req), http.StatusUnsupportedMediaType, "BAD_REQUEST")

			// The body that does not arrive within HTTP_READ_TIMEOUT.
			c := ts.dialFrom(t, "", 0)
			head := "POST /graphql HTTP/1.1\r\nHost: eventide\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
			if accept != "" {
				head += "Accept: " + accept + "\r\n"
			}
			if _, err := c.conn.Write([]byte(head + "\r\n{\"query\":")); err != nil {
				t.Fatal(err)
			}
			_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			res, err := http.ReadResponse(c.br, nil)
			if err != nil {
				t.Fatalf("slow body: %v", err)
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			check("slow body", specRes{Status: res.StatusCode, Header: res.Header, Raw: raw}, http.StatusRequestTimeout, "BAD_REQUEST")

			// Throttled: one client's budget spent.
			client := hdr("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", 10+len(accept)%200))
			var last specRes
			for range cfg.ThrottleLimit + 1 {
				hh := h()
				hh["X-Forwarded-For"] = client["X-Forwarded-For"]
				last = ts.specDo(t, http.MethodPost, "", gqlBody(`{ __typename }`, nil), hh)
			}
			check("throttled", last, http.StatusTooManyRequests, "RATE_LIMITED")
		})
	}
}

// rawSpec sends req as it is.
func rawSpec(t *testing.T, req *http.Request) specRes {
	t.Helper()
	res, err := specClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", req.Method, err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return specRes{Status: res.StatusCode, Header: res.Header, Raw: raw}
}

// TestSpecStatusCodes (findings 6 and 7): the GraphQL-over-HTTP spec's status codes. In
// application/json (asked for, or */*, or no Accept) a document that does not parse or validate
// and variables that cannot be coerced are 200; in application/graphql-response+json they are
// 400; a request error has no data key. A mutation over GET, PUT and DELETE are 405
// METHOD_NOT_ALLOWED with Allow; an Accept the server cannot answer is 406 NOT_ACCEPTABLE.
func TestSpecStatusCodes(t *testing.T) {
	t.Parallel()
	ts := startServer(t, nil)
	bad := []struct {
		name string
		body map[string]any
		code string
	}{
		{"ParseFailed", gqlBody(`{ events(`, nil), "GRAPHQL_PARSE_FAILED"},
		{"ValidationFailed", gqlBody(`{ nope }`, nil), "GRAPHQL_VALIDATION_FAILED"},
		{"VariableNotCoerced", gqlBody(`query($n: Int){ events(first: $n){ totalCount } }`, map[string]any{"n": "ten"}), "BAD_USER_INPUT"},
		{"TwoOperationsNoName", gqlBody(`query A { __typename } query B { __typename }`, nil), "GRAPHQL_VALIDATION_FAILED"},
	}
	for _, accept := range []string{"application/json", "*/*", "", apolloAccept, urqlAccept, graphqlResponse} {
		wantStatus, wantType := http.StatusOK, applicationJSON
		if strings.HasPrefix(accept, graphqlResponse) {
			wantStatus, wantType = http.StatusBadRequest, graphqlResponse
		}
		for _, b := range bad {
			t.Run(fmt.Sprintf("%s/Accept=%q", b.name, accept), func(t *testing.T) {
				h := http.Header{}
				if accept != "" {
					h.Set("Accept", accept)
				}
				for _, method := range []string{http.MethodPost, http.MethodGet} {
					var r specRes
					if method == http.MethodPost {
						r = ts.specDo(t, method, "", b.body, h)
					} else {
						q := url.Values{"query": {b.body["query"].(string)}}
						if v := b.body["variables"].(map[string]any); v != nil {
							raw, _ := json.Marshal(v)
							q.Set("variables", string(raw))
						}
						r = ts.specDo(t, method, q.Encode(), nil, h)
					}
					resp, keys := r.body(t)
					if r.Status != wantStatus || r.mediaType() != wantType || resp.code() != b.code {
						t.Fatalf("%s: %s; want %d %s %s", method, r, wantStatus, wantType, b.code)
					}
					if _, ok := keys["data"]; ok {
						t.Fatalf("%s: a request error with a data key: %s", method, r.Raw)
					}
				}
			})
		}
	}

	t.Run("MutationOverGET", func(t *testing.T) {
		for _, accept := range []string{"", graphqlResponse} {
			r := ts.specDo(t, http.MethodGet, url.Values{"query": {`mutation { purgeCache }`}}.Encode(), nil, hdr("Accept", accept))
			resp, _ := r.body(t)
			if r.Status != http.StatusMethodNotAllowed || resp.code() != "METHOD_NOT_ALLOWED" || !strings.Contains(r.Header.Get("Allow"), "POST") {
				t.Fatalf("a mutation over GET: %s (Allow %q)", r, r.Header.Get("Allow"))
			}
		}
	})
	for _, method := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch} {
		t.Run(method, func(t *testing.T) {
			r := ts.specDo(t, method, "", gqlBody(`{ __typename }`, nil), nil)
			resp, _ := r.body(t)
			allow := r.Header.Get("Allow")
			if r.Status != http.StatusMethodNotAllowed || resp.code() != "METHOD_NOT_ALLOWED" ||
				!strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
				t.Fatalf("%s: %s (Allow %q)", method, r, allow)
			}
		})
	}
	t.Run("NotAcceptable", func(t *testing.T) {
		for _, accept := range []string{"text/html", "text/html, application/xhtml+xml", "application/json;q=0"} {
			r := ts.specDo(t, http.MethodPost, "", gqlBody(`{ __typename }`, nil), hdr("Accept", accept))
			resp, _ := r.body(t)
			if r.Status != http.StatusNotAcceptable || resp.code() != "NOT_ACCEPTABLE" {
				t.Fatalf("Accept %q: %s", accept, r)
			}
		}
		// A browser's navigation Accept ends with */*: it gets JSON.
		r := ts.specDo(t, http.MethodGet, url.Values{"query": {`{ __typename }`}}.Encode(), nil,
			hdr("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"))
		if r.Status != http.StatusOK || r.mediaType() != applicationJSON {
			t.Fatalf("a browser's GET: %s", r)
		}
	})
	t.Run("Success", func(t *testing.T) {
		for _, accept := range []string{"", apolloAccept} {
			r := ts.specDo(t, http.MethodPost, "", gqlBody(`{ __typename }`, nil), hdr("Accept", accept))
			if resp, keys := r.body(t); r.Status != http.StatusOK || keys["data"] == nil || len(resp.Errors) > 0 {
				t.Fatalf("a good query: %s", r)
			}
		}
	})
}

// TestCORSInBrowser (finding 1, in a real browser): a page on another loopback origin calls the
// API with fetch and the headers Apollo Client (client awareness, a token), OpenTelemetry and
// Sentry send, plus one of CORS_ALLOWED_HEADERS; headless Chromium preflights it, and the page
// reads the answer: the viewer's own email, in the media type it asked for.
func TestCORSInBrowser(t *testing.T) {
	chromium := findChromium(t)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<!doctype html><title>app</title><p>app</p>`)
	}))
	defer page.Close()
	cfg := testConfig(t)
	cfg.CORSOrigins = []string{page.URL}
	cfg.CORSAllowedHeaders = []string{"X-Tenant"}
	ts := startServer(t, cfg)
	admin := ts.admin()
	if page.URL == ts.base {
		t.Fatal("the page must be on another origin")
	}

	w := newBrowserWatch(t, page.URL)
	ctx := startBrowser(t, chromium, w)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, chromedp.Navigate(page.URL)); err != nil {
		t.Fatalf("open the page: %v\n%s", err, w.report())
	}
	mark := len(ts.logs.String())
	script := fmt.Sprintf(`(async () => {
		const r = await fetch(%q, {method: "POST", headers: {
			"content-type": "application/json",
			"accept": %q,
			"authorization": "Bearer " + %q,
			"apollographql-client-name": "web", "apollographql-client-version": "1.2.3",
			"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate": "vendor=1",
			"baggage": "userId=alice", "sentry-trace": "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
			"x-tenant": "t1"},
			body: JSON.stringify({query: "{ me { email } }"})});
		return JSON.stringify({status: r.status, type: r.headers.get("content-type"), body: await r.json()});
	})()`, ts.base+"/graphql", apolloAccept, admin.Token)
	out, err := chromedp.Run(sctx, chromedp.Evaluate[string](script, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("the page's request: %v\n%s", err, w.report())
	}
	var got struct {
		Status int
		Type   string
		Body   struct {
			Data struct{ Me struct{ Email string } }
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Status != http.StatusOK || !strings.HasPrefix(got.Type, graphqlResponse) || got.Body.Data.Me.Email != testAdminEmail {
		t.Fatalf("the page read %s", out)
	}
	if !strings.Contains(ts.logs.String()[mark:], "method=OPTIONS") {
		t.Fatalf("the browser sent no preflight: the request was not a CORS one\n%s", w.report())
	}
}
