package storecache

import (
	"context"
	"time"

	"github.com/eventide/server/eventide"
)

// Health tells whether a store is known down. Up returns a context that is cancelled, with the
// error calls should end in as its cause, the moment the store is known down (or closing); it is
// already cancelled while the store is down. The MongoDB store implements it from the driver's
// server monitor.
type Health interface {
	Up() context.Context
}

// FailFast wraps inner so that while h reports the store down every call fails at once with the
// cause (SERVICE_UNAVAILABLE) instead of waiting out the driver's server selection, and calls in
// flight when the store goes down fail then, not seconds later. While the store is up a call
// costs a child context and a callback registration.
func FailFast(inner Backing, h Health) Backing {
	return &failFast{inner: inner, h: h}
}

type failFast struct {
	inner Backing
	h     Health
}

var _ Backing = (*failFast)(nil)

// guard runs f under a context cancelled when the store goes down; an error that ends a call
// after the store went down is the store's state, not whatever the driver made of the
// cancellation.
func guard[T any](g *failFast, ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	up := g.h.Up()
	if up.Err() != nil {
		var zero T
		return zero, context.Cause(up)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(up, func() { cancel(context.Cause(up)) })
	v, err := f(ctx)
	stop()
	// Only a call this guard cut short ends in the store's state: one that failed on its own
	// (NOT_FOUND, BAD_USER_INPUT) as the store went down keeps its error.
	if err != nil && up.Err() != nil && context.Cause(ctx) == context.Cause(up) {
		err = context.Cause(up)
	}
	cancel(nil)
	return v, err
}

func guard0(g *failFast, ctx context.Context, f func(context.Context) error) error {
	_, err := guard(g, ctx, func(ctx context.Context) (struct{}, error) { return struct{}{}, f(ctx) })
	return err
}

func guard2[A, B any](g *failFast, ctx context.Context, f func(context.Context) (A, B, error)) (A, B, error) {
	type pair struct {
		a A
		b B
	}
	p, err := guard(g, ctx, func(ctx context.Context) (pair, error) {
		a, b, err := f(ctx)
		return pair{a, b}, err
	})
	return p.a, p.b, err
}

func (g *failFast) Ping(ctx context.Context) error { return guard0(g, ctx, g.inner.Ping) }

func (g *failFast) CreateUser(ctx context.Context, u *eventide.User) error {
	return guard0(g, ctx, func(ctx context.Context) error { return g.inner.CreateUser(ctx, u) })
}

func (g *failFast) UserByID(ctx context.Context, id string) (*eventide.User, error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.User, error) { return g.inner.UserByID(ctx, id) })
}

func (g *failFast) UserByEmail(ctx context.Context, email string) (*eventide.User, error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.User, error) { return g.inner.UserByEmail(ctx, email) })
}

func (g *failFast) UsersByIDs(ctx context.Context, ids []string) ([]*eventide.User, error) {
	return guard(g, ctx, func(ctx context.Context) ([]*eventide.User, error) { return g.inner.UsersByIDs(ctx, ids) })
}

func (g *failFast) SetUserRole(ctx context.Context, id string, role eventide.Role) (*eventide.User, error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.User, error) { return g.inner.SetUserRole(ctx, id, role) })
}

func (g *failFast) SetUserCredentials(ctx context.Context, id string, hash []byte, role eventide.Role) error {
	return guard0(g, ctx, func(ctx context.Context) error { return g.inner.SetUserCredentials(ctx, id, hash, role) })
}

func (g *failFast) CountUsers(ctx context.Context) (int, error) {
	return guard(g, ctx, g.inner.CountUsers)
}

func (g *failFast) Users(ctx context.Context, q eventide.UserQuery, page eventide.Page) (*eventide.Conn[*eventide.User], error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Conn[*eventide.User], error) { return g.inner.Users(ctx, q, page) })
}

func (g *failFast) CountUsersMatching(ctx context.Context, q eventide.UserQuery) (int, error) {
	return guard(g, ctx, func(ctx context.Context) (int, error) { return g.inner.CountUsersMatching(ctx, q) })
}

func (g *failFast) CreateVenue(ctx context.Context, v *eventide.Venue) error {
	return guard0(g, ctx, func(ctx context.Context) error { return g.inner.CreateVenue(ctx, v) })
}

func (g *failFast) VenueByID(ctx context.Context, id string) (*eventide.Venue, error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Venue, error) { return g.inner.VenueByID(ctx, id) })
}

