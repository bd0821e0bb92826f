package storecache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"time"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/respcache"
)

// A page of a list is cached as the ids and cursors of its items under its normalised arguments,
// tagged with the token of its list family; the items themselves come from the record cache.

var (
	pageSpec      = spec[*idPage]{kind: kindPage, enc: encodePage, dec: decodePage}
	attendeesSpec = spec[*eventide.Conn[*eventide.Registration]]{kind: kindAttendees, enc: encodeAttendees, dec: decodeAttendees}
	countSpec     = spec[int]{kind: kindCount,
		enc: func(e *encoder, n int) { e.int(int64(n)) },
		dec: func(d *decoder) int { return d.intN() }}
)

// nowSlack is how far an EndsAfter may be from this replica's clock and still mean "now": the
// resolvers pass their own clock, a caller asking about another instant bypasses the cache.
const nowSlack = 5 * time.Second

// argsKey hashes normalised arguments into a short key.
func argsKey(prefix string, e *encoder) string {
	sum := sha256.Sum256(e.b)
	return prefix + hex.EncodeToString(sum[:16])
}

// eventsArgs normalises an event query: timed reports whether it depends on the clock (events
// that have not ended), and ok is false when the cache cannot answer it.
func (s *Store) eventsArgs(q eventide.EventQuery) (e *encoder, timed, ok bool) {
	e = &encoder{}
	st := make([]string, len(q.Statuses))
	for i, x := range q.Statuses {
		st[i] = string(x)
	}
	slices.Sort(st)
	e.strs(slices.Compact(st))
	optTime := func(t *time.Time) {
		e.bool(t != nil)
		if t != nil {
			e.time(*t)
		}
	}
	optTime(q.StartsFrom)
	optTime(q.StartsTo)
	if q.EndsAfter != nil {
		if d := q.EndsAfter.Sub(s.now()); d > nowSlack || d < -nowSlack {
			return nil, false, false
		}
		timed = true
	}
	e.bool(timed)
	e.str(eventide.FoldCity(q.City))
	e.str(q.Tag)
	e.str(q.OrganizerID)
	e.str(q.VenueID)
	e.str(q.Search)
	e.str(q.DraftsOf)
	e.bool(q.NoDrafts)
	return e, timed, true
}

func pageArgs(e *encoder, p eventide.Page) {
	e.int(int64(min(p.First, eventide.MaxPageSize)))
	e.str(p.After)
}

// maxCachedCursor bounds the cursors that are looked up in the cache (real ones are ~60 bytes).
const maxCachedCursor = 256

// eventsValidUntil bounds how long a page of events that have not ended stays right: until the
// first of its items ends, and, when a next page exists, until its last item starts (the item
// after it starts no earlier and ends after it starts, so it cannot end before then). Past that
// instant a later clock could drop an item. The zero time means no bound.
func eventsValidUntil(c *eventide.Conn[*eventide.Event]) time.Time {
	var until time.Time
	earlier := func(t time.Time) {
		if until.IsZero() || t.Before(until) {
			until = t
		}
	}
	for _, ev := range c.Items {
		earlier(ev.EndsAt)
	}
	if c.HasNextPage && len(c.Items) > 0 {
		earlier(c.Items[len(c.Items)-1].StartsAt)
	}
	return until
}

// Events implements eventide.EventStore through the cache.
func (s *Store) Events(ctx context.Context, q eventide.EventQuery, page eventide.Page) (*eventide.Conn[*eventide.Event], error) {
	args, timed, ok := s.eventsArgs(q)
	if !ok || page.First < 0 || len(page.After) > maxCachedCursor {
		taint(ctx)
		return s.inner.Events(ctx, q, page)
	}
	pageArgs(args, page)
	l := lookup{key: argsKey("le:", args), token: tokenEventList}
	sp := pageSpec
	if timed {
		sp.fresh = func(p *idPage) bool { return p.ValidUntil == 0 || s.now().UnixMilli() < p.ValidUntil }
		sp.keep = sp.fresh
	}
	pgs, _, err := readThrough(ctx, s, sp, []lookup{l}, func(ctx context.Context, _ []int) (map[int]*idPage, error) {
		c, err := s.inner.Events(ctx, q, page)
		if err != nil {
			return nil, err
		}
		p := &idPage{IDs: make([]string, len(c.Items)), Cursors: c.Cursors, HasNext: c.HasNextPage}
		for i, ev := range c.Items {
			p.IDs[i] = ev.ID
		}
		if timed {
			if until := eventsValidUntil(c); !until.IsZero() {
				p.ValidUntil = until.UnixMilli()
			}
		}
		return map[int]*idPage{0: p}, nil
	})
	if err != nil {
		return nil, err
	}
	p := pgs[0]
	if p.ValidUntil != 0 {
		if d := respcache.DepsFrom(ctx); d != nil {
			d.ExpireAt(p.ValidUntil)
		}
	}
	m, err := s.eventsMap(ctx, p.IDs)
	if err != nil {
		return nil, err
	}
	return pageConn(p, m), nil
}

// pageConn assembles a page from its ids and the records found; an id that no longer resolves is
// left out (nothing is deleted today, so this does not happen).
func pageConn[T any](p *idPage, m map[string]T) *eventide.Conn[T] {
	c := &eventide.Conn[T]{HasNextPage: p.HasNext, Items: make([]T, 0, len(p.IDs)), Cursors: make([]string, 0, len(p.IDs))}
	for i, id := range p.IDs {
		v, ok := m[id]
		if !ok {
			continue
		}
		c.Items = append(c.Items, v)
		c.Cursors = append(c.Cursors, p.Cursors[i])
	}
	return c
}

