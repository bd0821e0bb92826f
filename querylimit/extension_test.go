package querylimit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/eventide/server/resolvers"
)

// deep is a valid query whose depth is 12 (first: 1 keeps its complexity low); deepBy adds levels.
func deep(extra int) string {
	leaf := "id"
	for range extra {
		leaf = "venue { " + leaf + " }"
	}
	return `{ events(first: 1) { edges { node { venue { events(first: 1) { edges { node { organizer {
		organizedEvents(first: 1) { edges { node { ` + leaf + ` } } } } } } } } } } } }`
}

// costly is a valid query whose complexity is 928 + 12 + first: 1000 with first 60. A page of 100
// events with their venue, organizer and count costs 11 + 100×5 + 100 + 4 = 615; the viewer's
// 100 organized events with their count 1 + 11 + 100×2 + 100 + 1 = 313; a page of venues'
// cursors 11 + first×1 + 1.
func costly(first int) string {
	return fmt.Sprintf(`{ events(first: 100) { totalCount edges { node { id venue { id } organizer { id } viewerRegistration { id } } } }
		me { organizedEvents(first: 100) { totalCount edges { node { id } } } } venues(first: %d) { edges { cursor } } }`, first)
}

// aliased is a valid query with n aliases.
func aliased(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, ` e%d: event(id: "%d") { id }`, i, i)
	}
	b.WriteString(" }")
	return b.String()
}

// spreads is a valid query spreading n fragments at one place, each selecting its own alias.
func spreads(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " ...F%d", i)
	}
	b.WriteString(" }")
	for i := range n {
		fmt.Fprintf(&b, " fragment F%d on Query { a%d: __typename }", i, i)
	}
	return b.String()
}

// tokens is a valid query of exactly n tokens (n >= 6): comments count as tokens.
func tokens(n int) string {
	return "{ me { id } }\n" + strings.Repeat("#\n", n-6)
}

// TestLimits shows each limit of DefaultLimits accepting a document exactly at it and refusing
// one just over it, through gqlgen's handler with the real schema.
func TestLimits(t *testing.T) {
	srv := newServer(t, DefaultLimits())
	schema := realSchema().Schema()
	depth := func(q string) int { return Measure(mustParse(t, q), schema, "").Depth }
	complexity := func(q string) int { return Measure(mustParse(t, q), schema, "").Complexity }
	aliases := func(q string) int { return Measure(mustParse(t, q), schema, "").Aliases }
	repeats := func(q string) int { return Measure(mustParse(t, q), schema, "").Repeats }
	count := func(q string) int { n, _ := CountTokens(q, 0); return n }
	for _, tc := range []struct {
		name, limit   string
		measure       func(string) int
		at, over      string
		max, measured int
		message       string
	}{
		{"Depth", LimitDepth, depth, deep(0), deep(1), 12, 13, "query depth 13 exceeds the limit of 12"},
		{"Complexity", LimitComplexity, complexity, costly(60), costly(61), 1000, 1001, "query complexity 1001 exceeds the limit of 1000"},
		{"Aliases", LimitAliases, aliases, aliased(30), aliased(31), 30, 31, "query uses 31 aliases, more than the limit of 30"},
		{"Tokens", LimitTokens, count, tokens(2000), tokens(2001), 2000, 2001, "query is longer than the limit of 2000 tokens"},
		{"RepeatedField", LimitRepeats, repeats, repeatN("__typename", 20), repeatN("__typename", 21), 20, 21, `query selects "__typename" 21 times at one place, more than the limit of 20`},
		{"RepeatedSpread", LimitRepeats, repeats, spreads(20), spreads(21), 20, 21, "query spreads 21 fragments at one place, more than the limit of 20"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.measure(tc.at); got != tc.max {
				t.Fatalf("the document at the limit measures %d, not %d", got, tc.max)
			}
			t.Run("OK", func(t *testing.T) {
				if r := post(t, srv, tc.at, nil, nil); !r.passed() {
					t.Errorf("refused at the limit: %+v", r.Errors)
				}
			})
			t.Run("ErrQueryTooComplex", func(t *testing.T) {
				r := post(t, srv, tc.over, nil, nil)
				if r.code(t) != "QUERY_TOO_COMPLEX" {
					t.Fatalf("got %+v", r)
				}
				e := r.Errors[0]
				if e.Message != tc.message {
					t.Errorf("message %q, want %q", e.Message, tc.message)
				}
				if e.Extensions["limit"] != tc.limit || e.Extensions["measured"] != float64(tc.measured) || e.Extensions["max"] != float64(tc.max) {
					t.Errorf("extensions %v", e.Extensions)
				}
			})
		})
	}
}

