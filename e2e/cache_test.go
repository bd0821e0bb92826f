package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/config"
	"github.com/eventide/server/internal/server"
)

// storeCommands sums eventide_mongo_commands_total from /metrics. Scraping sends no command to the
// store, and the driver's heartbeats are not counted, so between two calls it counts exactly the
// commands of the requests made in between (never poll /readyz in that window: its ping counts).
// Only the MongoDB store counts its commands: a test that counts them starts its server onMongoDB.
func (ts *testServer) storeCommands() int {
	ts.t.Helper()
	if ts.app.StoreKind() != server.StoreMongoDB {
		ts.t.Fatal("store commands are counted by the MongoDB store only: start the server with onMongoDB(t, cfg)")
	}
	res, err := http.Get(ts.base + "/metrics")
	if err != nil {
		ts.t.Fatal(err)
	}
	defer res.Body.Close()
	total := 0.0
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "eventide_mongo_commands_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			ts.t.Fatalf("metrics line %q: %v", line, err)
		}
		total += v
	}
	return int(total)
}

// commandsOf runs fn and returns how many store commands it cost.
func (ts *testServer) commandsOf(fn func()) int {
	ts.t.Helper()
	before := ts.storeCommands()
	fn()
	return ts.storeCommands() - before
}

// onMongoDB points cfg (testConfig when nil) at a MongoDB of its own, an in-process FerretDB
// stopped at cleanup, for the tests that count store commands.
func onMongoDB(t testing.TB, cfg *config.Config) *config.Config {
	t.Helper()
	if cfg == nil {
		cfg = testConfig(t)
	}
	db := startStore(t)
	cfg.MongoURI = db.URI()
	return cfg
}

func (ts *testServer) purgeCache(admin session) int {
	ts.t.Helper()
	var out struct{ PurgeCache int }
	ts.mustData(admin.Token, `mutation{ purgeCache }`, nil, &out)
	return out.PurgeCache
}

const eventsPageQuery = `query($first: Int){ events(first: $first){
	edges { cursor node { id title startsAt venue { id name city } organizer { id name } attendeeCount waitlistCount } }
	pageInfo { hasNextPage endCursor } } }`

type eventsPage struct {
	Events struct {
		Edges []struct {
			Node struct {
				ID, Title     string
				Venue         *struct{ ID, Name, City string }
				Organizer     struct{ ID, Name string }
				AttendeeCount int
				WaitlistCount int
			}
		}
		PageInfo struct{ HasNextPage bool }
	}
}

