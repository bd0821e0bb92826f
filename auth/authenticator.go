package auth

import (
	"context"
	"strings"
	"time"

	"github.com/eventide/server/eventide"
)

// Authenticator turns an Authorization value into the signed-in user, loading the user on every
// call so that role changes and deletions apply at once.
type Authenticator struct {
	Auth  *Auth
	Users eventide.UserStore
}

// Viewer returns the user an Authorization value ("Bearer <token>", or the bare token) names.
// An empty value is anonymous (nil, nil). A present but invalid or expired token, or one whose
// user no longer exists, is UNAUTHENTICATED; a store failure keeps its own code.
func (a *Authenticator) Viewer(ctx context.Context, authorization string) (*eventide.User, error) {
	u, _, err := a.Session(ctx, authorization)
	return u, err
}

// Session is Viewer with the instant the token expires (zero when anonymous), for connections
// that outlive one request and must end when their token does.
func (a *Authenticator) Session(ctx context.Context, authorization string) (*eventide.User, time.Time, error) {
	tok := strings.TrimSpace(authorization)
	if tok == "" {
		return nil, time.Time{}, nil
	}
	if scheme, rest, ok := strings.Cut(tok, " "); ok {
		if !strings.EqualFold(scheme, "Bearer") {
			return nil, time.Time{}, eventide.Errorf(eventide.CodeUnauthenticated, "unsupported authorization scheme")
		}
		tok = strings.TrimSpace(rest)
	}
	id, exp, err := a.Auth.ParseExpiry(tok)
	if err != nil {
		return nil, time.Time{}, eventide.Errorf(eventide.CodeUnauthenticated, "invalid or expired token")
	}
	u, err := a.Users.UserByID(ctx, id)
	if eventide.IsCode(err, eventide.CodeNotFound) {
		return nil, time.Time{}, eventide.Errorf(eventide.CodeUnauthenticated, "invalid or expired token")
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	return u, exp, nil
}
