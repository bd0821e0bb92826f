package security

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jellydator/ttlcache/v3"
	"github.com/prometheus/client_golang/prometheus"
)

// ThrottleConfig is the throttling policy. Zero fields take the defaults named beside them.
type ThrottleConfig struct {
	Window            time.Duration // THROTTLE_TTL: the window of both limits; default 60s
	Limit             int           // THROTTLE_LIMIT: requests per client per window; default 300
	LoginLimit        int           // LOGIN_THROTTLE_LIMIT: login attempts per client and per email per window; default 10
	SuspectLoginLimit int           // login attempts per window for a client or email under brute-force suspicion; default 1
	SignupLimit       int           // SIGNUP_THROTTLE_LIMIT: sign-ups per client per window; default 5
	BruteForce        *BruteForce   // whose suspicions lower the login limit; nil: none
	Log               *Log          // where RATE_LIMITED goes, once per key per window; nil: nowhere
	MaxReported       int           // keys remembered to report once per window; default 10000
	Logger            *slog.Logger  // for limiter errors; default slog.Default()
}

// Throttle applies the policy: every request counts against its client key (ClientKey), and a
// login also against the client and the email tried, each on its own budget. A refusal is
// counted in eventide_security_throttled_total{scope} and logged as RATE_LIMITED the first time
// a key is refused in a window (so a flood cannot push the rest of the log out of the ring).
// A limiter error lets the request through (fail open): throttling protects the server, it must
// not become the outage.
type Throttle struct {
	lim       Limiter
	cfg       ThrottleConfig
	reported  *ttlcache.Cache[string, struct{}]
	throttled *prometheus.CounterVec
	errs      prometheus.Counter
}

// Throttle scopes, the label of eventide_security_throttled_total.
const (
	scopeRequest     = "request"
	scopeLoginClient = "login_client"
	scopeLoginEmail  = "login_email"
	scopeSignup      = "signup"
	// ScopeWebsockets is the scope of the cap on open streams (websockets and SSE) per client
	// address (WS_MAX_CONNECTIONS_PER_CLIENT), enforced by the HTTP layer and reported through Refused.
	ScopeWebsockets = "websockets"
	// ScopeConnections is the scope of the cap on open connections (or, behind a trusted proxy,
	// requests in flight) per client address (HTTP_MAX_CONNECTIONS_PER_CLIENT), enforced by the
	// HTTP layer and reported through Refused.
	ScopeConnections = "connections"
	// ScopeBodies is the scope of the cap on request-body bytes in flight per client address,
	// enforced by the HTTP layer and reported through Refused.
	ScopeBodies = "bodies"
)

// NewThrottle returns the policy cfg on lim.
func NewThrottle(lim Limiter, cfg ThrottleConfig) *Throttle {
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.Limit <= 0 {
		cfg.Limit = 300
	}
	if cfg.LoginLimit <= 0 {
		cfg.LoginLimit = 10
	}
	if cfg.SignupLimit <= 0 {
		cfg.SignupLimit = 5
	}
	if cfg.SuspectLoginLimit <= 0 {
		cfg.SuspectLoginLimit = 1
	}
	if cfg.MaxReported <= 0 {
		cfg.MaxReported = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Throttle{
		lim: lim, cfg: cfg,
		reported: ttlcache.New(
			ttlcache.WithCapacity[string, struct{}](uint64(cfg.MaxReported)),
			ttlcache.WithTTL[string, struct{}](cfg.Window),
			ttlcache.WithDisableTouchOnHit[string, struct{}](),
		),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: "throttled_total",
			Help: "Requests refused by throttling, by scope (request, login_client, login_email, signup, websockets, connections, bodies).",
		}, []string{"scope"}),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: "throttle_errors_total",
			Help: "Throttle checks let through because the limiter failed.",
		}),
	}
}

// Request counts one request against client (a ClientKey) and returns the decision: Limit per
// Window.
func (t *Throttle) Request(ctx context.Context, client string) Decision {
	return t.check(ctx, scopeRequest, "req:"+client, t.cfg.Limit, client, "")
}

