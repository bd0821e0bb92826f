package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventide/server/internal/server"
	"github.com/eventide/server/memstats"
)

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// logLines is a process's JSON log lines (slog's JSON handler) as they arrive, with any other
// output (the supervisor's text lines) kept as raw text.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
}

func (l *logLines) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l.mu.Lock()
		l.raw.Write(sc.Bytes())
		l.raw.WriteByte('\n')
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			l.lines = append(l.lines, m)
		}
		l.mu.Unlock()
	}
}

// with returns the JSON lines whose msg is msg.
func (l *logLines) with(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, m := range l.lines {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

// httpClient is a client for a server that comes and goes: no connection reuse, short timeouts.
var restartingClient = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// gqlPost sends one GraphQL request to base and decodes its data into dst; an error means no
// answer (the server is restarting) or an answer with errors.
func gqlPost(base, token, query string, vars map[string]any, dst any) error {
	return gqlPostWith(restartingClient, base, token, query, vars, dst)
}

// gqlPostWith is gqlPost through client.
func gqlPostWith(client *http.Client, base, token, query string, vars map[string]any, dst any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var out struct {
		Data   json.RawMessage
		Errors []gqlError
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return fmt.Errorf("status %d: %w", res.StatusCode, err)
	}
	if len(out.Errors) > 0 {
		return fmt.Errorf("status %d: %+v", res.StatusCode, out.Errors)
	}
	return json.Unmarshal(out.Data, dst)
}

// processGone says whether pid no longer names a process (a zombie still does).
func processGone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// TestSuperviseRestartsOnMemory runs the built binary with -supervise and a restart threshold
// every process is over: each child serves, its watchdog asks for a restart after
// MEMORY_RESTART_AFTER checks, the parent starts the next one (serverInfo shows a new pid and one
// more restart), and SIGTERM to the parent ends both, with exit status 0 and no process left.
func TestSuperviseRestartsOnMemory(t *testing.T) {
	bin := buildServer(t)
	port := freePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	const after = 4 // MEMORY_RESTART_AFTER x MEMORY_CHECK_INTERVAL: each child serves about 1.2s
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"APP_ENV=test", "DATA_DIR=" + t.TempDir(), "HOST=127.0.0.1", "PORT=" + strconv.Itoa(port),
		"ADMIN_EMAIL=" + testAdminEmail, "ADMIN_PASSWORD=" + testAdminPassword,
		"JWT_SECRET=supervise-test-secret-supervise-test-secret", // tokens outlive the child
		"MEMORY_RESTART_THRESHOLD=1MiB", "MEMORY_CHECK_INTERVAL=300ms", "MEMORY_RESTART_AFTER=" + strconv.Itoa(after),
		"LOG_FORMAT=json", "LOG_LEVEL=info", "USE_REDIS=false", "SEED_DEMO=false",
	}
	cmd := exec.Command(bin, "-supervise")
	cmd.Env = env
	logs := &logLines{}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go logs.consume(pr)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); _ = pw.Close() }()
	parent := cmd.Process.Pid
	defer func() {
		if !processGone(parent) {
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("output:\n%s", logs.String())
		}
	}()

	// Sign in once (the token survives restarts: JWT_SECRET is set), then watch serverInfo.
	type info struct {
		Pid      int
		Restarts int
	}
	var token string
	var seen []info // one entry per child answering, in order
	deadline := time.Now().Add(90 * time.Second)
	for len(seen) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("saw children %+v within 90s, want 3", seen)
		}
		if token == "" {
			var out struct{ Login struct{ Token string } }
			if gqlPost(base, "", `mutation($e: String!, $p: String!){ login(email: $e, password: $p){ token } }`,
				map[string]any{"e": testAdminEmail, "p": testAdminPassword}, &out) == nil {
				token = out.Login.Token
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		var out struct{ ServerInfo info }
		if err := gqlPost(base, token, `{ serverInfo { pid restarts } }`, nil, &out); err != nil {
			time.Sleep(50 * time.Millisecond) // between two children
			continue
		}
		// During a memory restart the old child still answers until the next one is ready and
		// it has drained (they share the socket): a reply from a child older than the newest one
		// seen is that overlap, not a step back.
		if i := out.ServerInfo; len(seen) == 0 || i.Restarts > seen[len(seen)-1].Restarts {
			seen = append(seen, i)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("children seen: %+v", seen)
	for k, c := range seen {
		if c.Pid == parent || c.Pid == os.Getpid() {
			t.Fatalf("serverInfo pid %d is the supervisor's or the test's", c.Pid)
		}
		if k > 0 && (c.Pid == seen[k-1].Pid || c.Restarts <= seen[k-1].Restarts) {
			t.Fatalf("child %+v after %+v: want a new pid and more restarts", c, seen[k-1])
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("parent after SIGTERM: %v, want exit status 0", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("parent still running 40s after SIGTERM")
	}

	// Every child the supervisor started is gone, not only those that answered.
	var started []int
	for _, l := range logs.rawLines("child started") {
		pid, err := strconv.Atoi(field(l, "pid"))
		if err != nil {
			t.Fatalf("child started line %q", l)
		}
		started = append(started, pid)
	}
	if len(started) < len(seen) {
		t.Fatalf("the supervisor logged %d children started, %d answered", len(started), len(seen))
	}
	for _, pid := range started {
		if !processGone(pid) {
			t.Errorf("child %d is still there after the parent exited", pid)
		}
	}

	// Each restart was asked for only after MEMORY_RESTART_AFTER checks over the threshold, and
	// the parent saw the status it means.
	asked := logs.with("memory still over the restart threshold after freeing memory: asking for a restart")
	if len(asked) < len(seen)-1 {
		t.Fatalf("%d restarts asked for, %d children seen", len(asked), len(seen))
	}
	for _, m := range asked {
		if m["checks_over"] != float64(after) || m["exit_code"] != float64(memstats.ExitRestart) {
			t.Fatalf("restart asked with %v", m)
		}
	}
	if n := len(logs.with("memory over the restart threshold")); n < after*len(asked) {
		t.Fatalf("%d checks over the threshold logged for %d restarts, want %d each", n, len(asked), after)
	}
	if n := len(logs.rawLines("child asked for a restart")); n < len(seen)-1 {
		t.Fatalf("the supervisor saw %d restart requests", n)
	}
	// None when the stop came between two children.
	if s := logs.rawLines("child stopped"); len(s) > 1 {
		t.Fatalf("want at most one child stopped line, at the end, got %q", s)
	}
}

// rawLines returns the output lines that contain s (the supervisor writes text lines).
func (l *logLines) rawLines(s string) []string {
	var out []string
	for line := range strings.SplitSeq(l.String(), "\n") {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// field returns the value of key=value in a slog text line.
func field(line, key string) string {
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// TestRunAsksForRestartWithExit75 runs the server unsupervised with a restart threshold it is
// over: after MEMORY_RESTART_AFTER checks it drains and run's error maps to exit status 75,
// which systemd (RestartForceExitStatus=75) or Kubernetes restart on.
func TestRunAsksForRestartWithExit75(t *testing.T) {
	logs := &syncBuffer{}
	env := []string{"APP_ENV=test", "PORT=0", "HOST=127.0.0.1", "DATA_DIR=" + t.TempDir(), "LOG_FORMAT=json",
		"LOG_LEVEL=info", "MEMORY_RESTART_THRESHOLD=1MiB", "MEMORY_CHECK_INTERVAL=100ms", "MEMORY_RESTART_AFTER=3"}
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- server.Run(context.Background(), nil, env, io.Discard, logs) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("run still serving 30s later:\n%s", logs)
	}
	if took := time.Since(began); took < 300*time.Millisecond {
		t.Fatalf("restarted after %v, before 3 checks of 100ms", took)
	}
	var stderr bytes.Buffer
	if code := server.ExitCode(err, &stderr); code != 75 {
		t.Fatalf("exit status %d (%v), want 75\n%s", code, err, logs)
	}
	if !strings.Contains(stderr.String(), "MEMORY_RESTART_THRESHOLD") {
		t.Fatalf("stderr %q does not say why", stderr.String())
	}
	for _, want := range []string{`"checks_over":3`, "draining, then exiting to be restarted", "stopped cleanly"} {
		if !strings.Contains(logs.String(), want) {
			t.Fatalf("logs lack %q:\n%s", want, logs)
		}
	}
}

// TestRunStoppedDuringStartUp: a stop (SIGTERM) that arrives while the server is still starting
// is a clean exit, status 0, not a failed start-up; a supervisor stopping a child it has just
// started must not report an error.
func TestRunStoppedDuringStartUp(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	logs := &syncBuffer{}
	err := server.Run(ctx, nil, []string{"APP_ENV=test", "PORT=0", "HOST=127.0.0.1", "DATA_DIR=" + t.TempDir(), "LOG_FORMAT=json"}, io.Discard, logs)
	if code := server.ExitCode(err, io.Discard); code != 0 {
		t.Fatalf("exit status %d (%v), want 0\n%s", code, err, logs)
	}
	if strings.Contains(logs.String(), "start-up failed") {
		t.Fatalf("a stop logged as a failure:\n%s", logs)
	}
}