// timedCount is a count of events that have not ended with the instant (unix ms) it stops being
// right: the first end among the events it counts (0: it counts none, and no clock changes it).
type timedCount struct {
	N          int
	ValidUntil int64
}

var timedCountSpec = spec[*timedCount]{kind: kindTimedCount,
	enc: func(e *encoder, c *timedCount) { e.int(int64(c.N)); e.int(c.ValidUntil) },
	dec: func(d *decoder) *timedCount { return &timedCount{N: d.intN(), ValidUntil: d.int()} }}

// CountEvents implements eventide.EventStore through the cache. A count of events that have not
// ended is kept like their pages: under the token of the list family (every write that can change
// which events it counts replaces it) until the first counted event ends — before that instant
// a later clock drops none of them, and no other event can start counting without a write.
func (s *Store) CountEvents(ctx context.Context, q eventide.EventQuery) (int, error) {
	args, timed, ok := s.eventsArgs(q)
	if !ok {
		taint(ctx)
		return s.inner.CountEvents(ctx, q)
	}
	if !timed {
		return s.count(ctx, lookup{key: argsKey("ce:", args), token: tokenEventList}, func(ctx context.Context) (int, error) {
			return s.inner.CountEvents(ctx, q)
		})
	}
	sp := timedCountSpec
	sp.fresh = func(c *timedCount) bool { return c.ValidUntil == 0 || s.now().UnixMilli() < c.ValidUntil }
	sp.keep = sp.fresh
	cs, _, err := readThrough(ctx, s, sp, []lookup{{key: argsKey("cn:", args), token: tokenEventList}},
		func(ctx context.Context, _ []int) (map[int]*timedCount, error) {
			n, err := s.inner.CountEvents(ctx, q)
			if err != nil {
				return nil, err
			}
			end, err := s.inner.NextEventEnd(ctx, q)
			if err != nil {
				return nil, err
			}
			c := &timedCount{N: n}
			if !end.IsZero() {
				c.ValidUntil = end.UnixMilli()
			}
			return map[int]*timedCount{0: c}, nil
		})
	if err != nil {
		return 0, err
	}
	c := cs[0]
	if c.ValidUntil != 0 {
		if d := respcache.DepsFrom(ctx); d != nil {
			d.ExpireAt(c.ValidUntil)
		}
	}
	return c.N, nil
}

// NextEventEnd implements eventide.EventStore from the store (CountEvents keeps what it needs).
func (s *Store) NextEventEnd(ctx context.Context, q eventide.EventQuery) (time.Time, error) {
	taint(ctx)
	return s.inner.NextEventEnd(ctx, q)
}

func (s *Store) count(ctx context.Context, l lookup, load func(context.Context) (int, error)) (int, error) {
	ns, _, err := readThrough(ctx, s, countSpec, []lookup{l}, func(ctx context.Context, _ []int) (map[int]int, error) {
		n, err := load(ctx)
		if err != nil {
			return nil, err
		}
		return map[int]int{0: n}, nil
	})
	if err != nil {
		return 0, err
	}
	return ns[0], nil
}

func venuesArgs(city string) *encoder {
	e := &encoder{}
	e.str(eventide.FoldCity(city))
	return e
}

// Venues implements eventide.VenueStore through the cache.
func (s *Store) Venues(ctx context.Context, city string, page eventide.Page) (*eventide.Conn[*eventide.Venue], error) {
	if page.First < 0 || len(page.After) > maxCachedCursor {
		taint(ctx)
		return s.inner.Venues(ctx, city, page)
	}
	args := venuesArgs(city)
	pageArgs(args, page)
	l := lookup{key: argsKey("lv:", args), token: tokenVenueList}
	pgs, _, err := readThrough(ctx, s, pageSpec, []lookup{l}, func(ctx context.Context, _ []int) (map[int]*idPage, error) {
		c, err := s.inner.Venues(ctx, city, page)
		if err != nil {
			return nil, err
		}
		p := &idPage{IDs: make([]string, len(c.Items)), Cursors: c.Cursors, HasNext: c.HasNextPage}
		for i, v := range c.Items {
			p.IDs[i] = v.ID
		}
		return map[int]*idPage{0: p}, nil
	})
	if err != nil {
		return nil, err
	}
	m, err := s.venuesMap(ctx, pgs[0].IDs)
	if err != nil {
		return nil, err
	}
	return pageConn(pgs[0], m), nil
}

// CountVenues implements eventide.VenueStore through the cache.
func (s *Store) CountVenues(ctx context.Context, city string) (int, error) {
	return s.count(ctx, lookup{key: argsKey("cv:", venuesArgs(city)), token: tokenVenueList}, func(ctx context.Context) (int, error) {
		return s.inner.CountVenues(ctx, city)
	})
}

// Attendees implements eventide.RegistrationStore through the cache: a page of an event's
// confirmed registrations, tagged with the event's token (every registration change replaces it).
func (s *Store) Attendees(ctx context.Context, eventID string, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	if page.First < 0 || len(page.After) > maxCachedCursor || len(eventID) > maxCachedID {
		taint(ctx)
		return s.inner.Attendees(ctx, eventID, page)
	}
	args := &encoder{}
	pageArgs(args, page)
	l := lookup{key: argsKey("a:"+eventID+":", args), token: eventToken(eventID)}
	cs, _, err := readThrough(ctx, s, attendeesSpec, []lookup{l}, func(ctx context.Context, _ []int) (map[int]*eventide.Conn[*eventide.Registration], error) {
		c, err := s.inner.Attendees(ctx, eventID, page)
		if err != nil {
			return nil, err
		}
		return map[int]*eventide.Conn[*eventide.Registration]{0: c}, nil
	})
	if err != nil {
		return nil, err
	}
	return cs[0], nil
}
