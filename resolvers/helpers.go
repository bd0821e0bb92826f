package resolvers

import (
	"context"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventide/server/auth"
	"github.com/eventide/server/calendar"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/graph/model"
	"github.com/eventide/server/relay"
)

// Input limits: generous for people, small enough that a hostile client cannot store megabytes.
const (
	maxTitle       = 200
	maxDescription = 10_000
	maxName        = 200
	maxAddress     = 500
	maxTags        = 20
	maxTag         = 40
	maxSearch      = 100
	maxCapacity    = 1_000_000
	maxEmail       = 254
)

func (r *Resolver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

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

// checkManage says whether viewer may change ev: its organizer or an admin.
func checkManage(viewer *eventide.User, ev *eventide.Event) error {
	if !ev.VisibleTo(viewer) {
		return eventide.NotFound("event", ev.ID)
	}
	if viewer == nil || (viewer.ID != ev.OrganizerID && viewer.Role != eventide.RoleAdmin) {
		return eventide.Errorf(eventide.CodeForbidden, "only the organizer or an admin may change this event")
	}
	return nil
}

func text(field, s string, max int, required bool) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case required && s == "":
		return "", eventide.InvalidField(field, "must not be empty")
	case utf8.RuneCountInString(s) > max:
		return "", eventide.InvalidField(field, "must be at most %d characters", max)
	}
	return s, nil
}

