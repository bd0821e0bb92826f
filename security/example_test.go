package security_test

import (
	"context"
	"net/http"
	"net/netip"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/security"
)

// Example shows the wiring internal/server is expected to do: one Log (shared over the replica bus
// when USE_REDIS: Log.Share and Log.Receive), one BruteForce detector, one Throttle over a Redis limiter that falls back to
// memory, and a middleware that throttles every request by its ClientKey.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")} // TRUSTED_PROXIES

	events := security.NewLog(security.LogConfig{MaxEvents: 1000, MaxAge: 24 * time.Hour})
	go events.Run(ctx)

	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})

	limiter := security.NewRedisLimiter(rdb, security.NewMemoryLimiter(security.MemoryLimiterConfig{MaxKeys: 10000}),
		security.RedisLimiterConfig{})
	go limiter.Run(ctx)

	brute := security.NewBruteForce(security.BruteForceConfig{Threshold: 5, Window: 15 * time.Minute, Log: events})
	throttle := security.NewThrottle(limiter, security.ThrottleConfig{
		Window: 60 * time.Second, Limit: 300, LoginLimit: 10, BruteForce: brute, Log: events})

	_ = func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ip := security.ClientIP(r, trusted)
			userID := "" // from the viewer, once the auth middleware has run
			d := throttle.Request(r.Context(), security.ClientKey(userID, ip))
			d.SetHeaders(w.Header())
			if !d.Allowed {
				http.Error(w, `{"errors":[{"message":"too many requests","extensions":{"code":"RATE_LIMITED"}}]}`,
					http.StatusTooManyRequests)
				return
			}
			next.ServeHTTP(w, r)
		})
	}

	// In the login resolver:
	login := func(ctx context.Context, r *http.Request, email string, passwordOK bool) error {
		ip := security.ClientIP(r, trusted)
		client := security.ClientKey("", ip)
		if d := throttle.Login(ctx, client, email); !d.Allowed {
			return d.Err() // RATE_LIMITED
		}
		a := security.Attempt{Email: email, Client: client, IP: ip.String(), UserAgent: r.UserAgent()}
		if !passwordOK {
			events.Log(security.Event{Type: security.LoginFailed, IP: a.IP, Email: email, UserAgent: a.UserAgent})
			brute.LoginFailed(a)
			return eventide.Errorf(eventide.CodeUnauthenticated, "wrong email or password")
		}
		brute.LoginSucceeded(a)
		events.Log(security.Event{Type: security.LoginSucceeded, IP: a.IP, Email: email, UserAgent: a.UserAgent})
		return nil
	}
	_ = login
}
