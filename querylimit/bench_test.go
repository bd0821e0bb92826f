package querylimit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

var eventsPageVars = map[string]any{"first": json.Number("20")}

// BenchmarkEventsPage: what checking the web app's listing query costs, step by step, cold (the
// first time this text is seen) and warm (every time after), beside what gqlgen's own parse and
// validation cost on a cold query cache.
func BenchmarkEventsPage(b *testing.B) {
	schema := realSchema().Schema()
	doc := mustParse(b, eventsPage)
	ctx := context.Background()
	b.Run("CountTokens", func(b *testing.B) {
		for b.Loop() {
			CountTokens(eventsPage, 2000)
		}
	})
	b.Run("Parse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			parser.ParseQuery(&ast.Source{Input: eventsPage})
		}
	})
	b.Run("Measure", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			MeasureVariables(doc, schema, "EventsPage", eventsPageVars)
		}
	})
	b.Run("CheckCold", func(b *testing.B) {
		l := Extension(DefaultLimits())
		l.schema = schema
		b.ReportAllocs()
		for b.Loop() {
			if _, err := l.inspect(ctx, eventsPage, "EventsPage", eventsPageVars, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("CheckWarm", func(b *testing.B) {
		l := Extension(DefaultLimits())
		l.schema = schema
		l.check(ctx, eventsPage, "EventsPage", eventsPageVars, nil)
		b.ReportAllocs()
		for b.Loop() {
			// Both hooks' work: the lookup, then the complexity under the variables.
			s, err := l.check(ctx, eventsPage, "EventsPage", eventsPageVars, nil)
			if err != nil || !s.Remembered {
				b.Fatal(err)
			}
			if err := l.checkComplexity(ctx, s, doc, eventsPageVars); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GqlparserValidate", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, _ := parser.ParseQuery(&ast.Source{Input: eventsPage})
			if errs := validator.ValidateWithRules(schema, d, rules.NewDefaultRules()); len(errs) > 0 {
				b.Fatal(errs)
			}
		}
	})
}

// BenchmarkServeEventsPage: one POST of the listing query through gqlgen's handler (query cache
// warm, execution stubbed), without and with the extension.
func BenchmarkServeEventsPage(b *testing.B) {
	body, _ := json.Marshal(map[string]any{"query": eventsPage, "operationName": "EventsPage", "variables": eventsPageVars})
	for _, tc := range []struct {
		name string
		use  bool
	}{{"WithoutLimits", false}, {"WithLimits", true}} {
		b.Run(tc.name, func(b *testing.B) {
			srv := handler.New(realSchema())
			srv.AddTransport(transport.POST{})
			srv.SetQueryCache(lru.New[*ast.QueryDocument](100))
			if tc.use {
				srv.Use(Extension(DefaultLimits()))
			}
			stopAfterValidation(srv)
			b.ReportAllocs()
			for b.Loop() {
				serve(b, srv, body)
			}
		})
	}
}

func serve(b *testing.B, srv http.Handler, body []byte) {
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatal(rec.Code, rec.Body.String())
	}
}

// hostile are the documents that gqlparser's validator takes seconds over.
var hostile = []struct{ name, doc string }{
	{"events", repeat("events { id }", 200<<10)},
	{"typename", repeat("__typename", 200<<10)},
}

// rejectEach refuses doc with the default limits and with tokens unlimited (so that the parse and
// the AST walk do the refusing).
func rejectEach(b *testing.B, doc string) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		limits Limits
	}{
		{"DefaultLimits", DefaultLimits()},
		{"NoTokenLimit", Limits{MaxDepth: 12, MaxComplexity: 1000, MaxAliases: 30}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l := Extension(tc.limits)
			l.schema = realSchema().Schema()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := l.check(ctx, doc, "", nil, nil); err == nil {
					b.Fatal("passed")
				}
			}
		})
	}
}

func BenchmarkRejectRepeated200KB(b *testing.B) {
	for _, h := range hostile {
		b.Run(h.name, func(b *testing.B) { rejectEach(b, h.doc) })
	}
}

func BenchmarkReject5000Typename(b *testing.B) { rejectEach(b, repeatN("__typename", 5000)) }

// BenchmarkReject1998Typename: 2000 tokens, within the default token limit.
func BenchmarkReject1998Typename(b *testing.B) { rejectEach(b, repeatN("__typename", 1998)) }

// BenchmarkServeRejectRepeated200KB: the whole request through gqlgen's handler, JSON body
// decoding included.
func BenchmarkServeRejectRepeated200KB(b *testing.B) {
	for _, h := range hostile {
		b.Run(h.name, func(b *testing.B) {
			srv := newServer(b, DefaultLimits())
			body, _ := json.Marshal(map[string]any{"query": h.doc})
			b.ReportAllocs()
			for b.Loop() {
				serve(b, srv, body)
			}
		})
	}
}

// BenchmarkUnprotectedValidate is what gqlgen pays without this package: parsing and validating
// documents that every limit but repeats lets through.
func BenchmarkUnprotectedValidate(b *testing.B) {
	schema := realSchema().Schema()
	for _, tc := range []struct{ name, doc string }{
		{"Typename1998", repeatN("__typename", 1998)},
		{"Typename500", repeatN("__typename", 500)},
		{"Typename20", repeatN("__typename", 20)},
		{"DistinctSpreads200", spreads(200)},
		{"DistinctSpreads20", spreads(20)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				d, _ := parser.ParseQuery(&ast.Source{Input: tc.doc})
				validator.ValidateWithRules(schema, d, rules.NewDefaultRules())
			}
		})
	}
}
