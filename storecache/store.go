// Package storecache is the domain store read through the shared cache (package cache): records
// by id, pages of lists and their counts, invalidated on every write here and, over the replica
// bus, on the other replicas; and the relays that carry the store's changes (eventUpdated,
// myRegistrations) to every replica's subscribers, in the same codec.
//
// # Exactness
//
// Every cached value carries the token of what it depends on: a record its own token, a page of a
// list the token of its list family. A write replaces the tokens it makes stale with fresh random
// ones before it returns, so a value read before the write can never match again. A reader
// observes (or creates) the token before it reads the store and tags the value it writes back with
// it; a reader that raced with a write therefore writes a value that is already dead. Tokens are
// random and never reused, and an absent token is never trusted (it is created anew), so expiry or
// eviction of a token can only cause misses, never stale hits.
package storecache

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventide/server/bus"
	"github.com/eventide/server/cache"
	"github.com/eventide/server/eventide"
)

// Backing is the store a Store reads through: the domain store plus the batched look-up of one
// user's registrations that the viewerRegistration loader needs.
type Backing interface {
	eventide.Store
	// RegistrationsOf returns userID's registrations at the given events that exist, in no
	// particular order, with one query.
	RegistrationsOf(ctx context.Context, userID string, eventIDs []string) ([]*eventide.Registration, error)
}

// StoreOptions configures NewStore.
type StoreOptions struct {
	// TTL is the time to live of every value written (CACHE_TTL).
	TTL    time.Duration
	Logger *slog.Logger
	// Bus, when set, carries invalidations to the other replicas (the topic "invalidate").
	Bus *bus.Bus
	// Now is the clock for lists of events that have not ended; time.Now when nil.
	Now func() time.Time
	// LoadTimeout bounds one load from the store that concurrent requests may share (15s).
	LoadTimeout time.Duration
	// Registerer receives the hit, miss and invalidation counters; nil registers nothing.
	Registerer prometheus.Registerer
	// OnUserChanged, when set, hears of every write to a user (its role, its credentials), made
	// here (after the invalidation, before the write returns) or, over the bus, by another
	// replica: sessions open on this replica re-check their viewer at once. It should be quick.
	OnUserChanged func(id string)
	// Responses, when set, is the cache of whole responses built from this Store's reads: Purge
	// empties it too and Stats reports it.
	Responses Responses
}

// Responses is the cache of whole responses built from a Store's reads (respcache.Cache). Its
// responses would never be served again once Purge replaced their tokens, but would hold memory
// until evicted, so the Store's Purge empties it too.
type Responses interface {
	// Purge drops every response and returns how many there were.
	Purge() int
	// Figures are what Stats reports of it.
	Figures() (hits, misses int64, entries int, bytes int64)
}

// Store wraps the domain store with the shared cache: records by id (users, venues, events), the
// viewer's registration per event, pages of every list (events, venues, attendees) and their
// counts are read through c; every write goes to the store and then replaces the tokens of what it
// made stale, before it returns. Values it returns are shared between concurrent callers: treat
// them as read-only.
//
// What each write makes stale (the list families are exact: a registration changes counts, which
// no list filters or orders by, so it leaves every page of events alone):
//
//	write                              tokens replaced
//	createEvent                        list of events
//	updateEvent, publish, cancel       the event; list of events
//	register, cancelRegistration       the event (its counts, registrations and attendee pages)
//	removeRegistration                 the event, as cancelRegistration (journeys.go)
//	  (cancelEvent also cancels the event's registrations: they are under the event's token)
//	createVenue                        list of venues
//	updateVenue                        the venue; list of venues; list of events (their city
//	                                   copies); not each event: its zone is read from the venue
//	setCalendarSecret                  nothing (never cached)
//	setUserRole, credentials           the user
//	signUp (createUser)                nothing (no list holds users; the id is new)
type Store struct {
	inner       Backing
	c           cache.Cache
	ttl         time.Duration
	log         *slog.Logger
	bus         *bus.Bus
	now         func() time.Time
	loadTimeout time.Duration
	flights     flights
	userChanged func(id string)
	responses   Responses

	hits, misses, invalidations, remote atomic.Int64
}