// TestLimitsOff: a limit of zero is no limit, except for repeats, which guard the validator.
func TestLimitsOff(t *testing.T) {
	srv := newServer(t, Limits{})
	for _, q := range []string{deep(1), costly(100), aliased(31), tokens(2001)} {
		if r := post(t, srv, q, nil, nil); !r.passed() {
			t.Errorf("refused %.60q: %+v", q, r.Errors)
		}
	}
	if r := post(t, srv, repeatN("__typename", 21), nil, nil); r.code(t) != "QUERY_TOO_COMPLEX" {
		t.Errorf("repeats not refused: %+v", r)
	}
}

func TestMaxRepeatsOption(t *testing.T) {
	srv := newServer(t, DefaultLimits(), MaxRepeats(40))
	if r := post(t, srv, repeatN("__typename", 40), nil, nil); !r.passed() {
		t.Errorf("refused 40: %+v", r.Errors)
	}
	if r := post(t, srv, repeatN("__typename", 41), nil, nil); r.code(t) != "QUERY_TOO_COMPLEX" {
		t.Errorf("41 not refused: %+v", r)
	}
}

// TestHostileDocuments: documents that hold gqlparser's validator for seconds (its
// OverlappingFieldsCanBeMerged rule is quadratic in repeated fields) are refused before it sees
// them, by the token count and, with tokens unlimited, by the repeated-field count. How fast is
// measured by BenchmarkReject; here only the outcome is asserted.
func TestHostileDocuments(t *testing.T) {
	docs := []struct{ name, doc string }{
		{"RepeatedEvents200KB", repeat("events { id }", 200<<10)},
		{"RepeatedTypename200KB", repeat("__typename", 200<<10)},
		{"Typename5000", repeatN("__typename", 5000)},
		// 2000 tokens, within the token limit: the validator alone takes a third of a second.
		{"Typename1998", repeatN("__typename", 1998)},
		{"AliasedTypename1000", repeatN("a: __typename", 1000)},
		{"Spread2000", repeatN("...F", 2000) + " fragment F on Query { __typename }"},
		{"InlineFragments1000", repeatN("... on Query { __typename }", 1000)},
		// 200 fragments spread side by side: the validator compares each pair.
		{"DistinctSpreads200", spreads(200)},
	}
	for _, limits := range []struct {
		name   string
		limits Limits
	}{
		{"DefaultLimits", DefaultLimits()},
		{"NoTokenLimit", Limits{MaxDepth: 12, MaxComplexity: 1000, MaxAliases: 30}},
		{"NoLimits", Limits{}},
	} {
		srv := newServer(t, limits.limits)
		for _, d := range docs {
			t.Run(limits.name+"/"+d.name, func(t *testing.T) {
				start := time.Now()
				r := post(t, srv, d.doc, nil, nil)
				if r.code(t) != "QUERY_TOO_COMPLEX" {
					t.Fatalf("got %+v", r)
				}
				t.Logf("%d KB refused in %v: %s", len(d.doc)>>10, time.Since(start), r.Errors[0].Message)
			})
		}
	}
}

