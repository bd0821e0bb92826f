package security

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/eventide/server/eventide"
)

func TestMemoryLimiter(t *testing.T) {
	ctx := context.Background()
	t.Run("ExactlyLimitThenRefused", func(t *testing.T) {
		clock := newFakeClock()
		m := NewMemoryLimiter(MemoryLimiterConfig{Now: clock.Now})
		for i := range 5 {
			d, err := m.Allow(ctx, "k", 5, time.Minute)
			if err != nil || !d.Allowed || d.Limit != 5 || d.Remaining != 4-i {
				t.Fatalf("request %d: %+v, %v", i+1, d, err)
			}
		}
		d, _ := m.Allow(ctx, "k", 5, time.Minute)
		if d.Allowed || d.Remaining != 0 {
			t.Fatalf("6th request: %+v", d)
		}
		// One request is earned back every window/limit.
		if d.RetryAfter != 12*time.Second || d.ResetAfter != time.Minute {
			t.Fatalf("6th request: RetryAfter %s ResetAfter %s, want 12s and 1m", d.RetryAfter, d.ResetAfter)
		}
		clock.Advance(12 * time.Second)
		if d, _ := m.Allow(ctx, "k", 5, time.Minute); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("after RetryAfter: %+v", d)
		}
		if d, _ := m.Allow(ctx, "k", 5, time.Minute); d.Allowed {
			t.Fatalf("second after RetryAfter: %+v", d)
		}
		clock.Advance(time.Minute)
		if d, _ := m.Allow(ctx, "k", 5, time.Minute); !d.Allowed || d.Remaining != 4 {
			t.Fatalf("after a full window: %+v", d)
		}
	})
	t.Run("KeysIndependent", func(t *testing.T) {
		m := NewMemoryLimiter(MemoryLimiterConfig{})
		for range 3 {
			m.Allow(ctx, "a", 3, time.Minute)
		}
		if d, _ := m.Allow(ctx, "a", 3, time.Minute); d.Allowed {
			t.Fatal("a not refused")
		}
		if d, _ := m.Allow(ctx, "b", 3, time.Minute); !d.Allowed {
			t.Fatal("b refused for a's requests")
		}
	})
	t.Run("NoLimitAllows", func(t *testing.T) {
		m := NewMemoryLimiter(MemoryLimiterConfig{})
		for range 100 {
			if d, _ := m.Allow(ctx, "k", 0, time.Minute); !d.Allowed {
				t.Fatal("limit 0 refused")
			}
		}
		if m.Len() != 0 {
			t.Fatal("limit 0 stored state")
		}
	})
	t.Run("StateBounded", func(t *testing.T) {
		m := NewMemoryLimiter(MemoryLimiterConfig{MaxKeys: 100})
		for i := range 5000 {
			m.Allow(ctx, fmt.Sprint("client-", i), 10, time.Minute)
			if n := m.Len(); n > 100 {
				t.Fatalf("after %d keys, %d tracked", i+1, n)
			}
		}
		if n := m.Len(); n != 100 {
			t.Fatalf("%d keys tracked, want 100", n)
		}
		// The newest keys are the ones kept: the last one has spent a request.
		if d, _ := m.Allow(ctx, "client-4999", 10, time.Minute); d.Remaining != 8 {
			t.Fatalf("newest key forgotten: %+v", d)
		}
	})
	t.Run("ConcurrentExact", func(t *testing.T) {
		m := NewMemoryLimiter(MemoryLimiterConfig{})
		allowed := make(chan bool, 200)
		for range 200 {
			go func() {
				d, _ := m.Allow(ctx, "k", 50, time.Hour)
				allowed <- d.Allowed
			}()
		}
		n := 0
		for range 200 {
			if <-allowed {
				n++
			}
		}
		if n != 50 {
			t.Fatalf("%d of 200 concurrent requests allowed, want 50", n)
		}
	})
}

