package resolvers

import (
	"context"
	"errors"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventide/server/app"
	"github.com/eventide/server/auth"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/security"
)

// passwordFields are the mutation fields that hash a password, the costly step a document may
// take once.
var passwordFields = map[string]bool{"signUp": true, "login": true}

// onePasswordField refuses, with RATE_LIMITED, every signUp or login field of an operation but
// the first (in execution order, fragments and @skip/@include applied): one document of thirty
// aliased signUps must not cost thirty hashes. It reads the operation, so it needs no state.
func onePasswordField(ctx context.Context) error {
	if !graphql.HasOperationContext(ctx) {
		return nil
	}
	oc, fc := graphql.GetOperationContext(ctx), graphql.GetFieldContext(ctx)
	if oc.Operation == nil || fc == nil || fc.Field.Field == nil {
		return nil
	}
	for _, f := range graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{"Mutation"}) {
		if passwordFields[f.Name] {
			if f.Alias == fc.Field.Alias {
				return nil
			}
			break
		}
	}
	return eventide.Errorf(eventide.CodeRateLimited,
		"one signUp or login per request: %s was not run; send it in a request of its own", fc.Field.Alias)
}

// hashErr maps an error of auth's gated hashing: every slot and the queue taken (or the request
// gone while it waited) is RATE_LIMITED, to retry in a second; anything else is internal.
func hashErr(err error) error {
	if !errors.Is(err, auth.ErrBusy) {
		return eventide.Internal(err)
	}
	return &eventide.Error{Code: eventide.CodeRateLimited, Message: "too many sign-ins in progress; retry in 1 s", RetryAfter: time.Second}
}

// Passwords is app.Passwords over a: auth's password policy, its gated hashing (a busy gate is
// RATE_LIMITED, hashErr) and its tokens.
func Passwords(a *auth.Auth) app.Passwords { return passwords{a} }

type passwords struct{ a *auth.Auth }

func (p passwords) Policy(pw string) error              { return auth.CheckPasswordPolicy(pw) }
func (p passwords) Issue(userID string) (string, error) { return p.a.Issue(userID) }

func (p passwords) Hash(ctx context.Context, pw string) ([]byte, error) {
	h, err := p.a.HashContext(ctx, pw)
	if err != nil {
		return nil, hashErr(err)
	}
	return h, nil
}

func (p passwords) Verify(ctx context.Context, hash []byte, pw string) (bool, error) {
	ok, err := p.a.VerifyContext(ctx, hash, pw)
	if err != nil {
		return false, hashErr(err)
	}
	return ok, nil
}

// Guard is app.Guard over the throttle and the brute-force detector (either may be nil: no
// limit, no watch), for the request's client (reqmeta.ClientFrom): a refusal is the
// decision's error (security.Refusal).
func Guard(t *security.Throttle, b *security.BruteForce) app.Guard { return guard{t, b} }

type guard struct {
	t *security.Throttle
	b *security.BruteForce
}

func (g guard) Signup(ctx context.Context) error {
	if g.t == nil {
		return nil
	}
	if d := g.t.Signup(ctx, reqmeta.ClientFrom(ctx).AddrKey); !d.Allowed {
		return d.Err()
	}
	return nil
}

func (g guard) Login(ctx context.Context, email string) error {
	if g.t == nil {
		return nil
	}
	if d := g.t.Login(ctx, reqmeta.ClientFrom(ctx).AddrKey, email); !d.Allowed {
		return d.Err()
	}
	return nil
}

func (g guard) LoginFailed(ctx context.Context, email string) {
	if g.b != nil {
		g.b.LoginFailed(attempt(ctx, email))
	}
}

func (g guard) LoginSucceeded(ctx context.Context, email string) {
	if g.b != nil {
		g.b.LoginSucceeded(attempt(ctx, email))
	}
}

func attempt(ctx context.Context, email string) security.Attempt {
	c := reqmeta.ClientFrom(ctx)
	return security.Attempt{Email: email, Client: c.AddrKey, IP: c.IP, UserAgent: c.UserAgent}
}

// Journal is app.Journal over the security log (nil: nothing is recorded); a note is logged as
// logSecurity logs, with the request's client, viewer and operation.
func Journal(l *security.Log) app.Journal { return journal{l} }

type journal struct{ l *security.Log }

func (j journal) Note(ctx context.Context, n app.Note) {
	logSecurity(ctx, j.l, security.Event{Type: security.EventType(n.Kind), UserID: n.UserID, Email: n.Email, Message: n.Message})
}
