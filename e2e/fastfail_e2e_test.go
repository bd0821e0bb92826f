package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/eventide/server/config"
)

// TestReplicasAgreeSoonDuringRedisOutage: two replicas on one store lose their shared Redis, so
// neither can tell the other about its writes. A write on a must be visible on b within
// CACHE_FALLBACK_TTL (2s by default) + 1s, not after CACHE_TTL (60s here).
func TestReplicasAgreeSoonDuringRedisOutage(t *testing.T) {
	const fallbackTTL = 2 * time.Second // the default of CACHE_FALLBACK_TTL
	a, b, redis := startReplicasOn(t, func(c *config.Config) {
		c.CacheTTL = 60 * time.Second
		c.ThrottleLimit = 1 << 30
	})
	org := a.organizer("Org")
	id := a.publishedEvent(org, "Before", 10, 24*time.Hour)
	q := `query($id: ID!){ event(id: $id){ title } }`
	title := func(ts *testServer) string {
		var ev struct{ Event struct{ Title string } }
		ts.mustData("", q, map[string]any{"id": id}, &ev)
		return ev.Event.Title
	}

	redis.Stop()
	// Both replicas notice (the first failed call switches to memory) and b caches the event in
	// memory.
	for _, ts := range []*testServer{a, b} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			title(ts)
			if _, _, detail := ts.readyCache(); detail == "memory (fallback)" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no fallback after Redis was killed")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got := title(b); got != "Before" {
		t.Fatalf("b reads %q", got)
	}
	if got := title(b); got != "Before" { // from b's memory now
		t.Fatalf("b reads %q", got)
	}

	for round, want := range []string{"After 1", "After 2"} {
		a.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": id, "t": want}, nil)
		if got := title(a); got != want {
			t.Fatalf("round %d: a reads %q after its own write", round, got)
		}
		written := time.Now()
		bound := written.Add(fallbackTTL + time.Second)
		polls := 0
		for {
			got := title(b)
			polls++
			if got == want {
				t.Logf("round %d: b saw a's write after %v (%d polls)", round, time.Since(written).Round(time.Millisecond), polls)
				break
			}
			if time.Now().After(bound) {
				t.Fatalf("round %d: b still reads %q more than CACHE_FALLBACK_TTL + 1s (%v) after a's write of %q",
					round, got, fallbackTTL+time.Second, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// readyz returns /readyz's status code and how long it took.
func (ts *testServer) readyzTimed() (int, time.Duration) {
	ts.t.Helper()
	began := time.Now()
	res, err := http.Get(ts.base + "/readyz")
	if err != nil {
		ts.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, time.Since(began)
}

// TestDeadStoreFailsFast kills the MongoDB server (the embedded FerretDB, a separate process's
// worth of store behind MONGO_URI) under a steady trickle of queries. Once the driver's monitor
// knows the store is down, requests that need it fail with SERVICE_UNAVAILABLE at once instead of
// waiting out the 5s server selection, /readyz answers at once, and when the store returns the
// server serves again without a restart.
func TestDeadStoreFailsFast(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	ctx := context.Background()
	db := startStoreAt(t, dir, addr)
	cfg := testConfig(t)
	cfg.MongoURI = db.URI()
	cfg.MongoServerSelectionTimeout = 5 * time.Second // the default
	cfg.ThrottleLimit = 1 << 30
	ts := startServer(t, cfg)
	org := ts.organizer("Org")
	id := ts.publishedEvent(org, "Resilient", 10, 24*time.Hour)
	fan := ts.signUp("Fan")
	q := `query($id: ID!){ event(id: $id){ id title } }`
	register := `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`
	// A fresh id each time: never cached, so every such query needs the store.
	uncached := func() map[string]any { return map[string]any{"id": bson.NewObjectID().Hex()} }
	if r := ts.do("", q, uncached()); r.code() != "NOT_FOUND" {
		t.Fatalf("before the outage: %+v", r.Errors)
	}

	// A client keeps querying through the outage; its answers are kept with their times.
	type answer struct {
		began, ended time.Time
		code         string
	}
	var mu sync.Mutex
	var answers []answer
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(halt) // before the server stops, whatever fails below
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			began := time.Now()
			r := ts.do("", q, uncached())
			mu.Lock()
			answers = append(answers, answer{began, time.Now(), r.code()})
			mu.Unlock()
			time.Sleep(10 * time.Millisecond)
		}
	})

	killed := time.Now() // Close kills FerretDB's connections before it returns
	if err := db.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The store is known down when /readyz says so.
	var knownDown time.Time
	for {
		code, _ := ts.readyzTimed()
		if code == http.StatusServiceUnavailable {
			knownDown = time.Now()
			break
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatal("/readyz still 200 15s after the store was killed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("store known down %v after the kill", knownDown.Sub(killed).Round(time.Millisecond))

	for i := range 3 {
		began := time.Now()
		r := ts.do("", q, uncached())
		took := time.Since(began)
		if r.code() != "SERVICE_UNAVAILABLE" {
			t.Fatalf("query %d during the outage: code %q (%+v)", i, r.code(), r.Errors)
		}
		if took > time.Second {
			t.Fatalf("query %d during the outage took %v: not failing fast (server selection waits 5s)", i, took)
		}
		began = time.Now()
		r = ts.do(fan.Token, register, map[string]any{"id": id})
		tookM := time.Since(began)
		if r.code() != "SERVICE_UNAVAILABLE" {
			t.Fatalf("mutation %d during the outage: code %q (%+v)", i, r.code(), r.Errors)
		}
		if tookM > time.Second {
			t.Fatalf("mutation %d during the outage took %v: not failing fast", i, tookM)
		}
		code, tookR := ts.readyzTimed()
		if code != http.StatusServiceUnavailable || tookR > time.Second {
			t.Fatalf("readyz %d during the outage took %v", code, tookR)
		}
		t.Logf("during the outage: query %v, mutation %v, /readyz %v", took.Round(time.Microsecond), tookM.Round(time.Microsecond), tookR.Round(time.Microsecond))
	}
	halt()
	var firstUnavailable time.Time
	for _, a := range answers {
		if a.code == "SERVICE_UNAVAILABLE" {
			firstUnavailable = a.ended
			break
		}
		if a.code != "NOT_FOUND" {
			t.Errorf("during the outage a query got %q", a.code)
		}
	}
	if firstUnavailable.IsZero() {
		t.Fatal("the client saw no SERVICE_UNAVAILABLE")
	}
	t.Logf("client: first SERVICE_UNAVAILABLE %v after the kill, %v after the store was known down (%d answers)",
		firstUnavailable.Sub(killed).Round(time.Millisecond), firstUnavailable.Sub(knownDown).Round(time.Millisecond), len(answers))

	startStoreAt(t, dir, addr)
	back := time.Now()
	if r := ts.untilAnswered(30*time.Second, q, map[string]any{"id": id}); len(r.Errors) > 0 {
		t.Fatalf("not recovered 30s after the store returned: %+v", r.Errors)
	}
	t.Logf("serving again %v after the store returned", time.Since(back).Round(time.Millisecond))
	if r := ts.do(fan.Token, register, map[string]any{"id": id}); len(r.Errors) > 0 {
		t.Fatalf("mutation after recovery: %+v", r.Errors)
	}
	if code, _ := ts.readyzTimed(); code != http.StatusOK {
		t.Fatalf("readyz %d after recovery", code)
	}
}

// hangProxy forwards TCP to a target until hang is set; from then on it forwards nothing in either
// direction and accepts new connections without answering: a store that hangs rather than dies.
type hangProxy struct {
	l      net.Listener
	target string
	hang   atomic.Bool
	done   chan struct{}
	mu     sync.Mutex
	conns  []net.Conn
}

func startHangProxy(t *testing.T, target string) *hangProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &hangProxy{l: l, target: target, done: make(chan struct{})}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		close(p.done)
		_ = l.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			if p.hang.Load() {
				continue // accepted, never answered
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, up)
			p.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				buf := make([]byte, 32<<10)
				for {
					n, err := src.Read(buf)
					if err != nil {
						_ = dst.Close()
						return
					}
					for p.hang.Load() { // hold the bytes: the store hangs
						select {
						case <-p.done:
							return
						case <-time.After(10 * time.Millisecond):
						}
					}
					if _, err := dst.Write(buf[:n]); err != nil {
						return
					}
				}
			}
			wg.Go(func() { pipe(up, c) })
			wg.Go(func() { pipe(c, up) })
		}
	})
	return p
}

