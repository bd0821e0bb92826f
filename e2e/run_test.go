package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/eventide/server/internal/server"
)

// TestRunServesAndExitsCleanly drives the real server.Run(): it serves, and a cancelled context (what
// SIGINT/SIGTERM do in main) makes it drain, close the store and return exit status 0.
func TestRunServesAndExitsCleanly(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	env := []string{"APP_ENV=test", "PORT=0", "DATA_DIR=" + t.TempDir(), "LOG_FORMAT=json", "LOG_LEVEL=info",
		"ADMIN_EMAIL=root@example.com", "ADMIN_PASSWORD=root-password"}
	done := make(chan error, 1)
	go func() {
		err := server.Run(ctx, nil, env, io.Discard, pw)
		_ = pw.Close()
		done <- err
	}()
	addr := ""
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		var line struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
			addr = line.Addr
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if addr == "" {
		t.Fatalf("no listening line; run returned %v", <-done)
	}
	res, err := http.Get(addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("healthz %d", res.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if code := server.ExitCode(err, io.Discard); code != 0 {
			t.Fatalf("exit %d (%v)", code, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	if _, err := http.Get(addr + "/healthz"); err == nil {
		t.Fatal("still serving after run returned")
	}
}
