package main

import (
	"context"
	"time"

	"github.com/eventide/server/cmd/eventide-load/internal/gql"
	"github.com/eventide/server/cmd/eventide-load/internal/load"
)

// The documents the scenarios send. eventsPageQuery is what the web app's main page asks for.
const (
	eventsPageQuery = `query EventsPage { events(first: 20) { edges { node { id title startsAt ` +
		`venue { name city } organizer { name } attendeeCount waitlistCount } } pageInfo { hasNextPage endCursor } } }`
	// An anonymous visitor's event page: who attends is for signed-in viewers (API.md), the
	// counts are public.
	eventDetailQuery = `query EventDetail($id: ID!) { event(id: $id) { id title description startsAt endsAt status capacity tags ` +
		`venue { id name address city capacity } organizer { id name } attendeeCount waitlistCount } }`
	// The same page with the total the web app shows above the list (-total-count).
	eventsPageCountQuery = `query EventsPage { events(first: 20) { totalCount edges { node { id title startsAt ` +
		`venue { name city } organizer { name } attendeeCount waitlistCount } } pageInfo { hasNextPage endCursor } } }`
	// A signed-in viewer's event page: the event and its first 10 attendees (event-detail-cold).
	eventAttendeesQuery = `query EventAttendees($id: ID!) { event(id: $id) { id title description startsAt endsAt status capacity tags ` +
		`venue { id name address city capacity } organizer { id name } attendeeCount waitlistCount ` +
		`attendees(first: 10) { totalCount edges { node { id name } } } } }`
	registerMutation = `mutation Register($id: ID!) { registerForEvent(eventId: $id) { id status } }`
	cancelMutation   = `mutation Cancel($id: ID!) { cancelRegistration(eventId: $id) { id status } }`
	purgeMutation    = `mutation Purge { purgeCache }`
)

// scenarios holds every request body marshalled ahead of the run, so the workers spend their
// time waiting on the server, not on encoding/json.
type scenarios struct {
	c          *gql.Client
	f          *fixture
	mix        []weighted
	mixTotal   int
	page       []byte
	purge      []byte
	detail     [][]byte
	attendees  [][]byte // event-detail-cold: the listed events but the load-test ones
	login      [][]byte
	register   [][]byte
	cancel     [][]byte
	byScenario map[string]load.Op
}

func newScenarios(c *gql.Client, f *fixture, o *options) *scenarios {
	s := &scenarios{c: c, f: f, mix: o.mix, page: gql.Body(eventsPageQuery, nil), purge: gql.Body(purgeMutation, nil)}
	for _, id := range f.events {
		s.detail = append(s.detail, gql.Body(eventDetailQuery, map[string]any{"id": id}))
	}
	if o.totalCount {
		s.page = gql.Body(eventsPageCountQuery, nil)
	}
	isLoad := map[string]bool{}
	for _, id := range f.loadEvents {
		isLoad[id] = true
	}
	for _, id := range f.events {
		if !isLoad[id] {
			s.attendees = append(s.attendees, gql.Body(eventAttendeesQuery, map[string]any{"id": id}))
		}
	}
	if len(s.attendees) == 0 { // only load-test events listed: better those than none
		for _, id := range f.events {
			s.attendees = append(s.attendees, gql.Body(eventAttendeesQuery, map[string]any{"id": id}))
		}
	}
	for _, u := range f.users {
		s.login = append(s.login, gql.Body(qLogin, map[string]any{"email": u.email, "password": o.userPassword}))
	}
	for _, id := range f.loadEvents {
		s.register = append(s.register, gql.Body(registerMutation, map[string]any{"id": id}))
		s.cancel = append(s.cancel, gql.Body(cancelMutation, map[string]any{"id": id}))
	}
	for _, w := range o.mix {
		s.mixTotal += w.weight
	}
	s.byScenario = map[string]load.Op{
		scEventsPage:      s.eventsPage,
		scEventsPageCold:  s.eventsPageCold,
		scEventDetail:     s.eventDetail,
		scEventDetailCold: s.eventDetailCold,
		scLogin:           s.loginOp,
		scRegisterCancel:  s.registerCancel,
		scMixed:           s.mixed,
	}
	return s
}

