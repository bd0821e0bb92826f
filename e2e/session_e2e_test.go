package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/httpapi"
)

// Long-lived connections follow their token and their user's current role (issue: an open
// websocket kept the role it had at connection_init; a demoted admin promoted themself back over
// it, and an expired token kept working). Each protocol a browser uses is tried: both websocket
// subprotocols, Server-Sent Events and multipart subscriptions.

const (
	memoryStatsSub    = `subscription { memoryStats(intervalMs: 250) { rssBytes } }`
	securityEventsSub = `subscription { securityEvents { type } }`
)

// stream is one subscription transport, as the tests below drive it.
type stream interface {
	// subscribe starts query as operation id.
	subscribe(id, query string)
	// next returns the next message of any operation: its id, "next" or "complete", and the
	// error code of a "next" carrying errors. ok is false when the connection ended.
	next() (id, kind, code string, ok bool)
}

// wsStream speaks either websocket subprotocol.
type wsStream struct {
	c      *wsClient
	legacy bool
}

func (s *wsStream) subscribe(id, query string) {
	typ := "subscribe"
	if s.legacy {
		typ = "start"
	}
	s.c.send(map[string]any{"id": id, "type": typ, "payload": map[string]any{"query": query}})
}

func (s *wsStream) next() (string, string, string, bool) {
	for {
		m, err := s.c.read()
		if err != nil {
			return "", "", "", false
		}
		id, _ := m["id"].(string)
		switch m["type"] {
		case "ka", "pong":
		case "ping":
			s.c.send(map[string]any{"type": "pong"})
		case "next", "data":
			return id, "next", wsErrorCode(m), true
		case "error":
			return id, "next", wsErrorCode(m), true
		case "complete":
			return id, "complete", "", true
		default:
			s.c.t.Fatalf("unexpected message %v", m)
		}
	}
}

// sseSubs is one SSE request per subscription, as graphql-sse's distinct-connections mode.
type sseSubs struct {
	t      testing.TB
	ts     *testServer
	token  string
	events chan [3]string // id, kind, code
}

func newSSESubs(ts *testServer, token string) *sseSubs {
	return &sseSubs{t: ts.t, ts: ts, token: token, events: make(chan [3]string, 64)}
}

func (s *sseSubs) subscribe(id, query string) {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	s.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.ts.base+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+s.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		s.t.Fatalf("SSE subscribe: status %d", res.StatusCode)
	}
	go func() {
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event:"):
				event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
				if event == "complete" {
					s.events <- [3]string{id, "complete", ""}
					return
				}
			case strings.HasPrefix(line, "data:") && event == "next":
				var m map[string]any
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data:")), &m)
				s.events <- [3]string{id, "next", wsErrorCode(map[string]any{"payload": m})}
			}
		}
		s.events <- [3]string{id, "ended", ""}
	}()
}

func (s *sseSubs) next() (string, string, string, bool) {
	select {
	case e := <-s.events:
		return e[0], e[1], e[2], true
	case <-time.After(30 * time.Second):
		return "", "", "", false
	}
}

// streams opens one connection of each transport for token.
func (ts *testServer) streams(token string) map[string]stream {
	init := map[string]any{"Authorization": "Bearer " + token}
	return map[string]stream{
		"graphql-transport-ws": &wsStream{c: ts.dialWS("graphql-transport-ws", init)},
		"graphql-ws":           &wsStream{c: ts.dialWS("graphql-ws", init), legacy: true},
		"SSE":                  newSSESubs(ts, token),
		"multipart":            newMPSubs(ts, token),
	}
}

// firstData waits for a data message of operation id.
func firstData(t *testing.T, s stream, id string) {
	t.Helper()
	for {
		got, kind, code, ok := s.next()
		if !ok {
			t.Fatalf("connection ended before %s delivered", id)
		}
		if got == id && kind == "next" && code == "" {
			return
		}
		if got == id {
			t.Fatalf("%s: %s with code %q before any data", id, kind, code)
		}
	}
}

