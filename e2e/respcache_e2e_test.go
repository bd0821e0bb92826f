package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// rawPost posts body as is and returns the status, Content-Type and body of the answer.
func (ts *testServer) rawPost(token, accept string, body []byte) (int, string, []byte) {
	ts.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ts.base+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), raw
}

// responseCache reads the response cache's counters.
func (ts *testServer) responseCache() (hits, stored float64) {
	ts.t.Helper()
	return ts.metric("eventide_response_cache_hits_total"), ts.metric("eventide_response_cache_stored_total")
}

// TestResponseCache: an anonymous query is answered from the response cache, byte for byte,
// without a store command; a registration shows in the very next answer; what depends on the
// viewer, fails, writes or reads server state is never kept.
func TestResponseCache(t *testing.T) {
	ts := startServer(t, onMongoDB(t, nil)) // counts store commands
	org := ts.organizer("Org")
	ids := make([]string, 3)
	for i := range ids {
		ids[i] = ts.publishedEvent(org, "Event", 5, time.Duration(i+2)*time.Hour)
	}
	page, _ := json.Marshal(map[string]any{"query": eventsPageQuery, "variables": map[string]any{"first": 20}})
	count := func(body []byte) int {
		t.Helper()
		var p struct{ Data eventsPage }
		if err := json.Unmarshal(body, &p); err != nil || len(p.Data.Events.Edges) != 3 {
			t.Fatalf("page %s: %v", body, err)
		}
		for _, e := range p.Data.Events.Edges {
			if e.Node.ID == ids[0] {
				return e.Node.AttendeeCount
			}
		}
		t.Fatalf("event %s not on the page %s", ids[0], body)
		return 0
	}

	_, _, first := ts.rawPost("", "", page) // builds and keeps it
	hits, stored := ts.responseCache()
	var again []byte
	var ct string
	cmds := ts.commandsOf(func() { _, ct, again = ts.rawPost("", "", page) })
	h2, s2 := ts.responseCache()
	if h2 != hits+1 || s2 != stored {
		t.Fatalf("second anonymous page: response cache hits %v→%v, stored %v→%v; want one hit", hits, h2, stored, s2)
	}
	if cmds != 0 || !bytes.Equal(again, first) || ct != "application/json" {
		t.Fatalf("kept answer: %d store commands, content type %q, equal bytes %v", cmds, ct, bytes.Equal(again, first))
	}

	t.Run("RegistrationShowsAtOnce", func(t *testing.T) {
		fan := ts.signUp("Fan")
		if n := count(first); n != 0 {
			t.Fatalf("attendeeCount %d before any registration", n)
		}
		ts.mustData(fan.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": ids[0]}, nil)
		h, _ := ts.responseCache()
		_, _, after := ts.rawPost("", "", page)
		if n := count(after); n != 1 {
			t.Fatalf("attendeeCount %d right after a registration returned, want 1", n)
		}
		if h3, _ := ts.responseCache(); h3 != h {
			t.Fatal("the answer after the registration was a hit: a stale response was served")
		}
		_, _, kept := ts.rawPost("", "", page)
		if h4, _ := ts.responseCache(); h4 != h+1 || count(kept) != 1 {
			t.Fatal("the new answer was not kept and served")
		}
	})

	t.Run("GETAndAcceptAreTheirOwnKeys", func(t *testing.T) {
		q := url.Values{"query": {`{ events(first: 2){ edges { node { id } } } }`}}
		get := func() (string, []byte) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, ts.base+"/graphql?"+q.Encode(), nil)
			req.Header.Set("Accept", "application/graphql-response+json")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return res.Header.Get("Content-Type"), b
		}
		ct1, b1 := get()
		h, _ := ts.responseCache()
		ct2, b2 := get()
		if h2, _ := ts.responseCache(); h2 != h+1 || ct2 != ct1 || !bytes.Equal(b1, b2) {
			t.Fatalf("GET again: hits %v→%v, content types %q %q", h, h2, ct1, ct2)
		}
		if ct1 != "application/graphql-response+json" {
			t.Fatalf("content type %q, want the one Accept asked for", ct1)
		}
	})

	t.Run("NeverKept", func(t *testing.T) {
		fan := ts.signUp("Viewer")
		for name, req := range map[string]struct {
			token, query string
			vars         map[string]any
		}{
			"signed in":    {fan.Token, eventsPageQuery, map[string]any{"first": 20}},
			"an error":     {"", `query($id: ID!){ event(id: $id){ id } }`, map[string]any{"id": "000000000000000000000000"}},
			"admin field":  {"", `{ cacheStats { hits } }`, nil},
			"viewer field": {"", `{ me { id } events(first: 1){ edges { node { id } } } }`, nil},
			"a mutation":   {"", `mutation{ login(email: "nobody@example.com", password: "x"){ token } }`, nil},
			"long cursor":  {"", `query($a: String){ events(first: 1, after: $a){ edges { node { id } } } }`, map[string]any{"a": string(bytes.Repeat([]byte("x"), 300))}},
		} {
			body, _ := json.Marshal(map[string]any{"query": req.query, "variables": req.vars})
			h, s := ts.responseCache()
			for range 3 {
				ts.rawPost(req.token, "", body)
			}
			if h2, s2 := ts.responseCache(); h2 != h || s2 != s {
				t.Errorf("%s: hits %v→%v, stored %v→%v; want neither kept nor served", name, h, h2, s, s2)
			}
		}
	})

	t.Run("CacheStatsReportThem", func(t *testing.T) {
		var out struct {
			CacheStats struct {
				ResponseHits, ResponseMisses, ResponseBytes int64
				ResponseEntries                             int
			}
		}
		ts.mustData(ts.admin().Token, `{ cacheStats { responseHits responseMisses responseEntries responseBytes } }`, nil, &out)
		st := out.CacheStats
		hits := ts.metric("eventide_response_cache_hits_total")
		if st.ResponseHits == 0 || float64(st.ResponseHits) != hits || st.ResponseMisses == 0 ||
			st.ResponseEntries == 0 || float64(st.ResponseBytes) != ts.metric("eventide_response_cache_bytes") {
			t.Fatalf("cacheStats %+v, metrics: %v hits", st, hits)
		}
	})

	t.Run("PurgeDropsThem", func(t *testing.T) {
		ts.rawPost("", "", page)
		if ts.metric("eventide_response_cache_entries") == 0 {
			t.Fatal("nothing kept before the purge")
		}
		ts.purgeCache(ts.admin())
		if n := ts.metric("eventide_response_cache_entries"); n != 0 {
			t.Fatalf("%v responses kept after purgeCache", n)
		}
		h, _ := ts.responseCache()
		ts.rawPost("", "", page)
		if h2, _ := ts.responseCache(); h2 != h {
			t.Fatal("a hit right after purgeCache")
		}
	})
}

