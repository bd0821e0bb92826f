package security

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eventide/server/internal/syncbuf"
)

func TestShares(t *testing.T) {
	t.Run("SplitOfMaxEvents", func(t *testing.T) {
		for _, tc := range []struct {
			max  int
			want [numShares]int
		}{
			{1000, [numShares]int{500, 250, 250}},
			{100, [numShares]int{50, 25, 25}},
			{7, [numShares]int{5, 1, 1}},
			{1, [numShares]int{1, 1, 1}},
		} {
			if got := shareSizes(tc.max); got != tc.want {
				t.Errorf("shareSizes(%d) = %v, want %v", tc.max, got, tc.want)
			}
		}
	})
	t.Run("LowFloodKeepsMediumAndHigh", func(t *testing.T) {
		l := NewLog(LogConfig{MaxEvents: 100})
		alarm := l.Log(Event{Type: BruteForceSuspected, Email: "victim@example.com"})
		denied := l.Log(Event{Type: AccessDenied, UserID: "u1", Message: "Query.serverInfo needs the ADMIN role"})
		for i := range 10_000 {
			l.Log(Event{Type: []EventType{LoginFailed, TokenInvalid, SignedUp, RateLimited}[i%4]})
		}
		got := l.Query(Filter{MinSeverity: SeverityMedium}, 100)
		if len(got) != 2 || got[0].ID != denied.ID || got[1].ID != alarm.ID {
			t.Fatalf("MEDIUM and graver after 10000 routine events: %+v", got)
		}
		if n := len(l.Query(Filter{}, 1000)); n != 52 {
			t.Fatalf("%d events held, want 50 routine and the 2", n)
		}
	})
	t.Run("MediumFloodKeepsHigh", func(t *testing.T) {
		l := NewLog(LogConfig{MaxEvents: 100})
		alarm := l.Log(Event{Type: BruteForceSuspected, Email: "victim@example.com"})
		for i := range 1000 { // distinct users: no repeat counting to hide behind
			l.Log(Event{Type: AccessDenied, UserID: fmt.Sprint("u", i), Message: "Query.serverInfo needs the ADMIN role"})
			l.Log(Event{Type: RoleChanged, Message: fmt.Sprint(i)})
		}
		got := l.Query(Filter{MinSeverity: SeverityHigh}, 100)
		if len(got) != 1 || got[0].ID != alarm.ID {
			t.Fatalf("HIGH after 2000 MEDIUM events: %+v", got)
		}
		if n := len(l.Query(Filter{MinSeverity: SeverityMedium}, 1000)); n != 26 {
			t.Fatalf("%d MEDIUM+ events held, want 25 MEDIUM and the alarm", n)
		}
	})
	t.Run("QueryNewestFirstAcrossShares", func(t *testing.T) {
		clock := newFakeClock()
		l := NewLog(LogConfig{MaxEvents: 12, Now: clock.Now})
		var want []string
		for i := range 9 {
			e := l.Log(Event{Type: []EventType{LoginFailed, BruteForceSuspected, QueryRejected, RoleChanged}[i%4],
				Message: fmt.Sprint(i), UserID: fmt.Sprint("u", i%2)})
			want = append([]string{e.Message}, want...)
			clock.Advance(time.Second)
		}
		msgs := func(es []Event) string {
			var s []string
			for _, e := range es {
				s = append(s, e.Message)
			}
			return strings.Join(s, ",")
		}
		if got := msgs(l.Query(Filter{}, 100)); got != strings.Join(want, ",") {
			t.Fatalf("newest first: %s, want %s", got, strings.Join(want, ","))
		}
		if got := msgs(l.Query(Filter{}, 3)); got != "8,7,6" {
			t.Fatalf("last 3: %s", got)
		}
		if got := msgs(l.Query(Filter{UserID: "u1", MinSeverity: SeverityMedium}, 100)); got != "7,5,3,1" {
			t.Fatalf("u1, MEDIUM+: %s", got)
		}
	})
}