// endsWith reads until every operation in ids has completed, and checks that each ended with an
// error of code just before its complete.
func endsWith(t *testing.T, s stream, code string, ids ...string) {
	t.Helper()
	last := map[string]string{}
	open := map[string]bool{}
	for _, id := range ids {
		open[id] = true
	}
	for len(open) > 0 {
		id, kind, c, ok := s.next()
		if !ok {
			t.Fatalf("connection ended with %v still open (last codes %v)", open, last)
		}
		switch kind {
		case "next":
			last[id] = c
		case "complete", "ended":
			if !open[id] {
				continue
			}
			if last[id] != code {
				t.Fatalf("%s completed after an error %q, want %q", id, last[id], code)
			}
			delete(open, id)
		}
	}
}

func TestSessionsFollowRole(t *testing.T) {
	ts := startServer(t, nil)
	admin := ts.admin()
	setRole := `mutation($u: ID!, $r: Role!){ setUserRole(userId: $u, role: $r){ role } }`
	for name := range ts.streams(admin.Token) {
		t.Run(name, func(t *testing.T) {
			ts := ts.in(t)
			user := ts.signUp("Mallory " + name)
			ts.mustData(admin.Token, setRole, map[string]any{"u": user.ID, "r": "ADMIN"}, nil)
			s := ts.streams(user.Token)[name]
			s.subscribe("mem", memoryStatsSub)
			firstData(t, s, "mem")
			s.subscribe("sec", securityEventsSub)
			// The securityEvents subscription is live once an event reaches it: failed sign-ins
			// until one does.
			stop := make(chan struct{})
			go func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Millisecond):
						ts.do("", `mutation($e: String!){ login(email: $e, password: "wrong-password"){ token } }`,
							map[string]any{"e": fmt.Sprintf("nobody-%d@example.com", i)})
					}
				}
			}()
			firstData(t, s, "sec")
			close(stop)

			ts.mustData(admin.Token, setRole, map[string]any{"u": user.ID, "r": "USER"}, nil)
			endsWith(t, s, "FORBIDDEN", "mem", "sec")

			if ws, ok := s.(*wsStream); ok {
				// The same socket now answers as the USER it is.
				ws.subscribe("q", `{ serverInfo { pid } }`)
				endsWith(t, s, "FORBIDDEN", "q")
				ws.subscribe("m", `mutation { setUserRole(userId: "`+user.ID+`", role: ADMIN){ role } }`)
				endsWith(t, s, "FORBIDDEN", "m")
			}
			var out struct{ User struct{ Role string } }
			ts.mustData(admin.Token, `query($id: ID!){ user(id: $id){ role } }`, map[string]any{"id": user.ID}, &out)
			if out.User.Role != "USER" {
				t.Fatalf("role after the attempts = %s, want USER", out.User.Role)
			}
			// One per connection: SSE and multipart run each subscription on its own.
			conns := 1
			if name == "SSE" || name == "multipart" {
				conns = 2
			}
			ended := ts.securityEvents(admin, map[string]any{"types": []string{"SESSION_ENDED"}, "userId": user.ID}, 10)
			if len(ended) != conns {
				t.Fatalf("%d SESSION_ENDED events, want %d: %v", len(ended), conns, ended)
			}
		})
	}
}

