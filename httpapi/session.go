package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/auth"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/security"
)

// DefaultSessionRecheck is how often every open session re-reads its user when nothing told it of
// a change: the backstop for an invalidation lost on its way between replicas (Redis down).
const DefaultSessionRecheck = 10 * time.Second

// Sessions keeps the long-lived connections of signed-in users — websockets and HTTP streams — so
// that what they may see follows their token and their current role, not the ones they had when
// they connected (a frozen viewer let a demoted admin promote themself back over an open socket):
//
//   - every operation started on such a connection re-reads the token (expiry) and the user
//     (role, existence, through the cache) before it is parsed;
//   - when a user is written (OnUserChanged from the cache, here or on another replica), that
//     user's sessions re-check at once, and subscriptions whose root field needs a role the user
//     no longer has end with FORBIDDEN, then complete;
//   - when a token expires, its websocket is closed with 4403 and its SSE subscriptions end with
//     UNAUTHENTICATED, by a timer, not at the next message.
//
// Its map holds only open connections of signed-in users, so the connection caps bound it; each
// connection leaves it when it closes.
type Sessions struct {
	authn   *auth.Authenticator
	events  *security.Log
	log     *slog.Logger
	recheck time.Duration

	mu     sync.Mutex
	byUser map[string]map[*session]struct{}
}

// SessionsOptions configures NewSessions.
type SessionsOptions struct {
	Authenticator *auth.Authenticator
	// Security, when set, hears of every session ended (SESSION_ENDED).
	Security *security.Log
	Logger   *slog.Logger
	// Recheck is the backstop interval of Run (DefaultSessionRecheck when 0).
	Recheck time.Duration
}

// NewSessions returns an empty registry.
func NewSessions(o SessionsOptions) *Sessions {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Recheck <= 0 {
		o.Recheck = DefaultSessionRecheck
	}
	return &Sessions{authn: o.Authenticator, events: o.Security, log: o.Logger, recheck: o.Recheck,
		byUser: map[string]map[*session]struct{}{}}
}

// UserChanged makes every open session of user id re-check its viewer before it returns, so
// that a role change made on this replica applies to the user's open connections before the
// write that made it answers. A user's sessions are few (the connection caps bound them), and a
// re-check is a token parse and a cached read.
func (s *Sessions) UserChanged(id string) {
	if s == nil {
		return
	}
	for _, ss := range s.of(id) {
		ss.recheck(context.Background())
	}
}

// Run re-checks every open session each interval until ctx ends.
func (s *Sessions) Run(ctx context.Context) {
	t := time.NewTicker(s.recheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, ss := range s.all() {
				ss.recheck(ctx)
			}
		}
	}
}

// Open is the number of open sessions of signed-in users.
func (s *Sessions) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, set := range s.byUser {
		n += len(set)
	}
	return n
}

func (s *Sessions) of(id string) []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.byUser[id]))
	for ss := range s.byUser[id] {
		out = append(out, ss)
	}
	return out
}

func (s *Sessions) all() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*session
	for _, set := range s.byUser {
		for ss := range set {
			out = append(out, ss)
		}
	}
	return out
}

// index files ss under user id, after removing it from user old ("" for none).
func (s *Sessions) index(ss *session, old, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if set := s.byUser[old]; set != nil {
		delete(set, ss)
		if len(set) == 0 {
			delete(s.byUser, old)
		}
	}
	if id == "" {
		return
	}
	set := s.byUser[id]
	if set == nil {
		set = map[*session]struct{}{}
		s.byUser[id] = set
	}
	set[ss] = struct{}{}
}

// track gives every websocket upgrade and SSE request a session, bound to the viewer the
// Authorization header named (authenticate has checked it and put its expiry in the context), and
// ends it with the request. It runs inside authenticate.
func (s *Sessions) track(next http.Handler) http.Handler {
	if s == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isStream(r) {
			next.ServeHTTP(w, r)
			return
		}
		ss := &session{reg: s, client: reqmeta.ClientFrom(r.Context())}
		defer holdFrom(r.Context()).release(ss.close)
		// authenticate has checked the header's token and read its user; the session starts from
		// what it found.
		if u := eventide.ViewerFrom(r.Context()); u != nil {
			h := r.Header.Get("Authorization")
			exp, ok := r.Context().Value(tokenExpiryKey{}).(time.Time)
			if !ok { // not behind authenticate: check the token here
				var err error
				if u, exp, err = s.authn.Session(r.Context(), h); err != nil {
					code := eventide.ErrorCode(err)
					writeError(w, r, statusFor(code), code, "could not check the token; try again shortly")
					return
				}
			}
			ss.bind(h, u, exp)
		}
		ctx := context.WithValue(r.Context(), sessionKey{}, ss)
		next.ServeHTTP(w, r.WithContext(eventide.WithViewerCell(ctx, &ss.cell)))
	})
}