func TestDecision(t *testing.T) {
	t.Run("HeadersWhenRefused", func(t *testing.T) {
		h := http.Header{}
		Decision{Limit: 10, RetryAfter: 1500 * time.Millisecond, ResetAfter: 59100 * time.Millisecond}.SetHeaders(h)
		want := map[string]string{"RateLimit-Limit": "10", "RateLimit-Remaining": "0", "RateLimit-Reset": "60", "Retry-After": "2"}
		for k, v := range want {
			if h.Get(k) != v {
				t.Errorf("%s = %q, want %q", k, h.Get(k), v)
			}
		}
	})
	t.Run("NoRetryAfterWhenAllowed", func(t *testing.T) {
		h := http.Header{}
		Decision{Allowed: true, Limit: 10, Remaining: 7, ResetAfter: 3 * time.Second}.SetHeaders(h)
		if h.Get("Retry-After") != "" || h.Get("RateLimit-Remaining") != "7" || h.Get("RateLimit-Reset") != "3" {
			t.Fatalf("headers %v", h)
		}
	})
	t.Run("NoHeadersWithoutLimit", func(t *testing.T) {
		h := http.Header{}
		Decision{Allowed: true}.SetHeaders(h)
		if len(h) != 0 {
			t.Fatalf("headers %v", h)
		}
	})
	t.Run("ErrRateLimited", func(t *testing.T) {
		err := Decision{Limit: 1, RetryAfter: 200 * time.Millisecond}.Err()
		if !eventide.IsCode(err, eventide.CodeRateLimited) || err.Error() != "RATE_LIMITED: too many requests; retry in 1 s" {
			t.Fatalf("err = %v", err)
		}
		// The transport reads when to retry from the domain error, and the budget's headers
		// from the refusal around it.
		var de *eventide.Error
		if !errors.As(err, &de) || de.RetryAfter != time.Second {
			t.Fatalf("RetryAfter of %v = %v, want 1s", err, de)
		}
		var hs interface{ SetHeaders(http.Header) }
		if !errors.As(err, &hs) {
			t.Fatalf("%T carries no headers", err)
		}
		h := http.Header{}
		hs.SetHeaders(h)
		if h.Get("RateLimit-Limit") != "1" || h.Get("RateLimit-Remaining") != "0" || h.Get("Retry-After") != "1" {
			t.Fatalf("refusal headers %v", h)
		}
		if err := (Decision{Allowed: true}).Err(); err != nil {
			t.Fatalf("allowed decision has error %v", err)
		}
	})
}

