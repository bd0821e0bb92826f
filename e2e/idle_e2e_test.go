package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleHeapAtRest starts the built binary on the demo data, as `go run .` does, and reads
// what its heap holds once it is ready: what start-up allocated and dropped has gone back to the
// OS, and what it keeps (schemas, rings, pools) stays small. BENCHMARKS.md ("Idle RSS") has the
// whole picture; these are the parts that are ours to keep small. To see what a failure is made
// of: GODEBUG=memprofilerate=1 PPROF_ADDR=127.0.0.1:6060 go run ., then
// go tool pprof -sample_index=inuse_space http://127.0.0.1:6060/debug/pprof/heap?gc=1
func TestIdleHeapAtRest(t *testing.T) {
	ts, _ := startBuiltIdle(t, buildServer(t))
	m := ts.metrics() // one scrape: a second would count the first one's garbage as held
	const mib = 1 << 20
	// Freed but still held: without the release at the end of start-up, 3–4 MiB of start-up's
	// garbage stayed resident until the scavenger got to it, or for good while idle.
	if held := m["go_memstats_heap_idle_bytes"] - m["go_memstats_heap_released_bytes"]; held > 1*mib {
		t.Errorf("the idle heap keeps %.1f MiB freed but not returned to the OS (want ≤ 1 MiB)", held/mib)
	}
	// Live: ~1.2 MiB with the demo data. It was 3.8 MiB when the playground's and monitor's
	// scripts were copied to the heap at init, and 2.3 MiB while nbio's websocket package built
	// its default engine at init (1 MiB, whichever transport ran; the lean transport frames with
	// gobwas/ws now, which allocates nothing that stays).
	if live := m["go_memstats_heap_alloc_bytes"]; live > 1.75*mib {
		t.Errorf("the heap at rest holds %.1f MiB live (want ≤ 1.75 MiB)", live/mib)
	}
	t.Logf("at rest: heap live %.2f MiB, in use %.2f MiB, freed-not-released %.2f MiB, stacks %.2f MiB, %v goroutines",
		m["go_memstats_heap_alloc_bytes"]/mib, m["go_memstats_heap_inuse_bytes"]/mib,
		(m["go_memstats_heap_idle_bytes"]-m["go_memstats_heap_released_bytes"])/mib,
		m["go_memstats_stack_inuse_bytes"]/mib, m["go_goroutines"])
}

// startBuiltIdle starts bin (the built server) on the demo data, as `go run .` does, and waits
// until it is ready. env adds to (and overrides) the environment.
func startBuiltIdle(t *testing.T, bin string, env ...string) (*testServer, *exec.Cmd) {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command(bin)
	cmd.Dir = t.TempDir() // no .env files
	cmd.Env = append(os.Environ(), "APP_ENV=development", "HOST=127.0.0.1", "PORT="+strconv.Itoa(port),
		"DATA_DIR="+t.TempDir(), "MONGO_URI=", "SEED_DEMO=true", "USE_REDIS=false", "LOG_LEVEL=warn",
		"PASSWORD_HASH_COST=4", "METRICS_ADDR=", "PPROF_ADDR=")
	cmd.Env = append(cmd.Env, env...)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if res, err := http.Get(base + "/readyz"); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server did not become ready\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts := &testServer{t: t, base: base, logs: logs}
	ts.down.Store(true) // not an in-process app: stop() must not touch it
	return ts, cmd
}

// fileKiB is the resident memory of process pid's file mappings, from one read of
// /proc/PID/status: RssFile, plus RssShmem for a binary on tmpfs.
func fileKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0, 0
	for line := range strings.Lines(string(b)) {
		for _, key := range []string{"RssFile:", "RssShmem:"} {
			if v, ok := strings.CutPrefix(line, key); ok {
				f := strings.Fields(v)
				if n, err := strconv.Atoi(f[0]); err == nil && len(f) == 2 && f[1] == "kB" {
					sum += n
					found++
				}
			}
		}
	}
	if found != 2 {
		t.Fatalf("no RssFile and RssShmem in /proc/%d/status:\n%s", pid, b)
	}
	return sum
}