type sessionKey struct{}

// sessionFrom returns the session of the connection ctx belongs to, or nil for a plain request.
func sessionFrom(ctx context.Context) *session {
	ss, _ := ctx.Value(sessionKey{}).(*session)
	return ss
}

// session is one long-lived connection.
type session struct {
	reg    *Sessions
	client reqmeta.Client
	cell   eventide.ViewerCell

	mu          sync.Mutex
	token       string // the Authorization value; "" when anonymous
	userID      string
	timer       *time.Timer // fires at the token's expiry
	closeSocket socketCloser
	subs        map[*liveSub]struct{}
	ended       bool // its token expired or its user is gone: nothing more runs on it
	closed      bool
}

// liveSub is one running subscription of a session.
type liveSub struct {
	field  string        // its root field, for the log
	need   eventide.Role // the role its root field needs ("" for none)
	cancel context.CancelCauseFunc
}

// bind makes the session's viewer u, signed in with authorization until exp.
func (ss *session) bind(authorization string, u *eventide.User, exp time.Time) {
	ss.mu.Lock()
	if ss.closed || ss.ended {
		ss.mu.Unlock()
		return
	}
	old := ss.userID
	ss.token, ss.userID = authorization, u.ID
	if ss.timer != nil {
		ss.timer.Stop()
	}
	ss.timer = time.AfterFunc(time.Until(exp), ss.expire)
	ss.mu.Unlock()
	ss.reg.index(ss, old, u.ID)
	ss.apply(u)
}

// socketCloser closes a session's websocket with a close frame of code and reason.
type socketCloser interface{ close(code int, reason string) }

// closeFunc is a socketCloser of a function.
type closeFunc func(code int, reason string)

func (f closeFunc) close(code int, reason string) { f(code, reason) }

// setSocket lets the session close its websocket (4403 at the token's expiry).
func (ss *session) setSocket(closeSocket socketCloser) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closeSocket = closeSocket
}

// refresh re-reads the token and the user before an operation: an expired token or a user who is
// gone ends the session (UNAUTHENTICATED), a store failure fails just this operation.
func (ss *session) refresh(ctx context.Context) error {
	ss.mu.Lock()
	tok, ended := ss.token, ss.ended
	ss.mu.Unlock()
	if ended {
		return eventide.Errorf(eventide.CodeUnauthenticated, "your session has ended; sign in again")
	}
	if tok == "" {
		return nil
	}
	u, _, err := ss.reg.authn.Session(ctx, tok)
	if err != nil {
		if eventide.IsCode(err, eventide.CodeUnauthenticated) {
			ss.end(eventide.CodeUnauthenticated, "your session has ended: the token expired or its user is gone; sign in again")
		}
		return err
	}
	ss.apply(u)
	return nil
}

// recheck is refresh for a session that is not running an operation; a store failure keeps the
// viewer it has until the next check.
func (ss *session) recheck(ctx context.Context) {
	if err := ss.refresh(ctx); err != nil && !eventide.IsCode(err, eventide.CodeUnauthenticated) {
		ss.reg.log.Warn("session re-check failed; keeping its viewer until the next one", "error", err)
	}
}

// apply makes u the viewer and ends the subscriptions u's role no longer allows.
func (ss *session) apply(u *eventide.User) {
	ss.cell.Store(u)
	ss.mu.Lock()
	var ended []string
	for sub := range ss.subs {
		if sub.need != "" && !u.Role.AtLeast(sub.need) {
			sub.cancel(eventide.Errorf(eventide.CodeForbidden, "%s needs the %s role, which you no longer have", sub.field, sub.need))
			delete(ss.subs, sub)
			ended = append(ended, sub.field)
		}
	}
	ss.mu.Unlock()
	if len(ended) > 0 {
		ss.logEnded(u, ended, "role is now "+string(u.Role)+": ended subscriptions that need more")
	}
}

// expire ends the session when its token expires.
func (ss *session) expire() {
	ss.end(eventide.CodeUnauthenticated, "your session has ended: the token expired; sign in again")
}

// end ends every subscription with code and closes the websocket with 4403; the session stays
// (a websocket closes with it; an SSE request ends with its stream).
func (ss *session) end(code eventide.Code, msg string) {
	ss.mu.Lock()
	if ss.closed || ss.ended || ss.token == "" {
		ss.mu.Unlock()
		return
	}
	ss.ended = true // nothing more runs as this user on this connection
	var ended []string
	for sub := range ss.subs {
		sub.cancel(eventide.Errorf(code, "%s", msg))
		ended = append(ended, sub.field)
	}
	clear(ss.subs)
	closeSocket := ss.closeSocket
	if ss.timer != nil {
		ss.timer.Stop()
	}
	ss.mu.Unlock()
	u := ss.cell.Load()
	ss.cell.Store(nil)
	if closeSocket != nil {
		closeSocket.close(closeForbidden, "Forbidden: "+msg)
	}
	ss.logEnded(u, ended, msg)
}

