package resolvers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
)

// ErrorPresenter maps every error to a GraphQL error with extensions.code. Domain errors keep
// their message; gqlgen's parse and validation errors keep theirs (a variable it cannot coerce is
// BAD_USER_INPUT); an uncoded error gqlgen raised about the request itself, with no cause and no
// path (APQ's hash and version checks, a body the transport cannot decode), is BAD_REQUEST;
// anything else is unexpected: logged in full with the request id and shown only as a generic
// message carrying that id.
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
				log.WarnContext(ctx, "dependency unavailable", "request_id", reqmeta.IDFrom(ctx), "path", gqlErr.Path.String(), "error", de.Err)
			}
		case gqlErr.Err == nil && gqlErr.Extensions["code"] != nil:
			// gqlgen's own parse and validation errors: their messages are about the query. A
			// variable value gqlparser could not coerce is the client's bad input, not a bad
			// document.
			if gqlErr.Extensions["code"] == errcode.ValidationFailed && isVariablePath(gqlErr.Path) {
				gqlErr.Extensions["code"] = string(eventide.CodeBadUserInput)
			}
			// gqlgen names no operation when the request gave none: "operation  not found".
			if gqlErr.Message == "operation  not found" {
				gqlErr.Message = "the document has several operations: say which to run with operationName"
			}
		case gqlErr.Err == nil && len(gqlErr.Path) == 0:
			// No cause, no code and no field: gqlgen's request handling (the transports, APQ's hash
			// and version checks) refused the request's shape. The client's mistake, not ours.
			gqlErr.Extensions["code"] = string(eventide.CodeBadRequest)
		default:
			rid := reqmeta.IDFrom(ctx)
			var cause error = err
			if ge, ok := err.(*gqlerror.Error); ok && ge.Err != nil {
				cause = ge.Err // the error itself, not a message Recover has already masked
			}
			log.ErrorContext(ctx, "internal error", "request_id", rid, "path", gqlErr.Path.String(), "error", cause)
			gqlErr.Message = fmt.Sprintf("internal server error (request id %s)", rid)
			gqlErr.Extensions["code"] = string(eventide.CodeInternal)
			gqlErr.Extensions["requestId"] = rid
		}
		return gqlErr
	}
}

// isVariablePath reports whether path is gqlparser's for a variable value: ["variable", name...].
func isVariablePath(path ast.Path) bool {
	return len(path) > 0 && path[0] == ast.PathName("variable")
}

// Recover turns a panic in a resolver into an internal error; the presenter logs and masks it.
// The error is already a masked, coded GraphQL error wrapping the cause: a transport that sends
// a recovered panic without presenting it (gqlgen's websocket, for a panic outside the
// resolvers) then shows the generic message, never the panic or its stack.
func Recover(_ context.Context, v any) error {
	de := eventide.Internal(fmt.Errorf("panic: %v\n%s", v, debug.Stack()))
	return &gqlerror.Error{Message: de.Message, Err: de, Extensions: map[string]any{"code": string(de.Code)}}
}
