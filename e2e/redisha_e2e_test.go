package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventide/server/internal/redistest"
)

// Issue 15, finding 7: Redis Sentinel and Cluster were built but never run. These tests start a
// real Sentinel set and a real 3-master Cluster (internal/redistest) and two replicas configured
// the way an operator would (REDIS_ADDRS, with REDIS_MASTER_NAME for Sentinel), on one store, and
// run the cache, the shared throttle, the invalidation bus, eventUpdated and the security bridge
// through them. For Sentinel the master is then killed, and everything must work again on the
// promoted replica without restarting either server.

// haLoginLimit is LOGIN_THROTTLE_LIMIT in these tests: small, so that a budget shared through
// Redis is told apart from two budgets in memory (one per replica) in a few requests.
const haLoginLimit = 4

// haPassword is REDIS_PASSWORD: the data nodes require it, as in production; the sentinel
// requires its own, haSentinelPassword (REDIS_SENTINEL_PASSWORD).
const (
	haPassword         = "ha-test-password"
	haSentinelPassword = "ha-sentinel-password"
)

// startHAReplicas starts two servers on one embedded store and the given Redis seeds.
func startHAReplicas(t *testing.T, addrs []string, masterName, sentinelPassword string) (a, b *testServer) {
	t.Helper()
	db := startStore(t)
	replica := func() *testServer {
		cfg := testConfig(t)
		cfg.MongoURI = db.URI()
		cfg.UseRedis = true
		cfg.RedisAddrs = addrs
		cfg.RedisMasterName = masterName
		cfg.RedisPassword = haPassword
		cfg.RedisSentinelPassword = sentinelPassword
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		cfg.LoginThrottleLimit = haLoginLimit
		cfg.ThrottleTTL = time.Hour // one window for the whole test
		cfg.ThrottleLimit = 1 << 20 // the steady load under a failover is one client
		return startServer(t, cfg)
	}
	return replica(), replica()
}