// TestStartupPagesReleased: once serving, the server has given back the pages of its binary
// that start-up read (MEMORY_RELEASE_STARTUP, internal/startpages): at rest it maps several MiB
// less of it than the same binary with the release off, and it serves the events page after it
// (the code faults back in).
func TestStartupPagesReleased(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the release reads /proc/self/maps")
	}
	// A copy written 4 KiB at a time, as scripts/idlerss.sh makes: a file written in large
	// chunks sits in the page cache in large folios, and a fault maps a whole folio, so the same
	// process maps 23 or 35 MiB of it depending on how its binary was written (BENCHMARKS.md
	// "Idle RSS, part by part"); with 4 KiB pages, what it maps is what it touched (and the
	// kernel's 64 KiB fault-around).
	bin := filepath.Join(t.TempDir(), "eventide")
	copy4K(t, buildServer(t), bin)
	const query = `{ events(first: 5) { totalCount edges { node { title venue { name } } } } }`
	kept := map[bool]int{}
	for _, release := range []bool{false, true} {
		ts, cmd := startBuiltIdle(t, bin, "MEMORY_RELEASE_STARTUP="+strconv.FormatBool(release))
		time.Sleep(500 * time.Millisecond) // what runs at rest (timers, the sampler) faults its pages in
		kept[release] = fileKiB(t, cmd.Process.Pid)
		res := ts.gql(nil, "", "", query, nil)
		if res.Status != http.StatusOK || len(res.Errors) > 0 || !strings.Contains(string(res.Raw), `"totalCount":`) {
			t.Fatalf("release %v: the events page after it: %s", release, res)
		}
		t.Logf("release %v: file RSS at rest %d KiB, after one events page %d KiB", release, kept[release],
			fileKiB(t, cmd.Process.Pid))
	}
	// Measured after the readiness polls: 23 MiB kept without the release, 13 MiB with it (the
	// polls' own code and tables come back; 5.8 MiB in a server nobody asked anything).
	if freed := kept[false] - kept[true]; freed < 5<<10 {
		t.Errorf("file RSS at rest: %d KiB with the release, %d KiB without; want ≥ 5 MiB less", kept[true], kept[false])
	}
}

// copy4K copies the file src to dst with 4 KiB writes, executable.
func copy4K(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestPackageInitsAllocateLittle: our packages' initialisation builds no templates, regexps or
// tables that a request may never need (they are built at first use): each allocates ≤ 8 KiB
// (GODEBUG=inittrace=1), except graph, whose parsed schema every start needs. Every init that
// runs touches its own pages of the binary, which stay resident (BENCHMARKS.md, "Idle RSS").
func TestPackageInitsAllocateLittle(t *testing.T) {
	cmd := exec.Command(buildServer(t), "-help")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, _ := cmd.CombinedOutput() // -help's exit status is not the subject
	const prefix = "github.com/eventide/server"
	seen := 0
	for line := range strings.Lines(string(out)) {
		// init github.com/eventide/server/monitor @25 ms, 0.11 ms clock, 17792 bytes, 137 allocs
		f := strings.Fields(line)
		if len(f) < 10 || f[0] != "init" || !strings.HasPrefix(f[1], prefix) || f[8] != "bytes," {
			continue
		}
		seen++
		n, err := strconv.Atoi(f[7])
		if err != nil {
			t.Fatalf("inittrace line %q: %v", line, err)
		}
		if f[1] != prefix+"/graph" && n > 8<<10 {
			t.Errorf("%s allocates %d bytes at init (want ≤ 8 KiB: build it at first use)", f[1], n)
		}
	}
	if seen < 5 {
		t.Fatalf("found %d of our packages in the init trace:\n%s", seen, out)
	}
}

// TestHeapSamplingOffFromTheStart: internal/heapsample turns the heap profiler off before any
// package initialisation allocates (its samples' stack unwinds would keep function tables of the
// binary resident: BENCHMARKS.md "Idle RSS"), so it must be initialised before every package
// that allocates at init.
func TestHeapSamplingOffFromTheStart(t *testing.T) {
	cmd := exec.Command(buildServer(t), "-help")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, _ := cmd.CombinedOutput()
	var before []string
	found := false
	for line := range strings.Lines(string(out)) {
		// init github.com/eventide/server/monitor @25 ms, 0.11 ms clock, 17792 bytes, 137 allocs
		f := strings.Fields(line)
		if len(f) < 10 || f[0] != "init" || f[8] != "bytes," {
			continue
		}
		if f[1] == "github.com/eventide/server/internal/heapsample" {
			found = true
			break
		}
		if f[7] != "0" {
			before = append(before, f[1]+" ("+f[7]+" bytes)")
		}
	}
	if !found {
		t.Fatalf("internal/heapsample is not in the init trace:\n%s", out)
	}
	if len(before) > 0 {
		t.Errorf("packages initialised before internal/heapsample allocate (their allocations are sampled): %v", before)
	}
}