// TestShutdownWithHungStore: the store hangs (accepts, never answers) while a request waits on
// it, and the server is shut down with a 2s SHUTDOWN_TIMEOUT. The request is answered
// SERVICE_UNAVAILABLE (not INTERNAL_SERVER_ERROR from a closed connection pool) and the shutdown
// ends cleanly within the timeout.
func TestShutdownWithHungStore(t *testing.T) {
	ctx := context.Background()
	db := startStore(t)
	proxy := startHangProxy(t, db.Addr())
	cfg := testConfig(t)
	cfg.MongoURI = strings.Replace(db.URI(), db.Addr(), proxy.l.Addr().String(), 1)
	cfg.MongoConnectTimeout = 30 * time.Second // the heartbeat does not notice the hang in this test
	const shutdownTimeout = 2 * time.Second
	cfg.ShutdownTimeout = shutdownTimeout
	ts := startServer(t, cfg)
	q := `query($id: ID!){ event(id: $id){ id title } }`
	if r := ts.do("", q, map[string]any{"id": bson.NewObjectID().Hex()}); r.code() != "NOT_FOUND" {
		t.Fatalf("before the hang: %+v", r.Errors)
	}

	proxy.hang.Store(true)
	got := make(chan *gqlResponse, 1)
	go func() {
		body, _ := json.Marshal(map[string]any{"query": q, "variables": map[string]any{"id": bson.NewObjectID().Hex()}})
		res, err := http.Post(ts.base+"/graphql", "application/json", bytes.NewReader(body))
		if err != nil {
			got <- &gqlResponse{Errors: []gqlError{{Message: err.Error()}}}
			return
		}
		defer res.Body.Close()
		var r gqlResponse
		_ = json.NewDecoder(res.Body).Decode(&r)
		got <- &r
	}()
	time.Sleep(300 * time.Millisecond) // the request is now waiting on the hung store
	select {
	case r := <-got:
		t.Fatalf("the request was answered before the shutdown: %+v", r)
	default:
	}

	ts.down.Store(true) // this test shuts the server down itself
	sctx, cancel := context.WithTimeout(ctx, shutdownTimeout)
	defer cancel()
	began := time.Now()
	err := ts.app.Shutdown(sctx)
	took := time.Since(began)
	t.Logf("shutdown took %v (SHUTDOWN_TIMEOUT %v): %v", took.Round(time.Millisecond), shutdownTimeout, err)
	if err != nil {
		t.Errorf("shutdown with a hung store: %v (took %v)", err, took)
	}
	select {
	case r := <-got:
		if r.code() != "SERVICE_UNAVAILABLE" {
			t.Errorf("the request in flight got %q: %+v", r.code(), r.Errors)
		}
	case <-time.After(5 * time.Second):
		t.Error("the request in flight got no answer")
	}
	proxy.hang.Store(false)
}

