package storecache

import (
	"context"
	"time"

	"github.com/eventide/server/eventide"
)

// The attendee's and the organizer's lists of registrations and waitlist positions are read from
// the store, never kept: a user's list changes with writes to any of its events (a promotion, an
// event's cancellation), and a position with every registration ahead of it, so keeping them
// exact would take a token per user replaced by writes to other users' registrations. They are
// per viewer, never part of an anonymous response; reading them taints the response (it is not
// kept by the response cache).
//
//	write                              tokens replaced
//	removeRegistration                 the event (its counts, registrations and attendee pages)

// UserRegistrations implements eventide.RegistrationJourneys from the store.
func (s *Store) UserRegistrations(ctx context.Context, userID string, f eventide.RegistrationFilter, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	taint(ctx)
	return s.inner.UserRegistrations(ctx, userID, f, page)
}

// CountUserRegistrations implements eventide.RegistrationJourneys from the store.
func (s *Store) CountUserRegistrations(ctx context.Context, userID string, f eventide.RegistrationFilter) (int, error) {
	taint(ctx)
	return s.inner.CountUserRegistrations(ctx, userID, f)
}

// EventRegistrations implements eventide.RegistrationJourneys from the store.
func (s *Store) EventRegistrations(ctx context.Context, eventID string, status eventide.RegistrationStatus, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	taint(ctx)
	return s.inner.EventRegistrations(ctx, eventID, status, page)
}

// CountEventRegistrations implements eventide.RegistrationJourneys from the store.
func (s *Store) CountEventRegistrations(ctx context.Context, eventID string, status eventide.RegistrationStatus) (int, error) {
	taint(ctx)
	return s.inner.CountEventRegistrations(ctx, eventID, status)
}

// RegistrationByID implements eventide.RegistrationJourneys from the store.
func (s *Store) RegistrationByID(ctx context.Context, id string) (*eventide.Registration, error) {
	taint(ctx)
	return s.inner.RegistrationByID(ctx, id)
}

// WaitlistPositions implements eventide.RegistrationJourneys from the store.
func (s *Store) WaitlistPositions(ctx context.Context, ids []string) (map[string]int, error) {
	taint(ctx)
	return s.inner.WaitlistPositions(ctx, ids)
}

// RemoveRegistration implements eventide.RegistrationJourneys and invalidates the registration's
// event like CancelRegistration (a promotion changes another user's registration too).
func (s *Store) RemoveRegistration(ctx context.Context, id, reason string, at time.Time) (*eventide.Registration, *eventide.Event, error) {
	r, e, err := s.inner.RemoveRegistration(ctx, id, reason, at)
	switch {
	case err == nil:
		s.invalidate(ctx, []string{eventToken(r.EventID)}, []string{eventKey(r.EventID).key})
	case mayHaveWritten(err):
		// The event is not known here: the registration says which it was.
		if reg, rerr := s.inner.RegistrationByID(context.WithoutCancel(ctx), id); rerr == nil {
			s.invalidate(ctx, []string{eventToken(reg.EventID)}, []string{eventKey(reg.EventID).key})
		}
	}
	return r, e, err
}

func (g *failFast) UserRegistrations(ctx context.Context, userID string, f eventide.RegistrationFilter, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Conn[*eventide.Registration], error) {
		return g.inner.UserRegistrations(ctx, userID, f, page)
	})
}

func (g *failFast) CountUserRegistrations(ctx context.Context, userID string, f eventide.RegistrationFilter) (int, error) {
	return guard(g, ctx, func(ctx context.Context) (int, error) { return g.inner.CountUserRegistrations(ctx, userID, f) })
}

func (g *failFast) EventRegistrations(ctx context.Context, eventID string, status eventide.RegistrationStatus, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Conn[*eventide.Registration], error) {
		return g.inner.EventRegistrations(ctx, eventID, status, page)
	})
}

func (g *failFast) CountEventRegistrations(ctx context.Context, eventID string, status eventide.RegistrationStatus) (int, error) {
	return guard(g, ctx, func(ctx context.Context) (int, error) { return g.inner.CountEventRegistrations(ctx, eventID, status) })
}

func (g *failFast) RegistrationByID(ctx context.Context, id string) (*eventide.Registration, error) {
	return guard(g, ctx, func(ctx context.Context) (*eventide.Registration, error) { return g.inner.RegistrationByID(ctx, id) })
}

func (g *failFast) WaitlistPositions(ctx context.Context, ids []string) (map[string]int, error) {
	return guard(g, ctx, func(ctx context.Context) (map[string]int, error) { return g.inner.WaitlistPositions(ctx, ids) })
}

func (g *failFast) RemoveRegistration(ctx context.Context, id, reason string, at time.Time) (*eventide.Registration, *eventide.Event, error) {
	return guard2(g, ctx, func(ctx context.Context) (*eventide.Registration, *eventide.Event, error) {
		return g.inner.RemoveRegistration(ctx, id, reason, at)
	})
}
