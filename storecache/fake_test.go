package storecache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eventide/server/eventide"
)

// fakeStore is an in-memory Backing that counts its reads and can hold them at a gate, so that
// tests can interleave a reader and a writer exactly. Methods the tests do not use panic (through
// the nil embedded interface).
type fakeStore struct {
	eventide.Store

	mu     sync.Mutex
	users  map[string]*eventide.User
	venues map[string]*eventide.Venue
	events map[string]*eventide.Event
	regs   map[string]*eventide.Registration // eventID + "/" + userID

	reads atomic.Int64 // calls that would be one store command each
	// gate, when set, is received from before a read returns its data (read already taken).
	gate chan chan struct{}
}

func newFakeStore() *fakeStore {
	return &fakeStore{users: map[string]*eventide.User{}, venues: map[string]*eventide.Venue{},
		events: map[string]*eventide.Event{}, regs: map[string]*eventide.Registration{}}
}

// hold, when a gate is set, tells the test that a read has taken its snapshot and waits for it to
// be released.
func (f *fakeStore) hold() {
	f.mu.Lock()
	g := f.gate
	f.mu.Unlock()
	if g == nil {
		return
	}
	release := make(chan struct{})
	g <- release
	<-release
}

func byIDs[T any](f *fakeStore, m map[string]T, ids []string) []T {
	f.reads.Add(1)
	f.mu.Lock()
	var out []T
	for _, id := range ids {
		if v, ok := m[id]; ok {
			out = append(out, v)
		}
	}
	f.mu.Unlock()
	f.hold()
	return out
}

func (f *fakeStore) UsersByIDs(_ context.Context, ids []string) ([]*eventide.User, error) {
	return byIDs(f, f.users, ids), nil
}

func (f *fakeStore) VenuesByIDs(_ context.Context, ids []string) ([]*eventide.Venue, error) {
	return byIDs(f, f.venues, ids), nil
}

// EventsByIDs returns copies, as a real store does.
func (f *fakeStore) EventsByIDs(_ context.Context, ids []string) ([]*eventide.Event, error) {
	evs := byIDs(f, f.events, ids)
	out := make([]*eventide.Event, len(evs))
	for i, e := range evs {
		c := *e
		out[i] = &c
	}
	return out, nil
}

func (f *fakeStore) RegistrationsOf(_ context.Context, userID string, eventIDs []string) ([]*eventide.Registration, error) {
	keys := make([]string, len(eventIDs))
	for i, e := range eventIDs {
		keys[i] = e + "/" + userID
	}
	return byIDs(f, f.regs, keys), nil
}

func (f *fakeStore) Events(_ context.Context, q eventide.EventQuery, p eventide.Page) (*eventide.Conn[*eventide.Event], error) {
	f.reads.Add(1)
	f.mu.Lock()
	var all []*eventide.Event
	for _, e := range f.events {
		if q.EndsAfter != nil && !e.EndsAt.After(*q.EndsAfter) {
			continue
		}
		c := *e
		all = append(all, &c)
	}
	f.mu.Unlock()
	sortEvents(all)
	c := &eventide.Conn[*eventide.Event]{}
	for i, e := range all {
		if i == p.First {
			c.HasNextPage = true
			break
		}
		c.Items = append(c.Items, e)
		c.Cursors = append(c.Cursors, "c"+e.ID)
	}
	f.hold()
	return c, nil
}

func sortEvents(es []*eventide.Event) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && (es[j].StartsAt.Before(es[j-1].StartsAt) || es[j].StartsAt.Equal(es[j-1].StartsAt) && es[j].ID < es[j-1].ID); j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

func (f *fakeStore) CountEvents(ctx context.Context, q eventide.EventQuery) (int, error) {
	c, err := f.Events(ctx, q, eventide.Page{First: 1 << 20})
	return len(c.Items), err
}

func (f *fakeStore) NextEventEnd(ctx context.Context, q eventide.EventQuery) (time.Time, error) {
	c, err := f.Events(ctx, q, eventide.Page{First: 1 << 20})
	var end time.Time
	for _, e := range c.Items {
		if end.IsZero() || e.EndsAt.Before(end) {
			end = e.EndsAt
		}
	}
	return end, err
}

func (f *fakeStore) CreateEvent(_ context.Context, e *eventide.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	e.ID = fmt.Sprintf("e%03d", len(f.events)+1)
	c := *e
	f.events[e.ID] = &c
	return nil
}

func (f *fakeStore) UpdateEvent(_ context.Context, id string, change func(*eventide.Event) error) (*eventide.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.events[id]
	if !ok {
		return nil, eventide.NotFound("event", id)
	}
	c := *cur
	if err := change(&c); err != nil {
		return nil, err
	}
	f.events[id] = &c
	out := c
	return &out, nil
}

func (f *fakeStore) Register(_ context.Context, eventID, userID string, at time.Time) (*eventide.Registration, *eventide.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ev := f.events[eventID]
	ev.ConfirmedCount++
	r := &eventide.Registration{ID: "r-" + eventID + "-" + userID, EventID: eventID, UserID: userID, Status: eventide.RegistrationConfirmed, CreatedAt: at}
	f.regs[eventID+"/"+userID] = r
	c := *ev
	return r, &c, nil
}

func (f *fakeStore) addEvent(id string, startsIn time.Duration) *eventide.Event {
	now := time.Now().UTC().Truncate(time.Millisecond)
	e := &eventide.Event{ID: id, Title: "Event " + id, Status: eventide.EventPublished, Capacity: 10, Tags: []string{},
		StartsAt: now.Add(startsIn), EndsAt: now.Add(startsIn + time.Hour), OrganizerID: "u1", VenueID: "v1"}
	f.mu.Lock()
	f.events[id] = e
	f.mu.Unlock()
	return e
}

func (f *fakeStore) setTitle(id, title string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := *f.events[id]
	c.Title = title
	f.events[id] = &c
}
