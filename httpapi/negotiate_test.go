package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
)

func TestAcceptNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name, accept string
		jsonType     string
		acceptsSSE   bool
		prefersSSE   bool
		servablePOST bool
	}{
		{"None", "", mediaJSON, false, false, true},
		{"JSON", "application/json", mediaJSON, false, false, true},
		{"Any", "*/*", mediaJSON, true, false, true},
		{"ApplicationAny", "application/*", mediaJSON, false, false, true},
		{"GraphQLResponse", "application/graphql-response+json", mediaGraphQLResponse, false, false, true},
		{"Apollo4", "application/graphql-response+json,application/json;q=0.9", mediaGraphQLResponse, false, false, true},
		{"JSONPreferredByQ", "application/graphql-response+json;q=0.5, application/json", mediaJSON, false, false, true},
		{"JSONPreferredByOrder", "application/json, application/graphql-response+json", mediaJSON, false, false, true},
		{"ExactBeatsWildcard", "*/*, application/graphql-response+json", mediaGraphQLResponse, true, false, true},
		{"Urql", "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed", mediaGraphQLResponse, true, false, true},
		{"UrqlSubscription", "text/event-stream, multipart/mixed", mediaJSON, true, true, true},
		{"GraphQLSSE", "text/event-stream", mediaJSON, true, true, true},
		{"SSEByQ", "application/json;q=0.5, text/event-stream", mediaJSON, true, true, true},
		{"SSERefused", "text/event-stream;q=0, */*", mediaJSON, false, false, true},
		{"ApolloMultipart", `multipart/mixed;boundary="graphql";subscriptionSpec=1.0,application/json`, mediaJSON, false, false, true},
		{"MultipartOnly", "multipart/mixed", mediaJSON, false, false, true},
		{"HTML", "text/html", mediaJSON, false, false, false},
		{"JSONRefused", "application/json;q=0", mediaJSON, false, false, false},
		{"Browser", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", mediaJSON, true, false, true},
		{"Unparsable", "application/json;;;q", mediaJSON, false, false, true},
		{"CaseInsensitive", "Text/Event-Stream", mediaJSON, true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := parseAccept([]string{tc.accept})
			if got := a.jsonType(); got != tc.jsonType {
				t.Errorf("jsonType %q, want %q", got, tc.jsonType)
			}
			if got := a.acceptsSSE(); got != tc.acceptsSSE {
				t.Errorf("acceptsSSE %v, want %v", got, tc.acceptsSSE)
			}
			if got := a.prefersSSE(); got != tc.prefersSSE {
				t.Errorf("prefersSSE %v, want %v", got, tc.prefersSSE)
			}
			if got := a.servable(http.MethodPost); got != tc.servablePOST {
				t.Errorf("servable(POST) %v, want %v", got, tc.servablePOST)
			}
		})
	}
}

func TestAcceptRangesBounded(t *testing.T) {
	// Past maxAcceptRanges, ranges are ignored: a JSON range at the end of a long list counts for
	// nothing.
	h := bytes.Repeat([]byte("text/html, "), maxAcceptRanges)
	if parseAccept([]string{string(h) + "application/json"}).servable(http.MethodGet) {
		t.Fatal("a range past the bound was read")
	}
}

func TestOperationKind(t *testing.T) {
	for _, tc := range []struct {
		query, name string
		want        ast.Operation
	}{
		{`{ a }`, "", ast.Query},
		{`query { a }`, "", ast.Query},
		{`subscription { a }`, "", ast.Subscription},
		{`subscription S($id: ID! = "x") @d(a: {b: [1]}) { a(x: {y: "{"}) { b } }`, "", ast.Subscription},
		{`mutation M { a }`, "", ast.Mutation},
		{`fragment F on Subscription { a } subscription { ...F }`, "", ast.Subscription},
		{`subscription { a } fragment F on Query { a }`, "", ast.Subscription},
		{`query A { a } subscription B { b }`, "B", ast.Subscription},
		{`query A { a } subscription B { b }`, "A", ast.Query},
		{`query A { a } subscription B { b }`, "", ""}, // ambiguous: gqlgen refuses it
		{`query A { a } subscription B { b }`, "C", ""},
		{`query subscription { a }`, "subscription", ast.Query}, // an operation named "subscription"
		{`# subscription
		query { a }`, "", ast.Query},
		{`subscription { a `, "", ""},
		{`"unterminated`, "", ""},
		{``, "", ""},
	} {
		if got := operationKind(tc.query, tc.name); got != tc.want {
			t.Errorf("operationKind(%q, %q) = %q, want %q", tc.query, tc.name, got, tc.want)
		}
	}
}