func (ss *session) logEnded(u *eventide.User, subs []string, msg string) {
	if ss.reg.events == nil {
		return
	}
	e := security.Event{Type: security.SessionEnded, IP: ss.client.IP, UserAgent: ss.client.UserAgent, Message: msg}
	if u != nil {
		e.UserID, e.Email = u.ID, u.Email
	}
	if len(subs) > 0 {
		e.Operation = subs[0]
	}
	ss.reg.events.Log(e)
}

// add registers a running subscription; an ended session refuses it.
func (ss *session) add(sub *liveSub) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed || ss.ended {
		return false
	}
	if ss.subs == nil {
		ss.subs = map[*liveSub]struct{}{}
	}
	ss.subs[sub] = struct{}{}
	return true
}

func (ss *session) remove(sub *liveSub) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.subs, sub)
}

// close ends the session with its connection.
func (ss *session) close() {
	ss.mu.Lock()
	ss.closed = true
	if ss.timer != nil {
		ss.timer.Stop()
	}
	for sub := range ss.subs {
		sub.cancel(nil)
	}
	clear(ss.subs)
	id := ss.userID
	ss.mu.Unlock()
	if id != "" {
		ss.reg.index(ss, id, "")
	}
}

// sessionGuard is the gqlgen side of Sessions: it re-checks the viewer before each operation of
// a long-lived connection is parsed (so introspection, @hasRole and the resolvers see the current
// role), and ends the connection's subscriptions when the session says so.
type sessionGuard struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.OperationInterceptor
} = sessionGuard{}

func (sessionGuard) ExtensionName() string                   { return "Sessions" }
func (sessionGuard) Validate(graphql.ExecutableSchema) error { return nil }

func (sessionGuard) MutateOperationParameters(ctx context.Context, _ *graphql.RawParams) *gqlerror.Error {
	ss := sessionFrom(ctx)
	if ss == nil {
		return nil
	}
	if err := ss.refresh(ctx); err != nil {
		code := eventide.ErrorCode(err)
		msg := "your session has ended: the token expired or its user is gone; sign in again"
		if code != eventide.CodeUnauthenticated {
			msg = "could not check your session; try again shortly"
		}
		return &gqlerror.Error{Message: msg, Err: &eventide.Error{Code: code, Message: msg},
			Extensions: map[string]any{"code": string(code), "requestId": reqmeta.IDFrom(ctx)}}
	}
	return nil
}

func (sessionGuard) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	ss := sessionFrom(ctx)
	oc := graphql.GetOperationContext(ctx)
	if ss == nil || oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		return next(ctx)
	}
	field, need := neededRole(oc)
	ctx, cancel := context.WithCancelCause(ctx)
	sub := &liveSub{field: field, need: need, cancel: cancel}
	if !ss.add(sub) {
		cancel(nil)
		return oneError(ctx, eventide.CodeUnauthenticated, "this connection is closing")
	}
	h := next(reqmeta.WithSubscriptionEnd(ctx, cancel))
	done := false
	return func(context.Context) *graphql.Response {
		if done {
			return nil
		}
		if resp := h(ctx); resp != nil {
			return resp
		}
		done = true
		ss.remove(sub)
		var e *eventide.Error
		if errors.As(context.Cause(ctx), &e) {
			return &graphql.Response{Errors: gqlerror.List{{Message: e.Message,
				Extensions: map[string]any{"code": string(e.Code), "requestId": reqmeta.IDFrom(ctx)}}}}
		}
		cancel(nil)
		return nil
	}
}

// neededRole is the first root field of a subscription and the highest role that @hasRole asks
// of its root fields ("" when none does).
func neededRole(oc *graphql.OperationContext) (string, eventide.Role) {
	var field string
	var need eventide.Role
	for _, f := range graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{"Subscription"}) {
		if field == "" {
			field = f.Name
		}
		if f.Definition == nil {
			continue
		}
		d := f.Definition.Directives.ForName("hasRole")
		if d == nil {
			continue
		}
		if a := d.Arguments.ForName("role"); a != nil && a.Value != nil {
			if r := eventide.Role(a.Value.Raw); need == "" || r.AtLeast(need) {
				need = r
			}
		}
	}
	return field, need
}
