package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventide/server/app"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/graph/model"
)

// AuthPayloadViewer is a gqlgen extension (srv.Use) that resolves AuthPayload.user as that user
// sees themself (API.md: its email is not null): login and signUp run for an anonymous request,
// and the user they return would otherwise be seen through that request's viewer, nobody. The
// new viewer holds for the user's subtree only; the rest of the operation keeps the request's.
type AuthPayloadViewer struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.FieldInterceptor
} = AuthPayloadViewer{}

func (AuthPayloadViewer) ExtensionName() string                   { return "AuthPayloadViewer" }
func (AuthPayloadViewer) Validate(graphql.ExecutableSchema) error { return nil }

func (AuthPayloadViewer) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Object != "AuthPayload" || fc.Field.Name != "user" || fc.Parent == nil {
		return next(ctx)
	}
	if p, _ := fc.Parent.Result.(*model.AuthPayload); p != nil && p.User != nil {
		ctx = eventide.WithViewer(ctx, p.User)
	}
	return next(ctx)
}

// authPayload answers signUp and login with the session the service opened.
func authPayload(s *app.Session, err error) (*model.AuthPayload, error) {
	if err != nil {
		return nil, err
	}
	return &model.AuthPayload{Token: s.Token, User: s.User}, nil
}