func TestHTTPStream(t *testing.T) {
	post := func(accept, body string) *http.Request {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.Header.Set("Accept", accept)
		b := []byte(body)
		r.Body = memBody{Reader: bytes.NewReader(b), b: b}
		return r
	}
	const (
		urql        = "application/graphql-response+json, application/json, text/event-stream, multipart/mixed"
		apolloSub   = "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/graphql-response+json,application/json;q=0.9"
		apolloDefer = "multipart/mixed;deferSpec=20220824,application/graphql-response+json,application/json;q=0.9"
	)
	for _, tc := range []struct {
		accept, body string
		want         streamKind
	}{
		{urql, `{"query":"mutation { a }"}`, streamNone},
		{urql, `{"query":"{ a }"}`, streamNone},
		{urql, `{"query":"subscription { a }"}`, streamSSE},
		{urql, `{"query":"query A { a } subscription B { a }","operationName":"B"}`, streamSSE},
		{urql, `{"extensions":{"persistedQuery":{}}}`, streamNone},
		{urql, `{"query":"\u0073ubscription { a }"}`, streamSSE},
		{"text/event-stream", `{"query":"{ a }"}`, streamSSE},
		{"application/json", `{"query":"subscription { a }"}`, streamNone},
		{apolloSub, `{"query":"subscription { a }"}`, streamMultipart},
		{apolloSub, `{"query":"{ a }"}`, streamNone},
		{apolloDefer, `{"query":"{ a ... @defer { b } }"}`, streamNone}, // a query, answered in parts but not a stream
		{"multipart/mixed", `{"query":"subscription { a }"}`, streamMultipart},
		{"text/event-stream;q=0.5, multipart/mixed", `{"query":"subscription { a }"}`, streamMultipart},
		{"text/event-stream, multipart/mixed", `{"query":"subscription { a }"}`, streamSSE},
		{"*/*", `{"query":"subscription { a }"}`, streamSSE}, // a tie: SSE, as before multipart
		{"multipart/mixed;q=0, application/json", `{"query":"subscription { a }"}`, streamNone},
	} {
		r := post(tc.accept, tc.body)
		if got := httpStream(r); got != tc.want {
			t.Errorf("httpStream(Accept %q, %s) = %v, want %v", tc.accept, tc.body, got, tc.want)
		}
		if got := isStream(r); got != (tc.want != streamNone) {
			t.Errorf("isStream(Accept %q, %s) = %v", tc.accept, tc.body, got)
		}
	}
	get := httptest.NewRequest(http.MethodGet, "/graphql", nil)
	get.Header.Set("Accept", "text/event-stream")
	if isSSE(get) {
		t.Error("a GET is never SSE")
	}
}

// BenchmarkNegotiation is what negotiation costs a request with urql's default Accept (JSON
// first, text/event-stream after): the Accept read, and the body's operation found by scanning
// the document, since such a request is a stream only when it is a subscription.
func BenchmarkNegotiation(b *testing.B) {
	const accept = "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"
	body := []byte(`{"query":"query EventPage($first: Int, $after: String) { events(first: $first, after: $after) { totalCount edges { cursor node { id title description startsAt endsAt status capacity tags attendeeCount waitlistCount venue { id name city } organizer { id name } } } pageInfo { hasNextPage endCursor } } }","variables":{"first":50},"operationName":"EventPage"}`)
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.Header.Set("Accept", accept)
		r.Body = memBody{Reader: bytes.NewReader(body), b: body}
		if isSSE(r) {
			b.Fatal("a query with urql's Accept became a stream")
		}
	}
}

// BenchmarkNegotiationBaseline is the same request's setup alone, to subtract.
func BenchmarkNegotiationBaseline(b *testing.B) {
	body := []byte(`{}`)
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest(http.MethodPost, "/graphql", nil)
		r.Header.Set("Accept", "x")
		r.Body = memBody{Reader: bytes.NewReader(body), b: body}
	}
}
