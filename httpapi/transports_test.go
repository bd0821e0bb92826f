package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/security"
)

// fieldErrors is a GraphQL executor whose every operation is a mutation answered with errs as
// its field errors, each wrapping its cause as the error presenter leaves it.
type fieldErrors []error

func (fieldErrors) CreateOperationContext(_ context.Context, p *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	return &graphql.OperationContext{RawQuery: p.Query, Operation: &ast.OperationDefinition{Operation: ast.Mutation}}, nil
}

func (f fieldErrors) DispatchOperation(ctx context.Context, _ *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	resp := &graphql.Response{Data: []byte(`null`)}
	for _, err := range f {
		resp.Errors = append(resp.Errors, &gqlerror.Error{Message: err.Error(), Err: err,
			Extensions: map[string]any{"code": string(eventide.ErrorCode(err))}})
	}
	return graphql.OneShot(resp), ctx
}

func (fieldErrors) DispatchError(_ context.Context, errs gqlerror.List) *graphql.Response {
	return &graphql.Response{Errors: errs}
}

// TestRetryAfterOfFieldErrors: an error raised beneath the transport that says when to retry (a
// login over its budget, the hashing gate full) makes the JSON answer a 429 with Retry-After, and
// a budget's refusal adds its RateLimit-* headers; a RATE_LIMITED error that says nothing of a
// retry (a second signUp in one document) leaves it a 200.
func TestRetryAfterOfFieldErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		header map[string]string
	}{
		{"BudgetRefusal", security.Decision{Limit: 3, RetryAfter: 1500 * time.Millisecond, ResetAfter: 10 * time.Second}.Err(),
			http.StatusTooManyRequests, map[string]string{"Retry-After": "2", "RateLimit-Limit": "3", "RateLimit-Remaining": "0", "RateLimit-Reset": "10"}},
		{"HashingGateFull", &eventide.Error{Code: eventide.CodeRateLimited, Message: "too many sign-ins in progress; retry in 1 s", RetryAfter: time.Second},
			http.StatusTooManyRequests, map[string]string{"Retry-After": "1", "RateLimit-Limit": ""}},
		{"NoRetry", eventide.Errorf(eventide.CodeRateLimited, "one signUp or login per request"),
			http.StatusOK, map[string]string{"Retry-After": "", "RateLimit-Limit": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"mutation { login }"}`))
			r.Header.Set("Content-Type", mediaJSON)
			w := httptest.NewRecorder()
			postTransport{}.Do(w, r, fieldErrors{tc.err})
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			for k, v := range tc.header {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if !strings.Contains(w.Body.String(), `"code":"RATE_LIMITED"`) {
				t.Fatalf("body %s", w.Body)
			}
		})
	}
}

// TestRetryAfterInParts: a client that accepts no JSON gets the refusal as a multipart part,
// also a 429 with the refusal's headers, and the error-body net (codeErrorBodies) lets the parts
// through as written.
func TestRetryAfterInParts(t *testing.T) {
	h := codeErrorBodies(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		postTransport{}.Do(w, r, fieldErrors{security.Decision{Limit: 3, RetryAfter: time.Second, ResetAfter: 10 * time.Second}.Err()})
	}))
	r := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"mutation { login }"}`))
	r.Header.Set("Content-Type", mediaJSON)
	r.Header.Set("Accept", mediaMultipart)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || w.Header().Get("RateLimit-Limit") != "3" {
		t.Fatalf("status %d, headers %v", w.Code, w.Header())
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, mediaMultipart) ||
		!strings.Contains(w.Body.String(), "--graphql") || !strings.Contains(w.Body.String(), `"code":"RATE_LIMITED"`) {
		t.Fatalf("Content-Type %q, body %q", ct, w.Body)
	}
}
