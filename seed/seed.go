// Package seed fills an empty store with a believable demo data set.
//
// The data set is planned in memory first, from a fixed pseudo-random seed, so every run produces
// the same users, venues, events and registrations relative to the time it is given; only then is
// it written, through the ordinary store methods (registrations go through Register and
// CancelRegistration, so the counters and the waitlist are exactly what the service would have
// produced).
package seed

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/eventide/server/eventide"
)

// DemoPassword is the password of every demo user.
const DemoPassword = "demo-password"

// The shape of the data set.
const (
	pastEvents      = 5 // published, already ended
	draftEvents     = 6 // upcoming drafts
	cancelledEvents = 4 // upcoming, cancelled with a reason
	fullEvents      = 4 // published upcoming events that end up full with a waitlist
	promotions      = 3 // full events where a confirmed registration is cancelled
	plainCancels    = 2 // other events where a registration is cancelled
	maxCasualRegs   = 3 // registrations of an ordinary published event: 0..maxCasualRegs
	emailDomain     = "example.com"
	minDaysAhead    = 1 // upcoming events start minDaysAhead..maxDaysAhead days from now
	maxDaysAhead    = 90
	draftDaysAhead  = 30 // drafts are planned further out: draftDaysAhead..maxDaysAhead days
	minDaysAgo      = 2  // past events started minDaysAgo..maxDaysAgo days ago, so they have ended
	maxDaysAgo      = 29
	// Registrations arrive during the two weeks that end an hour before now.
	registrationAge = 14 * 24 * time.Hour
)

