package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventide/server/internal/server"
)

// Issue 15, finding 1 (and the DATA_DIR part of 4, SHUTDOWN_DELAY of 5): restarts under
// -supervise refuse no connection, the child dies with its parent, crash loops end, an unusable
// DATA_DIR is a configuration error, and SIGTERM fails /readyz before the listener closes.

// supervisedServer is the built binary running with -supervise.
type supervisedServer struct {
	t      *testing.T
	cmd    *exec.Cmd
	logs   *logLines
	exited chan error
	base   string
}

// superviseEnv is the environment of a supervised test server on port, extra on top.
func superviseEnv(t *testing.T, port int, extra ...string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"APP_ENV=test", "DATA_DIR=" + t.TempDir(), "HOST=127.0.0.1", "PORT=" + strconv.Itoa(port),
		"ADMIN_EMAIL=" + testAdminEmail, "ADMIN_PASSWORD=" + testAdminPassword,
		"JWT_SECRET=supervise-test-secret-supervise-test-secret", // tokens outlive the child
		"LOG_FORMAT=json", "LOG_LEVEL=info", "USE_REDIS=false", "SEED_DEMO=false",
		"THROTTLE_LIMIT=1000000", // the load below is one client address
	}
	return append(env, extra...)
}

func startSupervised(t *testing.T, bin string, port int, env []string) *supervisedServer {
	t.Helper()
	s := &supervisedServer{t: t, logs: &logLines{}, exited: make(chan error, 1),
		base: "http://127.0.0.1:" + strconv.Itoa(port)}
	s.cmd = exec.Command(bin, "-supervise")
	s.cmd.Env = env
	pr, pw := io.Pipe()
	s.cmd.Stdout, s.cmd.Stderr = pw, pw
	s.cmd.WaitDelay = time.Second // an orphaned child may hold the output pipe
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go s.logs.consume(pr)
	go func() { s.exited <- s.cmd.Wait(); _ = pw.Close() }()
	t.Cleanup(func() {
		// Whatever the code under test left behind goes: the parent, then every child it logged.
		_ = s.cmd.Process.Kill()
		for _, pid := range s.children() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("output:\n%s", s.logs.String())
		}
	})
	return s
}

