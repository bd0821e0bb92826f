package resolvers

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventide/server/eventide"
)

func present(t *testing.T, err error) (msg string, ext map[string]any, logged string) {
	t.Helper()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	ctx := eventide.WithRequestID(context.Background(), "req-42")
	ctx = graphql.WithResponseContext(ctx, graphql.DefaultErrorPresenter, graphql.DefaultRecover)
	e := ErrorPresenter(log)(ctx, err)
	return e.Message, e.Extensions, buf.String()
}

func TestErrorPresenter(t *testing.T) {
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
