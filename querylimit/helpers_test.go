package querylimit

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/eventide/server/graph"
	"github.com/eventide/server/resolvers"
)

// The real executable schema, built once: its resolvers are empty, which is fine because every
// test server stops an operation after validation (see newServer).
var (
	schemaOnce sync.Once
	execSchema graphql.ExecutableSchema
)

func realSchema() graphql.ExecutableSchema {
	schemaOnce.Do(func() {
		execSchema = graph.NewExecutableSchema(graph.Config{
			Resolvers:  &resolvers.Resolver{},
			Directives: graph.DirectiveRoot{HasRole: resolvers.HasRole},
		})
	})
	return execSchema
}

// eventsPage is what the web app's listing sends: one page of events with their venue, organizer
// and counts.
const eventsPage = `query EventsPage($first: Int = 20, $after: String, $filter: EventFilter) {
  events(first: $first, after: $after, filter: $filter) {
    edges {
      cursor
      node {
        id
        title
        startsAt
        endsAt
        status
        tags
        venue { id name city }
        organizer { id name }
        attendeeCount
        waitlistCount
      }
    }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}`

// newServer is gqlgen's handler as httpapi builds it (POST and GET, a query cache, the server's
// error presenter) with the extension built from limits. An operation that passes every check and
// gqlgen's validation is answered {"passed": true} instead of being executed.
func newServer(t testing.TB, limits Limits, opts ...Option) *handler.Server {
	t.Helper()
	srv := handler.New(realSchema())
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](100))
	srv.Use(Extension(limits, opts...))
	srv.SetErrorPresenter(resolvers.ErrorPresenter(slog.New(slog.DiscardHandler)))
	stopAfterValidation(srv)
	return srv
}

func stopAfterValidation(srv *handler.Server) {
	srv.AroundOperations(func(context.Context, graphql.OperationHandler) graphql.ResponseHandler {
		return graphql.OneShot(&graphql.Response{Data: json.RawMessage(`{"passed":true}`)})
	})
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

type response struct {
	status int
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

// passed reports whether the operation got through every check to execution.
func (r response) passed() bool { return string(r.Data) == `{"passed":true}` && len(r.Errors) == 0 }

// code is the extensions.code of the only error, or "" when there is none.
func (r response) code(t testing.TB) string {
	t.Helper()
	switch len(r.Errors) {
	case 0:
		return ""
	case 1:
		c, _ := r.Errors[0].Extensions["code"].(string)
		return c
	}
	t.Fatalf("want at most one error, got %d: %+v", len(r.Errors), r.Errors[:2])
	return ""
}

// post sends one GraphQL request over HTTP POST to srv.
func post(t testing.TB, srv http.Handler, query string, vars map[string]any, extensions map[string]any) response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars, "extensions": extensions})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	var r response
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("response %d %q: %v", rec.Code, rec.Body.String(), err)
	}
	r.status = rec.Code
	return r
}

// mustParse parses a document that is known to parse.
func mustParse(t testing.TB, src string) *ast.QueryDocument {
	t.Helper()
	doc, err := parser.ParseQuery(&ast.Source{Input: src})
	if err != nil {
		t.Fatalf("parse %.80q: %v", src, err)
	}
	return doc
}

// repeat is the document "{ " + field + " " + field + ... + "}" of about size bytes.
func repeat(field string, size int) string {
	var b strings.Builder
	b.WriteString("{ ")
	for b.Len() < size {
		b.WriteString(field)
		b.WriteByte(' ')
	}
	b.WriteString("}")
	return b.String()
}

// repeatN is the document with field n times.
func repeatN(field string, n int) string {
	return "{ " + strings.Repeat(field+" ", n) + "}"
}