var _ eventide.Store = (*Store)(nil)
var _ Backing = (*Store)(nil)

// NewStore returns a Store reading inner through c.
func NewStore(inner Backing, c cache.Cache, o StoreOptions) *Store {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = 15 * time.Second
	}
	s := &Store{inner: inner, c: c, ttl: o.TTL, log: o.Logger, bus: o.Bus, now: o.Now, loadTimeout: o.LoadTimeout,
		userChanged: o.OnUserChanged, responses: o.Responses}
	if s.bus != nil {
		s.bus.Handle(bus.Topic{Name: topicInvalidate, Hold: true, Receive: s.remoteInvalidate})
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "eventide_cache_hits_total", Help: "Records and list pages served from the shared cache.",
			}, func() float64 { return float64(s.hits.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "eventide_cache_misses_total", Help: "Records and list pages the shared cache did not have.",
			}, func() float64 { return float64(s.misses.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "eventide_cache_invalidations_total", Help: "Writes that invalidated cache entries on this replica.",
			}, func() float64 { return float64(s.invalidations.Load()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "eventide_cache_remote_invalidations_total", Help: "Invalidations received from other replicas.",
			}, func() float64 { return float64(s.remote.Load()) }),
		)
	}
	return s
}

// Init replaces the tokens of the list families. Records are keyed by ids that are never reused,
// but a list is keyed by its arguments: a store emptied and refilled while Redis kept its pages
// (a developer's reset) must not be answered from them.
func (s *Store) Init(ctx context.Context) {
	s.invalidate(ctx, []string{tokenEventList, tokenVenueList}, nil)
}

// Stats reports the cache: the backend's state with this Store's hits and misses.
func (s *Store) Stats(ctx context.Context) cache.Stats {
	st := s.c.Stats(ctx)
	st.Hits, st.Misses = s.hits.Load(), s.misses.Load()
	if s.responses != nil {
		st.ResponseHits, st.ResponseMisses, st.ResponseEntries, st.ResponseBytes = s.responses.Figures()
	}
	return st
}

// Purge empties the cache (and the Responses built from it) and returns how many entries it
// dropped.
func (s *Store) Purge(ctx context.Context) (int, error) {
	n, err := s.c.Purge(ctx)
	if s.responses != nil {
		n += s.responses.Purge()
	}
	return n, err
}

// RemoteInvalidations counts invalidations received from other replicas.
func (s *Store) RemoteInvalidations() int64 { return s.remote.Load() }

// Keys and tokens. Values live under "<kind>:<id...>", tokens under "t<kind>:<id>"; the backend
// adds the prefix.
const (
	tokenEventList = "tl:e"
	tokenVenueList = "tl:v"
)

func userKey(id string) lookup  { return lookup{key: "u:" + id, token: "tu:" + id} }
func venueKey(id string) lookup { return lookup{key: "v:" + id, token: "tv:" + id} }
func eventKey(id string) lookup { return lookup{key: "e:" + id, token: "te:" + id} }
func eventToken(id string) string {
	return "te:" + id
}

// maxCachedID bounds the ids that are looked up in the cache; longer ones (no real id is) go to
// the store, which finds nothing, so a client cannot make us store huge keys.
const maxCachedID = 64

// minTokenTTL is the least a token lives. Values live CACHE_TTL, which bounds how long a change
// made behind the server's back (no token replaced) can be served; a token carries no data, so
// it may outlive them: a value reloaded under the same token is the same value. Tokens that
// expired with their values would make every response built from them stale at once, and a
// popular page would be rebuilt as often as any of its 40-odd tokens expired. Tokens are still
// bounded: by this TTL in Redis, by the capacity and byte budget in memory.
const minTokenTTL = 24 * time.Hour

