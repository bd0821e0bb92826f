package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/security"
)

// HasRole implements @hasRole without a security log (tests that need no events).
func HasRole(ctx context.Context, obj any, next graphql.Resolver, role eventide.Role) (any, error) {
	return (&Resolver{}).HasRole(ctx, obj, next, role)
}

// HasRole implements @hasRole: anonymous callers get UNAUTHENTICATED, signed-in ones without the
// role FORBIDDEN, and every refusal is an ACCESS_DENIED security event.
func (r *Resolver) HasRole(ctx context.Context, _ any, next graphql.Resolver, role eventide.Role) (any, error) {
	if err := requireRole(ctx, role); err != nil {
		if r.Security != nil {
			field := ""
			if fc := graphql.GetFieldContext(ctx); fc != nil {
				field = fc.Object + "." + fc.Field.Name
			}
			r.logSecurity(ctx, security.Event{Type: security.AccessDenied, Message: field + " needs the " + string(role) + " role"})
		}
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

// logSecurity logs e with what the request knows: client address, user agent, viewer and
// operation name, where e does not say.
func (r *Resolver) logSecurity(ctx context.Context, e security.Event) {
	if r.Security == nil {
		return
	}
	c := eventide.ClientFrom(ctx)
	if e.IP == "" {
		e.IP = c.IP
	}
	if e.UserAgent == "" {
		e.UserAgent = c.UserAgent
	}
	if v := eventide.ViewerFrom(ctx); v != nil && e.UserID == "" {
		e.UserID = v.ID
		if e.Email == "" {
			e.Email = v.Email
		}
	}
	if e.Operation == "" && graphql.HasOperationContext(ctx) {
		e.Operation = operationName(graphql.GetOperationContext(ctx))
	}
	r.Security.Log(e)
}

// operationName is the name of the operation being run: the request's operationName, or the name
// the document gives it (clients often send a single named operation without operationName).
func operationName(oc *graphql.OperationContext) string {
	if oc.OperationName != "" {
		return oc.OperationName
	}
	if oc.Operation != nil {
		return oc.Operation.Name
	}
	return ""
}