// TestResponseCacheAcrossReplicas: two replicas on one store and one Redis; a registration on
// one shows in the other's very next answer, though the other had kept the page: the kept
// response's tokens are read from Redis on every hit.
func TestResponseCacheAcrossReplicas(t *testing.T) {
	a, b := startReplicas(t, nil)
	org := a.organizer("Org")
	id := a.publishedEvent(org, "Shared", 10, 24*time.Hour)
	body, _ := json.Marshal(map[string]any{"query": `query($id: ID!){ event(id: $id){ id attendeeCount } }`, "variables": map[string]any{"id": id}})
	attendees := func(raw []byte) int {
		t.Helper()
		var r struct {
			Data struct{ Event struct{ AttendeeCount int } }
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return r.Data.Event.AttendeeCount
	}
	b.rawPost("", "", body)
	h, _ := b.responseCache()
	if _, _, raw := b.rawPost("", "", body); attendees(raw) != 0 {
		t.Fatal("attendees before any registration")
	}
	if h2, _ := b.responseCache(); h2 != h+1 {
		t.Fatal("b did not keep the answer")
	}
	fan := a.signUp("Fan")
	a.mustData(fan.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": id}, nil)
	if _, _, raw := b.rawPost("", "", body); attendees(raw) != 1 {
		t.Fatalf("b answered attendeeCount %d right after a's registration returned, want 1", attendees(raw))
	}
}