func (s *Store) tokenTTL() time.Duration { return max(s.ttl, minTokenTTL) }

// invalidate replaces tokens with fresh ones and deletes values. It runs after the store write and
// before the write returns, apart from the request's cancellation: a client that hangs up right
// after its write must not leave a stale value behind.
func (s *Store) invalidate(ctx context.Context, tokens, values []string) {
	ctx = context.WithoutCancel(ctx)
	items := make([]cache.Item, len(tokens))
	for i, t := range tokens {
		items[i] = cache.Item{Key: t, Value: newToken()}
	}
	// The Switch answers a Redis failure from memory; an error here is only ever a closed cache.
	if err := s.c.Set(ctx, items, s.tokenTTL()); err != nil {
		s.log.Warn("cache: invalidation failed", "error", err)
	}
	if len(values) > 0 {
		_ = s.c.Delete(ctx, values)
	}
	s.invalidations.Add(1)
	if s.bus != nil {
		s.bus.Publish(topicInvalidate, encodeInvalidation(tokens, values))
	}
	s.usersChanged(tokens)
}

// usersChanged tells OnUserChanged of every user whose token is in tokens.
func (s *Store) usersChanged(tokens []string) {
	if s.userChanged == nil {
		return
	}
	for _, t := range tokens {
		if id, ok := strings.CutPrefix(t, "tu:"); ok {
			s.userChanged(id)
		}
	}
}

// topicInvalidate is the bus topic of invalidations. Its messages are held while Redis is away and
// sent after it returns, so that the other replicas' local reactions (sessions re-checking a
// changed user) happen too.
const topicInvalidate = "invalidate"

// remoteInvalidate applies another replica's invalidation to what this replica holds locally
// (cache.Cache.SetLocal): while Redis serves, the tokens in Redis are already replaced and memory
// is idle; while memory serves (a fallback, or the end of one), it gets the new tokens too.
func (s *Store) remoteInvalidate(payload []byte) error {
	tokens, values, ok := decodeInvalidation(payload)
	if !ok {
		return errMalformed
	}
	s.remote.Add(1)
	// After the deletes below: a session re-checking its viewer must not read the old value
	// from memory. While Redis serves, the writer has deleted it there already.
	defer s.usersChanged(tokens)
	items := make([]cache.Item, len(tokens))
	for i, t := range tokens {
		items[i] = cache.Item{Key: t, Value: newToken()}
	}
	s.c.SetLocal(context.Background(), items, values, s.tokenTTL())
	return nil
}

func encodeInvalidation(tokens, values []string) []byte {
	e := &encoder{}
	e.strs(tokens)
	e.strs(values)
	return e.b
}

func decodeInvalidation(b []byte) (tokens, values []string, ok bool) {
	d := &decoder{s: string(b)}
	tokens, values = d.strs(), d.strs()
	return tokens, values, d.done()
}

// ---- records by id ----

var (
	userSpec  = spec[*eventide.User]{kind: kindUser, enc: encodeUser, dec: decodeUser}
	venueSpec = spec[*eventide.Venue]{kind: kindVenue, enc: encodeVenue, dec: decodeVenue}
	eventSpec = spec[*eventide.Event]{kind: kindEvent, enc: encodeEvent, dec: decodeEvent}
)

