package e2e

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

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
