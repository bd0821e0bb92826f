package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestPprofOnItsOwnLoopbackPort: PPROF_ADDR serves Go's profiler on its own listener, never on
// the API's.
func TestPprofOnItsOwnLoopbackPort(t *testing.T) {
	addr := freeAddr(t)
	cfg := testConfig(t)
	cfg.PprofAddr = addr
	ts := startServer(t, cfg)
	res, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("heap profile")) {
		t.Fatalf("profiler answered %d: %.200s", res.StatusCode, body)
	}
	// The heap profiler is on once PPROF_ADDR is set (internal/heapsample keeps it off
	// otherwise): start-up's allocations are sampled. The first line is
	// "heap profile: <in use> [<allocated objects>: <bytes>] @ heap/<2 × rate>".
	var inuse, inuseBytes, allocs, allocBytes, rate int
	if _, err := fmt.Sscanf(string(body), "heap profile: %d: %d [%d: %d] @ heap/%d", &inuse, &inuseBytes, &allocs, &allocBytes, &rate); err != nil ||
		allocs == 0 || rate != 2*512*1024 {
		t.Fatalf("heap profile with PPROF_ADDR: %d allocations sampled at rate %d (%v); want some, at 512 KiB: %.200s", allocs, rate, err, body)
	}
	res, err = http.Get(ts.base + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("the API port serves the profiler: %d", res.StatusCode)
	}
}

// TestMetricsAddr: with METRICS_ADDR set, /metrics is served there and no longer on the public
// port, where security counters would tell an attacker whether an alarm went off.
func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	get := func(t *testing.T, url string) (int, string) {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(raw)
	}
	t.Run("Default", func(t *testing.T) {
		ts := startServer(t, nil)
		if status, body := get(t, ts.base+"/metrics"); status != http.StatusOK || !strings.Contains(body, "go_goroutines") {
			t.Fatalf("/metrics on the public port without METRICS_ADDR: %d", status)
		}
	})
	t.Run("Apart", func(t *testing.T) {
		addr := freeAddr(t)
		cfg := testConfig(t)
		cfg.MetricsAddr = addr
		ts := startServer(t, cfg)
		status, body := get(t, ts.base+"/metrics")
		var e gqlResponse
		if status != http.StatusNotFound || json.Unmarshal([]byte(body), &e) != nil || e.code() != "NOT_FOUND" {
			t.Fatalf("/metrics on the public port with METRICS_ADDR: %d %.200s", status, body)
		}
		if status, body := get(t, "http://"+addr+"/metrics"); status != http.StatusOK || !strings.Contains(body, "go_goroutines") {
			t.Fatalf("/metrics on METRICS_ADDR: %d %.200s", status, body)
		}
		if status, _ := get(t, "http://"+addr+"/graphql"); status != http.StatusNotFound {
			t.Fatalf("METRICS_ADDR serves more than /metrics: /graphql %d", status)
		}
	})
}
