package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/eventide/server/cmd/eventide-load/internal/gql"
)

// The load-test data: what -seed creates and later runs find again.
const (
	loadTag        = "eventide-load"
	organizerEmail = "load-organizer@load.eventide.local"
	venueName      = "Eventide Load Hall"
	venueCity      = "Loadville"
)

func userEmail(i int) string { return fmt.Sprintf("load-user-%04d@load.eventide.local", i) }

// fixture is what the scenarios work on.
type fixture struct {
	adminToken string
	adminErr   error      // why adminToken is empty
	users      []loadUser // every load user; those that signed in have a token
	tokens     []string   // signed-in load users, one per worker (worker i uses i % len)
	events     []string   // every listed event: event-detail picks from them
	loadEvents []string   // the load organizer's: register-cancel picks from them
}

type loadUser struct{ email, token string }

// needs is what a run's scenarios and options require of the fixture.
type needs struct {
	admin      bool // purgeCache, subscribers, seeding
	events     bool // event-detail
	loadEvents bool // register-cancel
	creds      bool // login
	tokens     int  // register-cancel: users signed in ahead of the run
}

func needsOf(o *options) needs {
	var n needs
	scenarios := []string{o.scenario}
	if o.scenario == scMixed {
		scenarios = nil
		for _, w := range o.mix {
			scenarios = append(scenarios, w.scenario)
		}
	}
	for _, s := range scenarios {
		switch s {
		case scEventsPageCold:
			n.admin = true
		case scEventDetail:
			n.events = true
		case scEventDetailCold:
			n.admin, n.events = true, true
		case scLogin:
			n.creds = true
		case scRegisterCancel:
			n.loadEvents = true
			n.tokens = min(o.users, o.workers)
			if o.rate > 0 {
				n.tokens = min(o.users, 32)
			}
		}
	}
	n.admin = n.admin || o.subscribers > 0 || o.seed
	return n
}

// seedReport says what setup found and made.
type seedReport struct {
	Seeded            bool   `json:"seeded"`
	UsersCreated      int    `json:"users_created"`
	UsersExisting     int    `json:"users_existing"`
	OrganizerCreated  bool   `json:"organizer_created"`
	OrganizerPromoted bool   `json:"organizer_promoted"`
	VenueCreated      bool   `json:"venue_created"`
	EventsCreated     int    `json:"events_created"`
	EventsPublished   int    `json:"events_published"`
	EventsReused      int    `json:"events_reused"`
	EventsListed      int    `json:"events_listed"`
	LoadEventsListed  int    `json:"load_events_listed"`
	UsersSignedIn     int    `json:"users_signed_in"`
	Took              string `json:"took"`
}

// setup signs the admin in, seeds when asked, finds the events, and signs in the users the run
// needs. Requests the server throttles are retried after its Retry-After, within ctx.
type setup struct {
	o      *options
	c      *gql.Client
	log    io.Writer
	report seedReport
}

func (s *setup) logf(format string, args ...any) {
	if !s.o.quiet {
		fmt.Fprintf(s.log, "eventide-load: "+format+"\n", args...)
	}
}

// do is Client.Do, retried while the server says it is throttling us.
func (s *setup) do(ctx context.Context, token, op, query string, vars map[string]any, out any) error {
	for attempt := 0; ; attempt++ {
		err := s.c.Do(ctx, token, op, query, vars, out)
		var ge *gql.Error
		if !errors.As(err, &ge) || !ge.Throttled() || attempt >= 20 {
			return err
		}
		wait := min(max(ge.RetryAfter, time.Second), 30*time.Second)
		s.logf("%s throttled by the server; retrying in %v (raise THROTTLE_LIMIT / LOGIN_THROTTLE_LIMIT on the server for load tests)", op, wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return fmt.Errorf("%s: %w while throttled", op, ctx.Err())
		}
	}
}

type authPayload struct {
	Token string `json:"token"`
	User  struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	} `json:"user"`
}

const (
	qLogin  = `mutation Login($email: String!, $password: String!) { login(email: $email, password: $password) { token user { id role } } }`
	qSignUp = `mutation SignUp($input: SignUpInput!) { signUp(input: $input) { token user { id role } } }`
)

func (s *setup) login(ctx context.Context, email, password string) (authPayload, error) {
	var out struct{ Login authPayload }
	err := s.do(ctx, "", "login "+email, qLogin, map[string]any{"email": email, "password": password}, &out)
	return out.Login, err
}