// Demo fills st with demo data when it holds no users; it never touches a store that has data
// and then returns (false, nil). passwordHash is the hash every demo user gets (computed once by the
// caller from DemoPassword, so seeding costs no bcrypt time per user). now anchors the dates.
func Demo(ctx context.Context, st eventide.Store, passwordHash []byte, now time.Time, log *slog.Logger) (seeded bool, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n, err := st.CountUsers(ctx)
	if err != nil {
		return false, fmt.Errorf("seed: count users: %w", err)
	}
	if n > 0 {
		log.Debug("store has users; demo data not seeded", "users", n)
		return false, nil
	}
	start := time.Now()
	p := newPlan(now)

	users := make([]*eventide.User, len(p.users))
	for i, pu := range p.users {
		u := &eventide.User{Name: pu.name, Email: pu.email, Role: pu.role, PasswordHash: passwordHash}
		if err := st.CreateUser(ctx, u); err != nil {
			if i == 0 && eventide.IsCode(err, eventide.CodeBadUserInput) {
				// Another process seeds the same store right now and was first.
				log.Info("demo data is being seeded by another process; skipping")
				return false, nil
			}
			return false, fmt.Errorf("seed: create user %s: %w", pu.email, err)
		}
		users[i] = u
	}

	venues := make([]*eventide.Venue, len(p.venues))
	for i, pv := range p.venues {
		v := &eventide.Venue{Name: pv.name, Address: pv.address, City: pv.city, CreatedByID: users[pv.creator].ID, TimeZone: pv.zone}
		if pv.capacity > 0 {
			v.Capacity = new(pv.capacity)
		}
		if err := st.CreateVenue(ctx, v); err != nil {
			return false, fmt.Errorf("seed: create venue %q: %w", pv.name, err)
		}
		venues[i] = v
	}

	eventIDs := make([]string, len(p.events))
	for i, pe := range p.events {
		status, reason := pe.status, pe.cancelReason
		if pe.cancelledLate {
			status, reason = eventide.EventPublished, "" // cancelled after its registrations, below
		}
		e := &eventide.Event{
			Title: pe.title, Description: pe.description, StartsAt: pe.startsAt, EndsAt: pe.endsAt,
			Status: status, Capacity: pe.capacity, Tags: slices.Clone(pe.tags),
			OrganizerID: users[pe.organizer].ID, CancelReason: reason,
			TimeZone: pe.zone, Online: pe.onlineURL != "", OnlineURL: pe.onlineURL,
		}
		if pe.venue >= 0 {
			e.VenueID, e.City = venues[pe.venue].ID, venues[pe.venue].City
		}
		if err := st.CreateEvent(ctx, e); err != nil {
			return false, fmt.Errorf("seed: create event %q: %w", pe.title, err)
		}
		eventIDs[i] = e.ID
	}

	// Registrations are made one at a time: the embedded store admits one command at a time, so
	// concurrency buys nothing there, and in this order every run writes the same sequence.
	regs, cancels := 0, 0
	for i := range p.events {
		r, c, err := registerEvent(ctx, st, &p.events[i], users, eventIDs[i])
		regs, cancels = regs+r, cancels+c
		if err != nil {
			return false, err
		}
		if pe := &p.events[i]; pe.cancelledLate {
			// The store cancels every registration of the event with it (cancelEvent's path).
			if _, err := st.UpdateEvent(ctx, eventIDs[i], func(e *eventide.Event) error {
				e.Status, e.CancelReason = eventide.EventCancelled, pe.cancelReason
				return nil
			}); err != nil {
				return false, fmt.Errorf("seed: cancel %q: %w", pe.title, err)
			}
			cancels += len(pe.regs)
		}
	}

	log.Info("demo data seeded",
		"password", DemoPassword,
		"organizerEmail", users[p.exampleOrganizer].Email,
		"userEmail", users[p.exampleUser].Email,
		"users", len(users), "venues", len(venues), "events", len(p.events),
		"registrations", regs, "cancelledRegistrations", cancels,
		"took", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// registerEvent makes one event's registrations, then its cancellations.
func registerEvent(ctx context.Context, st eventide.Store, pe *plannedEvent, users []*eventide.User, eventID string) (regs, cancels int, err error) {
	for _, r := range pe.regs {
		if _, _, err := st.Register(ctx, eventID, users[r.user].ID, r.at); err != nil {
			return regs, cancels, fmt.Errorf("seed: register %s for %q: %w", users[r.user].Email, pe.title, err)
		}
		regs++
	}
	for _, c := range pe.cancels {
		if _, _, err := st.CancelRegistration(ctx, eventID, users[c.user].ID, c.at); err != nil {
			return regs, cancels, fmt.Errorf("seed: cancel registration of %s for %q: %w", users[c.user].Email, pe.title, err)
		}
		cancels++
	}
	return regs, cancels, nil
}

// plan is the whole data set before it is written; users, venues and events refer to each other
// by index.
type plan struct {
	users            []plannedUser
	venues           []plannedVenue
	events           []plannedEvent
	exampleOrganizer int // indexes into users, for the log
	exampleUser      int
}

type plannedUser struct {
	name, email string
	role        eventide.Role
	city        string // organizers only
}

type plannedVenue struct {
	name, address, city string
	zone                string // the city's IANA zone
	capacity            int    // 0: none
	creator             int
}

type plannedEvent struct {
	title, description string
	tags               []string
	venue              int // -1: none
	organizer          int
	startsAt, endsAt   time.Time
	status             eventide.EventStatus
	capacity           int
	cancelReason       string
	zone               string // the venue's city's zone, or the organizer's city's without a venue
	onlineURL          string // set for the online events (no venue, "Online"/"Virtual"/"Remote" in the title)
	full               bool   // planned to be full with a waitlist
	// cancelledLate: a cancelled event that was published and took registrations first; it is
	// written that way (published, registered, then cancelled), so its registrations are
	// cancelled with it, as cancelEvent does.
	cancelledLate bool
	regs          []plannedAction
	cancels       []plannedAction
}

// plannedAction is one registration or cancellation by a user at an instant.
type plannedAction struct {
	user int
	at   time.Time
}

// newPlan lays the data set out, deterministically for a given now.
func newPlan(now time.Time) *plan {
	rng := rand.New(rand.NewPCG(1, 2))
	p := &plan{}

	organizerOf := map[string]int{}
	for _, o := range organizers {
		organizerOf[o.city] = len(p.users)
		p.users = append(p.users, plannedUser{name: o.first + " " + o.last, email: email(o), role: eventide.RoleOrganizer, city: o.city})
	}
	for _, a := range attendees {
		p.users = append(p.users, plannedUser{name: a.first + " " + a.last, email: email(a), role: eventide.RoleUser})
	}
	p.exampleOrganizer, p.exampleUser = 0, len(organizers)

	for _, vs := range venueSpecs {
		p.venues = append(p.venues, plannedVenue{
			name: vs.name, address: vs.address, city: vs.city, capacity: vs.capacity, creator: organizerOf[vs.city],
			zone: zoneOf(vs.city),
		})
	}

	zones := map[string]*time.Location{}
	for _, c := range cities {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			loc = time.FixedZone(c.name, c.offset)
		}
		zones[c.name] = loc
	}

	// Which events are past, drafts, cancelled or published and upcoming is a shuffle of the specs.
	kind := make([]int, len(eventSpecs))
	const (
		upcoming = iota
		past
		draft
		cancelled
	)
	for pos, i := range rng.Perm(len(eventSpecs)) {
		switch {
		case pos < pastEvents:
			kind[i] = past
		case pos < pastEvents+draftEvents:
			kind[i] = draft
		case pos < pastEvents+draftEvents+cancelledEvents:
			kind[i] = cancelled
		}
	}

	nCancelled := 0
	for i, es := range eventSpecs {
		pe := plannedEvent{venue: -1, tags: es.tags, status: eventide.EventPublished}
		city := ""
		if es.kind != kindNone {
			var fits []int
			for vi, vs := range venueSpecs {
				if slices.Contains(vs.kinds, es.kind) {
					fits = append(fits, vi)
				}
			}
			pe.venue = fits[rng.IntN(len(fits))]
			city = venueSpecs[pe.venue].city
			pe.organizer = organizerOf[city]
		} else {
			pe.organizer = rng.IntN(len(organizers))
		}
		placeholder := city
		if placeholder == "" {
			placeholder = organizers[pe.organizer].city
		}
		pe.title = strings.ReplaceAll(es.title, "{city}", placeholder)
		pe.description = strings.ReplaceAll(es.description, "{city}", placeholder)

		var days int
		switch kind[i] {
		case past:
			days = -(minDaysAgo + rng.IntN(maxDaysAgo-minDaysAgo+1))
		case draft:
			days = draftDaysAhead + rng.IntN(maxDaysAhead-draftDaysAhead+1)
			pe.status = eventide.EventDraft
		case cancelled:
			days = minDaysAhead + rng.IntN(maxDaysAhead-minDaysAhead+1)
			pe.status = eventide.EventCancelled
			pe.cancelReason = cancelReasons[nCancelled%len(cancelReasons)]
			pe.cancelledLate = nCancelled == 0
			nCancelled++
		default:
			days = minDaysAhead + rng.IntN(maxDaysAhead-minDaysAhead+1)
		}
		loc := zones[placeholder]
		pe.zone = zoneOf(placeholder)
		if es.kind == kindNone && (strings.HasPrefix(es.title, "Online") || strings.HasPrefix(es.title, "Virtual") || strings.HasPrefix(es.title, "Remote")) {
			pe.onlineURL = "https://meet.example.com/" + slug(pe.title)
		}
		local := now.In(loc)
		pe.startsAt = time.Date(local.Year(), local.Month(), local.Day()+days, es.hour, es.minute, 0, 0, loc).UTC()
		pe.endsAt = pe.startsAt.Add(time.Duration(es.hours) * time.Hour)

		venueCap := 0
		if pe.venue >= 0 {
			venueCap = venueSpecs[pe.venue].capacity
		}
		limit := es.maxCap
		if venueCap > 0 && (limit == 0 || limit > venueCap) {
			limit = venueCap
		}
		switch {
		case es.small:
			pe.capacity = 5 + rng.IntN(11) // 5..15
		case limit > 0:
			// Half of the limit to all of it, in tens where that makes sense.
			pe.capacity = limit/2 + rng.IntN(limit/2+1)
			if pe.capacity >= 20 {
				pe.capacity = pe.capacity / 10 * 10
			}
		case pe.venue >= 0:
			pe.capacity = 50 + 10*rng.IntN(26) // an open-air venue: 50..300
		default:
			pe.capacity = 20 + 10*rng.IntN(9) // online or a meeting point: 20..100
		}
		if venueCap > 0 {
			pe.capacity = min(pe.capacity, venueCap)
		}
		p.events = append(p.events, pe)
	}

	// The smallest published upcoming events become full, with a waitlist.
	var open []int // published, upcoming
	for i := range p.events {
		if (p.events[i].status == eventide.EventPublished || p.events[i].cancelledLate) && p.events[i].endsAt.After(now) {
			open = append(open, i)
		}
	}
	bySize := slices.Clone(open)
	slices.SortStableFunc(bySize, func(a, b int) int { return cmp.Compare(p.events[a].capacity, p.events[b].capacity) })
	bySize = slices.DeleteFunc(bySize, func(i int) bool { return p.events[i].cancelledLate })
	for _, i := range bySize[:fullEvents] {
		p.events[i].full = true
		p.events[i].capacity = min(p.events[i].capacity, 5+rng.IntN(4)) // 5..8
	}

	promoted, plain := 0, 0
	for _, i := range open {
		pe := &p.events[i]
		n := rng.IntN(maxCasualRegs + 1)
		if pe.cancelledLate {
			n = 3 // three attendees whose registrations the cancellation ends
		}
		if pe.full {
			n = pe.capacity + 2 + rng.IntN(3) // a waitlist of 2..4
		}
		if n == 0 {
			continue
		}
		var who []int
		for _, u := range rng.Perm(len(p.users)) {
			if u != pe.organizer {
				who = append(who, u)
			}
		}
		who = who[:min(n, len(who))]

		// Arrivals spread over two weeks before now, in order, a second apart at least.
		offsets := make([]time.Duration, len(who))
		for k := range offsets {
			offsets[k] = time.Duration(rng.Int64N(int64(registrationAge)))
		}
		slices.Sort(offsets)
		first := now.Add(-registrationAge - time.Hour)
		for k, u := range who {
			pe.regs = append(pe.regs, plannedAction{user: u, at: first.Add(offsets[k] + time.Duration(k)*time.Second).Truncate(time.Second)})
		}

		last := pe.regs[len(pe.regs)-1].at
		cancelAt := last.Add(now.Sub(last) / 2).Truncate(time.Second)
		switch {
		case pe.full && promoted < promotions:
			// A confirmed attendee drops out; the oldest waitlisted registration takes the seat.
			pe.cancels = append(pe.cancels, plannedAction{user: pe.regs[rng.IntN(pe.capacity)].user, at: cancelAt})
			promoted++
		case !pe.full && !pe.cancelledLate && len(pe.regs) >= 2 && plain < plainCancels:
			pe.cancels = append(pe.cancels, plannedAction{user: pe.regs[rng.IntN(len(pe.regs))].user, at: cancelAt})
			plain++
		}
	}
	return p
}

// zoneOf is the IANA zone of one of the data set's cities.
func zoneOf(name string) string {
	for _, c := range cities {
		if c.name == name {
			return c.zone
		}
	}
	return eventide.DefaultTimeZone
}

// slug makes a URL path segment of a title: lower-case letters and digits joined by dashes.
func slug(title string) string {
	return strings.Join(strings.FieldsFunc(strings.ToLower(title), func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < '0' || r > '9')
	}), "-")
}

func email(p person) string {
	return strings.ToLower(p.first + "." + p.last + "@" + emailDomain)
}
