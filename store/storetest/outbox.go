package storetest

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

// OutboxStore is a store with the webhook outbox.
type OutboxStore interface {
	Store
	eventide.WebhookOutbox
}

// RunOutbox runs the webhook outbox contract: open returns an empty store writing messages for
// o's receivers.
func RunOutbox(t *testing.T, open func(t *testing.T, o eventide.OutboxOptions) OutboxStore) {
	t.Run("none-without-receivers", func(t *testing.T) { outboxNone(t, open) })
	t.Run("messages", func(t *testing.T) { outboxMessages(t, open) })
	t.Run("lease", func(t *testing.T) { outboxLease(t, open) })
	t.Run("failed-write-writes-none", func(t *testing.T) { outboxFailedWrite(t, open) })
	t.Run("journeys", func(t *testing.T) { outboxJourneys(t, open) })
}

// all returns every delivery, oldest first.
func allDeliveries(t *testing.T, st OutboxStore) []*eventide.WebhookDelivery {
	t.Helper()
	ds, err := st.WebhookDeliveries(ctx, "", 1000)
	must(t, err)
	for i, j := 0, len(ds)-1; i < j; i, j = i+1, j-1 {
		ds[i], ds[j] = ds[j], ds[i]
	}
	return ds
}

// scenario makes one change of each kind: publish, edit, two registrations (one waitlisted), a
// cancellation that promotes, an event cancellation.
func scenario(t *testing.T, st OutboxStore) (e *eventide.Event, us []*eventide.User) {
	t.Helper()
	now := clock()
	org := user(t, st, "org", eventide.RoleOrganizer)
	us = users(t, st, 2)
	e = event(t, st, now, ev{start: 24 * time.Hour, capacity: 1, status: eventide.EventDraft, org: org.ID})
	_, err := st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error { x.Title = "draft edit"; return nil })
	must(t, err)
	_, err = st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error { x.Status = eventide.EventPublished; return nil })
	must(t, err)
	_, err = st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error { x.Title = "edited"; return nil })
	must(t, err)
	_, _, err = st.Register(ctx, e.ID, us[0].ID, now)
	must(t, err)
	_, _, err = st.Register(ctx, e.ID, us[1].ID, now.Add(time.Millisecond))
	must(t, err)
	_, _, err = st.CancelRegistration(ctx, e.ID, us[0].ID, now.Add(2*time.Millisecond))
	must(t, err)
	_, err = st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error {
		x.Status, x.CancelReason = eventide.EventCancelled, "rain"
		return nil
	})
	must(t, err)
	return e, us
}

func outboxNone(t *testing.T, open func(*testing.T, eventide.OutboxOptions) OutboxStore) {
	st := open(t, eventide.OutboxOptions{})
	scenario(t, st)
	if ds := allDeliveries(t, st); len(ds) != 0 {
		t.Fatalf("%d deliveries without receivers, want none", len(ds))
	}
	if n, oldest, err := st.WebhookBacklog(ctx); err != nil || n != 0 || !oldest.IsZero() {
		t.Fatalf("backlog %d %v %v", n, oldest, err)
	}
}

