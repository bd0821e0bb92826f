package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
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

// TestSSESubscription subscribes over Server-Sent Events and sees an update.
func TestSSESubscription(t *testing.T) {
	ts := startServer(t, nil)
	org := ts.organizer("Org")
	id := ts.publishedEvent(org, "Streamed", 5, 24*time.Hour)
	body := `{"query":"subscription($id: ID!){ eventUpdated(id: $id){ id attendeeCount } }","variables":{"id":"` + id + `"}}`
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.base+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
	u := ts.signUp("SSE fan")
	go func() {
		time.Sleep(200 * time.Millisecond) // let the subscription register before the change
		if r := ts.do(u.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": id}); len(r.Errors) > 0 {
			t.Errorf("register: %+v", r.Errors)
		}
	}()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "data:") && strings.Contains(line, `"attendeeCount":1`) {
			return
		}
	}
	t.Fatalf("no update over SSE: %v", sc.Err())
}
