package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventide/server/config"
	"github.com/eventide/server/internal/server"
	"github.com/eventide/server/internal/syncbuf"
	"github.com/eventide/server/internal/testutil"
	"github.com/eventide/server/store/embedded"
)

const (
	testAdminEmail    = "admin@test.local"
	testAdminPassword = "admin-password"
)

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = syncbuf.Buffer

// testServer is a real server on a loopback port over the embedded store in a temp dir.
type testServer struct {
	t    testing.TB
	app  *server.App
	base string
	logs *syncBuffer
	down atomic.Bool
}

// testConfig is the test environment's configuration with a free port and a temp data dir.
func testConfig(t testing.TB) *config.Config {
	t.Helper()
	cfg, err := config.Defaults(config.EnvTest)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port = 0
	cfg.Host = "127.0.0.1"
	cfg.DataDir = t.TempDir()
	cfg.JWTSecret = "test-secret-test-secret-test-secret!"
	cfg.PasswordHashCost = 4
	cfg.AdminEmail, cfg.AdminPassword = testAdminEmail, testAdminPassword
	cfg.SeedDemo = false
	// Tests sign up many users from one loopback address; the sign-up budget has its own tests.
	cfg.SignupThrottleLimit = 1 << 20
	cfg.LogLevel = "info"
	cfg.ShutdownTimeout = 10 * time.Second
	// The websocket tests run against both transports: the default (lean) here, and .ci/run runs
	// them again with EVENTIDE_TEST_WS_TRANSPORT=gqlgen.
	if v := os.Getenv("EVENTIDE_TEST_WS_TRANSPORT"); v != "" {
		cfg.WSTransport = v
	}
	return cfg
}