// Login counts one login attempt against client and against email (either may be empty and is
// then not counted), and returns the stricter decision. Each has LoginLimit attempts per Window,
// or SuspectLoginLimit while the BruteForce detector suspects it. A suspected key keeps its
// budget, only at the lower rate: the attempts that raised the alarm are still counted in it, so
// the alarm hands no fresh attempt to the guesser, and the next one waits (Retry-After) until
// the lower rate allows it. The email is counted only when the client is allowed, so a refused
// client does not spend the email's budget.
func (t *Throttle) Login(ctx context.Context, client, email string) Decision {
	d := Decision{Allowed: true}
	if client != "" {
		limit := t.cfg.LoginLimit
		if t.cfg.BruteForce != nil && t.cfg.BruteForce.suspectedKey(clientKey(client)) > 0 {
			limit = t.cfg.SuspectLoginLimit
		}
		d = t.check(ctx, scopeLoginClient, "login:"+client, limit, client, email)
		if !d.Allowed {
			return d
		}
	}
	if ek := emailKey(email); ek != "" {
		limit := t.cfg.LoginLimit
		if t.cfg.BruteForce != nil && t.cfg.BruteForce.suspectedKey(ek) > 0 {
			limit = t.cfg.SuspectLoginLimit
		}
		de := t.check(ctx, scopeLoginEmail, "login:"+ek, limit, client, email)
		if !de.Allowed || client == "" {
			return de
		}
		// Both allowed: report the budget nearer its end.
		reset := max(d.ResetAfter, de.ResetAfter)
		if de.Remaining < d.Remaining {
			d = de
		}
		d.ResetAfter = reset
	}
	return d
}

// Signup counts one sign-up against client (a ClientKey; empty is not counted) and returns the
// decision: SignupLimit per Window. A sign-up hashes a password, so it has a budget of its own,
// well below the request budget.
func (t *Throttle) Signup(ctx context.Context, client string) Decision {
	if client == "" {
		return Decision{Allowed: true}
	}
	return t.check(ctx, scopeSignup, "signup:"+client, t.cfg.SignupLimit, client, "")
}

func (t *Throttle) check(ctx context.Context, scope, key string, limit int, client, email string) Decision {
	d, err := t.lim.Allow(ctx, key, limit, t.cfg.Window)
	if err != nil {
		t.errs.Inc()
		t.cfg.Logger.Warn("throttle: limiter failed; request let through", "scope", scope, "err", err)
		return Decision{Allowed: true}
	}
	if d.Allowed {
		return d
	}
	t.throttled.WithLabelValues(scope).Inc()
	if t.cfg.Log != nil {
		if _, seen := t.reported.GetOrSet(key, struct{}{}); !seen {
			t.cfg.Log.Log(rateLimitedEvent(scope, client, email, limit, t.cfg.Window))
		}
	}
	return d
}

// Refused records that another guard refused client for going over its limit in scope (the
// websocket cap): the throttled counter, and one RATE_LIMITED event per client and scope per
// window, deduplicated like the throttle's own refusals.
func (t *Throttle) Refused(scope, client string, limit int) {
	t.throttled.WithLabelValues(scope).Inc()
	if t.cfg.Log == nil {
		return
	}
	if _, seen := t.reported.GetOrSet(scope+"|"+client, struct{}{}); !seen {
		t.cfg.Log.Log(rateLimitedEvent(scope, client, "", limit, t.cfg.Window))
	}
}

// rateLimitedEvent describes a refusal; client is a ClientKey, which names a user or an address.
func rateLimitedEvent(scope, client, email string, limit int, window time.Duration) Event {
	e := Event{Type: RateLimited, Severity: SeverityLow, Operation: scope}
	if id, ok := strings.CutPrefix(client, "user:"); ok {
		e.UserID = id
	} else if ip, ok := strings.CutPrefix(client, "ip:"); ok {
		e.IP = ip
	}
	switch scope {
	case scopeRequest:
		e.Message = fmt.Sprintf("client over %d requests per %s", limit, window)
	case scopeLoginClient:
		e.Severity = SeverityMedium
		e.Email = email
		e.Message = fmt.Sprintf("client over %d login attempts per %s", limit, window)
	case scopeLoginEmail:
		e.Severity = SeverityMedium
		e.Email = email
		e.Message = fmt.Sprintf("email over %d login attempts per %s", limit, window)
	case scopeSignup:
		e.Severity = SeverityMedium
		e.Message = fmt.Sprintf("client over %d sign-ups per %s", limit, window)
	case ScopeWebsockets:
		e.Message = fmt.Sprintf("client over %d open websockets and SSE streams", limit)
	case ScopeConnections:
		e.Message = fmt.Sprintf("client over %d open connections", limit)
	case ScopeBodies:
		e.Message = fmt.Sprintf("client over %d bytes of request bodies in flight", limit)
	}
	return e
}

// Collectors returns the throttle's Prometheus metrics, for the caller to register:
// eventide_security_throttled_total{scope} and eventide_security_throttle_errors_total.
func (t *Throttle) Collectors() []prometheus.Collector {
	return []prometheus.Collector{t.throttled, t.errs}
}
