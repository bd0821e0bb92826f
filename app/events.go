package app

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventide/server/eventide"
)

// EventService creates and changes events and turns the public filter into store queries.
type EventService struct{ *base }

// Create stores a new DRAFT event of the viewer's from in (Title, StartsAt, EndsAt and Capacity
// are required; it may not start in the past). Invalid input is BAD_USER_INPUT naming the field.
func (s *EventService) Create(ctx context.Context, in EventInput) (*eventide.Event, error) {
	ev := &eventide.Event{Status: eventide.EventDraft, OrganizerID: eventide.ViewerFrom(ctx).ID, Tags: []string{}}
	if in.Description == nil {
		empty := ""
		in.Description = &empty
	}
	if err := s.apply(ctx, ev, in, true); err != nil {
		return nil, err
	}
	if err := s.Store.CreateEvent(ctx, ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// Update changes event id: its organizer or an admin (FORBIDDEN otherwise, NOT_FOUND for a draft
// the viewer may not see); a cancelled event cannot be changed.
func (s *EventService) Update(ctx context.Context, id string, in EventInput) (*eventide.Event, error) {
	return s.change(ctx, "updateEvent", id, true, func(ev *eventide.Event) error {
		if ev.Status == eventide.EventCancelled {
			return eventide.InvalidField("id", "a cancelled event cannot be changed")
		}
		return s.apply(ctx, ev, in, false)
	})
}

// Publish makes event id PUBLISHED; a cancelled event cannot be published.
func (s *EventService) Publish(ctx context.Context, id string) (*eventide.Event, error) {
	return s.change(ctx, "publishEvent", id, false, func(ev *eventide.Event) error {
		if ev.Status == eventide.EventCancelled {
			return eventide.InvalidField("id", "a cancelled event cannot be published")
		}
		ev.Status = eventide.EventPublished
		return nil
	})
}

// Cancel cancels event id for reason (nil: none), and with it every active registration.
func (s *EventService) Cancel(ctx context.Context, id string, reason *string) (*eventide.Event, error) {
	why, err := optionalText("reason", reason, MaxDescription)
	if err != nil {
		return nil, err
	}
	return s.change(ctx, "cancelEvent", id, true, func(ev *eventide.Event) error {
		ev.Status, ev.CancelReason = eventide.EventCancelled, why
		return nil
	})
}

// change applies edit to event id as its manager, then publishes the result and records an admin
// acting on someone else's event. tracked writes may change registrations (a capacity raised, an
// event cancelled), which are told to their users.
func (s *EventService) change(ctx context.Context, mutation, id string, tracked bool, edit func(*eventide.Event) error) (*eventide.Event, error) {
	viewer := eventide.ViewerFrom(ctx)
	if tracked {
		var tell func()
		ctx, tell = s.tracking(ctx)
		defer tell()
	}
	ev, err := s.Store.UpdateEvent(ctx, id, func(ev *eventide.Event) error {
		if err := checkManage(viewer, ev); err != nil {
			return err
		}
		return edit(ev)
	})
	if err != nil {
		return nil, err
	}
	s.published(ev)
	s.adminWrote(ctx, mutation, ev)
	return ev, nil
}

// checkManage says whether viewer may change ev: NOT_FOUND for a draft they may not see,
// FORBIDDEN unless they are its organizer or an admin.
func checkManage(viewer *eventide.User, ev *eventide.Event) error {
	if !ev.VisibleTo(viewer) {
		return eventide.NotFound("event", ev.ID)
	}
	if !viewer.CanManage(ev) {
		return eventide.Errorf(eventide.CodeForbidden, "only the organizer or an admin may change this event")
	}
	return nil
}

// apply validates a create or update input onto ev, looking the venue up when it changes. Fields
// absent from the input stay as they are; a venue set to nil removes the venue. creating adds
// the rules of a new event (it may not start in the past).
func (s *EventService) apply(ctx context.Context, ev *eventide.Event, in EventInput, creating bool) error {
	var err error
	if in.Title != nil {
		if ev.Title, err = text("title", *in.Title, MaxTitle, true); err != nil {
			return err
		}
	}
	if in.Description != nil {
		if ev.Description, err = text("description", *in.Description, MaxDescription, false); err != nil {
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
	if in.VenueID.Set {
		ev.VenueID = ""
		if v := in.VenueID.Value; v != nil {
			ev.VenueID = strings.TrimSpace(*v)
		}
	}
	if err := applyOnline(ev, in); err != nil {
		return err
	}
	return s.place(ctx, ev, in.TimeZone, hadVenue, creating)
}

// place checks ev's schedule and capacity and settles where it is: at its venue (atVenue), or
// in the zone timeZone names (nil: none), which an online event without a venue must name when
// it is new or has just left its venue.
func (s *EventService) place(ctx context.Context, ev *eventide.Event, timeZone *string, hadVenue, creating bool) error {
	zone := ""
	if timeZone != nil {
		loc, err := eventide.ValidTimeZone("timeZone", *timeZone)
		if err != nil {
			return err
		}
		zone = loc.String()
	}
	if creating && ev.StartsAt.Before(s.now()) {
		return eventide.InvalidField("startsAt", "a new event may not start in the past")
	}
	if !ev.EndsAt.After(ev.StartsAt) {
		return eventide.InvalidField("endsAt", "must be after startsAt")
	}
	if err := validCapacity(ev.Capacity); err != nil {
		return err
	}
	ev.City = ""
	if ev.VenueID != "" {
		return s.atVenue(ctx, ev, zone)
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

// atVenue checks ev against its venue and copies the venue's city and zone (zone, when the input
// named one, must be the venue's).
func (s *EventService) atVenue(ctx context.Context, ev *eventide.Event, zone string) error {
	v, err := s.Store.VenueByID(ctx, ev.VenueID)
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

// EventFilter is the public events filter; nil fields do not constrain.
type EventFilter struct {
	Status                                  *eventide.EventStatus
	From, To                                *time.Time
	City, Tag, OrganizerID, VenueID, Search *string
}

// Query turns f into a store query for the viewer: published events by default, drafts only the
// viewer's own (every draft for an admin, none for anonymous viewers), events not ended unless a
// date range is given. A range that ends before it starts, or a search over MaxSearch
// characters, is BAD_USER_INPUT.
func (s *EventService) Query(ctx context.Context, f EventFilter) (eventide.EventQuery, error) {
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
		now := s.now()
		q.EndsAfter = &now
	}
	q.StartsFrom, q.StartsTo = f.From, f.To
	if f.From != nil && f.To != nil && !f.To.After(*f.From) {
		return q, eventide.InvalidField("to", "must be after from")
	}
	trimmed := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimSpace(*p)
	}
	q.City, q.Tag, q.OrganizerID, q.VenueID = trimmed(f.City), foldTag(trimmed(f.Tag)), trimmed(f.OrganizerID), trimmed(f.VenueID)
	q.Search = trimmed(f.Search)
	if utf8.RuneCountInString(q.Search) > MaxSearch {
		return q, eventide.InvalidField("search", "must be at most %d characters", MaxSearch)
	}
	return q, nil
}

// OrganizedBy is the query of u's events as the viewer may list them: drafts too for u and
// admins.
func (s *EventService) OrganizedBy(ctx context.Context, u *eventide.User) eventide.EventQuery {
	return eventide.EventQuery{OrganizerID: u.ID, NoDrafts: !eventide.ViewerFrom(ctx).CanSeeAccount(u)}
}

// AtVenue is the query of the published events at venueID that have not ended.
func (s *EventService) AtVenue(venueID string) eventide.EventQuery {
	now := s.now()
	return eventide.EventQuery{VenueID: venueID, Statuses: []eventide.EventStatus{eventide.EventPublished}, EndsAfter: &now}
}
