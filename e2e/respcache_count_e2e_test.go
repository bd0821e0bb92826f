package e2e

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// eventsCountQuery is the web app's events page with its total, under a filter.
const eventsCountQuery = `query($first: Int, $f: EventFilter){ events(first: $first, filter: $f){ totalCount
	edges { cursor node { id title startsAt venue { id name city } organizer { id name } attendeeCount waitlistCount } }
	pageInfo { hasNextPage endCursor } } }`

// TestResponseCacheEventsPageWithCount: the events page with totalCount — unfiltered, by city, by
// tag — is answered from the response cache when warm, without a store command; a newly
// published event and an event that ends show in the next answer's count.
func TestResponseCacheEventsPageWithCount(t *testing.T) {
	ts := startServer(t, onMongoDB(t, nil)) // counts store commands
	org := ts.organizer("Org")
	var v struct{ CreateVenue struct{ ID string } }
	ts.mustData(org.Token, `mutation{ createVenue(input:{name: "Hall", address:"Main St", city:"Lisbon", capacity: 500}){ id } }`, nil, &v)
	atLisbon := func(id string) {
		ts.mustData(org.Token, `mutation($id: ID!, $v: ID!){ updateEvent(id: $id, input: {venueId: $v}){ id } }`,
			map[string]any{"id": id, "v": v.CreateVenue.ID}, nil)
	}
	for i := range 3 {
		id := ts.publishedEvent(org, "Event", 5, time.Duration(i+2)*time.Hour)
		if i < 2 {
			atLisbon(id)
		}
	}
	// One event ending in a few seconds: it is counted until then.
	start := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	ends := time.Now().Add(8 * time.Second).UTC().Truncate(time.Millisecond)
	var short struct{ CreateEvent struct{ ID string } }
	ts.mustData(org.Token, `mutation($i: CreateEventInput!){ createEvent(input: $i){ id } }`, map[string]any{"i": map[string]any{
		"title": "Short", "startsAt": ends.Add(time.Hour).Format(time.RFC3339Nano), "endsAt": ends.Add(2 * time.Hour).Format(time.RFC3339Nano),
		"capacity": 5, "tags": []string{"test"},
	}}, &short)
	ts.moveEvent(org, short.CreateEvent.ID, start, ends) // a new event may not start in the past
	ts.mustData(org.Token, `mutation($id: ID!){ publishEvent(id: $id){ id } }`, map[string]any{"id": short.CreateEvent.ID}, nil)
	atLisbon(short.CreateEvent.ID)

	total := func(body []byte) int {
		t.Helper()
		var p struct {
			Data struct{ Events struct{ TotalCount *int } }
		}
		if err := json.Unmarshal(body, &p); err != nil || p.Data.Events.TotalCount == nil {
			t.Fatalf("page %s: %v", body, err)
		}
		return *p.Data.Events.TotalCount
	}
	for _, c := range []struct {
		name   string
		filter map[string]any
		want   int // before the short event ends
	}{
		{"all", nil, 4},
		{"city", map[string]any{"city": "lisbon"}, 3},
		{"tag", map[string]any{"tag": "test"}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			vars := map[string]any{"first": 20}
			if c.filter != nil {
				vars["f"] = c.filter
			}
			page, _ := json.Marshal(map[string]any{"query": eventsCountQuery, "variables": vars})
			_, _, first := ts.rawPost("", "", page) // builds and keeps it
			if n := total(first); n != c.want {
				t.Fatalf("totalCount %d, want %d", n, c.want)
			}
			hits, stored := ts.responseCache()
			var again []byte
			cmds := ts.commandsOf(func() { _, _, again = ts.rawPost("", "", page) })
			if h, s := ts.responseCache(); h != hits+1 || s != stored {
				t.Fatalf("warm page with totalCount: response cache hits %v→%v, stored %v→%v; want one hit", hits, h, stored, s)
			}
			if cmds != 0 || !bytes.Equal(again, first) {
				t.Fatalf("warm page with totalCount: %d store commands, equal bytes %v; want 0, true", cmds, bytes.Equal(again, first))
			}
		})
	}

	pages := map[string][]byte{}
	for name, f := range map[string]map[string]any{"all": nil, "city": {"city": "Lisbon"}, "tag": {"tag": "test"}} {
		vars := map[string]any{"first": 20}
		if f != nil {
			vars["f"] = f
		}
		pages[name], _ = json.Marshal(map[string]any{"query": eventsCountQuery, "variables": vars})
		ts.rawPost("", "", pages[name]) // warm under these exact bytes
	}
	expect := func(t *testing.T, what string, want map[string]int) {
		t.Helper()
		for name, page := range pages {
			h, _ := ts.responseCache()
			_, _, body := ts.rawPost("", "", page)
			if n := total(body); n != want[name] {
				t.Fatalf("%s: %s page totalCount %d, want %d", what, name, n, want[name])
			}
			if h2, _ := ts.responseCache(); h2 != h {
				t.Fatalf("%s: the %s page was a hit: a stale response was served", what, name)
			}
			// And the new answer is kept.
			_, _, kept := ts.rawPost("", "", page)
			if h3, _ := ts.responseCache(); h3 != h+1 || total(kept) != want[name] {
				t.Fatalf("%s: the new %s page was not kept (hits %v→%v)", what, name, h, h3)
			}
		}
	}

	t.Run("PublishedEventIsCounted", func(t *testing.T) {
		id := ts.publishedEvent(org, "New", 5, 5*time.Hour)
		atLisbon(id)
		expect(t, "after publishing", map[string]int{"all": 5, "city": 4, "tag": 5})
	})
	t.Run("EndedEventIsNotCounted", func(t *testing.T) {
		time.Sleep(time.Until(ends) + 50*time.Millisecond) // the short event has ended
		expect(t, "after an event ended", map[string]int{"all": 4, "city": 3, "tag": 4})
	})
}
