package calendar

import (
	"bytes"
	"context"
	"slices"

	"github.com/eventide/server/eventide"
)

// Store is what the calendar files read: the cached domain store in the server.
type Store interface {
	EventByID(ctx context.Context, id string) (*eventide.Event, error)
	EventsByIDs(ctx context.Context, ids []string) ([]*eventide.Event, error)
	VenuesByIDs(ctx context.Context, ids []string) ([]*eventide.Venue, error)
	RegistrationFor(ctx context.Context, eventID, userID string) (*eventide.Registration, error)
	CalendarRegistrations(ctx context.Context, userID string, limit int) ([]*eventide.Registration, error)
	CalendarSecret(ctx context.Context, userID string) (string, error)
	UserByID(ctx context.Context, id string) (*eventide.User, error)
}

// MaxFeedEvents bounds a personal feed: the user's newest registrations, this many at most.
const MaxFeedEvents = 500

// Service builds calendar files.
type Service struct {
	Store Store
	Keys  *Keys
}

// EventFile is the .ics of one event as viewer (nil: anonymous) may see it: a draft is
// NOT_FOUND to anyone but its organizer and admins, as in GraphQL; the link of an online event is
// in it only for those who may see it.
func (s *Service) EventFile(ctx context.Context, id string, viewer *eventide.User) ([]byte, error) {
	e, err := s.Store.EventByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !e.VisibleTo(viewer) {
		return nil, eventide.NotFound("event", id)
	}
	en, err := s.entries(ctx, []*eventide.Event{e})
	if err != nil {
		return nil, err
	}
	if e.Online && e.OnlineURL != "" && viewer != nil {
		var reg *eventide.Registration
		if !viewer.CanManage(e) {
			reg, _ = s.Store.RegistrationFor(ctx, e.ID, viewer.ID)
		}
		if e.CanSeeOnlineURL(viewer, reg) {
			en[0].OnlineURL = e.OnlineURL
		}
	}
	var b bytes.Buffer
	if err := Write(&b, e.Title, en); err != nil {
		return nil, eventide.Internal(err)
	}
	return b.Bytes(), nil
}

// Feed is the personal feed a token opens: its user's confirmed and waitlisted registrations'
// events, and those of their registrations whose event was cancelled (STATUS:CANCELLED), newest
// registrations first, at most MaxFeedEvents. A token that opens nothing is NOT_FOUND, the same
// for every reason.
func (s *Service) Feed(ctx context.Context, token string) ([]byte, error) {
	notFound := eventide.Errorf(eventide.CodeNotFound, "no such calendar")
	userID, ok := s.Keys.UserOf(token)
	if !ok {
		return nil, notFound
	}
	secret, err := s.Store.CalendarSecret(ctx, userID)
	if err != nil {
		return nil, err
	}
	if !s.Keys.Valid(token, userID, secret) {
		return nil, notFound
	}
	u, err := s.Store.UserByID(ctx, userID)
	if eventide.IsCode(err, eventide.CodeNotFound) {
		return nil, notFound
	}
	if err != nil {
		return nil, err
	}
	regs, err := s.Store.CalendarRegistrations(ctx, userID, MaxFeedEvents)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(regs))
	for i, r := range regs {
		ids[i] = r.EventID
	}
	evs, err := s.Store.EventsByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*eventide.Event, len(evs))
	for _, e := range evs {
		byID[e.ID] = e
	}
	var shown []*eventide.Event
	status := map[string]eventide.RegistrationStatus{}
	for _, r := range regs {
		e := byID[r.EventID]
		if e == nil || !e.VisibleTo(u) || (r.Status == eventide.RegistrationCancelled && e.Status != eventide.EventCancelled) {
			continue
		}
		if _, dup := status[e.ID]; dup {
			continue
		}
		status[e.ID] = r.Status
		shown = append(shown, e)
	}
	// Calendar apps sort by time; a stable order keeps downloads of an unchanged feed identical.
	slices.SortFunc(shown, func(a, b *eventide.Event) int {
		if c := a.StartsAt.Compare(b.StartsAt); c != 0 {
			return c
		}
		return compareStrings(a.ID, b.ID)
	})
	en, err := s.entries(ctx, shown)
	if err != nil {
		return nil, err
	}
	for i := range en {
		e := en[i].Event
		st := status[e.ID]
		en[i].Waitlisted = st == eventide.RegistrationWaitlisted
		if st == eventide.RegistrationConfirmed && e.Online && e.Status != eventide.EventCancelled {
			en[i].OnlineURL = e.OnlineURL
		}
	}
	var b bytes.Buffer
	if err := Write(&b, "Eventide: "+u.Name, en); err != nil {
		return nil, eventide.Internal(err)
	}
	return b.Bytes(), nil
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// entries pairs events with their venues (one batched read) and zones.
func (s *Service) entries(ctx context.Context, evs []*eventide.Event) ([]Entry, error) {
	var vids []string
	seen := map[string]bool{}
	for _, e := range evs {
		if e.VenueID != "" && !seen[e.VenueID] {
			seen[e.VenueID] = true
			vids = append(vids, e.VenueID)
		}
	}
	venues := map[string]*eventide.Venue{}
	if len(vids) > 0 {
		vs, err := s.Store.VenuesByIDs(ctx, vids)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			venues[v.ID] = v
		}
	}
	out := make([]Entry, len(evs))
	for i, e := range evs {
		v := venues[e.VenueID]
		out[i] = Entry{Event: e, Venue: v, Zone: eventide.EventZone(e, v)}
	}
	return out, nil
}