// TestFragments: limits are counted through fragment spreads, and a fragment cycle is left to
// the validator, which refuses it, without either walk hanging.
func TestFragments(t *testing.T) {
	srv := newServer(t, DefaultLimits())
	deepThroughFragments := `{ events(first: 1) { ...Conn } }
		fragment Conn on EventConnection { edges { node { ...E } } }
		fragment E on Event { venue { events(first: 1) { edges { node { organizer { ... on User {
			organizedEvents(first: 1) { edges { node { venue { id } } } } } } } } } } }`
	costlyThroughFragments := `{ events(first: 50) { edges { node { ...A } } } }
		fragment A on Event { attendees(first: 10) { edges { node { id name } } } }`
	bomb := `{ ...F1 }`
	for i := 1; i < 30; i++ {
		bomb += fmt.Sprintf(" fragment F%d on Query { ...F%d ...F%d }", i, i+1, i+1)
	}
	bomb += " fragment F30 on Query { me { id } }"
	for _, tc := range []struct {
		name, doc, code, limit string
	}{
		{"DeepThroughFragments", deepThroughFragments, "QUERY_TOO_COMPLEX", LimitDepth},
		{"CostlyThroughFragments", costlyThroughFragments, "QUERY_TOO_COMPLEX", LimitComplexity},
		{"Bomb", bomb, "QUERY_TOO_COMPLEX", LimitComplexity},
		{"SelfCycle", `{ ...A } fragment A on Query { ...A }`, "GRAPHQL_VALIDATION_FAILED", ""},
		{"NestedCycle", `{ me { ...U } } fragment U on User { organizedEvents(first: 1) { edges { node { organizer { ...U } } } } }`, "GRAPHQL_VALIDATION_FAILED", ""},
		{"UnusedCycle", `{ me { id } } fragment A on User { ...B } fragment B on User { ...A }`, "GRAPHQL_VALIDATION_FAILED", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, srv, tc.doc, nil, nil)
			if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != tc.code || tc.limit != "" && r.Errors[0].Extensions["limit"] != tc.limit {
				t.Fatalf("want %s %s, got %+v", tc.code, tc.limit, r)
			}
			t.Log(r.Errors[0].Message)
		})
	}
}

// TestIntrospection: the playground's introspection query nests 14 fields deep, past the depth
// limit, but introspection adds no depth (gqlparser's MaxIntrospectionDepth rule bounds it), and
// __typename costs nothing.
func TestIntrospection(t *testing.T) {
	q, err := os.ReadFile("testdata/introspection.graphql")
	if err != nil {
		t.Fatal(err)
	}
	m := Measure(mustParse(t, string(q)), realSchema().Schema(), "")
	n, _ := CountTokens(string(q), 0)
	t.Logf("introspection query: %d tokens, %+v", n, m)
	if r := post(t, newServer(t, DefaultLimits()), string(q), nil, nil); !r.passed() {
		t.Errorf("refused: %+v", r.Errors)
	}
}

// TestPresentation: the refusal reaches the client with extensions.code and the numbers, through
// the server's error presenter and through gqlgen's default one.
func TestPresentation(t *testing.T) {
	want := map[string]any{"code": "QUERY_TOO_COMPLEX", "limit": "depth", "measured": 13.0, "max": 12.0}
	plain := handler.New(realSchema())
	plain.AddTransport(transport.POST{})
	plain.Use(Extension(DefaultLimits()))
	for _, tc := range []struct {
		name string
		srv  http.Handler
	}{
		{"ServerPresenter", newServer(t, DefaultLimits())},
		{"DefaultPresenter", plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, tc.srv, deep(1), nil, nil)
			if len(r.Errors) != 1 || !reflect.DeepEqual(r.Errors[0].Extensions, want) {
				t.Fatalf("got %+v", r.Errors)
			}
			if r.Errors[0].Message != "query depth 13 exceeds the limit of 12" || r.Data != nil && string(r.Data) != "null" {
				t.Errorf("got %q, data %s", r.Errors[0].Message, r.Data)
			}
			if r.status != http.StatusOK {
				t.Errorf("status %d", r.status)
			}
		})
	}
}

func TestGET(t *testing.T) {
	srv := newServer(t, DefaultLimits())
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/graphql?query="+url.QueryEscape(deep(1)), nil))
	if !strings.Contains(rec.Body.String(), `"code":"QUERY_TOO_COMPLEX"`) {
		t.Errorf("got %d %s", rec.Code, rec.Body.String())
	}
}