// TestSessionsEndAtExpiry: a token that expires ends what it opened at that instant, keep-alive
// pings or not: a websocket is closed with 4403, an SSE or multipart subscription ends with
// UNAUTHENTICATED.
// After, no session of it is left in the registry.
func TestSessionsEndAtExpiry(t *testing.T) {
	cfg := testConfig(t)
	cfg.JWTTTL = 3 * time.Second
	ts := startServer(t, cfg)
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		t.Run(proto, func(t *testing.T) {
			ts := ts.in(t)
			tok := ts.admin().Token
			s := &wsStream{c: ts.dialWS(proto, map[string]any{"Authorization": "Bearer " + tok}), legacy: proto == "graphql-ws"}
			s.subscribe("mem", memoryStatsSub)
			firstData(t, s, "mem")
			code, reason := closeStatus(t, s.c.conn)
			if code != 4403 {
				t.Fatalf("closed with %d %q, want 4403", code, reason)
			}
		})
	}
	t.Run("SSE", func(t *testing.T) {
		ts := ts.in(t)
		s := newSSESubs(ts, ts.admin().Token)
		s.subscribe("mem", memoryStatsSub)
		firstData(t, s, "mem")
		endsWith(t, s, "UNAUTHENTICATED", "mem")
	})
	t.Run("multipart", func(t *testing.T) {
		ts := ts.in(t)
		s := newMPSubs(ts, ts.admin().Token)
		s.subscribe("mem", memoryStatsSub)
		firstData(t, s, "mem")
		endsWith(t, s, "UNAUTHENTICATED", "mem")
	})
	deadline := time.Now().Add(10 * time.Second)
	for ts.app.Sessions().Open() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still open after every connection ended", ts.app.Sessions().Open())
		}
		time.Sleep(50 * time.Millisecond)
	}
	ended := only(ts.securityEvents(ts.admin(), map[string]any{"types": []string{"SESSION_ENDED"}}, 10),
		func(e secEvent) bool { return strings.Contains(e.Message, "expired") })
	if len(ended) != 4 {
		t.Fatalf("%d SESSION_ENDED events for an expired token, want 4 (one per connection): %v", len(ended), ended)
	}
}

// TestSessionsFollowRoleAcrossReplicas: the admin demotes a user on replica a; the user's socket
// on replica b hears of it over Redis and ends its admin subscription at once, long before the
// backstop re-check would.
func TestSessionsFollowRoleAcrossReplicas(t *testing.T) {
	a, b := startReplicas(t, nil)
	admin := a.admin()
	user := a.signUp("Replica Mallory")
	setRole := `mutation($u: ID!, $r: Role!){ setUserRole(userId: $u, role: $r){ role } }`
	a.mustData(admin.Token, setRole, map[string]any{"u": user.ID, "r": "ADMIN"}, nil)
	s := &wsStream{c: b.dialWS("graphql-transport-ws", map[string]any{"Authorization": "Bearer " + user.Token})}
	s.subscribe("mem", memoryStatsSub)
	firstData(t, s, "mem")
	demoted := time.Now()
	a.mustData(admin.Token, setRole, map[string]any{"u": user.ID, "r": "USER"}, nil)
	endsWith(t, s, "FORBIDDEN", "mem")
	// A count of intervals, not a timing: the backstop runs every DefaultSessionRecheck.
	if waited := time.Since(demoted); waited >= httpapi.DefaultSessionRecheck {
		t.Fatalf("the subscription ended after %s: by the backstop, not by the invalidation", waited)
	}
}

// TestDraftWatcherDemoted: an admin watching someone else's draft over eventUpdated gets
// FORBIDDEN, then complete, at the first update after being demoted, not the update itself.
func TestDraftWatcherDemoted(t *testing.T) {
	ts := startServer(t, nil)
	admin := ts.admin()
	org := ts.organizer("Draft Owner")
	draft := ts.draftEvent(org, "Secret plans", 10, 48*time.Hour)
	watcher := ts.signUp("Draft Watcher")
	setRole := `mutation($u: ID!, $r: Role!){ setUserRole(userId: $u, role: $r){ role } }`
	ts.mustData(admin.Token, setRole, map[string]any{"u": watcher.ID, "r": "ADMIN"}, nil)

	s := &wsStream{c: ts.dialWS("graphql-transport-ws", map[string]any{"Authorization": "Bearer " + watcher.Token})}
	s.c.send(map[string]any{"id": "draft", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!){ eventUpdated(id: $id){ id title } }`, "variables": map[string]any{"id": draft}}})
	rename := func(title string) {
		ts.mustData(org.Token, `mutation($id: ID!, $t: String!){ updateEvent(id: $id, input: {title: $t}){ id } }`,
			map[string]any{"id": draft, "t": title}, nil)
	}
	// Live once an update reaches it.
	stop := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				rename(fmt.Sprintf("Secret plans %d", i))
			}
		}
	}()
	firstData(t, s, "draft")
	close(stop)

	ts.mustData(admin.Token, setRole, map[string]any{"u": watcher.ID, "r": "USER"}, nil)
	rename("Secret plans, after the demotion")
	endsWith(t, s, "FORBIDDEN", "draft")
}