// waitOnRedis waits until ts's cache is on Redis (not its memory fallback) and its bus
// is subscribed.
func (ts *testServer) waitOnRedis(what string) {
	ts.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, status, detail := ts.readyCache()
		if code == http.StatusOK && status == "up" && ts.metric("eventide_bus_subscribed") == 1 &&
			ts.metric("eventide_security_limiter_fallback_active") == 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.t.Fatalf("%s: the cache is not on Redis (readyz %d, cache %s %q) or the bus does not hear itself (%v) or the throttle is on memory (%v)",
				what, code, status, detail, ts.metric("eventide_bus_subscribed"), ts.metric("eventide_security_limiter_fallback_active"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// onRedisNow reports whether ts's cache reads Redis now (not its memory fallback).
func (ts *testServer) onRedisNow() bool { return ts.app.Cache().Describe() == "redis" }

// checkHA runs one round of cross-replica checks; round keeps names, addresses and titles apart
// between rounds.
// admin and org are sessions made once per test: every login, even a good one, spends the small
// login budget these tests set.
func checkHA(t *testing.T, a, b *testServer, admin, org session, round string) {
	t.Helper()
	a.waitOnRedis("replica a")
	b.waitOnRedis("replica b")
	if st := b.cacheStats(admin).CacheStats; st.Backend != "redis" || st.FallbackActive {
		t.Fatalf("replica b's cache: %+v, want redis without fallback", st)
	}
	id := a.publishedEvent(org, "HA "+round, 10, 24*time.Hour)
	q := `query($id: ID!){ event(id: $id){ attendeeCount title } }`
	var ev struct {
		Event struct {
			AttendeeCount int
			Title         string
		}
	}
	b.mustData("", q, map[string]any{"id": id}, &ev) // b's cache now holds the event
	hitsBefore := a.cacheStats(admin).CacheStats.Hits
	a.mustData("", q, map[string]any{"id": id}, &ev)
	if st := a.cacheStats(admin).CacheStats; st.Hits <= hitsBefore {
		t.Fatalf("a read the event b had just cached and missed (hits %d → %d): the cache is not shared", hitsBefore, st.Hits)
	}

	t.Run(round+"/Invalidation", func(t *testing.T) {
		before := b.metric("eventide_cache_remote_invalidations_total")
		fallbacks := func() float64 {
			return a.metric("eventide_cache_fallbacks_total") + b.metric("eventide_cache_fallbacks_total")
		}
		fellBack := fallbacks()
		fan := a.signUp("Fan " + round)
		a.mustData(fan.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": id}, nil)
		b.mustData("", q, map[string]any{"id": id}, &ev)
		if ev.Event.AttendeeCount != 1 {
			if fallbacks() == fellBack {
				t.Fatalf("b reads attendeeCount %d after a's registration returned, both on Redis throughout", ev.Event.AttendeeCount)
			}
			// A Redis call timed out on a busy machine and a replica served from memory for a
			// moment: then the bound is CACHE_FALLBACK_TTL (TestReplicasAgreeSoonDuringRedisOutage),
			// not read-your-writes.
			bound := time.Now().Add(a.app.Config().CacheFallbackTTL + 2*time.Second)
			for ev.Event.AttendeeCount != 1 {
				if time.Now().After(bound) {
					t.Fatalf("b still reads attendeeCount %d past CACHE_FALLBACK_TTL after a fallback during the check", ev.Event.AttendeeCount)
				}
				time.Sleep(50 * time.Millisecond)
				b.mustData("", q, map[string]any{"id": id}, &ev)
			}
			t.Logf("a replica fell back to memory during the check; b agreed within CACHE_FALLBACK_TTL")
		}
		deadline := time.Now().Add(5 * time.Second)
		for b.metric("eventide_cache_remote_invalidations_total") <= before {
			if time.Now().After(deadline) {
				t.Fatal("b received no invalidation from a over pub/sub")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run(round+"/EventUpdated", func(t *testing.T) {
		c := b.dialWS("graphql-transport-ws", nil)
		c.subscribe("1", `subscription($id: ID!){ eventUpdated(id: $id){ id title attendeeCount } }`, map[string]any{"id": id})
		got := make(chan map[string]any, 1)
		go func() { got <- c.next() }()
		for i := 0; ; i++ {
			a.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
				map[string]any{"id": id, "t": "Renamed " + round + " " + strconv.Itoa(i)}, nil)
			select {
			case m := <-got:
				raw, _ := json.Marshal(m["payload"])
				if m["type"] != "next" || !strings.Contains(string(raw), `"title":"Renamed `+round) {
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

	t.Run(round+"/ThrottleAndSecurityBridge", func(t *testing.T) {
		// Failed logins for one email, alternating between the replicas: the budget is shared, so
		// the attempt after LOGIN_THROTTLE_LIMIT is refused whichever replica it reaches. With
		// two budgets in memory, 2×limit attempts would pass.
		email := fmt.Sprintf("ha-%s@example.com", strings.ToLower(round))
		for i := range haLoginLimit {
			ts := []*testServer{a, b}[i%2]
			client := from(fmt.Sprintf("198.51.100.%d", 10+i))
			if r := ts.login(client, email, "wrong-password"); r.code() != "UNAUTHENTICATED" {
				t.Fatalf("attempt %d: %s", i, r)
			}
		}
		for i, ts := range []*testServer{a, b} {
			if r := ts.login(from(fmt.Sprintf("198.51.100.%d", 50+i)), email, "wrong-password"); r.code() != "RATE_LIMITED" {
				t.Fatalf("attempt %d on replica %d after %d shared: %s, want RATE_LIMITED", haLoginLimit+i, i, haLoginLimit, r)
			}
		}
		// The first attempt (on a) reached b's security log through the bridge.
		deadline := time.Now().Add(5 * time.Second)
		for {
			evs := only(b.securityEvents(admin, map[string]any{"types": []string{"LOGIN_FAILED"}, "ip": "198.51.100.10"}, 10),
				func(e secEvent) bool { return str(e.Email) == email })
			if len(evs) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("b's security log holds %d of a's LOGIN_FAILED events, want 1: %v", len(evs), evs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestRedisSentinel(t *testing.T) {
	s := redistest.StartSentinel(t, redistest.HAOptions{Password: haPassword, SentinelPassword: haSentinelPassword})
	a, b := startHAReplicas(t, s.Addrs(), s.MasterName, haSentinelPassword)
	admin, org := a.admin(), a.organizer("Org")
	checkHA(t, a, b, admin, org, "Before")
	if t.Failed() {
		return
	}
	id := a.publishedEvent(org, "Failover", 10, 24*time.Hour)

	// A manual failover (maintenance): the old master becomes a replica and keeps its
	// connections open, refusing writes (READONLY) until the clients follow the sentinel.
	underLoad(t, a, b, org, id, "manual failover", true, s.ManualFailover)
	// The old master still runs as a master (the sentinel demotes it at its next poll, ~10 s):
	// the bus must not stay subscribed there, or b hears nothing a publishes on the new master.
	busCrosses(t, a, b, org, id, 5*time.Second)
	bridgeCrosses(t, a, b, admin, 5*time.Second)
	s.Demote()
	checkHA(t, a, b, admin, org, "Switched")
	if t.Failed() {
		return
	}
	// The master killed: both servers follow to the promoted replica by themselves.
	underLoad(t, a, b, org, id, "master killed", false, s.Failover)
	checkHA(t, a, b, admin, org, "After")
}

// busCrosses changes the event on a until b counts a remote invalidation, within d.
func busCrosses(t *testing.T, a, b *testServer, org session, id string, d time.Duration) {
	t.Helper()
	before := b.metric("eventide_cache_remote_invalidations_total")
	began := time.Now()
	for i := 0; b.metric("eventide_cache_remote_invalidations_total") <= before; i++ {
		if time.Since(began) > d {
			t.Fatalf("for %v b heard none of a's invalidations over the bus (b resubscribed %v times)", d, b.metric("eventide_bus_resubscribed_total"))
		}
		a.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": id, "t": "Bus " + strconv.Itoa(i)}, nil)
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the bus crosses again %v after the failover check began (b resubscribed %v times)", time.Since(began).Round(time.Millisecond), b.metric("eventide_bus_resubscribed_total"))
}

// bridgeCrosses fails logins on a (from fresh addresses) until b's security log holds one of
// them, within d.
func bridgeCrosses(t *testing.T, a, b *testServer, admin session, d time.Duration) {
	t.Helper()
	began := time.Now()
	for i := 0; ; i++ {
		ip := fmt.Sprintf("203.0.113.%d", 100+i%100)
		a.login(from(ip), fmt.Sprintf("bridge-%d@example.com", i), "wrong-password")
		time.Sleep(100 * time.Millisecond)
		if len(b.securityEvents(admin, map[string]any{"types": []string{"LOGIN_FAILED"}, "ip": ip}, 10)) > 0 {
			t.Logf("the security bridge crosses again %v after the check began", time.Since(began).Round(time.Millisecond))
			return
		}
		if time.Since(began) > d {
			t.Fatalf("for %v b's security log received none of a's events over the bridge", d)
		}
	}
}

// underLoad runs fault under a steady stream of writes and reads on both replicas: every request
// must succeed (the cache serves from memory meanwhile), every read must see the last write
// whichever replica made it (a cache entry lost or kept stale by the failover would show here),
// and both servers must be back on Redis after.
//
// splitBrain marks a fault during which the old master keeps accepting writes after the promotion
// (a manual failover): invalidations sent there before a server follows the sentinel are lost,
// and the entry they should have removed is read from the new master. Those reads are counted
// and logged, not failed: go-redis gives no hook to purge the new master before its first use
// (issue 15 report: purge on a master change, e.g. from FailoverOptions.OnConnect).
func underLoad(t *testing.T, a, b *testServer, org session, id, what string, splitBrain bool, fault func()) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan []string)
	t0 := time.Now()
	var sent, bad, staleInFallback, staleSplit atomic.Int64
	go func() {
		var problems []string
		note := func(format string, args ...any) {
			bad.Add(1)
			if len(problems) < 5 {
				problems = append(problems, fmt.Sprintf(format, args...))
			}
		}
		last := ""
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- problems
				return
			default:
			}
			sent.Add(1)
			ts := []*testServer{a, b}[i%2]
			if i%4 == 0 {
				title := "Failover " + strconv.Itoa(i)
				r := ts.do(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
					map[string]any{"id": id, "t": title})
				if r.Status != http.StatusOK || len(r.Errors) > 0 {
					note("write %d: status %d %v", i, r.Status, r.Errors)
				} else {
					last = title
				}
			} else {
				// A read while either replica is on its memory fallback may be stale: that is
				// issue 15's finding 3 (CACHE_FALLBACK_TTL bounds it), counted here, not failed.
				onRedis := a.onRedisNow() && b.onRedisNow()
				r := ts.do(org.Token, `query($id: ID!){ event(id: $id){ title } }`, map[string]any{"id": id})
				onRedis = onRedis && a.onRedisNow() && b.onRedisNow()
				var out struct{ Event struct{ Title string } }
				switch {
				case r.Status != http.StatusOK || len(r.Errors) > 0:
					note("read %d: status %d %v", i, r.Status, r.Errors)
				case json.Unmarshal(r.Data, &out) != nil:
					note("read %d: %s", i, r.Data)
				case last != "" && out.Event.Title != last && onRedis && splitBrain:
					staleSplit.Add(1)
				case last != "" && out.Event.Title != last && onRedis:
					note("read %d on replica %d at %v, both on Redis: title %q after %q was written", i, i%2, time.Since(t0).Round(time.Millisecond), out.Event.Title, last)
				case last != "" && out.Event.Title != last:
					staleInFallback.Add(1)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	began := time.Now()
	fault()
	promoted := time.Since(began)
	a.waitOnRedis("replica a after the " + what)
	b.waitOnRedis("replica b after the " + what)
	back := time.Since(began)
	time.Sleep(500 * time.Millisecond) // and some more on Redis again
	close(stop)
	if problems := <-done; len(problems) > 0 {
		t.Fatalf("%s: %d of %d requests failed or read a stale title, the first: %v", what, bad.Load(), sent.Load(), problems)
	}
	t.Logf("%s: replica promoted after %v, both servers back on Redis after %v; %d requests meanwhile, none failed; stale: %d with both on Redis (split brain), %d while a replica was on its memory fallback (finding 3)",
		what, promoted.Round(time.Millisecond), back.Round(time.Millisecond), sent.Load(), staleSplit.Load(), staleInFallback.Load())
}

func TestRedisCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3, redistest.HAOptions{Password: haPassword})
	a, b := startHAReplicas(t, c.Addrs(), "", "")
	checkHA(t, a, b, a.admin(), a.organizer("Org"), "Cluster")
}
