package app

import (
	"context"

	"github.com/eventide/server/eventide"
)

// RegistrationService registers and cancels the viewer, lets organizers remove registrations,
// and says who may list which registrations.
type RegistrationService struct{ *base }

// Register places the viewer at eventID (CONFIRMED while seats remain, else WAITLISTED).
func (s *RegistrationService) Register(ctx context.Context, eventID string) (*eventide.Registration, *eventide.Event, error) {
	ctx, tell := s.tracking(ctx)
	defer tell()
	return s.wrote(s.Store.Register(ctx, eventID, eventide.ViewerFrom(ctx).ID, s.now()))
}

// Cancel cancels the viewer's registration at eventID, promoting the first waitlisted one into a
// freed seat.
func (s *RegistrationService) Cancel(ctx context.Context, eventID string) (*eventide.Registration, *eventide.Event, error) {
	ctx, tell := s.tracking(ctx)
	defer tell()
	return s.wrote(s.Store.CancelRegistration(ctx, eventID, eventide.ViewerFrom(ctx).ID, s.now()))
}

// Remove cancels registration id for reason (nil: none): the event's organizer or an admin
// (FORBIDDEN otherwise; NOT_FOUND when the viewer may not see the event).
func (s *RegistrationService) Remove(ctx context.Context, id string, reason *string) (*eventide.Registration, *eventide.Event, error) {
	why, err := optionalText("reason", reason, MaxDescription)
	if err != nil {
		return nil, nil, err
	}
	reg, err := s.Store.RegistrationByID(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	ev, err := s.Store.EventByID(ctx, reg.EventID)
	if err != nil {
		return nil, nil, err
	}
	// The organizer of an event never changes, so checking before the write is checking at it.
	if err := checkManage(eventide.ViewerFrom(ctx), ev); err != nil {
		if eventide.IsCode(err, eventide.CodeNotFound) {
			return nil, nil, eventide.NotFound("registration", id)
		}
		return nil, nil, eventide.Errorf(eventide.CodeForbidden, "only the event's organizer or an admin may remove a registration")
	}
	ctx, tell := s.tracking(ctx)
	defer tell()
	reg, ev, err = s.wrote(s.Store.RemoveRegistration(ctx, id, why, s.now()))
	if err == nil {
		s.adminWrote(ctx, "removeRegistration", ev)
	}
	return reg, ev, err
}

// wrote publishes the event a registration write returned.
func (s *RegistrationService) wrote(reg *eventide.Registration, ev *eventide.Event, err error) (*eventide.Registration, *eventide.Event, error) {
	if err != nil {
		return nil, nil, err
	}
	s.published(ev)
	return reg, ev, nil
}

// ForUser and ForEvent return a page and the function that counts the whole list.

// ForUser lists u's registrations (that user and admins only: UNAUTHENTICATED, FORBIDDEN), of
// status when given, upcoming or past when upcoming says.
func (s *RegistrationService) ForUser(ctx context.Context, u *eventide.User, status *eventide.RegistrationStatus, upcoming *bool, page eventide.Page) (*eventide.Conn[*eventide.Registration], func(context.Context) (int, error), error) {
	v := eventide.ViewerFrom(ctx)
	switch {
	case v == nil:
		return nil, nil, eventide.Errorf(eventide.CodeUnauthenticated, "sign in to see registrations")
	case !v.CanSeeAccount(u):
		return nil, nil, eventide.Errorf(eventide.CodeForbidden, "only that user and admins see a user's registrations")
	}
	f := eventide.RegistrationFilter{Upcoming: upcoming, Now: s.now()}
	st, err := validStatus(status)
	if err != nil {
		return nil, nil, err
	}
	f.Status = st
	conn, err := s.Store.UserRegistrations(ctx, u.ID, f, page)
	if err != nil {
		return nil, nil, err
	}
	return conn, func(ctx context.Context) (int, error) { return s.Store.CountUserRegistrations(ctx, u.ID, f) }, nil
}

// ForEvent lists ev's registrations of status (every status when nil): its organizer and admins
// only (UNAUTHENTICATED, FORBIDDEN).
func (s *RegistrationService) ForEvent(ctx context.Context, ev *eventide.Event, status *eventide.RegistrationStatus, page eventide.Page) (*eventide.Conn[*eventide.Registration], func(context.Context) (int, error), error) {
	v := eventide.ViewerFrom(ctx)
	switch {
	case v == nil:
		return nil, nil, eventide.Errorf(eventide.CodeUnauthenticated, "sign in to see registrations")
	case !v.CanManage(ev):
		return nil, nil, eventide.Errorf(eventide.CodeForbidden, "only the organizer and admins see an event's registrations")
	}
	st, err := validStatus(status)
	if err != nil {
		return nil, nil, err
	}
	conn, err := s.Store.EventRegistrations(ctx, ev.ID, st, page)
	if err != nil {
		return nil, nil, err
	}
	return conn, func(ctx context.Context) (int, error) { return s.Store.CountEventRegistrations(ctx, ev.ID, st) }, nil
}

// Attendees lists ev's confirmed registrations in arrival order: who attends is for signed-in
// viewers (UNAUTHENTICATED otherwise); the counts on the event stay public.
func (s *RegistrationService) Attendees(ctx context.Context, ev *eventide.Event, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	if eventide.ViewerFrom(ctx) == nil {
		return nil, eventide.Errorf(eventide.CodeUnauthenticated, "sign in to see who attends; attendeeCount is public")
	}
	return s.Store.Attendees(ctx, ev.ID, page)
}

func validStatus(status *eventide.RegistrationStatus) (eventide.RegistrationStatus, error) {
	if status == nil {
		return "", nil
	}
	if !status.Valid() {
		return "", eventide.InvalidField("status", "unknown status %q", *status)
	}
	return *status, nil
}