func outboxMessages(t *testing.T, open func(*testing.T, eventide.OutboxOptions) OutboxStore) {
	notified := make(chan struct{}, 100)
	rs := []string{"http://a.example/hook", "https://b.example/hook"}
	st := open(t, eventide.OutboxOptions{Receivers: rs, Notify: func() {
		select {
		case notified <- struct{}{}:
		default:
		}
	}})
	e, us := scenario(t, st)
	ds := allDeliveries(t, st)
	want := []string{"event.published", "event.updated", "registration.confirmed", "registration.waitlisted",
		"registration.cancelled", "registration.promoted", "event.cancelled", "registration.cancelled"}
	for _, r := range rs {
		var got []string
		ids := map[string]bool{}
		for _, d := range ds {
			if d.Receiver != r {
				continue
			}
			got = append(got, d.Type)
			ids[d.ID] = true
			if d.Status != eventide.DeliveryPending || d.Attempts != 0 || d.Key != eventide.DeliveryKey(d.ID, r) {
				t.Fatalf("new delivery %+v", d)
			}
			var body struct {
				ID, Type   string
				OccurredAt time.Time
				Data       map[string]json.RawMessage
			}
			if err := json.Unmarshal(d.Body, &body); err != nil || body.ID != d.ID || body.Type != d.Type || body.OccurredAt.IsZero() {
				t.Fatalf("body %s (%v)", d.Body, err)
			}
			if strings.HasPrefix(d.Type, "registration.") && body.Data["registration"] == nil ||
				strings.HasPrefix(d.Type, "event.") && body.Data["event"] == nil {
				t.Fatalf("body data %s", d.Body)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("receiver %s got %v\nwant %v", r, got, want)
		}
		if len(ids) != len(want) {
			t.Fatalf("%d distinct ids for %d messages", len(ids), len(want))
		}
	}
	// The same message has the same id for every receiver.
	byType := map[string][]string{}
	for _, d := range ds {
		byType[d.Type] = append(byType[d.Type], d.ID)
	}
	for typ, ids := range byType {
		sort.Strings(ids)
		for i := 0; i < len(ids); i += 2 {
			if len(ids)%2 != 0 || ids[i] != ids[i+1] {
				t.Fatalf("%s: ids %v", typ, ids)
			}
		}
	}
	// The promoted message names the second user, confirmed.
	for _, d := range ds {
		if d.Type == "registration.promoted" || d.Type == "registration.confirmed" {
			if strings.Contains(string(d.Body), "cancelReason") {
				t.Fatalf("an active registration's message carries a cancelReason: %s", d.Body)
			}
		}
		if d.Type == "registration.promoted" {
			var b struct {
				Data struct{ Registration eventide.WebhookRegistration }
			}
			must(t, json.Unmarshal(d.Body, &b))
			if b.Data.Registration.UserID != us[1].ID || b.Data.Registration.Status != "CONFIRMED" || b.Data.Registration.EventID != e.ID {
				t.Fatalf("promoted %s", d.Body)
			}
		}
	}
	select {
	case <-notified:
	default:
		t.Fatal("Notify was never called")
	}
	if n, oldest, err := st.WebhookBacklog(ctx); err != nil || n != 16 || oldest.IsZero() {
		t.Fatalf("backlog %d %v %v", n, oldest, err)
	}
}

func outboxLease(t *testing.T, open func(*testing.T, eventide.OutboxOptions) OutboxStore) {
	r := "http://a.example/hook"
	st := open(t, eventide.OutboxOptions{Receivers: []string{r}})
	scenario(t, st)
	now := time.Now()
	d, _, err := st.ClaimWebhook(ctx, r, "one", now, time.Minute)
	must(t, err)
	if d == nil || d.Type != "event.published" || d.Attempts != 1 {
		t.Fatalf("first claim %+v", d)
	}
	// Leased: nobody else gets it, nor the next message (one in flight, in order).
	d2, next, err := st.ClaimWebhook(ctx, r, "two", now, time.Minute)
	must(t, err)
	if d2 != nil || next.Before(now.Add(59*time.Second)) {
		t.Fatalf("second claim while leased: %+v, next %v", d2, next)
	}
	if ok, err := st.FinishWebhook(ctx, d.Key, "two", eventide.WebhookOutcome{Status: eventide.DeliveryDelivered, At: now}); err != nil || ok {
		t.Fatalf("finish by a non-owner: %v %v", ok, err)
	}
	// A failed attempt: retried not before its time, with its error kept.
	retry := now.Add(time.Hour)
	if ok, err := st.FinishWebhook(ctx, d.Key, "one", eventide.WebhookOutcome{Status: eventide.DeliveryPending, NextAttemptAt: retry, Error: "HTTP 500", At: now}); err != nil || !ok {
		t.Fatalf("finish: %v %v", ok, err)
	}
	d2, next, err = st.ClaimWebhook(ctx, r, "two", now, time.Minute)
	must(t, err)
	if d2 != nil || !next.Equal(retry.UTC().Truncate(time.Millisecond)) {
		t.Fatalf("claim before the retry is due: %+v next %v want %v", d2, next, retry)
	}
	// Due: same message, second attempt; the lease runs out and a third owner takes it.
	d2, _, err = st.ClaimWebhook(ctx, r, "two", retry, time.Second)
	must(t, err)
	if d2 == nil || d2.ID != d.ID || d2.Attempts != 2 || d2.LastError != "HTTP 500" {
		t.Fatalf("retry claim %+v", d2)
	}
	d3, _, err := st.ClaimWebhook(ctx, r, "three", retry.Add(2*time.Second), time.Minute)
	must(t, err)
	if d3 == nil || d3.ID != d.ID || d3.Attempts != 3 {
		t.Fatalf("claim after the lease ran out %+v", d3)
	}
	// A released claim is not counted.
	must(t, st.ReleaseWebhook(ctx, d3.Key, "three"))
	d3, _, err = st.ClaimWebhook(ctx, r, "four", retry.Add(2*time.Second), time.Minute)
	must(t, err)
	if d3 == nil || d3.Attempts != 3 {
		t.Fatalf("claim after release %+v", d3)
	}
	done := retry.Add(3 * time.Second)
	if ok, err := st.FinishWebhook(ctx, d3.Key, "four", eventide.WebhookOutcome{Status: eventide.DeliveryFailed, Error: "HTTP 500", At: done}); err != nil || !ok {
		t.Fatalf("fail: %v %v", ok, err)
	}
	// The next message is now the head.
	d4, _, err := st.ClaimWebhook(ctx, r, "five", done, time.Minute)
	must(t, err)
	if d4 == nil || d4.Type != "event.updated" {
		t.Fatalf("after the first failed: %+v", d4)
	}
	if ok, err := st.FinishWebhook(ctx, d4.Key, "five", eventide.WebhookOutcome{Status: eventide.DeliveryDelivered, At: done.Add(time.Hour)}); err != nil || !ok {
		t.Fatalf("deliver: %v %v", ok, err)
	}
	failed, err := st.WebhookDeliveries(ctx, eventide.DeliveryFailed, 10)
	must(t, err)
	if len(failed) != 1 || failed[0].ID != d.ID || failed[0].Attempts != 3 {
		t.Fatalf("failed list %+v", failed)
	}
	// Retention: finished rows older than the cutoff go, pending ones stay.
	n, err := st.PurgeWebhooks(ctx, done.Add(time.Minute))
	must(t, err)
	if n != 1 {
		t.Fatalf("purged %d, want 1 (the failed one; the delivered one is younger)", n)
	}
	n, err = st.PurgeWebhooks(ctx, done.Add(2*time.Hour))
	must(t, err)
	if n != 1 {
		t.Fatalf("purged %d, want 1", n)
	}
	left := allDeliveries(t, st)
	sort.Slice(left, func(i, j int) bool { return left[i].Type < left[j].Type })
	if len(left) != 6 {
		t.Fatalf("%d left, want the 6 pending", len(left))
	}
	for _, d := range left {
		if d.Status != eventide.DeliveryPending {
			t.Fatalf("left %+v", d)
		}
	}
}

// outboxFailedWrite: a write that fails (a crash, a full disk, an outage before its change)
// leaves no message.
func outboxFailedWrite(t *testing.T, open func(*testing.T, eventide.OutboxOptions) OutboxStore) {
	st := open(t, eventide.OutboxOptions{Receivers: []string{"http://a.example/hook"}})
	f, ok := st.(Faults)
	if !ok {
		t.Skip("the store cannot inject faults")
	}
	now := clock()
	org := user(t, st, "org", eventide.RoleOrganizer)
	us := users(t, st, 1)
	e := event(t, st, now, ev{start: 24 * time.Hour, capacity: 1, org: org.ID})
	f.FailWritesAfter(0)
	_, _, err := st.Register(ctx, e.ID, us[0].ID, now)
	f.Heal()
	if err == nil {
		t.Fatal("the register succeeded despite the fault")
	}
	if _, err := st.RegistrationFor(ctx, e.ID, us[0].ID); eventide.ErrorCode(err) != eventide.CodeNotFound {
		t.Fatalf("the failed registration exists: %v", err)
	}
	if ds := allDeliveries(t, st); len(ds) != 0 {
		t.Fatalf("%d deliveries for a write that did not happen", len(ds))
	}
}

// regBodies returns the registrations that receiver r's deliveries of type typ name, oldest first.
func regBodies(t *testing.T, ds []*eventide.WebhookDelivery, r, typ string) []eventide.WebhookRegistration {
	t.Helper()
	var out []eventide.WebhookRegistration
	for _, d := range ds {
		if d.Receiver != r || d.Type != typ {
			continue
		}
		var b struct {
			Data struct{ Registration eventide.WebhookRegistration }
		}
		must(t, json.Unmarshal(d.Body, &b))
		out = append(out, b.Data.Registration)
	}
	return out
}

// outboxJourneys: the organizer's writes report every registration they change, as a
// registration's own cancellation does: removeRegistration a registration.cancelled and a
// registration.promoted for the seat it frees; a raised capacity a registration.promoted for
// each seat; cancelEvent a registration.cancelled for each registration it cancels with it.
func outboxJourneys(t *testing.T, open func(*testing.T, eventide.OutboxOptions) OutboxStore) {
	const r = "http://a.example/hook"
	st := open(t, eventide.OutboxOptions{Receivers: []string{r}})
	now := clock()
	org := user(t, st, "org", eventide.RoleOrganizer)
	us := users(t, st, 4)
	e := event(t, st, now, ev{start: 24 * time.Hour, capacity: 1, org: org.ID})
	regs := make([]*eventide.Registration, len(us))
	for i, u := range us {
		var err error
		regs[i], _, err = st.Register(ctx, e.ID, u.ID, now.Add(time.Duration(i)*time.Millisecond))
		must(t, err)
	}
	before := len(allDeliveries(t, st))

	_, _, err := st.RemoveRegistration(ctx, regs[0].ID, "no-show", now.Add(time.Second))
	must(t, err)
	_, err = st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error { x.Capacity = 2; return nil })
	must(t, err)
	_, err = st.UpdateEvent(ctx, e.ID, func(x *eventide.Event) error {
		x.Status, x.CancelReason = eventide.EventCancelled, "rain"
		return nil
	})
	must(t, err)

	ds := allDeliveries(t, st)[before:]
	var got []string
	for _, d := range ds {
		got = append(got, d.Type)
	}
	// The cascade's messages come in no promised order among themselves.
	want := "registration.cancelled,registration.promoted,event.updated,registration.promoted,event.cancelled," +
		"registration.cancelled,registration.cancelled,registration.cancelled"
	if strings.Join(got, ",") != want {
		t.Fatalf("messages %v\nwant %s", got, want)
	}
	cancelled := regBodies(t, ds, r, "registration.cancelled")
	if c := cancelled[0]; c.ID != regs[0].ID || c.UserID != us[0].ID || c.Status != "CANCELLED" || c.CancelReason != "no-show" {
		t.Fatalf("removeRegistration's message names %+v", c)
	}
	promoted := regBodies(t, ds, r, "registration.promoted")
	if promoted[0].ID != regs[1].ID || promoted[1].ID != regs[2].ID || promoted[0].Status != "CONFIRMED" || promoted[1].Status != "CONFIRMED" {
		t.Fatalf("promoted %+v, want registrations 1 then 2, confirmed", promoted)
	}
	var ids []string
	for _, c := range cancelled[1:] {
		if c.Status != "CANCELLED" || c.EventID != e.ID || c.CancelReason != "rain" {
			t.Fatalf("cascade message %+v", c)
		}
		ids = append(ids, c.ID)
	}
	sort.Strings(ids)
	wantIDs := []string{regs[1].ID, regs[2].ID, regs[3].ID}
	sort.Strings(wantIDs)
	if strings.Join(ids, ",") != strings.Join(wantIDs, ",") {
		t.Fatalf("the cascade reported %v, want %v", ids, wantIDs)
	}
}