func (g *failFast) VenuesByIDs(ctx context.Context, ids []string) ([]*eventide.Venue, error) {
	return guard(g, ctx, func(ctx context.Context) ([]*eventide.Venue, error) { return g.inner.VenuesByIDs(ctx, ids) })
}

func (g *failFast) Venues(ctx context.Context, city string, page eventide.Page) (*eventide.Conn[*eventide.Venue], error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Conn[*eventide.Venue], error) {
		return g.inner.Venues(ctx, city, page)
	})
}

func (g *failFast) CountVenues(ctx context.Context, city string) (int, error) {
	return guard(g, ctx, func(ctx context.Context) (int, error) { return g.inner.CountVenues(ctx, city) })
}

func (g *failFast) UpdateVenue(ctx context.Context, id string, change func(*eventide.Venue) error) (*eventide.Venue, error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Venue, error) { return g.inner.UpdateVenue(ctx, id, change) })
}

func (g *failFast) CalendarRegistrations(ctx context.Context, userID string, limit int) ([]*eventide.Registration, error) {
	return guard(g, ctx, func(ctx context.Context) ([]*eventide.Registration, error) {
		return g.inner.CalendarRegistrations(ctx, userID, limit)
	})
}

func (g *failFast) CalendarSecret(ctx context.Context, userID string) (string, error) {
	return guard(g, ctx, func(ctx context.Context) (string, error) { return g.inner.CalendarSecret(ctx, userID) })
}

func (g *failFast) SetCalendarSecret(ctx context.Context, userID, secret string) error {
	return guard0(g, ctx, func(ctx context.Context) error { return g.inner.SetCalendarSecret(ctx, userID, secret) })
}

func (g *failFast) CreateEvent(ctx context.Context, e *eventide.Event) error {
	return guard0(g, ctx, func(ctx context.Context) error { return g.inner.CreateEvent(ctx, e) })
}

func (g *failFast) EventByID(ctx context.Context, id string) (*eventide.Event, error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Event, error) { return g.inner.EventByID(ctx, id) })
}

func (g *failFast) EventsByIDs(ctx context.Context, ids []string) ([]*eventide.Event, error) {
	return guard(g, ctx, func(ctx context.Context) ([]*eventide.Event, error) { return g.inner.EventsByIDs(ctx, ids) })
}

func (g *failFast) UpdateEvent(ctx context.Context, id string, change func(*eventide.Event) error) (*eventide.Event, error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Event, error) { return g.inner.UpdateEvent(ctx, id, change) })
}

func (g *failFast) Events(ctx context.Context, q eventide.EventQuery, page eventide.Page) (*eventide.Conn[*eventide.Event], error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Conn[*eventide.Event], error) {
		return g.inner.Events(ctx, q, page)
	})
}

func (g *failFast) CountEvents(ctx context.Context, q eventide.EventQuery) (int, error) {
	return guard(g, ctx, func(ctx context.Context) (int, error) { return g.inner.CountEvents(ctx, q) })
}

func (g *failFast) NextEventEnd(ctx context.Context, q eventide.EventQuery) (time.Time, error) {
	return guard(g, ctx, func(ctx context.Context) (time.Time, error) { return g.inner.NextEventEnd(ctx, q) })
}

func (g *failFast) Register(ctx context.Context, eventID, userID string, now time.Time) (*eventide.Registration, *eventide.Event, error) {
	return guard2(g, ctx, func(ctx context.Context) (*eventide.Registration, *eventide.Event, error) {
		return g.inner.Register(ctx, eventID, userID, now)
	})
}

func (g *failFast) CancelRegistration(ctx context.Context, eventID, userID string, now time.Time) (*eventide.Registration, *eventide.Event, error) {
	return guard2(g, ctx, func(ctx context.Context) (*eventide.Registration, *eventide.Event, error) {
		return g.inner.CancelRegistration(ctx, eventID, userID, now)
	})
}

func (g *failFast) RegistrationFor(ctx context.Context, eventID, userID string) (*eventide.Registration, error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Registration, error) {
		return g.inner.RegistrationFor(ctx, eventID, userID)
	})
}

func (g *failFast) Attendees(ctx context.Context, eventID string, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Conn[*eventide.Registration], error) {
		return g.inner.Attendees(ctx, eventID, page)
	})
}

func (g *failFast) RegistrationsOf(ctx context.Context, userID string, eventIDs []string) ([]*eventide.Registration, error) {
	return guard(g, ctx, func(ctx context.Context) ([]*eventide.Registration, error) {
		return g.inner.RegistrationsOf(ctx, userID, eventIDs)
	})
}
