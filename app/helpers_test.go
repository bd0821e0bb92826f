package app_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventide/server/app"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/store/sqlite"
)

// env is the services over a real embedded store in a temp dir, with recorders for what they
// tell the outside (the buses, the security log, the guard) and a fixed clock.
type env struct {
	*app.App
	store   *sqlite.Store
	now     time.Time
	events  *recorder[*eventide.Event]
	regs    *recorder[*eventide.Registration]
	notes   *recorder[app.Note]
	guard   *guard
	hashes  int
	verifys int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Options{Path: filepath.Join(t.TempDir(), "eventide.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	e := &env{store: st, now: time.Now().UTC().Truncate(time.Millisecond),
		events: &recorder[*eventide.Event]{}, regs: &recorder[*eventide.Registration]{}, notes: &recorder[app.Note]{},
		guard: &guard{}}
	e.App = app.New(app.Config{
		Store: st, Events: eventBus{e.events}, Registrations: regBus{e.regs}, Journal: journal{e.notes},
		Guard: e.guard, Passwords: passwords{e}, Now: func() time.Time { return e.now },
	})
	return e
}

// as returns ctx with u as the viewer (nil: anonymous).
func as(u *eventide.User) context.Context {
	return eventide.WithViewer(context.Background(), u)
}

func (e *env) user(t *testing.T, name string, role eventide.Role) *eventide.User {
	t.Helper()
	u := &eventide.User{Name: name, Email: strings.ToLower(name) + "@example.com", Role: role, PasswordHash: []byte("hash:secret-password")}
	if err := e.store.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

func (e *env) venue(t *testing.T, by *eventide.User, name, city, zone string, capacity *int) *eventide.Venue {
	t.Helper()
	v, err := e.Venues.Create(as(by), app.VenueInput{Name: &name, Address: ptr("1 Main St"), City: &city, TimeZone: &zone, Capacity: app.To(capacity)})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// event creates a published event of by's starting in an hour, with capacity seats.
func (e *env) event(t *testing.T, by *eventide.User, capacity int) *eventide.Event {
	t.Helper()
	ev, err := e.Events.Create(as(by), e.input("Meetup", capacity))
	if err != nil {
		t.Fatal(err)
	}
	if ev, err = e.Events.Publish(as(by), ev.ID); err != nil {
		t.Fatal(err)
	}
	return ev
}

// input is a valid new event's input: it starts in an hour and lasts two.
func (e *env) input(title string, capacity int) app.EventInput {
	starts, ends := e.now.Add(time.Hour), e.now.Add(3*time.Hour)
	return app.EventInput{Title: &title, StartsAt: &starts, EndsAt: &ends, Capacity: &capacity}
}

func ptr[T any](v T) *T { return &v }

// wantErr fails unless err carries code and exactly message.
func wantErr(t *testing.T, err error, code eventide.Code, message string) {
	t.Helper()
	var de *eventide.Error
	if err == nil || eventide.ErrorCode(err) != code {
		t.Fatalf("error %v, want %s %q", err, code, message)
	}
	if _ = errorAs(err, &de); de.Message != message {
		t.Fatalf("message %q, want %q", de.Message, message)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type recorder[T any] struct {
	mu   sync.Mutex
	seen []T
}

func (r *recorder[T]) add(v ...T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, v...)
}

func (r *recorder[T]) take() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.seen
	r.seen = nil
	return out
}

type eventBus struct{ r *recorder[*eventide.Event] }

func (b eventBus) Publish(topic string, e *eventide.Event) {
	if topic != e.ID {
		panic("eventUpdated topic " + topic + " is not the event's id " + e.ID)
	}
	b.r.add(e)
}

type regBus struct {
	r *recorder[*eventide.Registration]
}

func (b regBus) Publish(regs []*eventide.Registration) { b.r.add(regs...) }

type journal struct{ r *recorder[app.Note] }

func (j journal) Note(_ context.Context, n app.Note) { j.r.add(n) }

// guard refuses what refuse says and records the outcomes it is told.
type guard struct {
	refuse            error
	failed, succeeded []string
}

func (g *guard) Signup(context.Context) error                { return g.refuse }
func (g *guard) Login(context.Context, string) error         { return g.refuse }
func (g *guard) LoginFailed(_ context.Context, email string) { g.failed = append(g.failed, email) }
func (g *guard) LoginSucceeded(_ context.Context, email string) {
	g.succeeded = append(g.succeeded, email)
}

// passwords "hashes" by prefixing (bcrypt's cost is auth's subject, not the flows') and counts.
type passwords struct{ e *env }

func (p passwords) Policy(pw string) error {
	if len(pw) < 8 {
		return errShort
	}
	return nil
}

func (p passwords) Hash(_ context.Context, pw string) ([]byte, error) {
	p.e.hashes++
	return []byte("hash:" + pw), nil
}

func (p passwords) Verify(_ context.Context, hash []byte, pw string) (bool, error) {
	p.e.verifys++
	return hash != nil && string(hash) == "hash:"+pw, nil
}

func (p passwords) Issue(userID string) (string, error) { return "token-" + userID, nil }

var errShort = stringError("must be at least 8 characters")

type stringError string

func (s stringError) Error() string { return string(s) }

func errorAs(err error, target **eventide.Error) bool { return errors.As(err, target) }
