package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventide/server/config"
	"github.com/eventide/server/internal/redistest"
)

// withRedis points cfg at srv.
// startReplicas starts two servers on one embedded store and one real redis-server, as two
// replicas behind a load balancer; tweak, when set, adjusts both configurations.
func startReplicas(t *testing.T, tweak func(*config.Config)) (a, b *testServer) {
	t.Helper()
	a, b, _ = startReplicasOn(t, tweak)
	return a, b
}

// startReplicasOn is startReplicas with the Redis server handed back, so a test can kill it.
func startReplicasOn(t *testing.T, tweak func(*config.Config)) (a, b *testServer, redis *redistest.Server) {
	t.Helper()
	redis = redistest.Start(t)
	db := startStore(t)
	replica := func() *testServer {
		cfg := withRedis(t, testConfig(t), redis)
		cfg.MongoURI = db.URI()
		if tweak != nil {
			tweak(cfg)
		}
		return startServer(t, cfg)
	}
	return replica(), replica(), redis
}

func withRedis(t *testing.T, cfg *config.Config, srv *redistest.Server) *config.Config {
	t.Helper()
	host, port, err := net.SplitHostPort(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	cfg.UseRedis = true
	cfg.RedisHost = host
	cfg.RedisPort, _ = strconv.Atoi(port)
	return cfg
}

type cacheStatsOut struct {
	CacheStats struct {
		Backend        string
		FallbackActive bool
		Hits, Misses   int64
		Entries        int64
	}
}

func (ts *testServer) cacheStats(admin session) cacheStatsOut {
	ts.t.Helper()
	var out cacheStatsOut
	ts.mustData(admin.Token, `{ cacheStats { backend fallbackActive hits misses entries } }`, nil, &out)
	return out
}

func (ts *testServer) readyCache() (int, string, string) {
	ts.t.Helper()
	res, err := http.Get(ts.base + "/readyz")
	if err != nil {
		ts.t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Checks map[string]struct{ Status, Detail string }
	}
	_ = json.NewDecoder(res.Body).Decode(&body)
	c := body.Checks["cache"]
	return res.StatusCode, c.Status, c.Detail
}

// TestRedisGoesAwayAndComesBack kills Redis under a steady stream of queries and mutations: every
// one still succeeds, the cache falls back to memory (one warning), and when Redis is restarted
// the server is back on it within seconds.
func TestRedisGoesAwayAndComesBack(t *testing.T) {
	redis := redistest.Start(t)
	cfg := withRedis(t, testConfig(t), redis)
	// The readers below share one address and, answered from the response cache, send far more
	// than the default 300 a minute: being throttled is not what this test is about.
	cfg.ThrottleLimit = 1 << 30
	ts := startServer(t, cfg)
	admin := ts.admin()
	org := ts.organizer("Org")
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = ts.publishedEvent(org, "Event "+strconv.Itoa(i), 100, time.Duration(i+1)*time.Hour)
	}
	if st := ts.cacheStats(admin).CacheStats; st.Backend != "redis" || st.FallbackActive {
		t.Fatalf("start: %+v", st)
	}
	if code, status, detail := ts.readyCache(); code != 200 || status != "up" || detail != "redis" {
		t.Fatalf("readyz cache: %d %s %q", code, status, detail)
	}

	// Clients keep reading and registering while Redis dies and returns.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	fail := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 5 {
			failures = append(failures, s)
		}
	}
	for w := range 3 {
		wg.Go(func() {
			fan := ts.signUp("Fan " + strconv.Itoa(w))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := ts.do("", eventsPageQuery, map[string]any{"first": 10})
				if r.Status != 200 || len(r.Errors) > 0 {
					fail("page: " + string(r.Data) + " " + r.code())
				}
				if i%5 == 0 {
					q := `mutation($id: ID!){ registerForEvent(eventId: $id){ status event { attendeeCount } } }`
					if i%10 == 0 {
						q = `mutation($id: ID!){ cancelRegistration(eventId: $id){ status } }`
					}
					r := ts.do(fan.Token, q, map[string]any{"id": ids[(i/5)%len(ids)]})
					if r.Status != 200 || (len(r.Errors) > 0 && r.code() != "NOT_FOUND") {
						fail("mutation: " + r.code())
					}
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	redis.Stop()
	began := time.Now()
	var st cacheStatsOut
	for {
		st = ts.cacheStats(admin)
		if st.CacheStats.FallbackActive {
			break
		}
		if time.Since(began) > 5*time.Second {
			t.Fatalf("no fallback 5s after Redis died: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.CacheStats.Backend != "memory" {
		t.Fatalf("during the outage: %+v", st)
	}
	if code, status, detail := ts.readyCache(); code != 200 || status != "down" || detail != "memory (fallback)" {
		t.Fatalf("readyz cache during the outage: %d %s %q", code, status, detail)
	}
	time.Sleep(500 * time.Millisecond)

	redis.Restart()
	began = time.Now()
	for {
		st = ts.cacheStats(admin)
		if st.CacheStats.Backend == "redis" && !st.CacheStats.FallbackActive {
			break
		}
		if time.Since(began) > 10*time.Second {
			t.Fatalf("not back on Redis 10s after it returned: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("back on Redis %v after it returned", time.Since(began).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("requests failed while Redis went away: %q", failures)
	}
	if n := strings.Count(ts.logs.String(), "redis unreachable: the cache falls back"); n != 1 {
		t.Fatalf("%d fallback warnings in the log, want 1", n)
	}

	// After all that, what a writer wrote is what everyone reads.
	fan := ts.signUp("Late fan")
	var reg struct {
		RegisterForEvent struct{ Event struct{ AttendeeCount int } }
	}
	ts.mustData(fan.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ event { attendeeCount } } }`, map[string]any{"id": ids[0]}, &reg)
	var ev struct{ Event struct{ AttendeeCount int } }
	ts.mustData("", `query($id: ID!){ event(id: $id){ attendeeCount } }`, map[string]any{"id": ids[0]}, &ev)
	if ev.Event.AttendeeCount != reg.RegisterForEvent.Event.AttendeeCount {
		t.Fatalf("read %d after the write returned %d", ev.Event.AttendeeCount, reg.RegisterForEvent.Event.AttendeeCount)
	}
}

// TestRedisDownAtStartUp starts a server whose Redis is not there: it serves from memory and
// moves to Redis when Redis appears.
func TestRedisDownAtStartUp(t *testing.T) {
	redis := redistest.Start(t)
	cfg := withRedis(t, testConfig(t), redis)
	redis.Stop()
	ts := startServer(t, cfg)
	admin := ts.admin()
	if st := ts.cacheStats(admin).CacheStats; !st.FallbackActive || st.Backend != "memory" {
		t.Fatalf("start without Redis: %+v", st)
	}
	ts.mustData("", eventsPageQuery, map[string]any{"first": 5}, nil)
	redis.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for ts.cacheStats(admin).CacheStats.Backend != "redis" {
		if time.Now().After(deadline) {
			t.Fatal("never moved to Redis")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTwoServersOneRedis runs two replicas on one store and one Redis: each sees the other's
// writes at once, receives its invalidations over pub/sub, and delivers its eventUpdated messages
// to its own subscribers.
func TestTwoServersOneRedis(t *testing.T) {
	a, b := startReplicas(t, nil)
	org := a.organizer("Org")
	id := a.publishedEvent(org, "Shared", 10, 24*time.Hour)
	q := `query($id: ID!){ event(id: $id){ attendeeCount title } }`
	var ev struct {
		Event struct {
			AttendeeCount int
			Title         string
		}
	}
	b.mustData("", q, map[string]any{"id": id}, &ev) // b's cache now holds the event

	t.Run("InvalidationsCrossReplicas", func(t *testing.T) {
		before := b.metric("eventide_cache_remote_invalidations_total")
		fan := a.signUp("Fan")
		a.mustData(fan.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": id}, nil)
		b.mustData("", q, map[string]any{"id": id}, &ev)
		if ev.Event.AttendeeCount != 1 {
			t.Fatalf("b reads attendeeCount %d after a's registration returned", ev.Event.AttendeeCount)
		}
		deadline := time.Now().Add(5 * time.Second)
		for b.metric("eventide_cache_remote_invalidations_total") <= before {
			if time.Now().After(deadline) {
				t.Fatal("b received no invalidation from a over pub/sub")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	t.Run("EventUpdatedCrossesReplicas", func(t *testing.T) {
		c := b.dialWS("graphql-transport-ws", nil)
		c.subscribe("1", `subscription($id: ID!){ eventUpdated(id: $id){ id title attendeeCount } }`, map[string]any{"id": id})
		// The subscription starts asynchronously: change the event until a message arrives.
		got := make(chan map[string]any, 1)
		go func() { got <- c.next() }()
		for i := 0; ; i++ {
			a.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
				map[string]any{"id": id, "t": "Renamed " + strconv.Itoa(i)}, nil)
			select {
			case m := <-got:
				raw, _ := json.Marshal(m["payload"])
				if m["type"] != "next" || !strings.Contains(string(raw), `"title":"Renamed `) {
					t.Fatalf("b's subscriber got %s", raw)
				}
				return
			case <-time.After(200 * time.Millisecond):
				if i == 25 {
					t.Fatal("b's subscriber never got a's eventUpdated")
				}
			}
		}
	})
}

// metric reads one sample from /metrics: an unlabelled name, or a name with its labels as
// printed (`x_total{result="failed"}`).
func (ts *testServer) metric(name string) float64 {
	ts.t.Helper()
	v, ok := ts.metrics()[name]
	if !ok {
		ts.t.Fatalf("metric %s not found", name)
	}
	return v
}

// TestAutomaticPersistedQueries speaks Apollo's APQ protocol over POST and GET.
func TestAutomaticPersistedQueries(t *testing.T) {
	ts := startServer(t, nil)
	query := `{ events(first: 1){ pageInfo { hasNextPage } } }`
	sum := sha256.Sum256([]byte(query))
	hash := hex.EncodeToString(sum[:])
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}
	post := func(body map[string]any) *gqlResponse {
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		return ts.send(req)
	}

	r := post(map[string]any{"extensions": ext})
	if r.code() != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("unknown hash: %d %+v", r.Status, r.Errors)
	}
	if r = post(map[string]any{"query": query, "extensions": ext}); len(r.Errors) > 0 || !strings.Contains(string(r.Data), "hasNextPage") {
		t.Fatalf("query with hash: %+v %s", r.Errors, r.Data)
	}
	if r = post(map[string]any{"extensions": ext}); len(r.Errors) > 0 || !strings.Contains(string(r.Data), "hasNextPage") {
		t.Fatalf("hash only: %+v %s", r.Errors, r.Data)
	}
	extJSON, _ := json.Marshal(ext)
	req, _ := http.NewRequest(http.MethodGet, ts.base+"/graphql?extensions="+url.QueryEscape(string(extJSON)), nil)
	if r = ts.send(req); len(r.Errors) > 0 || !strings.Contains(string(r.Data), "hasNextPage") {
		t.Fatalf("GET with hash only: %+v %s", r.Errors, r.Data)
	}
	bad := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": strings.Repeat("0", 64)}}
	if r = post(map[string]any{"query": query, "extensions": bad}); len(r.Errors) == 0 {
		t.Fatal("a hash that does not match the query was accepted")
	}
}
