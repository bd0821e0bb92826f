// Package app holds Eventide's rules: input validation, who may change what, the registration
// and login flows, and every write's write → invalidate → publish. It works over eventide's
// interfaces only; the resolvers map GraphQL onto it and internal/server builds it.
package app

import (
	"context"
	"fmt"
	"time"

	"github.com/eventide/server/eventide"
)

// EventPublisher tells eventUpdated subscribers that an event changed; the topic is its id.
type EventPublisher interface {
	Publish(topic string, e *eventide.Event)
}

// RegistrationPublisher tells myRegistrations subscribers that their registrations changed.
type RegistrationPublisher interface {
	Publish(regs []*eventide.Registration)
}

// Passwords hashes, checks and turns a verified account into a session token. The errors of
// Hash and Verify are the ones the client sees (a busy hashing gate is RATE_LIMITED).
type Passwords interface {
	// Policy says why pw is not an acceptable password, or nil.
	Policy(pw string) error
	Hash(ctx context.Context, pw string) ([]byte, error)
	// Verify compares pw with hash; a nil hash (no such account) takes as long and is false.
	Verify(ctx context.Context, hash []byte, pw string) (bool, error)
	Issue(userID string) (string, error)
}

// Guard limits and watches sign-ups and logins of the request's client (the throttle and the
// brute-force detector). Signup and Login return the error to answer with (RATE_LIMITED) when
// the attempt is over its budget, else nil.
type Guard interface {
	Signup(ctx context.Context) error
	Login(ctx context.Context, email string) error
	LoginFailed(ctx context.Context, email string)
	LoginSucceeded(ctx context.Context, email string)
}

// Note kinds: what the security log records about the flows (its event types of the same names).
const (
	NoteSignedUp       = "SIGNED_UP"
	NoteLoginSucceeded = "LOGIN_SUCCEEDED"
	NoteLoginFailed    = "LOGIN_FAILED"
	NoteRoleChanged    = "ROLE_CHANGED"
	NoteAdminAction    = "ADMIN_ACTION"
)

// Note is one thing the security log is told; the journal adds what the request knows (client,
// viewer, operation) where the note does not say.
type Note struct {
	Kind    string
	UserID  string
	Email   string
	Message string
}

// Journal records notes in the security log.
type Journal interface {
	Note(ctx context.Context, n Note)
}

// Config is what the services work with. Store is required; the rest may be nil (nothing is
// published, guarded or recorded), except Passwords for AuthService.
type Config struct {
	Store         eventide.Store
	Events        EventPublisher
	Registrations RegistrationPublisher
	Passwords     Passwords
	Guard         Guard
	Journal       Journal
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// App is the set of services the resolvers call.
type App struct {
	Events        *EventService
	Venues        *VenueService
	Registrations *RegistrationService
	Auth          *AuthService
	Users         *UserService
}

// New builds the services over cfg.
func New(cfg Config) *App {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &base{cfg}
	return &App{
		Events:        &EventService{b},
		Venues:        &VenueService{b},
		Registrations: &RegistrationService{b},
		Auth:          &AuthService{b},
		Users:         &UserService{b},
	}
}

// base is what every service shares: the configuration and the steps every write ends with.
type base struct{ Config }

func (b *base) now() time.Time { return b.Now() }

// published tells eventUpdated subscribers that ev changed. It runs after the write returned,
// and so after the cached store invalidated what the write touched.
func (b *base) published(ev *eventide.Event) {
	if b.Events != nil && ev != nil {
		b.Events.Publish(ev.ID, ev)
	}
}

// tracking returns ctx under which the store reports the registrations a write changes, and the
// function that tells their users (myRegistrations) once the write returned: call it after the
// write, also when it failed (what a store reported is durable: a promotion made before a later
// step failed stands).
func (b *base) tracking(ctx context.Context) (context.Context, func()) {
	ctx, changes := eventide.WithRegistrationChanges(ctx)
	return ctx, func() {
		if regs := changes.Take(); len(regs) > 0 && b.Registrations != nil {
			b.Registrations.Publish(regs)
		}
	}
}

func (b *base) note(ctx context.Context, n Note) {
	if b.Journal != nil {
		b.Journal.Note(ctx, n)
	}
}

// adminAction records an admin write that changes the server's state.
func (b *base) adminAction(ctx context.Context, message string) {
	b.note(ctx, Note{Kind: NoteAdminAction, Message: message})
}

// adminWrote records an ADMIN_ACTION when an admin changed an event they do not organize: a
// write only the ADMIN role allowed.
func (b *base) adminWrote(ctx context.Context, mutation string, ev *eventide.Event) {
	if eventide.ViewerFrom(ctx).ActsForOther(ev) {
		b.adminAction(ctx, fmt.Sprintf("%s on event %s (%q) of organizer %s", mutation, ev.ID, ev.Title, ev.OrganizerID))
	}
}
