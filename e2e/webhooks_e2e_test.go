package e2e

import (
	"crypto/hmac"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventide/server/config"
	"github.com/eventide/server/webhook"
)

const testWebhookSecret = "webhook-test-secret"

// hookCall is one request a receiver got.
type hookCall struct {
	at        time.Time
	delivery  string
	signature string
	body      []byte
	msg       struct {
		ID         string          `json:"id"`
		Type       string          `json:"type"`
		OccurredAt time.Time       `json:"occurredAt"`
		Data       json.RawMessage `json:"data"`
	}
}

// receiver is a real HTTP receiver on a loopback port; answer decides each call's fate from
// its 0-based index (nil: 204).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	calls  []hookCall
	answer func(i int, w http.ResponseWriter) bool // false: already answered (or hang)
}

func newReceiver(t *testing.T, answer func(i int, w http.ResponseWriter) bool) *receiver {
	r := &receiver{t: t, answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		c := hookCall{at: time.Now(), delivery: req.Header.Get("Eventide-Delivery"), signature: req.Header.Get("Eventide-Signature"), body: body}
		if err := json.Unmarshal(body, &c.msg); err != nil {
			t.Errorf("webhook body is not JSON: %v: %s", err, body)
		}
		r.mu.Lock()
		i := len(r.calls)
		r.calls = append(r.calls, c)
		r.mu.Unlock()
		if r.answer != nil && !r.answer(i, w) {
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) snapshot() []hookCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookCall(nil), r.calls...)
}

// delivered returns the calls answered 2xx-or-later in order, waiting until n distinct delivery
// ids arrived or the timeout.
func (r *receiver) waitIDs(n int, timeout time.Duration) []hookCall {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		calls := r.snapshot()
		seen := map[string]bool{}
		for _, c := range calls {
			seen[c.delivery] = true
		}
		if len(seen) >= n {
			return calls
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%d distinct deliveries arrived, want %d: %v", len(seen), n, types(calls))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func types(calls []hookCall) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = c.msg.Type
	}
	return out
}

// checkSigned verifies the signature of every call and that the header id is the body's id.
func checkSigned(t *testing.T, calls []hookCall) {
	t.Helper()
	for _, c := range calls {
		if !hmac.Equal([]byte(c.signature), []byte(webhook.Sign(testWebhookSecret, c.body))) {
			t.Fatalf("signature %q does not verify for %s", c.signature, c.body)
		}
		if c.delivery == "" || c.delivery != c.msg.ID {
			t.Fatalf("Eventide-Delivery %q, body id %q", c.delivery, c.msg.ID)
		}
		if c.msg.OccurredAt.IsZero() || len(c.msg.Data) == 0 {
			t.Fatalf("body lacks occurredAt or data: %s", c.body)
		}
	}
}

func webhookConfig(t *testing.T, urls ...string) *config.Config {
	cfg := testConfig(t)
	cfg.WebhookURLs = urls
	cfg.WebhookSecret = testWebhookSecret
	cfg.WebhookBackoff = 100 * time.Millisecond
	cfg.WebhookTimeout = 2 * time.Second
	cfg.WebhookMaxAttempts = 10
	cfg.WebhookRetention = 72 * time.Hour
	return cfg
}

