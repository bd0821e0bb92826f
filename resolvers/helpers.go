package resolvers

import (
	"context"
	"net/url"
	"strings"

	"github.com/eventide/server/app"
	"github.com/eventide/server/calendar"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/graph/model"
	"github.com/eventide/server/relay"
)

func page(first *int, after *string) eventide.Page {
	p := eventide.Page{First: eventide.DefaultPageSize}
	if first != nil {
		p.First = *first
	}
	if after != nil {
		p.After = *after
	}
	return p
}

// lastOf is the last argument of the admins' lists (security events, webhook deliveries): 100
// when absent, else 1 to 1000 (BAD_USER_INPUT otherwise).
func lastOf(last *int) (int, error) {
	n := 100
	if last != nil {
		n = *last
	}
	if n < 1 || n > 1000 {
		return 0, eventide.InvalidField("last", "must be between 1 and 1000")
	}
	return n, nil
}

// visibleEvent loads an event the viewer may see; a draft of someone else is NOT_FOUND.
func (r *Resolver) visibleEvent(ctx context.Context, id string) (*eventide.Event, error) {
	ev, err := r.loaders(ctx).Events.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ev.VisibleTo(eventide.ViewerFrom(ctx)) {
		return nil, eventide.NotFound("event", id)
	}
	return ev, nil
}

// eventInput maps an updateEvent input onto the service's.
func eventInput(in model.UpdateEventInput) app.EventInput {
	v, set := in.VenueID.ValueOK()
	return app.EventInput{
		Title: in.Title, Description: in.Description, StartsAt: in.StartsAt, EndsAt: in.EndsAt,
		Capacity: in.Capacity, Tags: in.Tags, VenueID: app.Change[*string]{Value: v, Set: set},
		Online: in.Online, OnlineURL: in.OnlineURL, TimeZone: in.TimeZone,
	}
}

// eventZone is the zone of ev's local times: its venue's, read through the loader (so a cached
// event shows its venue's new zone), else its own.
func (r *Resolver) eventZone(ctx context.Context, ev *eventide.Event) (string, error) {
	if ev.VenueID == "" {
		return eventide.EventZone(ev, nil), nil
	}
	v, err := r.loaders(ctx).Venues.Load(ctx, ev.VenueID)
	if eventide.IsCode(err, eventide.CodeNotFound) {
		return eventide.EventZone(ev, nil), nil
	}
	if err != nil {
		return "", err
	}
	return eventide.EventZone(ev, v), nil
}

// onlineURL is ev's link as the viewer may see it: null to anonymous viewers (so no anonymous
// response, cached or not, ever holds it), to the waitlisted and to everyone but confirmed
// attendees, the organizer and admins.
func (r *Resolver) onlineURL(ctx context.Context, ev *eventide.Event) (*string, error) {
	viewer := eventide.ViewerFrom(ctx)
	if viewer == nil || !ev.Online || ev.OnlineURL == "" {
		return nil, nil
	}
	var reg *eventide.Registration
	if !viewer.CanManage(ev) {
		var err error
		if reg, err = r.loaders(ctx).Registrations.Load(ctx, ev.ID); err != nil && !eventide.IsCode(err, eventide.CodeNotFound) {
			return nil, err
		}
	}
	if !ev.CanSeeOnlineURL(viewer, reg) {
		return nil, nil
	}
	u := ev.OnlineURL
	return &u, nil
}

// calendarURL is the feed URL of userID for secret: PublicURL, else the request's own base.
func (r *Resolver) calendarURL(ctx context.Context, userID, secret string) string {
	base := r.PublicURL
	if base == "" {
		base = calendar.BaseFrom(ctx)
	}
	return strings.TrimRight(base, "/") + calendar.FeedPath(r.Calendar.Token(userID, secret))
}

// wroteEvent answers an event write: the event, after the rest of the response was made to read
// what the write left (wrote).
func (r *Resolver) wroteEvent(ctx context.Context) func(*eventide.Event, error) (*eventide.Event, error) {
	return func(ev *eventide.Event, err error) (*eventide.Event, error) {
		if err != nil {
			return nil, err
		}
		r.wrote(ctx, ev)
		return ev, nil
	}
}

// wrote makes the rest of the response read what a write left: the loaders forget what they
// read before it (a mutation document may hold several writes, run one after the other), and
// the objects the write returned are remembered.
func (r *Resolver) wrote(ctx context.Context, evs ...*eventide.Event) {
	l := r.loaders(ctx)
	l.Clear()
	for _, ev := range evs {
		if ev != nil {
			l.Events.Prime(ev.ID, ev)
		}
	}
}

func (r *Resolver) eventConnection(ctx context.Context, q eventide.EventQuery, p eventide.Page) (*relay.EventConnection, error) {
	conn, err := r.Store.Events(ctx, q, p)
	if err != nil {
		return nil, err
	}
	r.prefetchEvents(ctx, conn.Items, "edges", "node")
	return relay.Events(conn, func(ctx context.Context) (int, error) { return r.Store.CountEvents(ctx, q) }), nil
}

// optional is nil for an empty string, else a pointer to it.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// redactURL is a URL without its user information (a webhook receiver's credentials).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