// TestRecoveredReplicaPublishesItsWrites: a replica that wrote while Redis was down could not tell
// the others; when Redis is back it sends them those invalidations (so that, for one, their open
// sessions re-check a user it changed).
func TestRecoveredReplicaPublishesItsWrites(t *testing.T) {
	a, b, redis := startReplicasOn(t, func(c *config.Config) { c.ThrottleLimit = 1 << 30 })
	org := a.organizer("Org")
	id := a.publishedEvent(org, "Before", 10, 24*time.Hour)
	q := `query($id: ID!){ event(id: $id){ title } }`
	waitCache := func(ts *testServer, want string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			ts.mustData("", q, map[string]any{"id": id}, nil)
			if _, _, detail := ts.readyCache(); detail == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("cache not %q", want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	redis.Stop()
	waitCache(a, "memory (fallback)")
	waitCache(b, "memory (fallback)")
	a.mustData(org.Token, `mutation($id: ID!){ updateEvent(id: $id, input: {title: "During"}){ id } }`, map[string]any{"id": id}, nil)
	before := b.metric("eventide_cache_remote_invalidations_total")

	redis.Restart()
	waitCache(a, "redis")
	waitCache(b, "redis")
	deadline := time.Now().Add(10 * time.Second)
	for b.metric("eventide_cache_remote_invalidations_total") <= before {
		if time.Now().After(deadline) {
			t.Fatal("b heard nothing of a's write during the outage 10s after Redis returned")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