func TestOnReject(t *testing.T) {
	type call struct {
		what          string
		measured, max int
		op            string
		ctxOK         bool
	}
	type key struct{}
	var calls []call
	srv := newServer(t, DefaultLimits(), OnReject(func(ctx context.Context, what string, measured, max int, op string) {
		calls = append(calls, call{what, measured, max, op, ctx.Value(key{}) == "request"})
	}))
	body, _ := json.Marshal(map[string]string{"query": "query Deep " + deep(1), "operationName": "Deep"})
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req = req.WithContext(context.WithValue(req.Context(), key{}, "request"))
	req.Header.Set("Content-Type", "application/json")
	srv.ServeHTTP(httptest.NewRecorder(), req)
	post(t, srv, deep(0), nil, nil) // passes: no call
	if want := []call{{LimitDepth, 13, 12, "Deep", true}}; !reflect.DeepEqual(calls, want) {
		t.Errorf("calls %+v, want %+v", calls, want)
	}
}

// TestVariables: complexity follows the variables, also for a document already passed (its
// next requests skip the token count and the parse, and measure gqlgen's AST).
func TestVariables(t *testing.T) {
	l := Extension(Limits{MaxComplexity: 500})
	srv := handler.New(realSchema())
	srv.AddTransport(transport.POST{})
	srv.Use(l)
	stopAfterValidation(srv)
	// 11 + n × (edges 1 + node 1 + attendees 11 + 3×2 + 2) + 1: 500 at n = 23.
	q := `query Q($n: Int) { events(first: $n) { edges { node { id attendees(first: 3) { edges { node { id name } } } } } } }`
	for _, tc := range []struct {
		n    int
		pass bool
	}{{10, true}, {60, false}, {23, true}, {24, false}} {
		r := post(t, srv, q, map[string]any{"n": tc.n}, nil)
		if r.passed() != tc.pass || !tc.pass && r.Errors[0].Extensions["measured"] != float64(12+21*tc.n) {
			t.Errorf("n=%d: got %+v", tc.n, r)
		}
	}
	p, ok := l.passed.Get(context.Background(), l.key(q, ""))
	if !ok || !p.stats.UsesVariables {
		t.Fatalf("passed document not remembered as depending on variables: %v %+v", ok, p)
	}
}

// TestRememberedEntryDoesNotPinQuery: a remembered entry must not keep the request's text, which
// may be as large as the body limit, alive: the names the AST holds are slices of it.
func TestRememberedEntryDoesNotPinQuery(t *testing.T) {
	l := Extension(DefaultLimits())
	l.schema = realSchema().Schema()
	q := "query " + "Q" + ` { me { id } }`
	if _, err := l.check(context.Background(), q, "Q", nil, nil); err != nil {
		t.Fatal(err)
	}
	p, ok := l.passed.Get(context.Background(), l.key(q, "Q"))
	if !ok {
		t.Fatal("not remembered")
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(q)))
	for _, s := range []string{p.stats.RepeatedField, p.stats.operation} {
		if at := uintptr(unsafe.Pointer(unsafe.StringData(s))); at >= start && at < start+uintptr(len(q)) {
			t.Errorf("%q points into the query text", s)
		}
	}
}

// TestStats: what was measured is left in the operation's stats, once per request: the second
// hook finds it and does not check again.
func TestStats(t *testing.T) {
	srv := handler.New(realSchema())
	srv.AddTransport(transport.POST{})
	srv.Use(Extension(DefaultLimits()))
	var got []Stats
	srv.AroundOperations(func(ctx context.Context, _ graphql.OperationHandler) graphql.ResponseHandler {
		s, _ := graphql.GetOperationContext(ctx).Stats.GetExtension(StatsName).(*Stats)
		got = append(got, *s)
		return graphql.OneShot(&graphql.Response{Data: json.RawMessage(`{"passed":true}`)})
	})
	for _, first := range []int{20, 20, 50} {
		if r := post(t, srv, eventsPage, map[string]any{"first": first}, nil); !r.passed() {
			t.Fatalf("got %+v", r)
		}
	}
	for i, want := range []struct {
		remembered         bool
		tokens, complexity int
	}{{false, 69, 11 + 20*4 + 1 + CountCost + 16}, {true, 69, 11 + 20*4 + 1 + CountCost + 16}, {true, 69, 11 + 50*4 + 1 + CountCost + 16}} {
		s := got[i]
		if s.Remembered != want.remembered || s.Tokens != want.tokens || s.Complexity != want.complexity || s.Depth != 5 {
			t.Errorf("request %d: got %+v, want %+v", i, s, want)
		}
	}
}

