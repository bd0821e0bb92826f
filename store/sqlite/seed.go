package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/eventide/server/eventide"
)

// SeedOptions sizes a synthetic data set for benchmarks and load tests.
type SeedOptions struct {
	Events        int
	Registrations int // spread evenly over the published events (exactly this many in all, at most Users per event), confirmed up to each capacity
	Users         int
	Capacity      int       // per event (default 8: about a fifth of registrations wait)
	Now           time.Time // events are placed around it (default time.Now())
}

// seedCities and seedTags are the values the synthetic events draw their city and tag from.
var (
	seedCities = []string{"Lisbon", "Porto", "Faro", "Braga", "Coimbra", "Madrid", "Seville", "Valencia", "Bilbao", "Granada"}
	seedTags   = []string{"music", "jazz", "talk", "tech", "food", "art", "film", "sport", "kids", "books",
		"dance", "theatre", "science", "games", "wine", "market", "yoga", "photo", "history", "comedy"}
)

// Seed writes a synthetic data set straight into the tables, in transactions of a few thousand
// rows: users, one organizer among them per hundred, venues (see below), events (a tenth ended, a twentieth draft, a
// twentieth cancelled, the rest upcoming and published, each with a city and two tags) and
// registrations with the counters they imply. It returns the ids it made, for benchmarks to pick
// from.
func (s *Store) Seed(ctx context.Context, o SeedOptions) (eventIDs, userIDs []string, err error) {
	if o.Capacity <= 0 {
		o.Capacity = 8
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Users <= 0 {
		o.Users = 1
	}
	const batch = 5000
	t0 := ms(o.Now)
	userIDs = make([]string, o.Users)
	for i := 0; i < o.Users; i += batch {
		err := s.write(ctx, func(w *wtx) error {
			for j := i; j < min(i+batch, o.Users); j++ {
				userIDs[j] = newID()
				role := eventide.RoleUser
				if j%100 == 0 {
					role = eventide.RoleOrganizer
				}
				if _, err := w.exec(s.stmts.wInsertUser, userIDs[j], fmt.Sprintf("User %d", j), fmt.Sprintf("user%d@seed.example", j),
					string(role), []byte("x"), t0+int64(j), t0+int64(j)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	// Venues: ten per city or one per hundred events, whichever is more (at most 1000); an
	// event is at a venue of its city.
	nVenues := len(seedCities) * max(1, min(100, o.Events/100/len(seedCities)))
	venueIDs := make([]string, nVenues)
	err = s.write(ctx, func(w *wtx) error {
		for k := range venueIDs {
			venueIDs[k] = newID()
			city := seedCities[k%len(seedCities)]
			name := fmt.Sprintf("%s Hall %d", city, k/len(seedCities))
			if _, err := w.exec(s.stmts.wInsertVenue, venueIDs[k], name, eventide.FoldName(name), fmt.Sprintf("%d Seed Street", k), city, eventide.FoldCity(city),
				50+k%10*50, userIDs[0], t0, eventide.CityTimeZone(city)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// Only published events take registrations (drafts and cancelled ones cannot): the total is
	// spread over them, the first (Registrations mod published) of them taking one more.
	published := 0
	for j := range o.Events {
		if seedStatus(j) == eventide.EventPublished {
			published++
		}
	}
	perEvent, extra := 0, 0
	if published > 0 {
		perEvent, extra = o.Registrations/published, o.Registrations%published
	}
	nth := 0 // published events seen so far
	eventIDs = make([]string, o.Events)
	hour := int64(time.Hour / time.Millisecond)
	for i := 0; i < o.Events; i += batch / max(1, perEvent/4+1) {
		end := min(i+batch/max(1, perEvent/4+1), o.Events)
		err := s.write(ctx, func(w *wtx) error {
			for j := i; j < end; j++ {
				id := newID()
				eventIDs[j] = id
				status := seedStatus(j)
				// A tenth ended in the past year, the rest spread over the next year.
				var start int64
				if j%10 == 3 {
					start = t0 - int64(1+j%8760)*hour
				} else {
					start = t0 + int64(1+(j*7919)%8760)*hour
				}
				city := seedCities[j%len(seedCities)]
				venue := venueIDs[j%len(seedCities)+len(seedCities)*((j/len(seedCities))%(nVenues/len(seedCities)))]
				tags := []string{seedTags[j%len(seedTags)], seedTags[(j/len(seedTags)+3)%len(seedTags)]}
				if tags[0] == tags[1] {
					tags = tags[:1]
				}
				n := 0
				if status == eventide.EventPublished {
					n = perEvent
					if nth < extra {
						n++
					}
					n = min(n, o.Users)
					nth++
				}
				confirmed, waiting := min(n, o.Capacity), max(0, n-o.Capacity)
				org := userIDs[(j%max(1, o.Users/100))*100%o.Users]
				e := &eventide.Event{ID: id, StartsAt: fromMS(start), EndsAt: fromMS(start + 2*hour), Status: status, Tags: tags}
				if _, err := w.exec(s.stmts.wInsertEvent, id, fmt.Sprintf("Event %d in %s", j, city),
					fmt.Sprintf("A %s and %s event, number %d.", tags[0], tags[len(tags)-1], j),
					start, start+2*hour, string(status), o.Capacity, tagsJSON(tags), venue, city, eventide.FoldCity(city), org,
					confirmed, waiting, "", t0, t0, eventide.CityTimeZone(city), false, ""); err != nil {
					return err
				}
				if err := s.writeTags(w, e); err != nil {
					return err
				}
				for k := range n {
					st := eventide.RegistrationConfirmed
					if k >= o.Capacity {
						st = eventide.RegistrationWaitlisted
					}
					u := userIDs[(j*31+k)%o.Users]
					at := t0 - int64(n-k)*1000
					if _, err := w.exec(s.stmts.wInsertReg, newID(), id, u, string(st), at, at); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return eventIDs, userIDs, nil
}

// seedStatus is the status of the j-th synthetic event: a twentieth draft, a twentieth cancelled.
func seedStatus(j int) eventide.EventStatus {
	switch j % 20 {
	case 7:
		return eventide.EventDraft
	case 13:
		return eventide.EventCancelled
	}
	return eventide.EventPublished
}
