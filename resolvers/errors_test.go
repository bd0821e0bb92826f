package resolvers

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
)

func present(t *testing.T, err error) (msg string, ext map[string]any, logged string) {
	t.Helper()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ctx := reqmeta.WithID(context.Background(), "req-42")
	ctx = graphql.WithResponseContext(ctx, graphql.DefaultErrorPresenter, graphql.DefaultRecover)
	e := ErrorPresenter(log)(ctx, err)
	return e.Message, e.Extensions, buf.String()
}

func TestErrorPresenter(t *testing.T) {
	t.Run("UnnamedOperationNotFoundSaysWhatToSend", func(t *testing.T) {
		err := gqlerror.Errorf("operation %s not found", "")
		err.Extensions = map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"}
		msg, ext, _ := present(t, err)
		if ext["code"] != "GRAPHQL_VALIDATION_FAILED" || !strings.Contains(msg, "operationName") {
			t.Fatalf("%q %v", msg, ext)
		}
	})
	t.Run("DomainErrorKeepsCodeMessageAndField", func(t *testing.T) {
		msg, ext, _ := present(t, eventide.InvalidField("capacity", "must be positive"))
		if ext["code"] != "BAD_USER_INPUT" || ext["field"] != "capacity" || msg != "capacity: must be positive" {
			t.Fatalf("%q %v", msg, ext)
		}
	})
	t.Run("InternalIsMaskedAndLogged", func(t *testing.T) {
		msg, ext, logged := present(t, errors.New("mongo: secret host 10.0.0.7 exploded"))
		if ext["code"] != "INTERNAL_SERVER_ERROR" || ext["requestId"] != "req-42" {
			t.Fatalf("ext %v", ext)
		}
		if strings.Contains(msg, "10.0.0.7") || !strings.Contains(msg, "req-42") {
			t.Fatalf("message %q", msg)
		}
		if !strings.Contains(logged, "10.0.0.7") || !strings.Contains(logged, "req-42") {
			t.Fatalf("log lacks the detail: %s", logged)
		}
	})
	t.Run("RequestShapeIsBadRequestAndNotLogged", func(t *testing.T) {
		// What gqlgen's APQ extension and transports return: no cause, no code, no path.
		for _, m := range []string{"provided APQ hash does not match query", "unsupported APQ version", "json request body could not be decoded"} {
			msg, ext, logged := present(t, gqlerror.Errorf("%s", m))
			if ext["code"] != "BAD_REQUEST" || msg != m || logged != "" {
				t.Fatalf("%q: %q %v, logged %q", m, msg, ext, logged)
			}
		}
	})
	t.Run("UncoercibleVariableIsBadUserInput", func(t *testing.T) {
		err := gqlerror.ErrorPathf(ast.Path{ast.PathName("variable"), ast.PathName("n")}, "cannot use string as Int")
		err.Extensions = map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"}
		msg, ext, logged := present(t, err)
		if ext["code"] != "BAD_USER_INPUT" || msg != "cannot use string as Int" || logged != "" {
			t.Fatalf("%q %v, logged %q", msg, ext, logged)
		}
	})
	t.Run("ValidationErrorKeepsItsCode", func(t *testing.T) {
		err := gqlerror.Errorf("Cannot query field \"nope\" on type \"Query\".")
		err.Extensions = map[string]any{"code": "GRAPHQL_VALIDATION_FAILED"}
		if _, ext, _ := present(t, err); ext["code"] != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("%v", ext)
		}
	})
	t.Run("UncodedFieldErrorIsStillInternal", func(t *testing.T) {
		// "must not be null" and the like: on a field's path, a bug of ours.
		msg, ext, logged := present(t, gqlerror.ErrorPathf(ast.Path{ast.PathName("event")}, "must not be null"))
		if ext["code"] != "INTERNAL_SERVER_ERROR" || strings.Contains(msg, "null") || !strings.Contains(logged, "must not be null") {
			t.Fatalf("%q %v, logged %q", msg, ext, logged)
		}
	})
	t.Run("RecoveredPanicIsMaskedEvenUnpresented", func(t *testing.T) {
		// gqlgen's websocket sends a panic it recovers outside the resolvers without the presenter.
		var gqlErr *gqlerror.Error
		if err := Recover(context.Background(), "boom"); !errors.As(err, &gqlErr) || strings.Contains(gqlErr.Message, "boom") ||
			gqlErr.Extensions["code"] != "INTERNAL_SERVER_ERROR" {
			t.Fatalf("%#v", err)
		}
	})
	t.Run("PanicBecomesInternalWithStackInLog", func(t *testing.T) {
		msg, ext, logged := present(t, Recover(context.Background(), "boom"))
		if ext["code"] != "INTERNAL_SERVER_ERROR" || strings.Contains(msg, "boom") {
			t.Fatalf("%q %v", msg, ext)
		}
		if !strings.Contains(logged, "boom") || !strings.Contains(logged, "goroutine") {
			t.Fatalf("log lacks panic and stack: %s", logged)
		}
	})
}
