package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/config"
	"github.com/eventide/server/internal/server"
)

// TestLogFileRotation writes through the logger run builds from LOG_FILE, LOG_MAX_SIZE_MB=1 and
// LOG_MAX_BACKUPS=2 until it has rotated several times: the directory holds the live file and at
// most two compressed backups, none over 1 MiB, all of JSON lines.
func TestLogFileRotation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "logs", "eventide.log") // the directory is created
	cfg, err := config.Load(config.Sources{Environ: []string{"APP_ENV=test", "LOG_FILE=" + file,
		"LOG_MAX_SIZE_MB=1", "LOG_MAX_BACKUPS=2", "LOG_FORMAT=json", "LOG_LEVEL=info"}})
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	log, closer, err := server.NewLogger(cfg, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	const total = 9 << 19 // 4.5 MiB: four rotations
	pad := strings.Repeat("x", 160)
	written := 0
	for i := 0; written < total; i++ {
		log.Info("request", "n", i, "pad", pad)
		written += 230 // about one line
	}
	if err := closer.Close(); err != nil {
		t.Fatal(err)
	}
	if stderr.Len() > 0 {
		t.Fatalf("wrote to stderr with LOG_FILE set: %q", stderr.String())
	}

	// Compression and pruning of backups run on lumberjack's own goroutine: wait for them.
	var names []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		entries, err := os.ReadDir(filepath.Dir(file))
		if err != nil {
			t.Fatal(err)
		}
		names = names[:0]
		settled := true
		for _, e := range entries {
			names = append(names, e.Name())
			if e.Name() != "eventide.log" && !strings.HasSuffix(e.Name(), ".log.gz") {
				settled = false // a backup not compressed yet
			}
		}
		if settled && len(names) <= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("files %v 20s after closing, want eventide.log and at most 2 .gz backups", names)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(names) != 3 || !slices.Contains(names, "eventide.log") {
		t.Fatalf("files %v, want eventide.log and 2 compressed backups after 4 rotations", names)
	}
	lines := 0
	for _, name := range names {
		path := filepath.Join(filepath.Dir(file), name)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 1<<20 {
			t.Errorf("%s is %d bytes, over LOG_MAX_SIZE_MB=1", name, fi.Size())
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(name, ".gz") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			r = zr
		}
		raw, err := io.ReadAll(r)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.HasSuffix(name, ".gz") && (len(raw) > 1<<20 || len(raw) < 1<<19) {
			t.Errorf("%s holds %d bytes, want a full file of up to 1 MiB", name, len(raw))
		}
		for l := range bytes.Lines(raw) {
			if !json.Valid(l) {
				t.Fatalf("%s: not a JSON line: %q", name, l)
			}
			lines++
		}
		t.Logf("%s: %d bytes on disk, %d bytes of log", name, fi.Size(), len(raw))
	}
	if lines == 0 {
		t.Fatal("no lines")
	}
}

// logRecords reads JSON log lines from a file.
func logRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("LOG_FORMAT=json wrote a line that is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// runLogged starts run with env in the background and returns its base URL (from the listening
// line) once it serves; stop ends it and waits for run to return.
func runLogged(t *testing.T, env []string, listening func() string) (base string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- server.Run(ctx, nil, env, io.Discard, io.Discard) }()
	stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("run did not return")
		}
	}
	for deadline := time.Now().Add(30 * time.Second); base == ""; {
		select {
		case err := <-done:
			t.Fatalf("run returned %v before listening", err)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatal("no listening line within 30s")
		}
		time.Sleep(20 * time.Millisecond)
		base = listening()
	}
	return base, stop
}

// request sends one request with a request id and returns its status.
func request(t *testing.T, method, url, id, body string) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("X-Request-ID", id)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if got := res.Header.Get("X-Request-ID"); got != id {
		t.Fatalf("X-Request-ID %q, want %q kept", got, id)
	}
	return res.StatusCode
}

