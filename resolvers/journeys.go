package resolvers

import (
	"context"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/relay"
)

// RegistrationBus carries myRegistrations messages; the topic is the user id. A
// *cache.RegistrationRelay serves it (across replicas when Redis is on).
type RegistrationBus interface {
	Publish(regs []*eventide.Registration)
	Subscribe(ctx context.Context, userID string) (<-chan *eventide.Registration, error)
}

// tracking returns ctx under which the store reports the registrations a write changes, and the
// function that tells their users (myRegistrations) once the write returned: call it after the
// write, also when it failed (what a store reported is durable: a promotion made before a later
// step failed stands).
func (r *Resolver) tracking(ctx context.Context) (context.Context, func()) {
	ctx, changes := eventide.WithRegistrationChanges(ctx)
	return ctx, func() {
		if regs := changes.Take(); len(regs) > 0 && r.Registrations != nil {
			r.Registrations.Publish(regs)
		}
	}
}

// ownRegistrations is User.registrations: that user and admins only.
func (r *Resolver) ownRegistrations(ctx context.Context, u *eventide.User, status *eventide.RegistrationStatus, upcoming *bool, first *int, after *string) (*relay.RegistrationConnection, error) {
	v := eventide.ViewerFrom(ctx)
	switch {
	case v == nil:
		return nil, eventide.Errorf(eventide.CodeUnauthenticated, "sign in to see registrations")
	case v.ID != u.ID && v.Role != eventide.RoleAdmin:
		return nil, eventide.Errorf(eventide.CodeForbidden, "only that user and admins see a user's registrations")
	}
	f := eventide.RegistrationFilter{Upcoming: upcoming, Now: r.now()}
	if status != nil {
		if !status.Valid() {
			return nil, eventide.InvalidField("status", "unknown status %q", *status)
		}
		f.Status = *status
	}
	conn, err := r.Store.UserRegistrations(ctx, u.ID, f, page(first, after))
	if err != nil {
		return nil, err
	}
	r.prefetchRegistrations(ctx, conn.Items)
	return relay.Registrations(conn, func(ctx context.Context) (int, error) {
		return r.Store.CountUserRegistrations(ctx, u.ID, f)
	}), nil
}

// eventRegistrations is Event.registrations: its organizer and admins only.
func (r *Resolver) eventRegistrations(ctx context.Context, ev *eventide.Event, status *eventide.RegistrationStatus, first *int, after *string) (*relay.RegistrationConnection, error) {
	v := eventide.ViewerFrom(ctx)
	switch {
	case v == nil:
		return nil, eventide.Errorf(eventide.CodeUnauthenticated, "sign in to see registrations")
	case v.ID != ev.OrganizerID && v.Role != eventide.RoleAdmin:
		return nil, eventide.Errorf(eventide.CodeForbidden, "only the organizer and admins see an event's registrations")
	}
	var st eventide.RegistrationStatus
	if status != nil {
		if !status.Valid() {
			return nil, eventide.InvalidField("status", "unknown status %q", *status)
		}
		st = *status
	}
	p := eventide.Page{First: 50}
	if first != nil {
		p.First = *first
	}
	if after != nil {
		p.After = *after
	}
	conn, err := r.Store.EventRegistrations(ctx, ev.ID, st, p)
	if err != nil {
		return nil, err
	}
	r.prefetchRegistrations(ctx, conn.Items)
	return relay.Registrations(conn, func(ctx context.Context) (int, error) {
		return r.Store.CountEventRegistrations(ctx, ev.ID, st)
	}), nil
}

// prefetchRegistrations starts, as one batch each, the loads a page of registrations needs
// whatever fields are selected below it: their events and users are read through the cache, their
// waitlist positions in one batch.
func (r *Resolver) prefetchRegistrations(ctx context.Context, regs []*eventide.Registration) {
	if len(regs) == 0 {
		return
	}
	l := r.loaders(ctx)
	fields := selectedBelow(ctx, "edges", "node")
	var events, users, waiting []string
	for _, g := range regs {
		events, users = append(events, g.EventID), append(users, g.UserID)
		if g.Status == eventide.RegistrationWaitlisted {
			waiting = append(waiting, g.ID)
		}
	}
	if fields["event"] {
		l.Events.Prefetch(ctx, events)
	}
	if fields["user"] {
		l.Users.Prefetch(ctx, users)
	}
	if fields["waitlistPosition"] && len(waiting) > 0 {
		l.Positions.Prefetch(ctx, waiting)
	}
}

// waitlistPosition is Registration.waitlistPosition: read now, so a registration delivered by a
// subscription or listed a moment ago shows the place it has, null once it is not waitlisted.
func (r *Resolver) waitlistPosition(ctx context.Context, g *eventide.Registration) (*int, error) {
	if g.Status != eventide.RegistrationWaitlisted {
		return nil, nil
	}
	n, err := r.loaders(ctx).Positions.Load(ctx, g.ID)
	if err != nil || n <= 0 {
		return nil, err
	}
	return &n, nil
}

// removeRegistration is Mutation.removeRegistration: the event's organizer or an admin.
func (r *Resolver) removeRegistration(ctx context.Context, id string, reason *string) (*eventide.Registration, error) {
	why := ""
	if reason != nil {
		var err error
		if why, err = text("reason", *reason, maxDescription, false); err != nil {
			return nil, err
		}
	}
	reg, err := r.Store.RegistrationByID(ctx, id)
	if err != nil {
		return nil, err
	}
	ev, err := r.Store.EventByID(ctx, reg.EventID)
	if err != nil {
		return nil, err
	}
	// The organizer of an event never changes, so checking before the write is checking at it.
	if err := checkManage(eventide.ViewerFrom(ctx), ev); err != nil {
		if eventide.IsCode(err, eventide.CodeNotFound) {
			return nil, eventide.NotFound("registration", id)
		}
		return nil, eventide.Errorf(eventide.CodeForbidden, "only the event's organizer or an admin may remove a registration")
	}
	ctx, tell := r.tracking(ctx)
	defer tell()
	reg, ev, err = r.Store.RemoveRegistration(ctx, id, why, r.now())
	if err != nil {
		return nil, err
	}
	r.wrote(ctx, ev)
	r.publish(ev)
	r.adminWrote(ctx, "removeRegistration", ev)
	return reg, nil
}

// myRegistrations is Subscription.myRegistrations: the viewer's registrations as they change,
// for as long as the connection's viewer is that user (an expired token or a deleted user ends
// the session's subscriptions with UNAUTHENTICATED; this ends it if the viewer is ever another).
func (r *Resolver) myRegistrations(ctx context.Context) (<-chan *eventide.Registration, error) {
	v := eventide.ViewerFrom(ctx)
	if v == nil {
		return nil, eventide.Errorf(eventide.CodeUnauthenticated, "sign in to follow your registrations")
	}
	if r.Registrations == nil {
		return nil, eventide.Errorf(eventide.CodeUnavailable, "registration updates are not available")
	}
	in, err := r.Registrations.Subscribe(ctx, v.ID)
	if err != nil {
		return nil, eventUpdatedError(err)
	}
	out := make(chan *eventide.Registration, cap(in))
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case g, ok := <-in:
				if !ok {
					return
				}
				if now := eventide.ViewerFrom(ctx); now == nil || now.ID != v.ID {
					eventide.EndSubscription(ctx, eventide.Errorf(eventide.CodeUnauthenticated, "this subscription belongs to another session"))
					return
				}
				select {
				case out <- g:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}