func TestRepeats(t *testing.T) {
	const refusal = "Query.serverInfo needs the ADMIN role"
	denied := func(user, ip, op string) Event {
		return Event{Type: AccessDenied, UserID: user, IP: ip, Operation: op, Message: refusal}
	}
	t.Run("OneEventCounts", func(t *testing.T) {
		l := NewLog(LogConfig{MaxEvents: 100})
		first := l.Log(denied("u1", "10.0.0.1", "Peek"))
		var last Event
		for i := range 119 {
			// The operation name is the client's: another one is the same refusal.
			last = l.Log(denied("u1", fmt.Sprint("10.0.0.", i%7), fmt.Sprint("Probe", i)))
		}
		if last.ID != first.ID || last.Count != 120 {
			t.Fatalf("the 120th refusal returned %+v, want event %s counting 120", last, first.ID)
		}
		got := l.Query(Filter{Types: []EventType{AccessDenied}}, 100)
		if len(got) != 1 || got[0].Count != 120 || got[0].Operation != "Peek" || got[0].Message != refusal+" (120 times)" {
			t.Fatalf("ACCESS_DENIED events: %+v", got)
		}
		if st := l.Stats(); st.Repeated != 119 || st.Logged != 120 || st.Events != 1 || st.RepeatWindows != 1 {
			t.Fatalf("stats %+v", st)
		}
		if v := metricValue(t, l.Collectors(), "eventide_security_events_repeated_total", nil); v != 119 {
			t.Fatalf("repeated counter %v", v)
		}
	})
	t.Run("KeyedByUserClientAndRefusal", func(t *testing.T) {
		l := NewLog(LogConfig{MaxEvents: 100})
		l.Log(denied("u1", "10.0.0.1", ""))
		l.Log(denied("u2", "10.0.0.1", ""))                                                              // another user
		l.Log(denied("", "10.0.0.1", ""))                                                                // anonymous: by address
		l.Log(denied("", "10.0.0.2", ""))                                                                // another address
		l.Log(Event{Type: AccessDenied, UserID: "u1", Message: "Query.cacheStats needs the ADMIN role"}) // another refusal
		for range 3 {
			l.Log(denied("u1", "10.0.0.9", ""))
			l.Log(denied("", "10.0.0.1", ""))
		}
		counts := map[string]int{}
		for _, e := range l.Query(Filter{}, 100) {
			counts[e.UserID+"|"+e.IP+"|"+strings.SplitN(e.Message, " ", 2)[0]] = e.Count
		}
		want := map[string]int{"u1|10.0.0.1|Query.serverInfo": 4, "u2|10.0.0.1|Query.serverInfo": 1,
			"|10.0.0.1|Query.serverInfo": 4, "|10.0.0.2|Query.serverInfo": 1, "u1||Query.cacheStats": 1}
		if fmt.Sprint(counts) != fmt.Sprint(want) {
			t.Fatalf("counts %v, want %v", counts, want)
		}
	})
	t.Run("OtherTypesNotCounted", func(t *testing.T) {
		l := NewLog(LogConfig{MaxEvents: 100})
		for range 5 {
			l.Log(Event{Type: RoleChanged, UserID: "admin", Message: "same"})
		}
		if n := l.Stats().Events; n != 5 {
			t.Fatalf("%d ROLE_CHANGED events of 5", n)
		}
	})
	t.Run("WindowEndsNewEventAndTallyLine", func(t *testing.T) {
		clock := newFakeClock()
		logs := &syncbuf.Buffer{}
		l := NewLog(LogConfig{MaxEvents: 100, RepeatWindow: time.Minute, Now: clock.Now,
			Logger: slog.New(slog.NewTextHandler(logs, nil))})
		first := l.Log(denied("u1", "10.0.0.1", "Peek"))
		for range 4 {
			clock.Advance(10 * time.Second)
			l.Log(denied("u1", "10.0.0.1", "Peek"))
		}
		clock.Advance(20 * time.Second) // 60s after the first: the window is over
		second := l.Log(denied("u1", "10.0.0.1", "Peek"))
		if second.ID == first.ID || second.Count != 1 {
			t.Fatalf("after the window: %+v", second)
		}
		got := l.Query(Filter{}, 10)
		if len(got) != 2 || got[1].ID != first.ID || got[1].Count != 5 {
			t.Fatalf("events %+v", got)
		}
		tallies := lines(logs.String(), "security_event_repeated")
		if len(tallies) != 1 || field(tallies[0], "id") != first.ID || field(tallies[0], "count") != "5" ||
			field(tallies[0], "type") != "ACCESS_DENIED" || field(tallies[0], "user_id") != "u1" || !strings.Contains(tallies[0], "level=WARN") {
			t.Fatalf("tally lines %q", tallies)
		}
		// The sweep closes the second window once it is over; a window of one writes no tally.
		l.Log(denied("u1", "10.0.0.1", "Peek"))
		clock.Advance(time.Minute)
		l.Sweep()
		if st := l.Stats(); st.RepeatWindows != 0 {
			t.Fatalf("%d windows open after the sweep", st.RepeatWindows)
		}
		tallies = lines(logs.String(), "security_event_repeated")
		if len(tallies) != 2 || field(tallies[1], "id") != second.ID || field(tallies[1], "count") != "2" {
			t.Fatalf("tally lines %q", tallies)
		}
	})
	t.Run("RunClosesWindowsWhenItEnds", func(t *testing.T) {
		logs := &syncbuf.Buffer{}
		l := NewLog(LogConfig{RepeatWindow: time.Hour, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		for range 3 {
			l.Log(denied("u1", "", ""))
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { l.Run(ctx); close(done) }()
		cancel()
		<-done
		if got := lines(logs.String(), "security_event_repeated"); len(got) != 1 || field(got[0], "count") != "3" {
			t.Fatalf("tally lines at the end %q", got)
		}
	})
	t.Run("EventPushedOutStartsAnew", func(t *testing.T) {
		l := NewLog(LogConfig{MaxEvents: 8}) // MEDIUM share: 2
		first := l.Log(denied("u1", "", ""))
		l.Log(Event{Type: RoleChanged})
		l.Log(Event{Type: RoleChanged}) // first is gone
		again := l.Log(denied("u1", "", ""))
		if again.ID == first.ID || again.Count != 1 {
			t.Fatalf("a repeat of an event no longer held: %+v", again)
		}
		if got := l.Query(Filter{Types: []EventType{AccessDenied}}, 10); len(got) != 1 || got[0].ID != again.ID {
			t.Fatalf("ACCESS_DENIED held: %+v", got)
		}
	})
	t.Run("SweepMovesEventCountStillFound", func(t *testing.T) {
		clock := newFakeClock()
		l := NewLog(LogConfig{MaxEvents: 40, MaxAge: time.Hour, RepeatWindow: 2 * time.Hour, Now: clock.Now})
		l.Log(Event{Type: RoleChanged})
		clock.Advance(30 * time.Minute)
		first := l.Log(denied("u1", "", ""))
		clock.Advance(45 * time.Minute) // the ROLE_CHANGED is old: the sweep moves ours down
		if n := l.Sweep(); n != 1 {
			t.Fatalf("swept %d", n)
		}
		if e := l.Log(denied("u1", "", "")); e.ID != first.ID || e.Count != 2 {
			t.Fatalf("after the sweep: %+v", e)
		}
	})
	t.Run("BoundedWindows", func(t *testing.T) {
		logs := &syncbuf.Buffer{}
		l := NewLog(LogConfig{MaxEvents: 1000, MaxRepeatKeys: 3, Logger: slog.New(slog.NewTextHandler(logs, nil))})
		for i := range 3 {
			l.Log(denied(fmt.Sprint("u", i), "", ""))
			l.Log(denied(fmt.Sprint("u", i), "", ""))
		}
		for i := 3; i < 500; i++ {
			l.Log(denied(fmt.Sprint("u", i), "", ""))
			if st := l.Stats(); st.RepeatWindows > 3 || len(l.repeats.open) > 3 || l.repeats.queued() > 3 || cap(l.repeats.order) >= 6 {
				t.Fatalf("after %d users: %d windows open, %d queued in %d; bound 3", i+1, st.RepeatWindows,
					l.repeats.queued(), cap(l.repeats.order))
			}
		}
		// The oldest were closed first, each with its tally.
		got := lines(logs.String(), "security_event_repeated")
		if len(got) != 3 || field(got[0], "user_id") != "u0" || field(got[2], "user_id") != "u2" {
			t.Fatalf("tallies of the windows closed early: %q", got)
		}
		// The newest are still counting.
		if e := l.Log(denied("u499", "", "")); e.Count != 2 {
			t.Fatalf("newest window: %+v", e)
		}
		if e := l.Log(denied("u0", "", "")); e.Count != 1 {
			t.Fatalf("a window closed early starts anew: %+v", e)
		}
	})
	t.Run("QueueBoundedWhileWindowsEndEarly", func(t *testing.T) {
		// Windows closed by a repeat after they ended leave stale entries in the queue; it still
		// stays within its bound.
		clock := newFakeClock()
		l := NewLog(LogConfig{MaxEvents: 1000, MaxRepeatKeys: 4, RepeatWindow: time.Second, Now: clock.Now})
		for i := range 1000 {
			l.Log(denied(fmt.Sprint("u", i%2), "", ""))
			clock.Advance(700 * time.Millisecond)
			if q, c := l.repeats.queued(), cap(l.repeats.order); q > 4 || c >= 8 || len(l.repeats.open) > 4 {
				t.Fatalf("after %d: %d queued in %d, %d open", i+1, q, c, len(l.repeats.open))
			}
		}
	})
	t.Run("QuietLogHoldsNoQueue", func(t *testing.T) {
		l := NewLog(LogConfig{})
		if cap(l.repeats.order) != 0 {
			t.Fatalf("a new log reserves %d queue entries", cap(l.repeats.order))
		}
	})
	t.Run("ReceivedNotCounted", func(t *testing.T) {
		l := NewLog(LogConfig{MaxEvents: 100})
		for i := range 3 {
			l.receive(Event{ID: fmt.Sprint("x", i, "-other"), Type: AccessDenied, UserID: "u1", Message: refusal, Count: 7})
		}
		got := l.Query(Filter{}, 10)
		if len(got) != 3 || got[0].Count != 7 {
			t.Fatalf("received: %+v", got)
		}
	})
}

func TestLogLines(t *testing.T) {
	logs := &syncbuf.Buffer{}
	l := NewLog(LogConfig{Origin: "me", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	low := l.Log(Event{Type: LoginFailed, IP: "192.0.2.1", Email: "a@example.com", UserAgent: "agent/1", Operation: "SignIn",
		Message: "wrong email or password"})
	high := l.Log(Event{Type: BruteForceSuspected, IP: "192.0.2.1", Email: "a@example.com", Message: "5 failures"})
	l.Log(Event{Type: AccessDenied, UserID: "u1", Message: "no"})
	l.Log(Event{Type: AccessDenied, UserID: "u1", Message: "no"}) // a repeat: no line of its own
	l.receive(Event{ID: "1-other", Type: LoginFailed, IP: "192.0.2.9"})
	got := lines(logs.String(), "security_event")
	if len(got) != 3 {
		t.Fatalf("%d lines, want 3 (one per event logged here):\n%s", len(got), logs)
	}
	for k, v := range map[string]string{"level": "INFO", "id": low.ID, "type": "LOGIN_FAILED", "severity": "LOW",
		"ip": "192.0.2.1", "email": "a@example.com", "user_agent": "agent/1", "operation": "SignIn"} {
		if field(got[0], k) != v {
			t.Fatalf("line %q: %s=%q, want %q", got[0], k, field(got[0], k), v)
		}
	}
	if !strings.Contains(got[0], `message="wrong email or password"`) {
		t.Fatalf("line %q lacks the message", got[0])
	}
	if field(got[1], "level") != "WARN" || field(got[1], "id") != high.ID || field(got[1], "severity") != "HIGH" {
		t.Fatalf("HIGH line %q", got[1])
	}
	if field(got[2], "type") != "ACCESS_DENIED" || field(got[2], "user_id") != "u1" {
		t.Fatalf("ACCESS_DENIED line %q", got[2])
	}
}

// lines returns the log lines whose msg is msg.
func lines(logs, msg string) []string {
	var out []string
	for l := range strings.SplitSeq(logs, "\n") {
		if field(l, "msg") == msg {
			out = append(out, l)
		}
	}
	return out
}

// field is the value of key=value in a text log line (unquoted values only).
func field(line, key string) string {
	for f := range strings.FieldsSeq(line) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// BenchmarkLogRepeat is a repeated ACCESS_DENIED: counted in its window's event, in place.
func BenchmarkLogRepeat(b *testing.B) {
	l := NewLog(LogConfig{MaxEvents: 1000})
	e := Event{Type: AccessDenied, IP: "203.0.113.7", UserID: "6b0f4fde711b774c8b6b45fe", Operation: "Peek",
		Message: "Query.serverInfo needs the ADMIN role"}
	l.Log(e)
	b.ReportAllocs()
	for b.Loop() {
		l.Log(e)
	}
}

// BenchmarkLogWithLine is BenchmarkLog with the event's log line, JSON, to a discarding writer.
func BenchmarkLogWithLine(b *testing.B) {
	l := NewLog(LogConfig{MaxEvents: 1000, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	e := Event{Type: LoginFailed, IP: "203.0.113.7", Email: "someone@example.com",
		UserAgent: "Mozilla/5.0", Operation: "login", Message: "wrong password"}
	b.ReportAllocs()
	for b.Loop() {
		l.Log(e)
	}
}

// BenchmarkQuery reads the newest 100 of a full log of 1000, merged across the three shares.
func BenchmarkQuery(b *testing.B) {
	l := NewLog(LogConfig{MaxEvents: 1000})
	for i := range 2000 {
		l.Log(Event{Type: []EventType{LoginFailed, QueryRejected, RoleChanged, BruteForceSuspected}[i%4], Message: "m"})
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(l.Query(Filter{}, 100)) != 100 {
			b.Fatal("short")
		}
	}
}

// TestConcurrentRepeats logs new and repeated events from many goroutines while others query
// and sweep (run with -race): every refusal is counted exactly once.
func TestConcurrentRepeats(t *testing.T) {
	l := NewLog(LogConfig{MaxEvents: 400, MaxAge: time.Hour, MaxRepeatKeys: 50})
	const workers, each = 8, 500
	done := make(chan struct{})
	var readers sync.WaitGroup
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				l.Query(Filter{Types: []EventType{AccessDenied}}, 100)
				l.Sweep()
			}
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				l.Log(Event{Type: AccessDenied, UserID: fmt.Sprint("u", w%4), Message: "Query.serverInfo needs the ADMIN role"})
				if i%10 == 0 {
					l.Log(Event{Type: LoginFailed, Message: fmt.Sprint(w, i)})
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()
	total := 0
	for _, e := range l.Query(Filter{Types: []EventType{AccessDenied}}, 100) {
		total += e.Count
	}
	if total != workers*each {
		t.Fatalf("%d refusals counted of %d", total, workers*each)
	}
	if got := len(l.Query(Filter{Types: []EventType{AccessDenied}}, 100)); got != 4 {
		t.Fatalf("%d ACCESS_DENIED events for 4 users", got)
	}
}
