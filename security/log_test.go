package security

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/pubsub"
	"go.uber.org/goleak"
)

func TestEnums(t *testing.T) {
	t.Run("TypesMatchAPI", func(t *testing.T) {
		want := "LOGIN_SUCCEEDED LOGIN_FAILED SIGNED_UP TOKEN_INVALID ACCESS_DENIED RATE_LIMITED BRUTE_FORCE_SUSPECTED QUERY_REJECTED ROLE_CHANGED ADMIN_ACTION SESSION_ENDED"
		var got []string
		for _, et := range EventTypes() {
			got = append(got, string(et))
			if !et.Valid() {
				t.Errorf("%s not Valid", et)
			}
		}
		if strings.Join(got, " ") != want {
			t.Fatalf("EventTypes = %v", got)
		}
		if EventType("NOPE").Valid() {
			t.Fatal("unknown type is Valid")
		}
	})
	t.Run("SeveritiesOrdered", func(t *testing.T) {
		s := Severities()
		if fmt.Sprint(s) != "[INFO LOW MEDIUM HIGH CRITICAL]" {
			t.Fatalf("Severities = %v", s)
		}
		for i := range s {
			for j := range s {
				if got, want := s[i].AtLeast(s[j]), i >= j; got != want {
					t.Errorf("%s.AtLeast(%s) = %v", s[i], s[j], got)
				}
			}
			if !s[i].AtLeast("") {
				t.Errorf("%s not at least no minimum", s[i])
			}
		}
		if Severity("LOUD").Valid() {
			t.Fatal("unknown severity is Valid")
		}
	})
}

