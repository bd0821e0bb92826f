package resolvers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/eventide"
)

// ErrorPresenter maps every error to a GraphQL error with extensions.code. Domain errors keep
// their message; anything unexpected is logged in full with the request id and shown only as a
// generic message carrying that id.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		if gqlErr.Extensions == nil {
			gqlErr.Extensions = map[string]any{}
		}
		var de *eventide.Error
		switch {
		case errors.As(err, &de) && de.Code != eventide.CodeInternal:
			gqlErr.Message = de.Message
			gqlErr.Extensions["code"] = string(de.Code)
			if de.Field != "" {
				gqlErr.Extensions["field"] = de.Field
			}
			if de.Code == eventide.CodeUnavailable && de.Err != nil {
				log.WarnContext(ctx, "dependency unavailable", "request_id", eventide.RequestIDFrom(ctx), "path", gqlErr.Path.String(), "error", de.Err)
			}
		case gqlErr.Err == nil && gqlErr.Extensions["code"] != nil:
			// gqlgen's own parse and validation errors: their messages are about the query.
		default:
			rid := eventide.RequestIDFrom(ctx)
			log.ErrorContext(ctx, "internal error", "request_id", rid, "path", gqlErr.Path.String(), "error", err)
			gqlErr.Message = fmt.Sprintf("internal server error (request id %s)", rid)
			gqlErr.Extensions["code"] = string(eventide.CodeInternal)
			gqlErr.Extensions["requestId"] = rid
		}
		return gqlErr
	}
}

// Recover turns a panic in a resolver into an internal error; the presenter logs and masks it.
func Recover(_ context.Context, v any) error {
	return eventide.Internal(fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
}
