package resolvers

import (
	"context"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/security"
)

// HasRole implements @hasRole without a security log (tests that need no events).
func HasRole(ctx context.Context, obj any, next graphql.Resolver, role eventide.Role) (any, error) {
	return (&Resolver{}).HasRole(ctx, obj, next, role)
}

// HasRole implements @hasRole: anonymous callers get UNAUTHENTICATED, signed-in ones without the
// role FORBIDDEN, and a refusal is an ACCESS_DENIED security event (the first of its operation
// only, with AccessDenials in use).
func (r *Resolver) HasRole(ctx context.Context, _ any, next graphql.Resolver, role eventide.Role) (any, error) {
	if err := requireRole(ctx, role); err != nil {
		if r.Security != nil && firstDenial(ctx) {
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

// AccessDenials is a gqlgen extension (srv.Use) that makes HasRole log one ACCESS_DENIED per
// operation: a document asking for thirty admin fields is one attempt, not thirty events that
// push older ones out of the log's ring (a USER could otherwise empty it in seconds). Without it,
// every refusal is logged.
type AccessDenials struct{}

const accessDenialsStats = "AccessDenials"

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = AccessDenials{}

func (AccessDenials) ExtensionName() string                   { return accessDenialsStats }
func (AccessDenials) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext gives the operation its flag before execution, when nothing else
// touches its stats; resolvers then only read the map.
func (AccessDenials) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	oc.Stats.SetExtension(accessDenialsStats, new(atomic.Bool))
	return nil
}

// firstDenial reports whether this is the first refusal of the operation in ctx (always, without
// AccessDenials).
func firstDenial(ctx context.Context) bool {
	if !graphql.HasOperationContext(ctx) {
		return true
	}
	done, ok := graphql.GetOperationContext(ctx).Stats.GetExtension(accessDenialsStats).(*atomic.Bool)
	return !ok || !done.Swap(true)
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
	logSecurity(ctx, r.Security, e)
}

func logSecurity(ctx context.Context, log *security.Log, e security.Event) {
	if log == nil {
		return
	}
	c := reqmeta.ClientFrom(ctx)
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
	log.Log(e)
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