// startServer starts a server with cfg (testConfig when nil); it is shut down at cleanup.
func startServer(t testing.TB, cfg *config.Config) *testServer {
	t.Helper()
	ts, err := tryStartServer(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// tryStartServer is startServer returning the start-up error (with the server's logs) instead
// of failing the test: safe to call from several goroutines at once.
func tryStartServer(t testing.TB, cfg *config.Config) (*testServer, error) {
	if cfg == nil {
		cfg = testConfig(t)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := server.Start(context.Background(), cfg, log)
	if err != nil {
		return nil, fmt.Errorf("start: %w\nlogs:\n%s", err, logs.String())
	}
	ts := &testServer{t: t, app: a, base: "http://" + a.Addr(), logs: logs}
	t.Cleanup(func() { ts.stop() })
	return ts, nil
}

// startStore starts the in-process FerretDB (the MongoDB wire protocol) in a temp dir, for a
// server to use through MONGO_URI; it is closed with the test.
func startStore(t testing.TB) *embedded.Server {
	t.Helper()
	return startStoreAt(t, t.TempDir(), "")
}

// startStoreAt starts the in-process FerretDB on dir at addr ("": a free port), as a separate
// store a test can stop and start again on the same data; it is closed with the test.
func startStoreAt(t testing.TB, dir, addr string) *embedded.Server {
	t.Helper()
	db, err := embedded.Start(context.Background(), embedded.Options{Dir: dir, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
	return db
}

// buildServer builds the eventide command (the module root, package main) into a temporary
// directory and returns the binary's path.
func buildServer(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "eventide")
	cmd := exec.Command("go", "build", "-o", bin, "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func (ts *testServer) stop() {
	if ts.down.Swap(true) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := ts.app.Shutdown(ctx); err != nil {
		ts.t.Errorf("shutdown: %v", err)
	}
}

// gqlResponse is a GraphQL response with errors kept apart.
type gqlResponse struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (r *gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// do posts a GraphQL request, with a bearer token when token is not empty.
func (ts *testServer) do(token, query string, vars map[string]any) *gqlResponse {
	ts.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return ts.send(req)
}

func (ts *testServer) send(req *http.Request) *gqlResponse {
	ts.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("request: %v", err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := &gqlResponse{Status: res.StatusCode}
	if err := json.Unmarshal(raw, out); err != nil {
		ts.t.Fatalf("response %d is not JSON: %v: %s", res.StatusCode, err, raw)
	}
	return out
}

// untilAnswered repeats an anonymous request until it is answered without errors or d has
// passed, and returns the last answer.
func (ts *testServer) untilAnswered(d time.Duration, query string, vars map[string]any) *gqlResponse {
	ts.t.Helper()
	var r *gqlResponse
	testutil.Within(d, func() bool {
		r = ts.do("", query, vars)
		return len(r.Errors) == 0
	})
	return r
}

// mustData runs a request that must succeed and decodes its data into dst.
func (ts *testServer) mustData(token, query string, vars map[string]any, dst any) {
	ts.t.Helper()
	r := ts.do(token, query, vars)
	if len(r.Errors) > 0 || r.Status != http.StatusOK {
		ts.t.Fatalf("unexpected errors (status %d): %+v", r.Status, r.Errors)
	}
	if dst != nil {
		if err := json.Unmarshal(r.Data, dst); err != nil {
			ts.t.Fatalf("decode %s: %v", r.Data, err)
		}
	}
}

// mustCode runs a request that must fail with code.
func (ts *testServer) mustCode(code, token, query string, vars map[string]any) *gqlResponse {
	ts.t.Helper()
	r := ts.do(token, query, vars)
	if r.code() != code {
		ts.t.Fatalf("code = %q, want %q (status %d, errors %+v, data %s)", r.code(), code, r.Status, r.Errors, r.Data)
	}
	return r
}

type session struct {
	Token string
	ID    string
}

var userSeq atomic.Int64

// signUp creates a fresh USER and returns its session.
func (ts *testServer) signUp(name string) session {
	ts.t.Helper()
	email := fmt.Sprintf("%s-%d-%d@example.com", strings.ToLower(strings.ReplaceAll(name, " ", ".")), time.Now().UnixNano(), userSeq.Add(1))
	var out struct {
		SignUp struct {
			Token string
			User  struct{ ID string }
		}
	}
	ts.mustData("", `mutation($i: SignUpInput!){ signUp(input: $i){ token user { id } } }`,
		map[string]any{"i": map[string]any{"email": email, "password": "password-123", "name": name}}, &out)
	return session{Token: out.SignUp.Token, ID: out.SignUp.User.ID}
}

func (ts *testServer) admin() session {
	ts.t.Helper()
	var out struct {
		Login struct {
			Token string
			User  struct{ ID string }
		}
	}
	ts.mustData("", `mutation($e: String!, $p: String!){ login(email: $e, password: $p){ token user { id } } }`,
		map[string]any{"e": testAdminEmail, "p": testAdminPassword}, &out)
	return session{Token: out.Login.Token, ID: out.Login.User.ID}
}

// organizer signs up a user and makes it an ORGANIZER.
func (ts *testServer) organizer(name string) session {
	ts.t.Helper()
	s := ts.signUp(name)
	ts.mustData(ts.admin().Token, `mutation($u: ID!){ setUserRole(userId: $u, role: ORGANIZER){ id role } }`,
		map[string]any{"u": s.ID}, nil)
	return s
}

// publishedEvent creates and publishes an event organized by org.
func (ts *testServer) publishedEvent(org session, title string, capacity int, startsIn time.Duration) string {
	ts.t.Helper()
	id := ts.draftEvent(org, title, capacity, startsIn)
	ts.mustData(org.Token, `mutation($id: ID!){ publishEvent(id: $id){ id status } }`, map[string]any{"id": id}, nil)
	return id
}

func (ts *testServer) draftEvent(org session, title string, capacity int, startsIn time.Duration) string {
	ts.t.Helper()
	start := time.Now().Add(startsIn).UTC()
	created := start
	if startsIn < time.Minute {
		// A new event may not start in the past: make it later, then move it back.
		created = time.Now().Add(time.Hour).UTC()
	}
	var out struct{ CreateEvent struct{ ID string } }
	ts.mustData(org.Token, `mutation($i: CreateEventInput!){ createEvent(input: $i){ id } }`, map[string]any{"i": map[string]any{
		"title": title, "startsAt": created.Format(time.RFC3339), "endsAt": created.Add(2 * time.Hour).Format(time.RFC3339),
		"capacity": capacity, "tags": []string{"test"},
	}}, &out)
	if !created.Equal(start) {
		ts.moveEvent(org, out.CreateEvent.ID, start, start.Add(2*time.Hour))
	}
	return out.CreateEvent.ID
}

// moveEvent sets an event's times with updateEvent (which, unlike createEvent, may put an event
// in the past).
func (ts *testServer) moveEvent(org session, id string, start, end time.Time) {
	ts.t.Helper()
	ts.mustData(org.Token, `mutation($id: ID!, $i: UpdateEventInput!){ updateEvent(id: $id, input: $i){ id } }`, map[string]any{
		"id": id, "i": map[string]any{"startsAt": start.Format(time.RFC3339Nano), "endsAt": end.Format(time.RFC3339Nano)}}, nil)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// metrics reads every sample of one /metrics scrape, keyed by the name with its labels as
// printed (`x_total{result="failed"}`).
func (ts *testServer) metrics() map[string]float64 {
	ts.t.Helper()
	res, err := http.Get(ts.base + "/metrics")
	if err != nil {
		ts.t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(res.Body)
	out := map[string]float64{}
	for line := range strings.SplitSeq(buf.String(), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		f, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = f
		}
	}
	return out
}