// TestLogsOfARunningServer runs the server with LOG_FILE, LOG_FORMAT=json, LOG_LEVEL=debug and
// MEMORY_LOG_INTERVAL=200ms: every line is JSON, each request has exactly one access-log line
// (method, path, operation, status, duration, request id, client; /healthz at debug), and the
// memory line comes every interval with RSS, heap, goroutines and GC figures.
func TestLogsOfARunningServer(t *testing.T) {
	file := filepath.Join(t.TempDir(), "eventide.log")
	env := []string{"APP_ENV=test", "PORT=0", "HOST=127.0.0.1", "DATA_DIR=" + t.TempDir(),
		"LOG_FILE=" + file, "LOG_FORMAT=json", "LOG_LEVEL=debug", "MEMORY_LOG_INTERVAL=200ms"}
	base, stop := runLogged(t, env, func() string {
		if _, err := os.Stat(file); err != nil {
			return ""
		}
		for _, m := range logRecords(t, file) {
			if m["msg"] == "listening" {
				return m["addr"].(string)
			}
		}
		return ""
	})
	began := time.Now()
	if s := request(t, http.MethodPost, base+"/graphql", "e2e-graphql", `{"query":"query Ping { __typename }","operationName":"Ping"}`); s != 200 {
		t.Fatalf("graphql %d", s)
	}
	if s := request(t, http.MethodGet, base+"/healthz", "e2e-healthz", ""); s != 200 {
		t.Fatalf("healthz %d", s)
	}
	if s := request(t, http.MethodGet, base+"/nowhere", "e2e-404", ""); s != 404 {
		t.Fatalf("unknown path %d", s)
	}
	time.Sleep(time.Until(began.Add(700 * time.Millisecond))) // three memory lines or so
	stop()

	recs := logRecords(t, file)
	byID := map[string][]map[string]any{}
	var memory []map[string]any
	for _, m := range recs {
		if m["msg"] == "request" {
			id, _ := m["request_id"].(string)
			byID[id] = append(byID[id], m)
		}
		if m["msg"] == "memory" {
			memory = append(memory, m)
		}
	}
	for _, tc := range []struct {
		id, level, method, path, op string
		status                      float64
	}{
		{"e2e-graphql", "INFO", "POST", "/graphql", "Ping", 200},
		{"e2e-healthz", "DEBUG", "GET", "/healthz", "", 200},
		{"e2e-404", "INFO", "GET", "/nowhere", "", 404},
	} {
		lines := byID[tc.id]
		if len(lines) != 1 {
			t.Errorf("%s: %d access-log lines, want 1: %v", tc.id, len(lines), lines)
			continue
		}
		l := lines[0]
		d, ok := l["duration_ms"].(float64)
		if l["level"] != tc.level || l["method"] != tc.method || l["path"] != tc.path || l["operation"] != tc.op ||
			l["status"] != tc.status || !ok || d < 0 || d > 10_000 || l["client"] != "127.0.0.1" {
			t.Errorf("%s: access log %v, want level %s, %s %s, operation %q, status %v, a duration, client 127.0.0.1",
				tc.id, l, tc.level, tc.method, tc.path, tc.op, tc.status)
		}
	}

	if len(memory) < 2 {
		t.Fatalf("%d memory lines in about 700ms with MEMORY_LOG_INTERVAL=200ms, want 2 or more", len(memory))
	}
	var prev time.Time
	for _, m := range memory {
		for _, k := range []string{"rss_bytes", "heap_alloc_bytes", "heap_inuse_bytes", "total_bytes", "goroutines", "gc_cycles"} {
			if v, ok := m[k].(float64); !ok || (v <= 0 && k != "gc_cycles") {
				t.Fatalf("memory line %v: %s missing or not positive", m, k)
			}
		}
		if _, ok := m["last_gc_pause"]; !ok || m["component"] != "memory" || m["level"] != "INFO" {
			t.Fatalf("memory line %v: want last_gc_pause, component memory, level INFO", m)
		}
		at, err := time.Parse(time.RFC3339Nano, m["time"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if !prev.IsZero() && at.Sub(prev) < 150*time.Millisecond {
			t.Fatalf("memory lines %v apart, want one per 200ms", at.Sub(prev))
		}
		prev = at
	}
	t.Logf("%d memory lines; last: %v", len(memory), memory[len(memory)-1])
}

// TestTextLogsAtInfo: LOG_FORMAT=text writes key=value lines to stderr, and at LOG_LEVEL=info the
// health check's access-log line (debug) is left out while a GraphQL request's is kept.
func TestTextLogsAtInfo(t *testing.T) {
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	env := []string{"APP_ENV=test", "PORT=0", "HOST=127.0.0.1", "DATA_DIR=" + t.TempDir(), "LOG_FORMAT=text", "LOG_LEVEL=info"}
	go func() { done <- server.Run(ctx, nil, env, io.Discard, logs) }()
	base := ""
	for deadline := time.Now().Add(30 * time.Second); base == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("not listening:\n%s", logs)
		}
		for line := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(line, "msg=listening") {
				base = field(line, "addr")
			}
		}
	}
	request(t, http.MethodGet, base+"/healthz", "text-healthz", "")
	request(t, http.MethodPost, base+"/graphql", "text-graphql", `{"query":"query Hello { __typename }"}`)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Contains(out, "text-healthz") {
		t.Fatalf("the /healthz line is logged at info:\n%s", out)
	}
	var line string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.Contains(l, "request_id=text-graphql") {
			line = l
		}
	}
	want := []string{"level=INFO", "msg=request", "method=POST", "path=/graphql", "operation=Hello", "status=200", "client=127.0.0.1"}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Fatalf("access-log line %q lacks %s", line, w)
		}
	}
	if strings.HasPrefix(strings.TrimSpace(out), "{") {
		t.Fatalf("LOG_FORMAT=text wrote JSON:\n%s", fmt.Sprint(out[:min(len(out), 300)]))
	}
}

// TestAccessLogNamesTheClientBehindAProxy: the access log's client is the address the server
// believes, as security events and the throttle do: X-Forwarded-For from a trusted proxy, the
// peer's address otherwise.
func TestAccessLogNamesTheClientBehindAProxy(t *testing.T) {
	cfg := testConfig(t)
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	ts := startServer(t, cfg)
	untrusting := startServer(t, nil)
	send := func(ts *testServer, id string) string {
		req, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", strings.NewReader(`{"query":"{ __typename }"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-ID", id)
		req.Header.Set("X-Forwarded-For", "203.0.113.7")
		ts.send(req)
		for line := range strings.SplitSeq(ts.logs.String(), "\n") {
			if strings.Contains(line, "msg=request") && strings.Contains(line, "request_id="+id) {
				return field(line, "client")
			}
		}
		t.Fatalf("no access-log line for %s:\n%s", id, ts.logs)
		return ""
	}
	if c := send(ts, "via-trusted-proxy"); c != "203.0.113.7" {
		t.Errorf("behind a trusted proxy: client=%s, want 203.0.113.7 from X-Forwarded-For", c)
	}
	if c := send(untrusting, "via-untrusted-peer"); c != "127.0.0.1" {
		t.Errorf("from an untrusted peer: client=%s, want the peer 127.0.0.1, not its X-Forwarded-For", c)
	}
}