func TestThrottle(t *testing.T) {
	ctx := context.Background()
	newThrottle := func(cfg ThrottleConfig) (*Throttle, *Log) {
		clock := newFakeClock() // frozen: the tests are about counts, not time
		l := NewLog(LogConfig{Now: clock.Now})
		cfg.Log = l
		return NewThrottle(NewMemoryLimiter(MemoryLimiterConfig{Now: clock.Now}), cfg), l
	}
	t.Run("PerClient", func(t *testing.T) {
		th, l := newThrottle(ThrottleConfig{Window: time.Minute, Limit: 3})
		for i := range 3 {
			if d := th.Request(ctx, "ip:198.51.100.1"); !d.Allowed {
				t.Fatalf("request %d refused", i+1)
			}
		}
		for range 5 {
			d := th.Request(ctx, "ip:198.51.100.1")
			if d.Allowed || d.RetryAfter <= 0 || d.RetryAfter > time.Minute {
				t.Fatalf("over the limit: %+v", d)
			}
		}
		if d := th.Request(ctx, "user:u1"); !d.Allowed {
			t.Fatal("another client refused")
		}
		if v := metricValue(t, th.Collectors(), "eventide_security_throttled_total", map[string]string{"scope": "request"}); v != 5 {
			t.Fatalf("throttled counter %v, want 5", v)
		}
		evs := l.Query(Filter{Types: []EventType{RateLimited}}, 100)
		if len(evs) != 1 || evs[0].IP != "198.51.100.1" || evs[0].Severity != SeverityLow {
			t.Fatalf("want one RATE_LIMITED event for five refusals, got %+v", evs)
		}
	})
	t.Run("LoginPerEmailAcrossClients", func(t *testing.T) {
		th, l := newThrottle(ThrottleConfig{Window: time.Minute, LoginLimit: 3})
		for _, c := range []string{"ip:1.1.1.1", "ip:2.2.2.2", "ip:3.3.3.3"} {
			if d := th.Login(ctx, c, "Victim@Example.com"); !d.Allowed {
				t.Fatalf("%s refused", c)
			}
		}
		d := th.Login(ctx, "ip:4.4.4.4", "victim@example.com ")
		if d.Allowed || d.Limit != 3 || d.RetryAfter != 20*time.Second {
			t.Fatalf("4th attempt on the email from a fresh client: %+v", d)
		}
		if d := th.Login(ctx, "ip:4.4.4.4", "other@example.com"); !d.Allowed {
			t.Fatal("fresh client refused for another email")
		}
		evs := l.Query(Filter{Types: []EventType{RateLimited}}, 10)
		if len(evs) != 1 || evs[0].Email == "" || evs[0].Severity != SeverityMedium || evs[0].Operation != "login_email" {
			t.Fatalf("events %+v", evs)
		}
	})
	t.Run("LoginPerClientAcrossEmails", func(t *testing.T) {
		th, _ := newThrottle(ThrottleConfig{Window: time.Minute, LoginLimit: 3})
		for i := range 3 {
			if d := th.Login(ctx, "ip:1.1.1.1", fmt.Sprint("user", i, "@example.com")); !d.Allowed {
				t.Fatalf("attempt %d refused", i+1)
			}
		}
		if d := th.Login(ctx, "ip:1.1.1.1", "fresh@example.com"); d.Allowed {
			t.Fatal("4th attempt from the client allowed")
		}
		// The refused client did not spend the fresh email's budget.
		for i := range 3 {
			if d := th.Login(ctx, fmt.Sprint("ip:9.9.9.", i), "fresh@example.com"); !d.Allowed {
				t.Fatalf("fresh email refused at attempt %d", i+1)
			}
		}
	})
	t.Run("SignupPerClient", func(t *testing.T) {
		th, l := newThrottle(ThrottleConfig{Window: time.Minute, Limit: 100, SignupLimit: 2})
		for i := range 2 {
			if d := th.Signup(ctx, "ip:198.51.100.1"); !d.Allowed || d.Limit != 2 {
				t.Fatalf("sign-up %d: %+v", i+1, d)
			}
		}
		d := th.Signup(ctx, "ip:198.51.100.1")
		if d.Allowed || d.RetryAfter != 30*time.Second {
			t.Fatalf("3rd sign-up: %+v", d)
		}
		th.Signup(ctx, "ip:198.51.100.1")
		// Its own budget: the client's requests and logins are untouched, another client has two.
		if !th.Request(ctx, "ip:198.51.100.1").Allowed || !th.Login(ctx, "ip:198.51.100.1", "a@example.com").Allowed {
			t.Fatal("the sign-up budget spent another budget")
		}
		if !th.Signup(ctx, "ip:198.51.100.2").Allowed || !th.Signup(ctx, "").Allowed {
			t.Fatal("another client refused")
		}
		if v := metricValue(t, th.Collectors(), "eventide_security_throttled_total", map[string]string{"scope": "signup"}); v != 2 {
			t.Fatalf("throttled counter %v, want 2", v)
		}
		evs := l.Query(Filter{Types: []EventType{RateLimited}}, 10)
		if len(evs) != 1 || evs[0].IP != "198.51.100.1" || evs[0].Operation != "signup" || evs[0].Severity != SeverityMedium {
			t.Fatalf("want one RATE_LIMITED event for two refusals, got %+v", evs)
		}
	})
	t.Run("SignupDefault", func(t *testing.T) {
		th, _ := newThrottle(ThrottleConfig{})
		for i := range 5 {
			if !th.Signup(ctx, "ip:198.51.100.3").Allowed {
				t.Fatalf("sign-up %d refused", i+1)
			}
		}
		if th.Signup(ctx, "ip:198.51.100.3").Allowed {
			t.Fatal("6th sign-up allowed under the default of 5")
		}
	})
	t.Run("LoginReportsTighterBudget", func(t *testing.T) {
		th, _ := newThrottle(ThrottleConfig{Window: time.Minute, LoginLimit: 5})
		th.Login(ctx, "ip:1.1.1.1", "a@example.com")
		th.Login(ctx, "ip:1.1.1.1", "a@example.com")
		d := th.Login(ctx, "ip:2.2.2.2", "a@example.com")
		if !d.Allowed || d.Remaining != 2 {
			t.Fatalf("want the email's 2 remaining, got %+v", d)
		}
	})
}