func cleanTags(tags []string) ([]string, error) {
	if len(tags) > maxTags {
		return nil, eventide.InvalidField("tags", "at most %d tags", maxTags)
	}
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		t = strings.ToLower(strings.TrimSpace(t))
		if t == "" {
			continue
		}
		if utf8.RuneCountInString(t) > maxTag {
			return nil, eventide.InvalidField("tags", "each tag at most %d characters", maxTag)
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func cleanEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if len(email) > maxEmail {
		return "", eventide.InvalidField("email", "must be at most %d characters", maxEmail)
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || !strings.Contains(email[strings.LastIndexByte(email, '@')+1:], ".") {
		return "", eventide.InvalidField("email", "must be an email address")
	}
	return email, nil
}

// applyEventInput validates a create or update input onto ev, looking the venue up when it
// changes. Fields absent from the input stay as they are; a venueId given as null removes the
// venue. creating adds the rules of a new event (it may not start in the past).
func (r *Resolver) applyEventInput(ctx context.Context, ev *eventide.Event, in model.UpdateEventInput, creating bool) error {
	var err error
	if in.Title != nil {
		if ev.Title, err = text("title", *in.Title, maxTitle, true); err != nil {
			return err
		}
	}
	if in.Description != nil {
		if ev.Description, err = text("description", *in.Description, maxDescription, false); err != nil {
			return err
		}
	}
	if in.StartsAt != nil {
		ev.StartsAt = in.StartsAt.UTC()
	}
	if in.EndsAt != nil {
		ev.EndsAt = in.EndsAt.UTC()
	}
	if in.Tags != nil {
		if ev.Tags, err = cleanTags(in.Tags); err != nil {
			return err
		}
	}
	if in.Capacity != nil {
		ev.Capacity = *in.Capacity
	}
	hadVenue := ev.VenueID != ""
	if v, set := in.VenueID.ValueOK(); set {
		ev.VenueID = ""
		if v != nil {
			ev.VenueID = strings.TrimSpace(*v)
		}
	}
	if err := applyOnline(ev, in); err != nil {
		return err
	}
	zone := ""
	if in.TimeZone != nil {
		loc, err := eventide.ValidTimeZone("timeZone", *in.TimeZone)
		if err != nil {
			return err
		}
		zone = loc.String()
	}
	if creating && ev.StartsAt.Before(r.now()) {
		return eventide.InvalidField("startsAt", "a new event may not start in the past")
	}
	if !ev.EndsAt.After(ev.StartsAt) {
		return eventide.InvalidField("endsAt", "must be after startsAt")
	}
	if ev.Capacity <= 0 || ev.Capacity > maxCapacity {
		return eventide.InvalidField("capacity", "must be between 1 and %d", maxCapacity)
	}
	ev.City = ""
	if ev.VenueID != "" {
		v, err := r.Store.VenueByID(ctx, ev.VenueID)
		if eventide.IsCode(err, eventide.CodeNotFound) {
			return eventide.InvalidField("venueId", "no venue with id %q", ev.VenueID)
		}
		if err != nil {
			return err
		}
		if v.Capacity != nil && ev.Capacity > *v.Capacity {
			return eventide.InvalidField("capacity", "must be at most the venue's capacity (%d)", *v.Capacity)
		}
		ev.City = v.City
		vz := eventide.ZoneOr(v.TimeZone)
		if zone != "" && zone != vz {
			return eventide.InvalidField("timeZone", "an event at a venue is in the venue's time zone (%s)", vz)
		}
		ev.TimeZone = vz
		return nil
	}
	switch {
	case zone != "":
		ev.TimeZone = zone
	case ev.Online && (creating || hadVenue):
		return eventide.InvalidField("timeZone", "an online event without a venue must name its time zone")
	case creating:
		ev.TimeZone = eventide.DefaultTimeZone
	}
	return nil
}

// maxOnlineURL bounds an online event's link.
const maxOnlineURL = 2000

// applyOnline applies online and onlineUrl: a link needs an online event, and turning an event
// offline removes its link.
func applyOnline(ev *eventide.Event, in model.UpdateEventInput) error {
	if in.Online != nil {
		ev.Online = *in.Online
		if !ev.Online {
			ev.OnlineURL = ""
		}
	}
	if in.OnlineURL == nil {
		return nil
	}
	u := strings.TrimSpace(*in.OnlineURL)
	if u == "" {
		ev.OnlineURL = ""
		return nil
	}
	if !ev.Online {
		return eventide.InvalidField("onlineUrl", "only an online event has a link (set online: true)")
	}
	p, err := url.Parse(u)
	if len(u) > maxOnlineURL || err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" ||
		strings.ContainsFunc(u, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return eventide.InvalidField("onlineUrl", "must be an http or https URL of at most %d characters", maxOnlineURL)
	}
	ev.OnlineURL = u
	return nil
}

// applyVenueInput validates an updateVenue input onto v; absent fields stay as they are.
func applyVenueInput(v *eventide.Venue, in model.UpdateVenueInput) error {
	var err error
	if in.Name != nil {
		if v.Name, err = text("name", *in.Name, maxName, true); err != nil {
			return err
		}
	}
	if in.Address != nil {
		if v.Address, err = text("address", *in.Address, maxAddress, true); err != nil {
			return err
		}
	}
	if in.City != nil {
		if v.City, err = text("city", *in.City, maxName, true); err != nil {
			return err
		}
	}
	if c, set := in.Capacity.ValueOK(); set {
		if c != nil && (*c <= 0 || *c > maxCapacity) {
			return eventide.InvalidField("capacity", "must be between 1 and %d", maxCapacity)
		}
		v.Capacity = c
	}
	if in.TimeZone != nil {
		loc, err := eventide.ValidTimeZone("timeZone", *in.TimeZone)
		if err != nil {
			return err
		}
		v.TimeZone = loc.String()
	}
	return nil
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
	if viewer.ID != ev.OrganizerID && viewer.Role != eventide.RoleAdmin {
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

// publish tells subscribers of an event that it changed. It runs after the write returned (and
// so after the cache was invalidated).
func (r *Resolver) publish(ev *eventide.Event) {
	if r.Events != nil && ev != nil {
		r.Events.Publish(ev.ID, ev)
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

func checkPassword(pw string) error {
	if err := auth.CheckPasswordPolicy(pw); err != nil {
		return eventide.InvalidField("password", "%s", err.Error())
	}
	return nil
}

// session issues a token for u.
func (r *Resolver) session(u *eventide.User) (*model.AuthPayload, error) {
	tok, err := r.Auth.Issue(u.ID)
	if err != nil {
		return nil, eventide.Internal(err)
	}
	return &model.AuthPayload{Token: tok, User: u}, nil
}

// eventQuery turns the public filter into a store query for this viewer.
func (r *Resolver) eventQuery(ctx context.Context, f *model.EventFilter) (eventide.EventQuery, error) {
	if f == nil {
		f = &model.EventFilter{}
	}
	viewer := eventide.ViewerFrom(ctx)
	status := eventide.EventPublished
	if f.Status != nil {
		status = *f.Status
	}
	q := eventide.EventQuery{Statuses: []eventide.EventStatus{status}}
	if status == eventide.EventDraft {
		switch {
		case viewer == nil:
			q.NoDrafts = true
		case viewer.Role != eventide.RoleAdmin:
			q.DraftsOf = viewer.ID
		}
	}
	if f.From == nil && f.To == nil {
		now := r.now()
		q.EndsAfter = &now
	}
	q.StartsFrom, q.StartsTo = f.From, f.To
	if f.From != nil && f.To != nil && !f.To.After(*f.From) {
		return q, eventide.InvalidField("to", "must be after from")
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimSpace(*p)
	}
	q.City, q.Tag, q.OrganizerID, q.VenueID = deref(f.City), strings.ToLower(deref(f.Tag)), deref(f.OrganizerID), deref(f.VenueID)
	q.Search = deref(f.Search)
	if utf8.RuneCountInString(q.Search) > maxSearch {
		return q, eventide.InvalidField("search", "must be at most %d characters", maxSearch)
	}
	return q, nil
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