// TestWebhooksEveryType: each of the seven message types reaches a real receiver, signed, with
// the delivery id of its body, in the order the changes happened (the cancelled event's
// remaining registration is reported cancelled after it); webhookDeliveries shows them to an
// admin and refuses others; the counters move.
func TestWebhooksEveryType(t *testing.T) {
	rcv := newReceiver(t, nil)
	ts := startServer(t, webhookConfig(t, rcv.srv.URL+"/hooks"))
	org := ts.organizer("Hook Org")
	ev := ts.publishedEvent(org, "Hooked", 1, 48*time.Hour) // event.published
	ts.mustData(org.Token, `mutation($id: ID!){ updateEvent(id: $id, input: {title: "Hooked again"}){ id } }`, map[string]any{"id": ev}, nil)
	a, b := ts.signUp("Hook A"), ts.signUp("Hook B")
	ts.mustData(a.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": ev}, nil)
	ts.mustData(b.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": ev}, nil)
	ts.mustData(a.Token, `mutation($id: ID!){ cancelRegistration(eventId: $id){ id } }`, map[string]any{"id": ev}, nil)
	ts.mustData(org.Token, `mutation($id: ID!){ cancelEvent(id: $id, reason: "rain"){ id } }`, map[string]any{"id": ev}, nil)

	calls := rcv.waitIDs(8, 10*time.Second)
	checkSigned(t, calls)
	want := []string{"event.published", "event.updated", "registration.confirmed", "registration.waitlisted",
		"registration.cancelled", "registration.promoted", "event.cancelled", "registration.cancelled"}
	if got := strings.Join(types(calls), ","); got != strings.Join(want, ",") {
		t.Fatalf("types in order %s\nwant %s", got, strings.Join(want, ","))
	}
	var reg struct {
		Registration struct{ UserID, EventID, Status string }
	}
	if err := json.Unmarshal(calls[5].msg.Data, &reg); err != nil || reg.Registration.UserID != b.ID ||
		reg.Registration.EventID != ev || reg.Registration.Status != "CONFIRMED" {
		t.Fatalf("promoted data %s (%v)", calls[5].msg.Data, err)
	}
	var evd struct {
		Event struct {
			ID, Status, Title string
			CancelReason      *string
		}
	}
	if err := json.Unmarshal(calls[6].msg.Data, &evd); err != nil || evd.Event.ID != ev || evd.Event.Status != "CANCELLED" ||
		evd.Event.CancelReason == nil || *evd.Event.CancelReason != "rain" || evd.Event.Title != "Hooked again" {
		t.Fatalf("cancelled data %s (%v)", calls[6].msg.Data, err)
	}

	// Admins see the deliveries; others are refused, and that is a security event.
	var out struct {
		WebhookDeliveries []struct {
			MessageID, Type, Status, Receiver, Payload string
			Attempts                                   int
			LastError                                  *string
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ts.mustData(ts.admin().Token, `{ webhookDeliveries(status: DELIVERED){ messageId type status receiver attempts lastError payload } }`, nil, &out)
		if len(out.WebhookDeliveries) == 8 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(out.WebhookDeliveries) != 8 {
		t.Fatalf("%d delivered rows, want 8", len(out.WebhookDeliveries))
	}
	if d := out.WebhookDeliveries[0]; d.Type != "registration.cancelled" || d.MessageID != calls[7].delivery {
		t.Fatalf("newest delivery row %+v", d)
	}
	if d := out.WebhookDeliveries[1]; d.Type != "event.cancelled" || d.Attempts != 1 || d.LastError != nil ||
		d.MessageID != calls[6].delivery || d.Payload != string(calls[6].body) || d.Receiver != rcv.srv.URL+"/hooks" {
		t.Fatalf("second newest delivery row %+v", d)
	}
	ts.mustCode("FORBIDDEN", a.Token, `{ webhookDeliveries { messageId } }`, nil)
	var sec struct{ SecurityEvents []struct{ Message string } }
	ts.mustData(ts.admin().Token, `{ securityEvents(filter: {types: [ACCESS_DENIED]}){ message } }`, nil, &sec)
	if len(sec.SecurityEvents) == 0 || !strings.Contains(sec.SecurityEvents[0].Message, "webhookDeliveries") {
		t.Fatalf("no ACCESS_DENIED event for webhookDeliveries: %+v", sec.SecurityEvents)
	}
	if n := ts.metric(`eventide_webhook_deliveries_total{result="delivered"}`); n < 8 {
		t.Fatalf("delivered counter %v, want 8", n)
	}
}

// TestWebhooksJourneys: the organizer's writes of the journeys reach receivers as the
// attendee's own do: removeRegistration a registration.cancelled (the removed one) and a
// registration.promoted (who took the seat); cancelEvent of an event with registrations an
// event.cancelled and a registration.cancelled for each registration it cancels.
func TestWebhooksJourneys(t *testing.T) {
	rcv := newReceiver(t, nil)
	ts := startServer(t, webhookConfig(t, rcv.srv.URL+"/hooks"))
	org := ts.organizer("Journey Org")
	ev := ts.publishedEvent(org, "Removals", 1, 48*time.Hour)
	regID := map[string]string{}
	us := []session{ts.signUp("Journey A"), ts.signUp("Journey B"), ts.signUp("Journey C")}
	for _, u := range us {
		var out struct{ RegisterForEvent struct{ ID string } }
		ts.mustData(u.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": ev}, &out)
		regID[u.ID] = out.RegisterForEvent.ID
	}
	rcv.waitIDs(4, 10*time.Second) // published, confirmed, waitlisted, waitlisted
	ts.mustData(org.Token, `mutation($r: ID!){ removeRegistration(id: $r, reason: "no-show"){ id } }`,
		map[string]any{"r": regID[us[0].ID]}, nil)
	ts.mustData(org.Token, `mutation($id: ID!){ cancelEvent(id: $id, reason: "rain"){ id } }`, map[string]any{"id": ev}, nil)

	calls := rcv.waitIDs(9, 10*time.Second)
	checkSigned(t, calls)
	reg := func(c hookCall) (r struct{ ID, UserID, EventID, Status string }) {
		var b struct {
			Registration struct{ ID, UserID, EventID, Status string }
		}
		if err := json.Unmarshal(c.msg.Data, &b); err != nil {
			t.Fatalf("%s data %s: %v", c.msg.Type, c.msg.Data, err)
		}
		return b.Registration
	}
	got := calls[4:]
	want := "registration.cancelled,registration.promoted,event.cancelled,registration.cancelled,registration.cancelled"
	if strings.Join(types(got), ",") != want {
		t.Fatalf("after removeRegistration and cancelEvent: %v\nwant %s", types(got), want)
	}
	if r := reg(got[0]); r.ID != regID[us[0].ID] || r.UserID != us[0].ID || r.Status != "CANCELLED" ||
		!strings.Contains(string(got[0].msg.Data), `"cancelReason":"no-show"`) {
		t.Fatalf("removed: %+v %s", r, got[0].msg.Data)
	}
	if r := reg(got[1]); r.ID != regID[us[1].ID] || r.Status != "CONFIRMED" {
		t.Fatalf("promoted: %+v, want B confirmed", r)
	}
	cascade := map[string]bool{}
	for _, c := range got[3:] {
		r := reg(c)
		if r.Status != "CANCELLED" || r.EventID != ev || !strings.Contains(string(c.msg.Data), `"cancelReason":"rain"`) {
			t.Fatalf("cascade: %+v %s", r, c.msg.Data)
		}
		cascade[r.ID] = true
	}
	if !cascade[regID[us[1].ID]] || !cascade[regID[us[2].ID]] {
		t.Fatalf("cascade reported %v, want B's and C's registrations", cascade)
	}
}

// TestWebhooksRetryKeepsID: a receiver that answers 500, then hangs past WEBHOOK_TIMEOUT, then
// 500 again before accepting gets the same delivery id and body each time, with growing gaps
// (backoff from WEBHOOK_BACKOFF); the message after it waits its turn (order per receiver).
func TestWebhooksRetryKeepsID(t *testing.T) {
	rcv := newReceiver(t, func(i int, w http.ResponseWriter) bool {
		switch i {
		case 0, 2:
			w.WriteHeader(http.StatusInternalServerError)
			return false
		case 1:
			time.Sleep(700 * time.Millisecond) // past WEBHOOK_TIMEOUT
		}
		return true
	})
	cfg := webhookConfig(t, rcv.srv.URL)
	cfg.WebhookTimeout = 300 * time.Millisecond
	cfg.WebhookBackoff = 200 * time.Millisecond
	ts := startServer(t, cfg)
	org := ts.organizer("Retry Org")
	ev := ts.publishedEvent(org, "Retried", 5, 48*time.Hour)
	u := ts.signUp("Retry U")
	ts.mustData(u.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": ev}, nil)

	calls := rcv.waitIDs(2, 15*time.Second)
	for len(calls) < 5 {
		time.Sleep(50 * time.Millisecond)
		calls = rcv.snapshot()
	}
	checkSigned(t, calls)
	first := calls[0]
	for i := 1; i < 4; i++ {
		if calls[i].delivery != first.delivery || string(calls[i].body) != string(first.body) {
			t.Fatalf("attempt %d: id %s body %s; first %s %s", i+1, calls[i].delivery, calls[i].body, first.delivery, first.body)
		}
	}
	if calls[4].msg.Type != "registration.confirmed" || calls[0].msg.Type != "event.published" {
		t.Fatalf("order %v", types(calls))
	}
	// Backoff: after attempt n the delay is drawn from [b*2^(n-1)/2, b*2^(n-1)].
	gap1 := calls[1].at.Sub(calls[0].at)
	gap3 := calls[3].at.Sub(calls[2].at)
	if gap1 < 100*time.Millisecond || gap3 < 400*time.Millisecond {
		t.Fatalf("gaps %v (after 1st) and %v (after 3rd): no backoff", gap1, gap3)
	}
	var out struct {
		WebhookDeliveries []struct {
			Type      string
			Attempts  int
			LastError *string
		}
	}
	ts.mustData(ts.admin().Token, `{ webhookDeliveries(last: 10){ type attempts lastError } }`, nil, &out)
	for _, d := range out.WebhookDeliveries {
		if d.Type == "event.published" && (d.Attempts != 4 || d.LastError == nil || !strings.Contains(*d.LastError, "500")) {
			t.Fatalf("published delivery %+v, want 4 attempts and the last error", d)
		}
	}
}

// TestWebhooksFailAfterMaxAttempts: a receiver down for good ends FAILED after
// WEBHOOK_MAX_ATTEMPTS attempts, and the next message is then tried.
func TestWebhooksFailAfterMaxAttempts(t *testing.T) {
	rcv := newReceiver(t, func(i int, w http.ResponseWriter) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return false
	})
	cfg := webhookConfig(t, rcv.srv.URL)
	cfg.WebhookMaxAttempts = 3
	cfg.WebhookBackoff = 20 * time.Millisecond
	ts := startServer(t, cfg)
	org := ts.organizer("Fail Org")
	ts.publishedEvent(org, "Failing", 5, 48*time.Hour)
	rcv.waitIDs(1, 5*time.Second)
	var out struct {
		WebhookDeliveries []struct {
			Status    string
			Attempts  int
			LastError *string
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ts.mustData(ts.admin().Token, `{ webhookDeliveries(status: FAILED){ status attempts lastError } }`, nil, &out)
		if len(out.WebhookDeliveries) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(out.WebhookDeliveries) != 1 || out.WebhookDeliveries[0].Attempts != 3 || out.WebhookDeliveries[0].LastError == nil ||
		*out.WebhookDeliveries[0].LastError != "HTTP 503" {
		t.Fatalf("failed deliveries %+v", out.WebhookDeliveries)
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(rcv.snapshot()); n != 3 {
		t.Fatalf("%d attempts, want exactly 3", n)
	}
	if n := ts.metric(`eventide_webhook_deliveries_total{result="failed"}`); n != 1 {
		t.Fatalf("failed counter %v", n)
	}
}

// TestWebhooksSurviveSIGKILL builds the server, points it at a receiver that refuses everything
// (503) so that messages stay pending, makes acknowledged changes, kills the process with
// SIGKILL, and restarts it with a receiver that accepts: every message arrives, each id at
// least once, with its signature.
func TestWebhooksSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	var accept sync.Map
	rcv := newReceiver(t, func(i int, w http.ResponseWriter) bool {
		if _, ok := accept.Load("on"); ok {
			return true
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return false
	})
	bin := buildServer(t)
	t.Setenv("WEBHOOK_URLS", rcv.srv.URL)
	t.Setenv("WEBHOOK_SECRET", testWebhookSecret)
	t.Setenv("WEBHOOK_BACKOFF", "50ms")
	c := &crashServer{t: t, bin: bin, dir: t.TempDir(), addr: freeAddr(t)}
	t.Cleanup(c.kill)
	ts := c.start()
	org := ts.organizer("Kill Org")
	ev := ts.publishedEvent(org, "Killed", 2, 48*time.Hour)
	const users = 5
	for i := range users {
		u := ts.signUp("Kill U" + string(rune('a'+i)))
		ts.mustData(u.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": ev}, nil)
	}
	// 1 published + 5 registrations, all acknowledged; none accepted by the receiver yet.
	rcv.waitIDs(1, 5*time.Second)
	c.kill()

	accept.Store("on", true)
	c.start()
	calls := rcv.waitIDs(1+users, 15*time.Second)
	checkSigned(t, calls)
	got := map[string]int{}
	for _, cl := range calls {
		got[cl.msg.Type]++
	}
	if got["event.published"] == 0 || got["registration.confirmed"] == 0 || got["registration.waitlisted"] == 0 {
		t.Fatalf("after the restart: %v", got)
	}
}

// TestWebhooksTwoReplicasDeliverOnce runs two servers on one MongoDB store (the in-process
// FerretDB), both delivering to one receiver, with writes on both: every message arrives exactly
// once (the lease on the outbox row), signed, and in the order of its occurrence.
func TestWebhooksTwoReplicasDeliverOnce(t *testing.T) {
	rcv := newReceiver(t, nil)
	db := startStoreAt(t, t.TempDir(), freeAddr(t))
	replica := func() *testServer {
		cfg := webhookConfig(t, rcv.srv.URL)
		cfg.MongoURI = db.URI()
		return startServer(t, cfg)
	}
	a, b := replica(), replica()
	org := a.organizer("Replica Org")
	const events = 3
	var want int
	for i := range events {
		ts := a
		if i%2 == 1 {
			ts = b
		}
		ev := ts.publishedEvent(org, "Replicated", 1, 48*time.Hour)
		want++
		for j := range 2 {
			u := ts.signUp("Replica U")
			other := b
			if j == 1 {
				other = a
			}
			other.mustData(u.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ id } }`, map[string]any{"id": ev}, nil)
			want++
		}
	}
	calls := rcv.waitIDs(want, 20*time.Second)
	time.Sleep(1500 * time.Millisecond) // a second copy would come within a poll
	calls = rcv.snapshot()
	checkSigned(t, calls)
	seen := map[string]int{}
	for _, c := range calls {
		seen[c.delivery]++
	}
	if len(seen) != want {
		t.Fatalf("%d distinct messages, want %d", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("message %s delivered %d times, want once", id, n)
		}
	}
	for i := 1; i < len(calls); i++ {
		if calls[i].msg.OccurredAt.Before(calls[i-1].msg.OccurredAt) {
			t.Fatalf("out of order: %v after %v", calls[i].msg.OccurredAt, calls[i-1].msg.OccurredAt)
		}
	}
}
