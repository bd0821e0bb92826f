package querylimit_test

import (
	"context"
	"log/slog"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"

	"github.com/eventide/server/querylimit"
)

// How the server wires the limits: after APQ, so that a hash-only request is checked before
// validation too, with every refusal logged; suggestions off in production.
func ExampleExtension() {
	var srv *handler.Server // handler.New(schema), with its transports
	var production bool
	log := slog.Default()

	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](100)})
	srv.Use(querylimit.Extension(
		querylimit.Limits{MaxDepth: 12, MaxComplexity: 1000, MaxAliases: 30, MaxTokens: 2000},
		querylimit.OnReject(func(ctx context.Context, what string, measured, max int, op string) {
			log.WarnContext(ctx, "query rejected", "limit", what, "measured", measured, "max", max, "operation", op)
		}),
	))
	if production {
		querylimit.DisableSuggestions(srv)
	}
}