// baselineRequest is the request whose answer the plain-handler baseline serves for scenario: the
// scenario's own read where it has one (the events page; the first event's detail page), else the
// events page, the web app's main read.
func (s *scenarios) baselineRequest(scenario string) (name string, body []byte) {
	if scenario == scEventDetail && len(s.detail) > 0 {
		return scEventDetail, s.detail[0]
	}
	return scEventsPage, s.page
}

// op returns the operation of scenario (nil for subscribers, which sends no requests).
func (s *scenarios) op(scenario string) load.Op { return s.byScenario[scenario] }

func (s *scenarios) send(ctx context.Context, op, token string, body []byte) load.Outcome {
	status, codes, err := s.c.Send(ctx, token, body)
	return load.Outcome{Op: op, Status: status, Codes: codes, Err: err}
}

func (s *scenarios) eventsPage(ctx context.Context, _ *load.Worker) load.Outcome {
	return s.send(ctx, scEventsPage, "", s.page)
}

// eventsPageCold purges the cache, then loads the page; the purge is recorded on its own row and
// its time is taken out of the page's latency.
func (s *scenarios) eventsPageCold(ctx context.Context, w *load.Worker) load.Outcome {
	began := time.Now()
	p := s.send(ctx, "purgeCache", s.f.adminToken, s.purge)
	took := time.Since(began)
	w.RecordAux(p, took)
	o := s.send(ctx, scEventsPageCold, "", s.page)
	o.Untimed = took
	return o
}

func (s *scenarios) eventDetail(ctx context.Context, w *load.Worker) load.Outcome {
	return s.send(ctx, scEventDetail, "", s.detail[w.Rand.IntN(len(s.detail))])
}

// eventDetailCold purges the cache, then loads an event with its attendees as the admin; the
// purge is timed apart, as in eventsPageCold.
func (s *scenarios) eventDetailCold(ctx context.Context, w *load.Worker) load.Outcome {
	began := time.Now()
	p := s.send(ctx, "purgeCache", s.f.adminToken, s.purge)
	took := time.Since(began)
	w.RecordAux(p, took)
	o := s.send(ctx, scEventDetailCold, s.f.adminToken, s.attendees[w.Rand.IntN(len(s.attendees))])
	o.Untimed = took
	return o
}

func (s *scenarios) loginOp(ctx context.Context, w *load.Worker) load.Outcome {
	return s.send(ctx, scLogin, "", s.login[w.Rand.IntN(len(s.login))])
}

// registration is a register-cancel worker's state: the event it holds a registration for.
type registration struct {
	event   int
	holding bool
}

// registerCancel alternates: register the worker's user for a random load event, then cancel
// that registration. Worker i acts as signed-in user i (mod the users signed in).
func (s *scenarios) registerCancel(ctx context.Context, w *load.Worker) load.Outcome {
	st, _ := w.State.(*registration)
	if st == nil {
		st = &registration{}
		w.State = st
	}
	token := s.f.tokens[w.ID%len(s.f.tokens)]
	if !st.holding {
		i := w.Rand.IntN(len(s.register))
		o := s.send(ctx, "register", token, s.register[i])
		st.event, st.holding = i, !o.Failed()
		return o
	}
	st.holding = false
	return s.send(ctx, "cancel", token, s.cancel[st.event])
}

// mixed picks a scenario by its weight for each request.
func (s *scenarios) mixed(ctx context.Context, w *load.Worker) load.Outcome {
	n := w.Rand.IntN(s.mixTotal)
	for _, m := range s.mix {
		if n < m.weight {
			return s.byScenario[m.scenario](ctx, w)
		}
		n -= m.weight
	}
	return s.eventsPage(ctx, w) // not reached: the weights add up to mixTotal
}

// subscriptions are what -sub-kind asks subscribers to run.
func subscriptions(kind string, interval time.Duration) []gql.Subscription {
	var subs []gql.Subscription
	if kind == "memory" || kind == "both" {
		subs = append(subs, gql.Subscription{
			Name:  "memoryStats",
			Query: `subscription Memory($ms: Int) { memoryStats(intervalMs: $ms) { at rssBytes heapInuseBytes goroutines } }`,
			Vars:  map[string]any{"ms": interval.Milliseconds()},
		})
	}
	if kind == "security" || kind == "both" {
		subs = append(subs, gql.Subscription{
			Name:  "securityEvents",
			Query: `subscription Security { securityEvents(minSeverity: INFO) { id type severity at ip operation message } }`,
		})
	}
	return subs
}
