package resolvers

import (
	"context"
	"errors"
	"net/http"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventide/server/auth"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/security"
)

// passwordFields are the mutation fields that hash a password, the costly step a document may
// take once.
var passwordFields = map[string]bool{"signUp": true, "login": true}

// onePasswordField refuses, with RATE_LIMITED, every signUp or login field of an operation but
// the first (in execution order, fragments and @skip/@include applied): one document of thirty
// aliased signUps must not cost thirty hashes. It reads the operation, so it needs no state.
func onePasswordField(ctx context.Context) error {
	if !graphql.HasOperationContext(ctx) {
		return nil
	}
	oc, fc := graphql.GetOperationContext(ctx), graphql.GetFieldContext(ctx)
	if oc.Operation == nil || fc == nil || fc.Field.Field == nil {
		return nil
	}
	for _, f := range graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{"Mutation"}) {
		if passwordFields[f.Name] {
			if f.Alias == fc.Field.Alias {
				return nil
			}
			break
		}
	}
	return eventide.Errorf(eventide.CodeRateLimited,
		"one signUp or login per request: %s was not run; send it in a request of its own", fc.Field.Alias)
}

// refuse answers a throttle refusal: 429 with its RateLimit-* and Retry-After headers on a plain
// HTTP response, and the RATE_LIMITED error.
func refuse(ctx context.Context, d security.Decision) error {
	if h := eventide.ResponseHintsFrom(ctx); h != nil {
		hdr := http.Header{}
		d.SetHeaders(hdr)
		h.Set(http.StatusTooManyRequests, hdr)
	}
	return d.Err()
}

// hashErr maps an error of auth's gated hashing: every slot and the queue taken (or the request
// gone while it waited) is RATE_LIMITED, to retry in a second; anything else is internal.
func hashErr(ctx context.Context, err error) error {
	if !errors.Is(err, auth.ErrBusy) {
		return eventide.Internal(err)
	}
	if h := eventide.ResponseHintsFrom(ctx); h != nil {
		h.Set(http.StatusTooManyRequests, http.Header{"Retry-After": []string{"1"}})
	}
	return eventide.Errorf(eventide.CodeRateLimited, "too many sign-ins in progress; retry in 1 s")
}