// children returns the pids of the children the supervisor logged as started.
func (s *supervisedServer) children() []int {
	var out []int
	for _, l := range s.logs.rawLines("child started") {
		if pid, err := strconv.Atoi(field(l, "pid")); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

type childInfo struct {
	Pid      int
	Restarts int
}

// login waits for the first child to answer and returns an admin token.
func (s *supervisedServer) login() string {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var out struct{ Login struct{ Token string } }
		if gqlPost(s.base, "", `mutation($e: String!, $p: String!){ login(email: $e, password: $p){ token } }`,
			map[string]any{"e": testAdminEmail, "p": testAdminPassword}, &out) == nil {
			return out.Login.Token
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatal("no child answered within 60s")
	return ""
}

// serving waits until a child other than not answers serverInfo and returns it.
func (s *supervisedServer) serving(token string, not int) childInfo {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		var out struct{ ServerInfo childInfo }
		if gqlPost(s.base, token, `{ serverInfo { pid restarts } }`, nil, &out) == nil && out.ServerInfo.Pid != not {
			return out.ServerInfo
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("no child but %d answered within 60s", not)
	return childInfo{}
}

// wait waits up to d for the parent to exit and returns its exit status.
func (s *supervisedServer) wait(d time.Duration) int {
	s.t.Helper()
	select {
	case err := <-s.exited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			s.t.Fatal(err)
		}
		return 0
	case <-time.After(d):
		s.t.Fatalf("the supervisor still runs %v later", d)
		return -1
	}
}

// load is a steady, light client loop: new connections, one request at a time per worker.
type load struct {
	mu       sync.Mutex
	ok       int
	refused  int
	failed   int      // refused or not
	failures []string // the first 50 failures
	pids     map[int]bool
	restarts int
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startLoad(base, token string, workers int) *load {
	return startLoadWith(restartingClient, base, token, workers)
}

// startLoadWith is startLoad through client (keep-alive or not).
func startLoadWith(client *http.Client, base, token string, workers int) *load {
	l := &load{pids: map[int]bool{}, stop: make(chan struct{})}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				var out struct{ ServerInfo childInfo }
				err := gqlPostWith(client, base, token, `{ serverInfo { pid restarts } }`, nil, &out)
				l.mu.Lock()
				switch {
				case err == nil:
					l.ok++
					l.pids[out.ServerInfo.Pid] = true
					l.restarts = max(l.restarts, out.ServerInfo.Restarts)
				default:
					l.failed++
					if errors.Is(err, syscall.ECONNREFUSED) {
						l.refused++
					}
					if len(l.failures) < 50 {
						l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+err.Error())
					}
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *load) end() {
	close(l.stop)
	l.wg.Wait()
}

func (l *load) snapshot() (ok, refused, failed, restarts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.refused, l.failed, l.restarts
}

// childGone says whether pid has exited (a zombie waiting for its new parent has).
func childGone(pid int) bool {
	if processGone(pid) {
		return true
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	_, after, ok := bytes.Cut(stat, []byte(") "))
	return ok && len(after) > 0 && (after[0] == 'Z' || after[0] == 'X')
}

// supervisedBinary is the binary under test: EVENTIDE_TEST_BIN (an older build, to compare), or
// this package built now.
func supervisedBinary(t *testing.T) string {
	if bin := os.Getenv("EVENTIDE_TEST_BIN"); bin != "" {
		return bin
	}
	return buildServer(t)
}

// TestSupervisedBinary builds the server once and runs it with -supervise, as an operator does.
func TestSupervisedBinary(t *testing.T) {
	bin := supervisedBinary(t)

	// Each child asks for a restart about 0.6 s after it starts (its memory is always over 1 MiB);
	// with a client loop running the whole time, not one request may fail: the parent holds the
	// socket, and the old child drains only once the next one is ready.
	t.Run("MemoryRestartsRefuseNothing", func(t *testing.T) {
		const want = 10
		port := freePort(t)
		s := startSupervised(t, bin, port, superviseEnv(t, port,
			"MEMORY_RESTART_THRESHOLD=1MiB", "MEMORY_CHECK_INTERVAL=200ms", "MEMORY_RESTART_AFTER=3"))
		token := s.login()
		l := startLoad(s.base, token, 3)
		deadline := time.Now().Add(3 * time.Minute)
		for {
			ok, refused, failed, restarts := l.snapshot()
			if failed > 0 || restarts >= want {
				break
			}
			if time.Now().After(deadline) {
				l.end()
				t.Fatalf("%d restarts within 3 minutes (%d requests answered), want %d", restarts, ok, want)
			}
			_ = refused
			time.Sleep(50 * time.Millisecond)
		}
		l.end()
		ok, refused, failed, restarts := l.snapshot()
		t.Logf("%d requests answered by %d children over %d restarts; %d refused, %d failed",
			ok, len(l.pids), restarts, refused, failed)
		if failed > 0 {
			t.Fatalf("%d requests failed (%d refused) across %d restarts, want none:\n%s",
				failed, refused, restarts, strings.Join(l.failures, "\n"))
		}
		if len(l.pids) < want {
			t.Fatalf("%d children answered, want at least %d", len(l.pids), want)
		}
		if bad := s.logs.rawLines("drained child exited with an error"); len(bad) > 0 {
			t.Fatalf("replaced children did not drain cleanly: %q", bad)
		}
		if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := s.wait(40 * time.Second); code != 0 {
			t.Fatalf("exit status %d after SIGTERM, want 0", code)
		}
		for _, pid := range s.children() {
			if !childGone(pid) {
				t.Errorf("child %d still runs after the supervisor exited", pid)
			}
		}
	})

	// kill -9 of the parent ends its child (parent-death signal), so a new supervisor can take
	// the port at once.
	t.Run("KilledParentTakesItsChild", func(t *testing.T) {
		port := freePort(t)
		env := superviseEnv(t, port)
		s := startSupervised(t, bin, port, env)
		token := s.login()
		child := s.serving(token, 0).Pid
		if err := s.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		s.wait(5 * time.Second)
		deadline := time.Now().Add(3 * time.Second)
		for !childGone(child) {
			if time.Now().After(deadline) {
				t.Fatalf("child %d still runs 3s after its parent was killed", child)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The port is free again for the next supervisor, whose child serves.
		s2 := startSupervised(t, bin, port, env)
		if got := s2.serving(s2.login(), 0).Pid; got == child {
			t.Fatalf("the orphan %d answered", got)
		}
		_ = s2.cmd.Process.Signal(syscall.SIGTERM)
		if code := s2.wait(40 * time.Second); code != 0 {
			t.Fatalf("second supervisor: exit status %d, want 0", code)
		}
	})

	// Children killed one after another: each is replaced at once on the same socket (clients
	// wait in the backlog instead of being refused), until SUPERVISE_MAX_RESTARTS crashes, after
	// which the supervisor gives up with exit 1.
	t.Run("CrashLoopGivesUp", func(t *testing.T) {
		const maxRestarts = 3
		port := freePort(t)
		s := startSupervised(t, bin, port, superviseEnv(t, port, "SUPERVISE_MAX_RESTARTS="+strconv.Itoa(maxRestarts)))
		token := s.login()
		l := startLoad(s.base, token, 2)
		pid := 0
		for range maxRestarts {
			pid = s.serving(token, pid).Pid
			time.Sleep(200 * time.Millisecond) // let the load reach this child
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
		pid = s.serving(token, pid).Pid
		l.end()
		ok, refused, _, _ := l.snapshot()
		t.Logf("%d requests answered across %d crashes, %d refused", ok, maxRestarts, refused)
		if refused > 0 {
			t.Errorf("%d connections refused while crashed children were replaced, want none:\n%s",
				refused, strings.Join(l.failures, "\n"))
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if code := s.wait(30 * time.Second); code != 1 {
			t.Fatalf("exit status %d after %d crashes, want 1", code, maxRestarts+1)
		}
		if n := len(s.children()); n != maxRestarts+1 {
			t.Fatalf("%d children started, want %d", n, maxRestarts+1)
		}
		if len(s.logs.rawLines("giving up")) == 0 {
			t.Fatal("the supervisor did not say it gave up")
		}
	})

	// An unusable DATA_DIR under -supervise is exit 2 at once, not a restart loop.
	t.Run("UnusableDataDirExits2", func(t *testing.T) {
		port := freePort(t)
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		s := startSupervised(t, bin, port, superviseEnv(t, port, "DATA_DIR="+file))
		if code := s.wait(30 * time.Second); code != 2 {
			t.Fatalf("exit status %d, want 2", code)
		}
		out := strings.TrimSpace(s.logs.String())
		last := out[strings.LastIndex(out, "\n")+1:]
		if !strings.Contains(last, "DATA_DIR") {
			t.Fatalf("last line %q does not name DATA_DIR", last)
		}
		if n := len(s.children()); n > 1 {
			t.Fatalf("%d children started, want at most 1", n)
		}
	})
}

// TestShutdownDelay: after SIGTERM, /readyz answers 503 for SHUTDOWN_DELAY while requests are
// still served; then the listener closes.
func TestShutdownDelay(t *testing.T) {
	const delay = 1500 * time.Millisecond
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	env := []string{"APP_ENV=test", "PORT=" + strconv.Itoa(port), "HOST=127.0.0.1", "DATA_DIR=" + t.TempDir(),
		"LOG_FORMAT=json", "SHUTDOWN_DELAY=" + delay.String()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, nil, env, io.Discard, logs) }()

	status := func(path string) (int, error) {
		res, err := restartingClient.Get(base + path)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if code, err := status("/readyz"); err == nil && code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 30s:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A keep-alive client is told to close its connection once the delay began, so its next
	// request goes to a new connection (the next process, under -supervise).
	keepAlive := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	closes := func() bool {
		res, err := keepAlive.Get(base + "/healthz")
		if err != nil {
			t.Fatalf("/healthz: %v", err)
		}
		res.Body.Close()
		return res.Close
	}
	if closes() {
		t.Fatal("Connection: close before the stop")
	}

	cancel() // as SIGTERM does
	stopped := time.Now()
	var sawUnready, servedAfter bool
	for time.Since(stopped) < delay/2 {
		code, err := status("/readyz")
		if err != nil {
			t.Fatalf("/readyz %v after the stop: %v, want 503 while the delay runs", time.Since(stopped), err)
		}
		if code == http.StatusServiceUnavailable {
			sawUnready = true
			var out struct {
				Typename string `json:"__typename"`
			}
			if err := gqlPost(base, "", `{ __typename }`, nil, &out); err != nil || out.Typename != "Query" {
				t.Fatalf("a query during the delay: %v, %+v", err, out)
			}
			servedAfter = true
			if !closes() {
				t.Fatal("a response during the delay keeps its connection open")
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !sawUnready || !servedAfter {
		t.Fatalf("readyz 503 seen: %v; query served after it: %v", sawUnready, servedAfter)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run still going 30s after the stop")
	}
	if took := time.Since(stopped); took < delay {
		t.Fatalf("stopped %v after the signal, before SHUTDOWN_DELAY %v", took, delay)
	}
	if _, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second); err == nil {
		t.Fatal("the port still accepts after run returned")
	}
}

// TestRestartFigures measures, for BENCHMARKS.md, the requests refused and failed per memory
// restart under steady light load (3 clients, a request each every 10 ms, new connections). It
// runs only with EVENTIDE_RESTART_FIGURES=N (restarts to measure); EVENTIDE_TEST_BIN selects an
// older binary to compare with.
func TestRestartFigures(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("EVENTIDE_RESTART_FIGURES"))
	if n <= 0 {
		t.Skip("EVENTIDE_RESTART_FIGURES is not set")
	}
	bin := supervisedBinary(t)
	port := freePort(t)
	s := startSupervised(t, bin, port, superviseEnv(t, port,
		"MEMORY_RESTART_THRESHOLD=1MiB", "MEMORY_CHECK_INTERVAL=200ms", "MEMORY_RESTART_AFTER=3"))
	token := s.login()
	client := restartingClient
	if os.Getenv("EVENTIDE_RESTART_KEEPALIVE") != "" {
		client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 3}}
		t.Log("keep-alive connections")
	}
	l := startLoadWith(client, s.base, token, 3)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if _, _, _, restarts := l.snapshot(); restarts >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.end()
	ok, refused, failed, restarts := l.snapshot()
	if restarts == 0 {
		t.Fatal("no restart")
	}
	t.Logf("FIGURES restarts=%d answered=%d refused=%d failed=%d refused_per_restart=%.1f failed_per_restart=%.1f",
		restarts, ok, refused, failed, float64(refused)/float64(restarts), float64(failed)/float64(restarts))
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	s.wait(40 * time.Second)
}