// TestPersistedQueries: with automatic persisted queries, a request that sends only the hash is
// checked too, whichever extension comes first; with this one after APQ (the order to use), it
// is checked before validation.
func TestPersistedQueries(t *testing.T) {
	q := `query Q($n: Int) { events(first: $n) { edges { node { id attendees(first: 3) { edges { node { id name } } } } } } }`
	sum := sha256.Sum256([]byte(q))
	persisted := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	for _, order := range []string{"AfterAPQ", "BeforeAPQ"} {
		t.Run(order, func(t *testing.T) {
			srv := handler.New(realSchema())
			srv.AddTransport(transport.POST{})
			srv.SetErrorPresenter(resolvers.ErrorPresenter(slog.New(slog.DiscardHandler)))
			apq := extension.AutomaticPersistedQuery{Cache: lru.New[string](100)}
			if order == "AfterAPQ" {
				srv.Use(apq)
				srv.Use(Extension(Limits{MaxComplexity: 500}))
			} else {
				srv.Use(Extension(Limits{MaxComplexity: 500}))
				srv.Use(apq)
			}
			stopAfterValidation(srv)
			if r := post(t, srv, q, map[string]any{"n": 10}, persisted); !r.passed() {
				t.Fatalf("full query: %+v", r)
			}
			if r := post(t, srv, "", map[string]any{"n": 10}, persisted); !r.passed() {
				t.Errorf("hash, cheap: %+v", r)
			}
			if r := post(t, srv, "", map[string]any{"n": 60}, persisted); r.code(t) != "QUERY_TOO_COMPLEX" {
				t.Errorf("hash, costly: %+v", r)
			}
			hostile := repeatN("__typename", 1998)
			hostileSum := sha256.Sum256([]byte(hostile))
			hostileExt := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(hostileSum[:])}}
			if r := post(t, srv, hostile, nil, hostileExt); r.code(t) != "QUERY_TOO_COMPLEX" {
				t.Errorf("hostile full query: %+v", r)
			}
			if r := post(t, srv, "", nil, hostileExt); r.code(t) == "" {
				t.Errorf("hostile hash passed: %+v", r)
			}
		})
	}
}

// TestSuggestions: gqlgen's SetDisableSuggestion(true) still lets argument, type and enum value
// suggestions through; DisableSuggestions stops them all.
func TestSuggestions(t *testing.T) {
	docs := map[string]string{
		"Field":     `{ evnts { totalCount } }`,
		"Argument":  `{ events(frist: 1) { totalCount } }`,
		"EnumValue": `{ events(filter: {status: PUBLISHD}) { totalCount } }`,
		"Type":      `{ ...F } fragment F on Querry { __typename }`,
	}
	build := func(configure func(*handler.Server)) *handler.Server {
		srv := newServer(t, DefaultLimits())
		configure(srv)
		return srv
	}
	for _, tc := range []struct {
		name    string
		srv     *handler.Server
		suggest map[string]bool
	}{
		{"Default", build(func(*handler.Server) {}), map[string]bool{"Field": true, "Argument": true, "EnumValue": true, "Type": true}},
		{"GqlgenDisableSuggestion", build(func(s *handler.Server) { s.SetDisableSuggestion(true) }), map[string]bool{"Argument": true, "EnumValue": true, "Type": true}},
		{"DisableSuggestions", build(DisableSuggestions), map[string]bool{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, doc := range docs {
				r := post(t, tc.srv, doc, nil, nil)
				if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" {
					t.Fatalf("%s: got %+v", name, r)
				}
				got := false
				for _, e := range r.Errors {
					got = got || strings.Contains(e.Message, "Did you mean")
				}
				if got != tc.suggest[name] {
					t.Errorf("%s: suggestion %v, want %v: %+v", name, got, tc.suggest[name], r.Errors)
				}
			}
		})
	}
}