func TestBruteForce(t *testing.T) {
	const threshold = 5
	setup := func() (*BruteForce, *Log, *fakeClock) {
		clock := newFakeClock()
		l := NewLog(LogConfig{Now: clock.Now})
		return NewBruteForce(BruteForceConfig{Threshold: threshold, Window: 15 * time.Minute, Log: l, Now: clock.Now}), l, clock
	}
	suspected := func(l *Log) []Event { return l.Query(Filter{Types: []EventType{BruteForceSuspected}}, 100) }
	t.Run("RaisedAtExactlyThresholdOnce", func(t *testing.T) {
		d, l, clock := setup()
		for i := 1; i <= 12; i++ {
			raised := d.LoginFailed(Attempt{Email: "victim@example.com", Client: fmt.Sprint("ip:10.0.0.", i), IP: fmt.Sprint("10.0.0.", i)})
			if raised != (i == threshold) {
				t.Fatalf("failure %d: raised = %v", i, raised)
			}
			clock.Advance(time.Second)
		}
		evs := suspected(l)
		if len(evs) != 1 {
			t.Fatalf("%d BRUTE_FORCE_SUSPECTED events, want 1", len(evs))
		}
		if e := evs[0]; e.Severity != SeverityHigh || e.Email != "victim@example.com" || e.IP != "10.0.0.5" {
			t.Fatalf("event %+v", e)
		}
		rem, ok := d.Suspected("VICTIM@example.com", "")
		if !ok || rem <= 0 || rem > 15*time.Minute {
			t.Fatalf("Suspected = %s, %v", rem, ok)
		}
		if _, ok := d.Suspected("", "ip:10.0.0.1"); ok {
			t.Fatal("a client with one failure is suspected")
		}
	})
	t.Run("OncePerWindow", func(t *testing.T) {
		d, l, clock := setup()
		fail := func() bool { return d.LoginFailed(Attempt{Client: "ip:6.6.6.6", IP: "6.6.6.6"}) }
		for range threshold {
			fail()
		}
		clock.Advance(16 * time.Minute)
		if _, ok := d.Suspected("", "ip:6.6.6.6"); ok {
			t.Fatal("still suspected after SuspectFor")
		}
		for i := 1; i <= threshold; i++ {
			if raised := fail(); raised != (i == threshold) {
				t.Fatalf("second window, failure %d: raised = %v", i, raised)
			}
		}
		if n := len(suspected(l)); n != 2 {
			t.Fatalf("%d events over two windows, want 2", n)
		}
	})
	t.Run("FailuresOutsideWindowDoNotAddUp", func(t *testing.T) {
		d, l, clock := setup()
		for range threshold - 1 {
			d.LoginFailed(Attempt{Email: "a@example.com"})
		}
		clock.Advance(15 * time.Minute)
		if d.LoginFailed(Attempt{Email: "a@example.com"}) || len(suspected(l)) != 0 {
			t.Fatal("raised by failures in different windows")
		}
	})
	t.Run("BothKeysOneEvent", func(t *testing.T) {
		d, l, _ := setup()
		for range threshold {
			d.LoginFailed(Attempt{Email: "a@example.com", Client: "ip:6.6.6.6", IP: "6.6.6.6"})
		}
		evs := suspected(l)
		if len(evs) != 1 || evs[0].Message != "5 failed logins for this email and from this client within 15m0s; logins throttled for 15m0s" {
			t.Fatalf("events %+v", evs)
		}
	})
	t.Run("SuccessClearsEmailOnly", func(t *testing.T) {
		d, l, _ := setup()
		a := Attempt{Email: "a@example.com", Client: "ip:6.6.6.6"}
		for range threshold - 1 {
			d.LoginFailed(a)
		}
		d.LoginSucceeded(a)
		if !d.LoginFailed(Attempt{Client: "ip:6.6.6.6"}) {
			t.Fatal("client's count was cleared by a success")
		}
		for range threshold - 2 {
			d.LoginFailed(Attempt{Email: "a@example.com"})
		}
		if n := len(suspected(l)); n != 1 {
			t.Fatalf("%d events, want only the client's", n)
		}
	})
	t.Run("StateBounded", func(t *testing.T) {
		d := NewBruteForce(BruteForceConfig{MaxKeys: 50})
		for i := range 2000 {
			d.LoginFailed(Attempt{Email: fmt.Sprint("u", i, "@example.com"), Client: fmt.Sprint("ip:10.0.", i/250, ".", i%250)})
		}
		if counting, suspects := d.Len(); counting != 50 || suspects != 0 {
			t.Fatalf("tracking %d keys and %d suspects, want 50 and 0", counting, suspects)
		}
	})
	t.Run("SuspectThrottledHarder", func(t *testing.T) {
		d, l, clock := setup()
		th := NewThrottle(NewMemoryLimiter(MemoryLimiterConfig{Now: clock.Now}), ThrottleConfig{
			Window: time.Minute, LoginLimit: 10, BruteForce: d, Log: l})
		for range threshold {
			if dec := th.Login(ctx(), "ip:6.6.6.6", "victim@example.com"); !dec.Allowed {
				t.Fatal("refused before the alarm")
			}
			d.LoginFailed(Attempt{Email: "victim@example.com", Client: "ip:6.6.6.6"})
		}
		// Under suspicion the email gets one attempt per window, from any client, and the
		// attempts that raised the alarm are still counted: the next one must wait for them,
		// at 6 s each (10 per minute).
		dec := th.Login(ctx(), "ip:7.7.7.7", "victim@example.com")
		if dec.Allowed || dec.Limit != 1 || dec.RetryAfter != threshold*6*time.Second {
			t.Fatalf("attempt right after the alarm: %+v", dec)
		}
		clock.Advance(threshold * 6 * time.Second)
		dec = th.Login(ctx(), "ip:7.7.7.7", "victim@example.com")
		if !dec.Allowed || dec.Limit != 1 || dec.Remaining != 0 {
			t.Fatalf("first attempt once the alarm's attempts are paid for: %+v", dec)
		}
		dec = th.Login(ctx(), "ip:8.8.8.8", "victim@example.com")
		if dec.Allowed || dec.Limit != 1 || dec.RetryAfter != time.Minute {
			t.Fatalf("second attempt under suspicion: %+v", dec)
		}
		// An unsuspected email from an unsuspected client keeps the normal limit.
		if dec := th.Login(ctx(), "ip:7.7.7.7", "other@example.com"); !dec.Allowed || dec.Limit != 10 {
			t.Fatalf("bystander: %+v", dec)
		}
	})
}

func ctx() context.Context { return context.Background() }

func BenchmarkAllowMemory(b *testing.B) {
	m := NewMemoryLimiter(MemoryLimiterConfig{})
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprint("ip:10.0.", i/250, ".", i%250)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Allow(context.Background(), keys[i%len(keys)], 300, time.Minute)
		i++
	}
}
