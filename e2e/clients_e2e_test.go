package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/eventide/server/seed"
)

// requireNodeEnv, when "1", turns a missing node or npm into a failure instead of a skip.
// .ci/run sets it.
const requireNodeEnv = "EVENTIDE_REQUIRE_NODE"

// jsClientsDir is the Node project of the JavaScript clients' tests.
var jsClientsDir = filepath.Join("..", "clients", "js")

// TestJSClients runs clients/js (node --test) against a real server: Apollo Client over HttpLink
// and GraphQLWsLink, urql with its default exchanges, subscriptionExchange and fetchSubscriptions,
// graphql-ws, graphql-sse, and graphql-http's GraphQL-over-HTTP audits, each asserting on what
// the server answers. The server has the demo data, so the demo organizer signs in as README.md
// says; the npm packages come from clients/js/package-lock.json (npm ci when node_modules does not
// match it; .ci/run installs them before the tests).
func TestJSClients(t *testing.T) {
	node, npm := findNode(t)
	ensureNodeModules(t, npm, jsClientsDir)

	cfg := testConfig(t)
	cfg.SeedDemo = true
	// One loopback client makes every request of the suite, its logins and failed logins; the
	// throttles have their own tests.
	cfg.ThrottleLimit = 1 << 20
	cfg.LoginThrottleLimit = 1 << 20
	cfg.BruteForceThreshold = 1 << 20
	ts := startServer(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The spec reporter names each failing test with its assertion; --test-timeout bounds each test
	// so a subscription that never receives fails instead of hanging the run.
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "--test-timeout=60000")
	cmd.Dir = jsClientsDir
	cmd.Env = append(os.Environ(),
		"EVENTIDE_URL="+ts.base,
		"EVENTIDE_ADMIN_EMAIL="+testAdminEmail,
		"EVENTIDE_ADMIN_PASSWORD="+testAdminPassword,
		"EVENTIDE_ORGANIZER_PASSWORD="+seed.DemoPassword,
		"NO_COLOR=1",
		"NODE_ENV=test",
	)
	// node --test runs each file in a child process: on timeout the whole group goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	err := cmd.Run()
	took := time.Since(began)
	if err != nil {
		t.Fatalf("node --test in %s failed after %s: %v\n%s\nserver log:\n%s", jsClientsDir, took.Round(time.Millisecond), err, out.String(), ts.logs.String())
	}
	// The runner's own summary, checked rather than trusted to the exit status alone: every test
	// ran and passed.
	sum := nodeSummary(out.String())
	if sum["fail"] != 0 || sum["cancelled"] != 0 || sum["pass"] == 0 || sum["pass"] != sum["tests"] {
		t.Fatalf("node --test summary %v\n%s", sum, out.String())
	}
	t.Logf("node --test: %d tests passed in %s", sum["pass"], took.Round(time.Millisecond))
}

var nodeSummaryLine = regexp.MustCompile(`(?m)^ℹ (tests|pass|fail|cancelled|skipped|todo) (\d+)$`)

// nodeSummary reads the spec reporter's closing counts (ℹ tests 81, ℹ pass 81, …).
func nodeSummary(out string) map[string]int {
	sum := map[string]int{}
	for _, m := range nodeSummaryLine.FindAllStringSubmatch(out, -1) {
		var n int
		fmt.Sscan(m[2], &n)
		sum[m[1]] = n
	}
	return sum
}

// findNode is the paths of node and npm. Without them the test is skipped loudly, or fails when
// EVENTIDE_REQUIRE_NODE=1.
func findNode(t *testing.T) (node, npm string) {
	t.Helper()
	node, errNode := exec.LookPath("node")
	npm, errNpm := exec.LookPath("npm")
	if errNode == nil && errNpm == nil {
		return node, npm
	}
	if os.Getenv(requireNodeEnv) == "1" {
		t.Fatalf("node or npm not found and %s=1: install them (apt-get install nodejs npm)", requireNodeEnv)
	}
	t.Skip("SKIPPED: node or npm is not installed; the JavaScript clients were not tested (apt-get install nodejs npm; set " +
		requireNodeEnv + "=1 to make this a failure)")
	return "", ""
}

// ensureNodeModules runs npm ci in dir unless node_modules already holds exactly what
// package-lock.json names (npm's own record of what it installed, node_modules/.package-lock.json,
// has the same version and integrity for every package).
func ensureNodeModules(t *testing.T, npm, dir string) {
	t.Helper()
	want, err := lockedPackages(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if have, err := lockedPackages(filepath.Join(dir, "node_modules", ".package-lock.json")); err == nil && samePackages(want, have) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	began := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	t.Logf("npm ci in %s took %s", dir, time.Since(began).Round(time.Millisecond))
}

type lockedPackage struct {
	Version   string `json:"version"`
	Integrity string `json:"integrity"`
}

// lockedPackages is the installed packages of a lockfile, by path under node_modules.
func lockedPackages(path string) (map[string]lockedPackage, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var lock struct {
		Packages map[string]lockedPackage `json:"packages"`
	}
	if err := json.Unmarshal(raw, &lock); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	delete(lock.Packages, "") // the project itself
	return lock.Packages, nil
}

func samePackages(a, b map[string]lockedPackage) bool {
	if len(a) == 0 || len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
