package resolvers

import (
	"context"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/relay"
)

// RegistrationBus carries myRegistrations messages; the topic is the user id. A
// *storecache.RegistrationRelay serves it (across replicas when Redis is on).
type RegistrationBus interface {
	Publish(regs []*eventide.Registration)
	Subscribe(ctx context.Context, userID string) (<-chan *eventide.Registration, error)
}

// registrationConnection is a page of registrations the service listed, with the loads its
// fields need started.
func (r *Resolver) registrationConnection(ctx context.Context, conn *eventide.Conn[*eventide.Registration], count relay.Counter, err error) (*relay.RegistrationConnection, error) {
	if err != nil {
		return nil, err
	}
	r.prefetchRegistrations(ctx, conn.Items)
	return relay.Registrations(conn, count), nil
}

// wroteRegistration returns what answers a registration write: the registration, after the rest
// of the response was made to read what the write left (wrote).
func (r *Resolver) wroteRegistration(ctx context.Context) func(*eventide.Registration, *eventide.Event, error) (*eventide.Registration, error) {
	return func(reg *eventide.Registration, ev *eventide.Event, err error) (*eventide.Registration, error) {
		if err != nil {
			return nil, err
		}
		r.wrote(ctx, ev)
		return reg, nil
	}
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
					reqmeta.EndSubscription(ctx, eventide.Errorf(eventide.CodeUnauthenticated, "this subscription belongs to another session"))
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