// TestCacheCommandsPerPage counts store commands: the web app's events page (20 events, each with
// venue, organizer and counts) costs one command per kind of data after purgeCache, and none warm;
// a write shows on the next page at the cost of what it made stale only.
func TestCacheCommandsPerPage(t *testing.T) {
	ts := startServer(t, onMongoDB(t, nil))
	admin := ts.admin()
	orgs := []session{ts.organizer("Org A"), ts.organizer("Org B"), ts.organizer("Org C")}
	venues := make([]string, 4)
	for i := range venues {
		var v struct{ CreateVenue struct{ ID string } }
		ts.mustData(orgs[i%len(orgs)].Token, `mutation($n: String!){ createVenue(input:{name: $n, address:"Main St", city:"Lisbon", capacity: 500}){ id } }`,
			map[string]any{"n": fmt.Sprintf("Hall %d", i)}, &v)
		venues[i] = v.CreateVenue.ID
	}
	for i := range 24 {
		org := orgs[i%len(orgs)]
		id := ts.publishedEvent(org, fmt.Sprintf("Event %02d", i), 50, time.Duration(i+2)*time.Hour)
		ts.mustData(org.Token, `mutation($id: ID!, $v: ID!){ updateEvent(id: $id, input: {venueId: $v}){ id } }`,
			map[string]any{"id": id, "v": venues[i%len(venues)]}, nil)
	}
	vars := map[string]any{"first": 20}
	page := func(t *testing.T) eventsPage {
		t.Helper()
		var p eventsPage
		ts.mustData("", eventsPageQuery, vars, &p)
		if len(p.Events.Edges) != 20 || !p.Events.PageInfo.HasNextPage {
			t.Fatalf("page has %d events, hasNextPage %v", len(p.Events.Edges), p.Events.PageInfo.HasNextPage)
		}
		for _, e := range p.Events.Edges {
			if e.Node.Venue == nil || e.Node.Venue.Name == "" || e.Node.Organizer.Name == "" {
				t.Fatalf("event %s lacks venue or organizer: %+v", e.Node.ID, e.Node)
			}
		}
		return p
	}

	t.Run("EventsPageColdAtMost4WarmZero", func(t *testing.T) {
		ts.purgeCache(admin)
		cold := ts.commandsOf(func() { page(t) })
		warm := ts.commandsOf(func() { page(t) })
		t.Logf("events page: %d store commands cold, %d warm", cold, warm)
		if cold > 4 {
			t.Errorf("cold page cost %d store commands, want at most 4", cold)
		}
		if warm != 0 {
			t.Errorf("warm page cost %d store commands, want 0", warm)
		}
	})

	t.Run("SingleEventPageColdAtMost4WarmZero", func(t *testing.T) {
		first := page(t).Events.Edges[0].Node.ID
		q := `query($id: ID!){ event(id: $id){ id title venue { name city capacity } organizer { name } attendeeCount waitlistCount } }`
		ts.purgeCache(admin)
		cold := ts.commandsOf(func() { ts.mustData("", q, map[string]any{"id": first}, nil) })
		warm := ts.commandsOf(func() { ts.mustData("", q, map[string]any{"id": first}, nil) })
		t.Logf("event page: %d store commands cold, %d warm", cold, warm)
		if cold > 4 || warm != 0 {
			t.Errorf("event page cost %d cold, %d warm; want at most 4 and 0", cold, warm)
		}
	})

	t.Run("RegistrationShowsOnNextPage", func(t *testing.T) {
		before := page(t)
		target := before.Events.Edges[3].Node
		fan := ts.signUp("Fan")
		ts.mustData(fan.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": target.ID}, nil)
		var after eventsPage
		cost := ts.commandsOf(func() { after = page(t) })
		got := after.Events.Edges[3].Node
		if got.ID != target.ID || got.AttendeeCount != target.AttendeeCount+1 {
			t.Fatalf("after registering: %+v (before %+v)", got, target)
		}
		// Only the registered event's record was stale: the page itself, the venues and the
		// organizers were not.
		if cost > 1 {
			t.Errorf("page after one registration cost %d store commands, want at most 1", cost)
		}
		if warm := ts.commandsOf(func() { page(t) }); warm != 0 {
			t.Errorf("warm again: %d commands", warm)
		}
	})

	t.Run("NewEventShowsOnNextPage", func(t *testing.T) {
		page(t)
		id := ts.publishedEvent(orgs[0], "Sooner than all", 10, 30*time.Minute)
		ts.mustData(orgs[0].Token, `mutation($id: ID!, $v: ID!){ updateEvent(id: $id, input: {venueId: $v}){ id } }`,
			map[string]any{"id": id, "v": venues[0]}, nil)
		p := page(t)
		if p.Events.Edges[0].Node.ID != id {
			t.Fatalf("first event is %+v, want the new one %s", p.Events.Edges[0].Node, id)
		}
	})

	t.Run("SignedInPageWithViewerRegistrationWarmZero", func(t *testing.T) {
		fan := ts.signUp("Viewer")
		q := `query($first: Int){ events(first: $first){ edges { node { id venue { name } organizer { name } attendeeCount viewerRegistration { status } } } } }`
		var p struct {
			Events struct {
				Edges []struct {
					Node struct {
						ID                 string
						ViewerRegistration *struct{ Status string }
					}
				}
			}
		}
		ts.mustData(fan.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": page(t).Events.Edges[1].Node.ID}, nil)
		ts.purgeCache(admin)
		cold := ts.commandsOf(func() { ts.mustData(fan.Token, q, vars, &p) })
		warm := ts.commandsOf(func() { ts.mustData(fan.Token, q, vars, &p) })
		t.Logf("signed-in page with viewerRegistration: %d store commands cold (viewer included), %d warm", cold, warm)
		if warm != 0 {
			t.Errorf("warm signed-in page cost %d store commands", warm)
		}
		registered := 0
		for _, e := range p.Events.Edges {
			if e.Node.ViewerRegistration != nil {
				registered++
			}
		}
		if registered != 1 {
			t.Fatalf("viewer registered at %d events on the page, want 1", registered)
		}
		// Another viewer's registrations do not leak through the cache.
		other := ts.signUp("Other viewer")
		ts.mustData(other.Token, q, vars, &p)
		for _, e := range p.Events.Edges {
			if e.Node.ViewerRegistration != nil {
				t.Fatalf("another viewer sees a registration at %s", e.Node.ID)
			}
		}
	})

	t.Run("CacheStatsForAdminsOnly", func(t *testing.T) {
		q := `{ cacheStats { backend fallbackActive hits misses hitRatio entries capacity evictions ttlSeconds } }`
		var out struct {
			CacheStats struct {
				Backend                         string
				FallbackActive                  bool
				Hits, Misses, Entries, Capacity int64
				Evictions                       int64
				HitRatio                        float64
				TTLSeconds                      int
			}
		}
		ts.mustData(admin.Token, q, nil, &out)
		st := out.CacheStats
		if st.Backend != "memory" || st.FallbackActive || st.Hits == 0 || st.Misses == 0 || st.Entries == 0 ||
			st.Capacity != int64(testConfig(t).CacheMaxEntries) || st.TTLSeconds != int(testConfig(t).CacheTTL/time.Second) ||
			st.HitRatio <= 0 || st.HitRatio >= 1 {
			t.Fatalf("cacheStats = %+v", st)
		}
		ts.mustCode("FORBIDDEN", orgs[0].Token, q, nil)
		ts.mustCode("UNAUTHENTICATED", "", q, nil)
		ts.mustCode("FORBIDDEN", orgs[0].Token, `mutation{ purgeCache }`, nil)
		if n := ts.purgeCache(admin); n == 0 {
			t.Fatal("purgeCache dropped nothing")
		}
	})
}

// TestCacheBoundedByMaxEntries runs the server with a tiny in-memory cache: it never holds more
// than CACHE_MAX_ENTRIES, it evicts (and counts), and every answer stays right.
func TestCacheBoundedByMaxEntries(t *testing.T) {
	cfg := testConfig(t)
	cfg.CacheMaxEntries = 30
	ts := startServer(t, cfg)
	admin := ts.admin()
	org := ts.organizer("Org")
	ids := make([]string, 25)
	for i := range ids {
		ids[i] = ts.publishedEvent(org, fmt.Sprintf("Event %02d", i), 10, time.Duration(i+1)*time.Hour)
	}
	q := `{ cacheStats { entries capacity evictions } }`
	var st struct {
		CacheStats struct{ Entries, Capacity, Evictions int64 }
	}
	for round := range 3 {
		for i, id := range ids {
			var ev struct{ Event struct{ ID, Title string } }
			ts.mustData("", `query($id: ID!){ event(id: $id){ id title organizer { id } } }`, map[string]any{"id": id}, &ev)
			if ev.Event.ID != id || ev.Event.Title != fmt.Sprintf("Event %02d", i) {
				t.Fatalf("round %d: event %s came back as %+v", round, id, ev.Event)
			}
			ts.mustData(admin.Token, q, nil, &st)
			if st.CacheStats.Entries > 30 || st.CacheStats.Capacity != 30 {
				t.Fatalf("cache holds %d entries with capacity %d", st.CacheStats.Entries, st.CacheStats.Capacity)
			}
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for st.CacheStats.Evictions == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no eviction counted")
		}
		time.Sleep(20 * time.Millisecond)
		ts.mustData(admin.Token, q, nil, &st)
	}
}

// BenchmarkEventsPage is the web app's events page through the whole server (HTTP, gqlgen,
// loaders, cache, store): "responses" answered from the response cache; "responses-with-count"
// the same page with totalCount, as the web app sends it; "warm" built anew each time (response
// cache off) from a warm data cache; "cold" with the cache purged before each request, so every
// page pays its 4 store commands on the embedded store. BENCHMARKS.md.
func BenchmarkEventsPage(b *testing.B) {
	for _, bc := range []struct {
		name      string
		responses bool
		purge     bool
		count     bool
	}{{"responses", true, false, false}, {"responses-with-count", true, false, true}, {"warm", false, false, false}, {"cold", false, true, false}} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := testConfig(b)
			cfg.ThrottleLimit = 1 << 30 // one client asks for everything here
			cfg.LogLevel = "warn"       // an access line per request is not what this measures
			if !bc.responses {
				cfg.ResponseCacheMaxBytes = 0
			}
			ts, admin := eventsPageServer(b, cfg)
			vars := map[string]any{"first": 20}
			query := eventsPageQuery
			if bc.count {
				query = eventsCountQuery
			}
			page := func() {
				r := ts.do("", query, vars)
				if len(r.Errors) > 0 {
					b.Fatal(r.Errors)
				}
			}
			page()
			b.ReportAllocs()
			for b.Loop() {
				if bc.purge {
					b.StopTimer()
					ts.purgeCache(admin)
					b.StartTimer()
				}
				page()
			}
		})
	}
}

// eventsPageServer starts a server holding 24 published events at one venue.
func eventsPageServer(b *testing.B, cfg *config.Config) (*testServer, session) {
	ts := startServer(b, cfg)
	admin := ts.admin()
	org := ts.organizer("Org")
	var v struct{ CreateVenue struct{ ID string } }
	ts.mustData(org.Token, `mutation{ createVenue(input:{name: "Hall", address:"Main St", city:"Lisbon", capacity: 500}){ id } }`, nil, &v)
	for i := range 24 {
		id := ts.publishedEvent(org, fmt.Sprintf("Event %02d", i), 50, time.Duration(i+2)*time.Hour)
		ts.mustData(org.Token, `mutation($id: ID!, $v: ID!){ updateEvent(id: $id, input: {venueId: $v}){ id } }`,
			map[string]any{"id": id, "v": v.CreateVenue.ID}, nil)
	}
	return ts, admin
}
