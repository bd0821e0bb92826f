package security

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// wire joins logs as the replica bus does: a message published by one replica reaches every
// other's Receive, never its own.
type wire struct {
	logs []*Log
	from *Log
	errs []error
}

func (w *wire) publisher(from *Log) Publisher { return &wireEnd{w: w, from: from} }

type wireEnd struct {
	w    *wire
	from *Log
}

func (e *wireEnd) Publish(topic string, payload []byte) {
	if topic != Topic {
		e.w.errs = append(e.w.errs, fmt.Errorf("published on %q", topic))
		return
	}
	for _, l := range e.w.logs {
		if l != e.from {
			if err := l.Receive(payload); err != nil {
				e.w.errs = append(e.w.errs, err)
			}
		}
	}
}

// sameEvent compares every field, the time as an instant (what crosses the wire).
func sameEvent(a, b Event) bool {
	same := a.At.Equal(b.At)
	a.At, b.At = time.Time{}, time.Time{}
	return same && a == b
}

// TestShare: an event logged on one replica is in the other's log, with its ID, time and every
// field, and fanned out to the other's subscribers; a received event is not published again.
func TestShare(t *testing.T) {
	a, b := NewLog(LogConfig{Origin: "a"}), NewLog(LogConfig{Origin: "b"})
	w := &wire{logs: []*Log{a, b}}
	a.Share(w.publisher(a))
	b.Share(w.publisher(b))
	onB, err := b.Subscribe(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	sent := a.Log(Event{Type: AccessDenied, IP: "198.51.100.1", UserID: "u1", Email: "x@example.com",
		UserAgent: "curl", Operation: "purgeCache", Message: "not an admin"})
	select {
	case got := <-onB:
		if !sameEvent(got, sent) {
			t.Fatalf("b's subscriber got %+v\nsent %+v", got, sent)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b's subscriber got nothing")
	}
	if q := b.Query(Filter{}, 10); len(q) != 1 || !sameEvent(q[0], sent) {
		t.Fatalf("b's log holds %+v, want %+v", q, sent)
	}
	if st := a.Stats(); st.Events != 1 || st.Received != 0 {
		t.Fatalf("a's stats %+v: b published the event back", st)
	}
	if st := b.Stats(); st.Events != 1 || st.Logged != 0 || st.Received != 1 {
		t.Fatalf("b's stats %+v: want a's event, received once", st)
	}
	if len(w.errs) > 0 {
		t.Fatal(w.errs)
	}
}

// TestReceiveRejectsMalformed: a message that is not an event is an error and changes nothing;
// a valid one without severity or time gets the type's severity and the receiving time.
func TestReceiveRejectsMalformed(t *testing.T) {
	l := NewLog(LogConfig{Origin: "me"})
	for _, payload := range []string{
		"not json",
		`{"type":"HACKED","id":"1"}`,
		`{"id":"1"}`,
		`{"type":"LOGIN_FAILED","message":"` + strings.Repeat("x", maxPayload) + `"}`,
	} {
		if err := l.Receive([]byte(payload)); err == nil {
			t.Errorf("Receive(%.40q) accepted it", payload)
		}
	}
	if st := l.Stats(); st.Events != 0 || st.Received != 0 {
		t.Fatalf("malformed messages changed the log: %+v", st)
	}
	if err := l.Receive([]byte(`{"type":"LOGIN_FAILED","id":"x-other"}`)); err != nil {
		t.Fatal(err)
	}
	if e := l.Query(Filter{}, 10); len(e) != 1 || e[0].ID != "x-other" || e[0].Severity != SeverityLow || e[0].At.IsZero() {
		t.Fatalf("got %+v", e)
	}
}
