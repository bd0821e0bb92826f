package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventide/server/eventide"
)

// HasRole implements @hasRole: anonymous callers get UNAUTHENTICATED, signed-in ones without the
// role FORBIDDEN.
func HasRole(ctx context.Context, _ any, next graphql.Resolver, role eventide.Role) (any, error) {
	if err := requireRole(ctx, role); err != nil {
		return nil, err
	}
	return next(ctx)
}

func requireRole(ctx context.Context, role eventide.Role) error {
	v := eventide.ViewerFrom(ctx)
	if v == nil {
		return eventide.Errorf(eventide.CodeUnauthenticated, "sign in first")
	}
	if !v.Role.AtLeast(role) {
		return eventide.Errorf(eventide.CodeForbidden, "this needs the %s role", role)
	}
	return nil
}