// ensureUser signs email up, or signs it in when it exists already.
func (s *setup) ensureUser(ctx context.Context, email, name string) (p authPayload, created bool, err error) {
	var out struct{ SignUp authPayload }
	err = s.do(ctx, "", "signUp "+email, qSignUp, map[string]any{"input": map[string]any{
		"email": email, "password": s.o.userPassword, "name": name,
	}}, &out)
	var ge *gql.Error
	if errors.As(err, &ge) && ge.Has("BAD_USER_INPUT") {
		p, lerr := s.login(ctx, email, s.o.userPassword)
		if lerr != nil {
			return p, false, fmt.Errorf("%v, and signing in failed: %v (is -user-password the one it was seeded with?)", err, lerr)
		}
		return p, false, nil
	}
	return out.SignUp, err == nil, err
}

func (s *setup) run(ctx context.Context, n needs) (*fixture, error) {
	began := time.Now()
	f := &fixture{}
	if p, err := s.login(ctx, s.o.adminEmail, s.o.adminPass); err != nil {
		f.adminErr = err
		if n.admin {
			return nil, fmt.Errorf("admin sign-in (-admin-email, -admin-password) needed for this run: %w", err)
		}
	} else if p.User.Role != "ADMIN" {
		f.adminErr = fmt.Errorf("%s has role %s, not ADMIN", s.o.adminEmail, p.User.Role)
		if n.admin {
			return nil, f.adminErr
		}
	} else {
		f.adminToken = p.Token
	}

	f.users = make([]loadUser, s.o.users)
	for i := range f.users {
		f.users[i].email = userEmail(i)
	}
	s.report.Seeded = s.o.seed
	if s.o.seed {
		if err := s.seed(ctx, f); err != nil {
			return nil, fmt.Errorf("seeding: %w", err)
		}
	}

	var err error
	if f.events, err = s.listEvents(ctx, nil); err != nil {
		return nil, err
	}
	if f.loadEvents, err = s.listEvents(ctx, map[string]any{"tag": loadTag}); err != nil {
		return nil, err
	}
	s.report.EventsListed, s.report.LoadEventsListed = len(f.events), len(f.loadEvents)
	switch {
	case n.events && len(f.events) == 0:
		return nil, errors.New("the server lists no events: run with -seed")
	case n.loadEvents && len(f.loadEvents) == 0:
		return nil, errors.New("no load-test events (tag " + loadTag + "): run with -seed")
	}

	if n.creds && !s.o.seed { // fail now, not with a run full of UNAUTHENTICATED
		if _, err := s.login(ctx, f.users[0].email, s.o.userPassword); err != nil {
			return nil, fmt.Errorf("load user %s cannot sign in (run with -seed first): %w", f.users[0].email, err)
		}
	}
	if err := s.signIn(ctx, f, n.tokens); err != nil {
		return nil, err
	}
	s.report.Took = time.Since(began).Round(time.Millisecond).String()
	return f, nil
}