// records reads ids through the cache and returns those that exist, by id.
func records[T any](ctx context.Context, s *Store, sp spec[T], ids []string, key func(string) lookup,
	idOf func(T) string, load func(context.Context, []string) ([]T, error)) (map[string]T, error) {
	out := make(map[string]T, len(ids))
	var cached []string
	var direct []string
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if len(id) > maxCachedID {
			direct = append(direct, id)
		} else {
			cached = append(cached, id)
		}
	}
	if len(direct) > 0 {
		taint(ctx)
		got, err := load(ctx, direct)
		if err != nil {
			return nil, err
		}
		for _, v := range got {
			out[idOf(v)] = v
		}
	}
	ls := make([]lookup, len(cached))
	for i, id := range cached {
		ls[i] = key(id)
	}
	vals, found, err := readThrough(ctx, s, sp, ls, func(ctx context.Context, idx []int) (map[int]T, error) {
		want := make([]string, len(idx))
		at := make(map[string]int, len(idx))
		for k, i := range idx {
			want[k] = cached[i]
			at[cached[i]] = i
		}
		got, err := load(ctx, want)
		if err != nil {
			return nil, err
		}
		m := make(map[int]T, len(got))
		for _, v := range got {
			if i, ok := at[idOf(v)]; ok {
				m[i] = v
			}
		}
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	for i, id := range cached {
		if found[i] {
			out[id] = vals[i]
		}
	}
	return out, nil
}

func values[T any](m map[string]T) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// UsersByIDs implements eventide.UserStore through the cache. The users carry no password hash.
func (s *Store) UsersByIDs(ctx context.Context, ids []string) ([]*eventide.User, error) {
	m, err := s.usersMap(ctx, ids)
	return values(m), err
}

func (s *Store) usersMap(ctx context.Context, ids []string) (map[string]*eventide.User, error) {
	return records(ctx, s, userSpec, ids, userKey, func(u *eventide.User) string { return u.ID }, s.inner.UsersByIDs)
}

// UserByID implements eventide.UserStore through the cache; the user carries no password hash.
func (s *Store) UserByID(ctx context.Context, id string) (*eventide.User, error) {
	m, err := s.usersMap(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if u := m[id]; u != nil {
		return u, nil
	}
	return nil, eventide.NotFound("user", id)
}

// VenuesByIDs implements eventide.VenueStore through the cache.
func (s *Store) VenuesByIDs(ctx context.Context, ids []string) ([]*eventide.Venue, error) {
	m, err := s.venuesMap(ctx, ids)
	return values(m), err
}

func (s *Store) venuesMap(ctx context.Context, ids []string) (map[string]*eventide.Venue, error) {
	return records(ctx, s, venueSpec, ids, venueKey, func(v *eventide.Venue) string { return v.ID }, s.inner.VenuesByIDs)
}

// VenueByID implements eventide.VenueStore through the cache.
func (s *Store) VenueByID(ctx context.Context, id string) (*eventide.Venue, error) {
	m, err := s.venuesMap(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if v := m[id]; v != nil {
		return v, nil
	}
	return nil, eventide.NotFound("venue", id)
}

// EventsByIDs implements eventide.EventStore through the cache.
func (s *Store) EventsByIDs(ctx context.Context, ids []string) ([]*eventide.Event, error) {
	m, err := s.eventsMap(ctx, ids)
	return values(m), err
}

func (s *Store) eventsMap(ctx context.Context, ids []string) (map[string]*eventide.Event, error) {
	return records(ctx, s, eventSpec, ids, eventKey, func(e *eventide.Event) string { return e.ID }, s.inner.EventsByIDs)
}

// EventByID implements eventide.EventStore through the cache.
func (s *Store) EventByID(ctx context.Context, id string) (*eventide.Event, error) {
	m, err := s.eventsMap(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if e := m[id]; e != nil {
		return e, nil
	}
	return nil, eventide.NotFound("event", id)
}

// ---- registrations ----

var registrationSpec = spec[*eventide.Registration]{kind: kindRegistration, enc: encodeMaybeRegistration, dec: decodeMaybeRegistration}

func registrationKey(eventID, userID string) lookup {
	return lookup{key: "r:" + eventID + ":" + userID, token: eventToken(eventID)}
}

// RegistrationsOf implements Backing through the cache; that a user has no registration at an
// event is cached too.
func (s *Store) RegistrationsOf(ctx context.Context, userID string, eventIDs []string) ([]*eventide.Registration, error) {
	if len(userID) > maxCachedID {
		taint(ctx)
		return s.inner.RegistrationsOf(ctx, userID, eventIDs)
	}
	var ids []string
	seen := make(map[string]bool, len(eventIDs))
	for _, id := range eventIDs {
		if !seen[id] && len(id) <= maxCachedID {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	ls := make([]lookup, len(ids))
	for i, id := range ids {
		ls[i] = registrationKey(id, userID)
	}
	vals, found, err := readThrough(ctx, s, registrationSpec, ls, func(ctx context.Context, idx []int) (map[int]*eventide.Registration, error) {
		want := make([]string, len(idx))
		for k, i := range idx {
			want[k] = ids[i]
		}
		got, err := s.inner.RegistrationsOf(ctx, userID, want)
		if err != nil {
			return nil, err
		}
		byEvent := make(map[string]*eventide.Registration, len(got))
		for _, r := range got {
			byEvent[r.EventID] = r
		}
		m := make(map[int]*eventide.Registration, len(idx))
		for _, i := range idx {
			m[i] = byEvent[ids[i]] // nil records "none"
		}
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	var out []*eventide.Registration
	for i := range ids {
		if found[i] && vals[i] != nil {
			out = append(out, vals[i])
		}
	}
	return out, nil
}

// RegistrationFor implements eventide.RegistrationStore through the cache.
func (s *Store) RegistrationFor(ctx context.Context, eventID, userID string) (*eventide.Registration, error) {
	regs, err := s.RegistrationsOf(ctx, userID, []string{eventID})
	if err != nil {
		return nil, err
	}
	for _, r := range regs {
		if r.EventID == eventID {
			return r, nil
		}
	}
	return nil, eventide.NotFound("registration", eventID)
}

// ---- pass-through reads ----

// UserByEmail implements eventide.UserStore from the store: sign-in needs the password hash,
// which the cache does not keep.
func (s *Store) UserByEmail(ctx context.Context, email string) (*eventide.User, error) {
	taint(ctx)
	return s.inner.UserByEmail(ctx, email)
}

// CountUsers implements eventide.UserStore from the store.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	taint(ctx)
	return s.inner.CountUsers(ctx)
}

// Users implements eventide.UserStore from the store: an admin's search, rare and ad hoc, with
// arguments a client chooses; caching its pages would spend the cache on keys seldom asked twice
// and need every sign-up to replace a token.
func (s *Store) Users(ctx context.Context, q eventide.UserQuery, page eventide.Page) (*eventide.Conn[*eventide.User], error) {
	taint(ctx)
	return s.inner.Users(ctx, q, page)
}

// CountUsersMatching implements eventide.UserStore from the store.
func (s *Store) CountUsersMatching(ctx context.Context, q eventide.UserQuery) (int, error) {
	taint(ctx)
	return s.inner.CountUsersMatching(ctx, q)
}

// Ping implements eventide.Store.
func (s *Store) Ping(ctx context.Context) error { return s.inner.Ping(ctx) }

// ---- writes ----

// mayHaveWritten reports whether a failed write may have changed the store partway, so that its
// invalidation is still due. Input and permission errors are raised before anything is written.
func mayHaveWritten(err error) bool {
	if err == nil {
		return true
	}
	c := eventide.ErrorCode(err)
	return c == eventide.CodeInternal || c == eventide.CodeUnavailable
}

// CreateUser implements eventide.UserStore. No cached list holds users and the id is new, so
// nothing is invalidated.
func (s *Store) CreateUser(ctx context.Context, u *eventide.User) error {
	return s.inner.CreateUser(ctx, u)
}

// SetUserRole implements eventide.UserStore and invalidates the user.
func (s *Store) SetUserRole(ctx context.Context, id string, role eventide.Role) (*eventide.User, error) {
	u, err := s.inner.SetUserRole(ctx, id, role)
	if mayHaveWritten(err) {
		s.invalidate(ctx, []string{userKey(id).token}, []string{userKey(id).key})
	}
	return u, err
}

// SetUserCredentials implements eventide.UserStore and invalidates the user.
func (s *Store) SetUserCredentials(ctx context.Context, id string, hash []byte, role eventide.Role) error {
	err := s.inner.SetUserCredentials(ctx, id, hash, role)
	if mayHaveWritten(err) {
		s.invalidate(ctx, []string{userKey(id).token}, []string{userKey(id).key})
	}
	return err
}

// CreateVenue implements eventide.VenueStore and invalidates the list of venues.
func (s *Store) CreateVenue(ctx context.Context, v *eventide.Venue) error {
	err := s.inner.CreateVenue(ctx, v)
	if mayHaveWritten(err) {
		s.invalidate(ctx, []string{tokenVenueList}, nil)
	}
	return err
}

// UpdateVenue implements eventide.VenueStore and invalidates the venue, the list of venues and
// the list of events (events carry a copy of their venue's city, which city filters read). The
// events' records are left: what they show of the venue (its zone) is read from the venue.
func (s *Store) UpdateVenue(ctx context.Context, id string, change func(*eventide.Venue) error) (*eventide.Venue, error) {
	v, err := s.inner.UpdateVenue(ctx, id, change)
	if mayHaveWritten(err) {
		s.invalidate(ctx, []string{venueKey(id).token, tokenVenueList, tokenEventList}, []string{venueKey(id).key})
	}
	return v, err
}

// CalendarRegistrations implements eventide.RegistrationStore from the store: a calendar feed,
// read by one user's calendar app every few hours, is not worth a token per user.
func (s *Store) CalendarRegistrations(ctx context.Context, userID string, limit int) ([]*eventide.Registration, error) {
	taint(ctx)
	return s.inner.CalendarRegistrations(ctx, userID, limit)
}

// CalendarSecret implements eventide.CalendarStore from the store; secrets are never cached.
func (s *Store) CalendarSecret(ctx context.Context, userID string) (string, error) {
	taint(ctx)
	return s.inner.CalendarSecret(ctx, userID)
}

// SetCalendarSecret implements eventide.CalendarStore; nothing cached depends on it.
func (s *Store) SetCalendarSecret(ctx context.Context, userID, secret string) error {
	return s.inner.SetCalendarSecret(ctx, userID, secret)
}

// CreateEvent implements eventide.EventStore and invalidates the list of events (a draft is in
// its organizer's lists).
func (s *Store) CreateEvent(ctx context.Context, e *eventide.Event) error {
	err := s.inner.CreateEvent(ctx, e)
	if mayHaveWritten(err) {
		s.invalidate(ctx, []string{tokenEventList}, nil)
	}
	return err
}

// UpdateEvent implements eventide.EventStore and invalidates the event and the list of events.
func (s *Store) UpdateEvent(ctx context.Context, id string, change func(*eventide.Event) error) (*eventide.Event, error) {
	e, err := s.inner.UpdateEvent(ctx, id, change)
	if mayHaveWritten(err) {
		s.invalidate(ctx, []string{eventToken(id), tokenEventList}, []string{eventKey(id).key})
	}
	return e, err
}

// Register implements eventide.RegistrationStore and invalidates the event (its counts, the
// registrations at it and its attendee pages). Lists of events do not change.
func (s *Store) Register(ctx context.Context, eventID, userID string, at time.Time) (*eventide.Registration, *eventide.Event, error) {
	r, e, err := s.inner.Register(ctx, eventID, userID, at)
	if mayHaveWritten(err) {
		s.invalidate(ctx, []string{eventToken(eventID)}, []string{eventKey(eventID).key})
	}
	return r, e, err
}

// CancelRegistration implements eventide.RegistrationStore; it invalidates like Register (a
// promotion from the waitlist changes another user's registration too).
func (s *Store) CancelRegistration(ctx context.Context, eventID, userID string, at time.Time) (*eventide.Registration, *eventide.Event, error) {
	r, e, err := s.inner.CancelRegistration(ctx, eventID, userID, at)
	if mayHaveWritten(err) {
		s.invalidate(ctx, []string{eventToken(eventID)}, []string{eventKey(eventID).key})
	}
	return r, e, err
}