func TestLog(t *testing.T) {
	t.Run("SharesNeverExceedTheirBound", func(t *testing.T) {
		l := NewLog(LogConfig{MaxEvents: 8}) // shares: 4 INFO/LOW, 2 MEDIUM, 2 HIGH+
		for i := range l.shares {
			if l.shares[i].slots != nil { // an idle server holds no event array
				t.Fatalf("share %d holds %d slots before its first event", i, len(l.shares[i].slots))
			}
		}
		var slots [numShares]*slot
		for i := range 20 {
			l.Log(Event{Type: LoginFailed, Message: fmt.Sprint(i)})
			l.Log(Event{Type: QueryRejected, Severity: SeverityMedium, Message: fmt.Sprint(i)})
			l.Log(Event{Type: BruteForceSuspected, Message: fmt.Sprint(i)})
			if i == 0 { // made at the first event, then never again
				for j := range l.shares {
					slots[j] = &l.shares[j].slots[0]
				}
			}
			if n := l.Stats().Events; n > 8 {
				t.Fatalf("after %d rounds the log holds %d", i+1, n)
			}
		}
		for i, want := range []int{4, 2, 2} {
			sh := &l.shares[i]
			if len(sh.slots) != want || cap(sh.slots) != want || &sh.slots[0] != slots[i] || sh.n != want {
				t.Fatalf("share %d reallocated, resized or not full: len %d cap %d n %d", i, len(sh.slots), cap(sh.slots), sh.n)
			}
		}
		got := l.Query(Filter{MinSeverity: SeverityLow, Types: []EventType{LoginFailed}}, 100)
		if len(got) != 4 {
			t.Fatalf("Query returned %d LOW events, want the 4 newest", len(got))
		}
		for i, e := range got { // newest first: 19, 18, 17, 16
			if want := fmt.Sprint(19 - i); e.Message != want {
				t.Fatalf("event %d is %q, want %q", i, e.Message, want)
			}
		}
		if st := l.Stats(); st.Logged != 60 || st.Capacity != 8 || st.Events != 8 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("AppendAllocatesOnlyTheID", func(t *testing.T) {
		l := NewLog(LogConfig{MaxEvents: 100})
		e := Event{Type: QueryRejected, IP: "10.1.2.3", UserID: "u1", Operation: "Deep", Message: "too deep"}
		if a := testing.AllocsPerRun(1000, func() { l.Log(e) }); a > 1 {
			t.Fatalf("Log allocates %.1f times per event, want at most 1", a)
		}
	})
	t.Run("RepeatAllocatesNothing", func(t *testing.T) {
		l := NewLog(LogConfig{MaxEvents: 100})
		e := Event{Type: AccessDenied, IP: "10.1.2.3", UserID: "u1", Operation: "purgeCache", Message: "not an admin"}
		l.Log(e)
		if a := testing.AllocsPerRun(1000, func() { l.Log(e) }); a > 0 {
			t.Fatalf("a repeat allocates %.1f times, want 0", a)
		}
	})
	t.Run("IDsUniqueAndIncreasing", func(t *testing.T) {
		l := NewLog(LogConfig{MaxEvents: 10, Origin: "replica1"})
		prev := ""
		seen := map[string]bool{}
		for range 300 {
			e := l.Log(Event{Type: SignedUp})
			if seen[e.ID] || e.ID <= prev {
				t.Fatalf("ID %q after %q", e.ID, prev)
			}
			if !strings.HasSuffix(e.ID, "-replica1") {
				t.Fatalf("ID %q does not name the origin", e.ID)
			}
			seen[e.ID] = true
			prev = e.ID
		}
	})
	t.Run("DefaultsFilled", func(t *testing.T) {
		clock := newFakeClock()
		l := NewLog(LogConfig{Now: clock.Now})
		e := l.Log(Event{Type: BruteForceSuspected})
		if e.Severity != SeverityHigh || !e.At.Equal(clock.Now()) || e.ID == "" {
			t.Fatalf("defaults not filled: %+v", e)
		}
		at := clock.Now().Add(-time.Minute)
		e = l.Log(Event{Type: LoginFailed, Severity: SeverityCritical, At: at})
		if e.Severity != SeverityCritical || !e.At.Equal(at) {
			t.Fatalf("given fields overwritten: %+v", e)
		}
	})
	t.Run("UnknownTypeRefused", func(t *testing.T) {
		l := NewLog(LogConfig{})
		if e := l.Log(Event{Type: "HACKED"}); e.ID != "" {
			t.Fatalf("unknown type logged: %+v", e)
		}
		if n := l.Stats().Events; n != 0 {
			t.Fatalf("ring holds %d events", n)
		}
		if v := metricValue(t, l.Collectors(), "eventide_security_events_invalid_total", nil); v != 1 {
			t.Fatalf("invalid counter = %v", v)
		}
	})
	t.Run("LongFieldsCut", func(t *testing.T) {
		l := NewLog(LogConfig{})
		ua := strings.Repeat("é", 1<<16) // 128 KiB of two-byte runes
		e := l.Log(Event{Type: TokenInvalid, UserAgent: ua, Message: strings.Repeat("x", 5000)})
		if len(e.UserAgent) > maxFieldBytes || len(e.Message) != maxMessageBytes {
			t.Fatalf("not cut: user agent %d bytes, message %d", len(e.UserAgent), len(e.Message))
		}
		if !strings.HasPrefix(ua, e.UserAgent) || strings.ContainsRune(e.UserAgent, '\uFFFD') {
			t.Fatal("user agent cut inside a rune")
		}
	})
	t.Run("MetricsByType", func(t *testing.T) {
		l := NewLog(LogConfig{})
		for range 3 {
			l.Log(Event{Type: LoginFailed})
		}
		l.Log(Event{Type: AccessDenied})
		cs := l.Collectors()
		if v := metricValue(t, cs, "eventide_security_events_logged_total", map[string]string{"type": "LOGIN_FAILED"}); v != 3 {
			t.Fatalf("LOGIN_FAILED counted %v", v)
		}
		if v := metricValue(t, cs, "eventide_security_events_logged_total", map[string]string{"type": "ACCESS_DENIED"}); v != 1 {
			t.Fatalf("ACCESS_DENIED counted %v", v)
		}
		if v := metricValue(t, cs, "eventide_security_events_stored", nil); v != 4 {
			t.Fatalf("stored gauge %v", v)
		}
	})
}

func TestQuery(t *testing.T) {
	clock := newFakeClock()
	l := NewLog(LogConfig{Now: clock.Now})
	t0 := clock.Now()
	l.Log(Event{Type: LoginFailed, IP: "1.1.1.1", Email: "a@x"})         // LOW
	l.Log(Event{Type: AccessDenied, IP: "2.2.2.2", UserID: "u2"})        // MEDIUM
	l.Log(Event{Type: BruteForceSuspected, IP: "1.1.1.1", Email: "a@x"}) // HIGH
	clock.Advance(time.Minute)
	l.Log(Event{Type: LoginSucceeded, IP: "1.1.1.1", UserID: "u1"})                 // INFO
	l.Log(Event{Type: RateLimited, IP: "3.3.3.3", Severity: SeverityCritical})      // CRITICAL
	l.Log(Event{Type: AccessDenied, IP: "2.2.2.2", UserID: "u2", Message: "again"}) // MEDIUM

	types := func(es []Event) string {
		var s []string
		for _, e := range es {
			s = append(s, string(e.Type))
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		name string
		f    Filter
		last int
		want string
	}{
		{"AllNewestFirst", Filter{}, 100, "ACCESS_DENIED,RATE_LIMITED,LOGIN_SUCCEEDED,BRUTE_FORCE_SUSPECTED,ACCESS_DENIED,LOGIN_FAILED"},
		{"LastCaps", Filter{}, 2, "ACCESS_DENIED,RATE_LIMITED"},
		{"NoneForLastZero", Filter{}, 0, ""},
		{"ByTypes", Filter{Types: []EventType{LoginFailed, LoginSucceeded}}, 100, "LOGIN_SUCCEEDED,LOGIN_FAILED"},
		{"ByMinSeverity", Filter{MinSeverity: SeverityHigh}, 100, "RATE_LIMITED,BRUTE_FORCE_SUSPECTED"},
		{"ByIP", Filter{IP: "1.1.1.1"}, 100, "LOGIN_SUCCEEDED,BRUTE_FORCE_SUSPECTED,LOGIN_FAILED"},
		{"ByUserID", Filter{UserID: "u2"}, 1, "ACCESS_DENIED"},
		{"BySince", Filter{Since: t0.Add(time.Minute)}, 100, "ACCESS_DENIED,RATE_LIMITED,LOGIN_SUCCEEDED"},
		{"Combined", Filter{IP: "1.1.1.1", MinSeverity: SeverityLow, Since: t0}, 100, "BRUTE_FORCE_SUSPECTED,LOGIN_FAILED"},
		{"NothingMatches", Filter{UserID: "nobody"}, 100, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := l.Query(tc.f, tc.last)
			if got == nil {
				t.Fatal("nil slice; want empty")
			}
			if s := types(got); s != tc.want {
				t.Fatalf("got %s\nwant %s", s, tc.want)
			}
		})
	}
	t.Run("ResultIsACopy", func(t *testing.T) {
		got := l.Query(Filter{}, 1)
		got[0].Message = "changed"
		if l.Query(Filter{}, 1)[0].Message != "again" {
			t.Fatal("Query result aliases the ring")
		}
	})
}

func TestSweep(t *testing.T) {
	t.Run("OldEventsDropped", func(t *testing.T) {
		clock := newFakeClock()
		l := NewLog(LogConfig{MaxEvents: 10, MaxAge: time.Hour, Now: clock.Now})
		for range 3 {
			l.Log(Event{Type: LoginFailed, Message: "old"})
		}
		clock.Advance(50 * time.Minute)
		l.Log(Event{Type: LoginFailed, Message: "young"})
		l.Log(Event{Type: LoginFailed, Message: "young"})
		clock.Advance(20 * time.Minute) // the first three are now 70 minutes old
		if got := l.Query(Filter{}, 100); len(got) != 2 {
			t.Fatalf("Query shows %d events before the sweep, want the 2 young ones", len(got))
		}
		if n := l.Sweep(); n != 3 {
			t.Fatalf("Sweep dropped %d, want 3", n)
		}
		if st := l.Stats(); st.Events != 2 {
			t.Fatalf("%d events left", st.Events)
		}
		for _, e := range l.Query(Filter{}, 100) {
			if e.Message != "young" {
				t.Fatalf("kept %q", e.Message)
			}
		}
		// The ring still works after compaction: fill its share (6 of 10) past its bound.
		for i := range 15 {
			l.Log(Event{Type: SignedUp, Message: fmt.Sprint(i)})
		}
		got := l.Query(Filter{}, 100)
		if len(got) != 6 || got[0].Message != "14" || got[5].Message != "9" {
			t.Fatalf("after refill: %d events, newest %q, oldest %q", len(got), got[0].Message, got[len(got)-1].Message)
		}
	})
	t.Run("OutOfOrderEventDropped", func(t *testing.T) {
		clock := newFakeClock()
		l := NewLog(LogConfig{MaxEvents: 5, MaxAge: time.Hour, Now: clock.Now})
		l.Log(Event{Type: SignedUp, Message: "a"})
		l.Log(Event{Type: SignedUp, Message: "stale", At: clock.Now().Add(-2 * time.Hour)}) // from a lagging replica
		l.Log(Event{Type: SignedUp, Message: "b"})
		if n := l.Sweep(); n != 1 {
			t.Fatalf("Sweep dropped %d, want 1", n)
		}
		got := l.Query(Filter{}, 10)
		if len(got) != 2 || got[0].Message != "b" || got[1].Message != "a" {
			t.Fatalf("left %+v", got)
		}
	})
	t.Run("RunSweepsUntilCancelled", func(t *testing.T) {
		clock := newFakeClock()
		l := NewLog(LogConfig{MaxAge: time.Hour, SweepInterval: time.Millisecond, Now: clock.Now})
		l.Log(Event{Type: LoginFailed})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { l.Run(ctx); close(done) }()
		clock.Advance(2 * time.Hour)
		eventually(t, 2*time.Second, "Run did not sweep", func() bool { return l.Stats().Events == 0 })
		cancel()
		<-done
	})
	t.Run("NoMaxAgeKeepsEvents", func(t *testing.T) {
		clock := newFakeClock()
		l := NewLog(LogConfig{Now: clock.Now})
		l.Log(Event{Type: LoginFailed})
		clock.Advance(1000 * time.Hour)
		if n := l.Sweep(); n != 0 || len(l.Query(Filter{}, 10)) != 1 {
			t.Fatal("event dropped without a MaxAge")
		}
	})
}

func TestSubscribe(t *testing.T) {
	t.Run("SlowDroppedFastServed", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		const buffer, total = 16, 10000
		l := NewLog(LogConfig{MaxEvents: 100, SubscriberBuffer: buffer})
		ctx, cancel := context.WithCancel(context.Background())
		slow, err := l.Subscribe(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		fast, err := l.Subscribe(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var read atomic.Int64
		readerDone := make(chan struct{})
		go func() {
			defer close(readerDone)
			want := 0
			for e := range fast {
				if e.Message != fmt.Sprint(want) {
					t.Errorf("fast subscriber got %q, want %q", e.Message, fmt.Sprint(want))
				}
				want++
				read.Add(1)
			}
		}()
		for i := range total {
			l.Log(Event{Type: LoginFailed, Message: fmt.Sprint(i)})
			// A fast reader keeps within its buffer; pace the test to model one. The slow one
			// never reads at all.
			if (i+1)%(buffer/2) == 0 {
				for read.Load() < int64(i+1) {
					time.Sleep(10 * time.Microsecond)
				}
			}
		}
		n := 0
		for range slow { // closed: dropped after its buffer filled
			n++
		}
		if n != buffer {
			t.Fatalf("slow subscriber got %d events before being dropped, want %d", n, buffer)
		}
		if st := l.Stats(); st.SubscribersDropped != 1 || st.Subscribers != 1 {
			t.Fatalf("stats %+v: want 1 dropped, 1 live", st)
		}
		if v := metricValue(t, l.Collectors(), "eventide_security_subscribers_dropped_total", nil); v != 1 {
			t.Fatalf("dropped counter %v", v)
		}
		cancel() // unsubscribes fast and closes its channel
		<-readerDone
		if got := read.Load(); got != total {
			t.Fatalf("fast subscriber got %d of %d events", got, total)
		}
		if st := l.Stats(); st.Subscribers != 0 {
			t.Fatalf("%d subscribers after cancel", st.Subscribers)
		}
	})
	t.Run("NonReadersNeverBlockLogging", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		l := NewLog(LogConfig{MaxEvents: 1000, SubscriberBuffer: 8, MaxSubscribers: 100})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for range 100 {
			if _, err := l.Subscribe(ctx, ""); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan struct{})
		go func() {
			for range 10000 {
				l.Log(Event{Type: QueryRejected})
			}
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("logging blocked on subscribers that never read")
		}
		if st := l.Stats(); st.SubscribersDropped != 100 || st.Subscribers != 0 || st.Events != 500 { // QUERY_REJECTED is LOW: its share is half
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("MinSeverityFilters", func(t *testing.T) {
		l := NewLog(LogConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ch, err := l.Subscribe(ctx, SeverityHigh)
		if err != nil {
			t.Fatal(err)
		}
		l.Log(Event{Type: LoginFailed})
		l.Log(Event{Type: BruteForceSuspected})
		l.Log(Event{Type: AccessDenied, Severity: SeverityCritical})
		if e := <-ch; e.Type != BruteForceSuspected {
			t.Fatalf("first delivered %s", e.Type)
		}
		if e := <-ch; e.Severity != SeverityCritical {
			t.Fatalf("second delivered %s", e.Severity)
		}
		select {
		case e := <-ch:
			t.Fatalf("extra event %+v", e)
		default:
		}
	})
	t.Run("ErrTooManySubscribers", func(t *testing.T) {
		l := NewLog(LogConfig{MaxSubscribers: 2})
		ctx, cancel := context.WithCancel(context.Background())
		for range 2 {
			if _, err := l.Subscribe(ctx, ""); err != nil {
				t.Fatal(err)
			}
		}
		_, err := l.Subscribe(context.Background(), "")
		if !errors.Is(err, pubsub.ErrTooManySubscribers) || !eventide.IsCode(err, eventide.CodeRateLimited) {
			t.Fatalf("err = %v", err)
		}
		cancel()
		eventually(t, 2*time.Second, "subscribers not released", func() bool { return l.Stats().Subscribers == 0 })
		if _, err := l.Subscribe(context.Background(), ""); err != nil {
			t.Fatalf("after unsubscribing, Subscribe = %v", err)
		}
	})
	t.Run("ErrInvalidSeverity", func(t *testing.T) {
		l := NewLog(LogConfig{})
		_, err := l.Subscribe(context.Background(), "LOUD")
		if !eventide.IsCode(err, eventide.CodeBadUserInput) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("DoneContextClosesAtOnce", func(t *testing.T) {
		defer goleak.VerifyNone(t)
		l := NewLog(LogConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		ch, err := l.Subscribe(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		select {
		case _, ok := <-ch:
			if ok {
				t.Fatal("got an event")
			}
		case <-time.After(2 * time.Second):
			t.Fatal("channel of a done context not closed")
		}
	})
}

func BenchmarkLog(b *testing.B) {
	l := NewLog(LogConfig{MaxEvents: 1000})
	e := Event{Type: LoginFailed, IP: "203.0.113.7", Email: "someone@example.com",
		UserAgent: "Mozilla/5.0", Operation: "login", Message: "wrong password"}
	b.ReportAllocs()
	for b.Loop() {
		l.Log(e)
	}
}

// BenchmarkLogParallel logs from every core at once, as concurrent requests do.
func BenchmarkLogParallel(b *testing.B) {
	l := NewLog(LogConfig{MaxEvents: 1000})
	e := Event{Type: LoginFailed, IP: "203.0.113.7", Email: "someone@example.com", Message: "wrong password"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Log(e)
		}
	})
}