// signIn gives the first k users a token, signing in those that have none yet.
func (s *setup) signIn(ctx context.Context, f *fixture, k int) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, 4)
	)
	for i := range k {
		if f.users[i].token != "" {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			p, err := s.login(ctx, f.users[i].email, s.o.userPassword)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && first == nil {
				first = fmt.Errorf("load user %s cannot sign in (run with -seed first): %w", f.users[i].email, err)
			}
			f.users[i].token = p.Token
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	for i := range k {
		f.tokens = append(f.tokens, f.users[i].token)
	}
	s.report.UsersSignedIn = k
	return nil
}

type eventPage struct {
	Events struct {
		Edges []struct {
			Node struct {
				ID string `json:"id"`
			} `json:"node"`
		} `json:"edges"`
	} `json:"events"`
}

func (p eventPage) ids() []string {
	ids := make([]string, 0, len(p.Events.Edges))
	for _, e := range p.Events.Edges {
		ids = append(ids, e.Node.ID)
	}
	return ids
}

const qEventIDs = `query EventIDs($filter: EventFilter) { events(filter: $filter, first: 100) { edges { node { id } } } }`

// listEvents returns the ids of up to 100 events the server lists to anyone under filter.
func (s *setup) listEvents(ctx context.Context, filter map[string]any) ([]string, error) {
	var p eventPage
	if err := s.do(ctx, "", "listing events", qEventIDs, map[string]any{"filter": filter}, &p); err != nil {
		return nil, err
	}
	return p.ids(), nil
}

// seed makes sure the organizer, its venue, -events published events and -users users exist.
func (s *setup) seed(ctx context.Context, f *fixture) error {
	org, created, err := s.ensureUser(ctx, organizerEmail, "Load Organizer")
	if err != nil {
		return err
	}
	s.report.OrganizerCreated = created
	if org.User.Role == "USER" {
		err := s.do(ctx, f.adminToken, "setUserRole", `mutation Promote($id: ID!) { setUserRole(userId: $id, role: ORGANIZER) { id role } }`,
			map[string]any{"id": org.User.ID}, nil)
		if err != nil {
			return err
		}
		s.report.OrganizerPromoted = true
	}
	venueID, err := s.ensureVenue(ctx, org.Token)
	if err != nil {
		return err
	}
	if err := s.ensureEvents(ctx, org, venueID); err != nil {
		return err
	}
	s.logf("seed: organizer, venue and %d events ready; signing up %d users", s.o.events, s.o.users)
	return s.ensureUsers(ctx, f)
}

func (s *setup) ensureVenue(ctx context.Context, token string) (string, error) {
	var out struct {
		Venues struct {
			Edges []struct {
				Node struct{ ID, Name string } `json:"node"`
			} `json:"edges"`
		} `json:"venues"`
	}
	err := s.do(ctx, token, "venues", `query Venues($city: String) { venues(city: $city, first: 100) { edges { node { id name } } } }`,
		map[string]any{"city": venueCity}, &out)
	if err != nil {
		return "", err
	}
	for _, e := range out.Venues.Edges {
		if e.Node.Name == venueName {
			return e.Node.ID, nil
		}
	}
	var created struct{ CreateVenue struct{ ID string } }
	err = s.do(ctx, token, "createVenue", `mutation Venue($input: CreateVenueInput!) { createVenue(input: $input) { id } }`,
		map[string]any{"input": map[string]any{"name": venueName, "address": "1 Benchmark Way", "city": venueCity, "capacity": 100000}}, &created)
	if err != nil {
		return "", err
	}
	s.report.VenueCreated = true
	return created.CreateVenue.ID, nil
}

// ensureEvents publishes the organizer's drafts (a seed interrupted earlier) and creates and
// publishes events until -events are listed. Every fourth event has 5 seats, so registrations
// also reach the waitlist.
func (s *setup) ensureEvents(ctx context.Context, org authPayload, venueID string) error {
	var published, drafts eventPage
	if err := s.do(ctx, org.Token, "listing load events", qEventIDs,
		map[string]any{"filter": map[string]any{"tag": loadTag, "organizerId": org.User.ID}}, &published); err != nil {
		return err
	}
	if err := s.do(ctx, org.Token, "listing load drafts", qEventIDs,
		map[string]any{"filter": map[string]any{"tag": loadTag, "organizerId": org.User.ID, "status": "DRAFT"}}, &drafts); err != nil {
		return err
	}
	have := len(published.ids())
	s.report.EventsReused = have
	publish := func(id string) error {
		err := s.do(ctx, org.Token, "publishEvent", `mutation Publish($id: ID!) { publishEvent(id: $id) { id status } }`, map[string]any{"id": id}, nil)
		if err == nil {
			s.report.EventsPublished++
			have++
		}
		return err
	}
	for _, id := range drafts.ids() {
		if have >= s.o.events {
			break
		}
		if err := publish(id); err != nil {
			return err
		}
	}
	base := time.Now().Add(14 * 24 * time.Hour).Truncate(time.Hour)
	for i := have; have < s.o.events; i++ {
		seats := 1000
		if i%4 == 0 {
			seats = 5
		}
		starts := base.Add(time.Duration(i) * 3 * time.Hour)
		var out struct{ CreateEvent struct{ ID string } }
		err := s.do(ctx, org.Token, "createEvent", `mutation Create($input: CreateEventInput!) { createEvent(input: $input) { id } }`,
			map[string]any{"input": map[string]any{
				"title":       fmt.Sprintf("Load test event %03d", i),
				"description": "Made by eventide-load -seed to measure the server. Safe to cancel.",
				"startsAt":    starts.Format(time.RFC3339),
				"endsAt":      starts.Add(2 * time.Hour).Format(time.RFC3339),
				"capacity":    seats,
				"tags":        []string{loadTag, "benchmark"},
				"venueId":     venueID,
			}}, &out)
		if err != nil {
			return err
		}
		s.report.EventsCreated++
		if err := publish(out.CreateEvent.ID); err != nil {
			return err
		}
	}
	return nil
}

// ensureUsers signs up every load user, four at a time (each costs the server a password hash).
// Existing ones are left for signIn, which signs in only those a run needs.
func (s *setup) ensureUsers(ctx context.Context, f *fixture) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, 4)
	)
	for i := range f.users {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			var out struct{ SignUp authPayload }
			err := s.do(ctx, "", "signUp", qSignUp, map[string]any{"input": map[string]any{
				"email": f.users[i].email, "password": s.o.userPassword, "name": fmt.Sprintf("Load User %04d", i),
			}}, &out)
			mu.Lock()
			defer mu.Unlock()
			var ge *gql.Error
			switch {
			case err == nil:
				f.users[i].token = out.SignUp.Token
				s.report.UsersCreated++
			case errors.As(err, &ge) && ge.Has("BAD_USER_INPUT"):
				s.report.UsersExisting++
			case first == nil:
				first = err
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
