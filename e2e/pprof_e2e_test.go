package e2e

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"testing"
)

// TestPprofOnItsOwnLoopbackPort: PPROF_ADDR serves Go's profiler on its own listener, never on
// the API's.
func TestPprofOnItsOwnLoopbackPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
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
	res, err = http.Get(ts.base + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("the API port serves the profiler: %d", res.StatusCode)
	}
}
