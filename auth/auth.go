// Package auth hashes passwords and issues and verifies the JWTs that carry a user id. Roles are
// not in the token: the caller loads the user on each request, so a role change or a deleted
// account takes effect at once.
package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

// MinPasswordLength is the shortest password accepted at sign-up.
const MinPasswordLength = 8

// maxPasswordBytes is bcrypt's input limit; longer passwords are refused rather than truncated.
const maxPasswordBytes = 72

// ErrInvalidToken is returned for a token that is malformed, badly signed or expired.
var ErrInvalidToken = errors.New("auth: invalid or expired token")

// Auth hashes passwords at a fixed bcrypt cost and signs tokens with one HMAC secret.
type Auth struct {
	cost   int
	secret []byte
	ttl    time.Duration
	issuer string
	// dummy is a hash of a random password at the same cost: checking a login for an unknown
	// email compares against it, so that it takes as long as a wrong password.
	dummy []byte
	now   func() time.Time

	// gate bounds the bcrypt runs of HashContext and VerifyContext; hashes counts every run.
	gate   *gate
	hashes atomic.Uint64
}

// Option tunes New.
type Option func(*options)

type options struct{ concurrency, queue int }

// HashConcurrency sets how many password hashes (and comparisons) HashContext and VerifyContext
// run at once (PASSWORD_HASH_CONCURRENCY); n <= 0 keeps the default, the number of CPUs.
func HashConcurrency(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.concurrency = n
		}
	}
}

// HashQueue sets how many callers may wait for a hashing slot; the next one is refused (ErrBusy).
// n < 0 keeps the default, QueuePerSlot waiters per slot; 0 waits for none.
func HashQueue(n int) Option {
	return func(o *options) {
		if n >= 0 {
			o.queue = n
		}
	}
}

// QueuePerSlot is how many callers may wait per hashing slot unless HashQueue says otherwise: a
// bcrypt run at cost 12 takes about a quarter of a second, so a waiter at the back of the queue
// starts within about a second.
const QueuePerSlot = 4

// New returns an Auth. cost is bcrypt's cost (4–31); secret signs tokens (HS256); ttl is their life.
func New(cost int, secret string, ttl time.Duration, opts ...Option) (*Auth, error) {
	if len(secret) == 0 {
		return nil, errors.New("auth: empty token secret")
	}
	o := options{concurrency: runtime.NumCPU(), queue: -1}
	for _, opt := range opts {
		opt(&o)
	}
	if o.queue < 0 {
		o.queue = QueuePerSlot * o.concurrency
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("eventide-timing-equaliser"), cost)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Auth{cost: cost, secret: []byte(secret), ttl: ttl, issuer: "eventide", dummy: dummy, now: time.Now,
		gate: newGate(o.concurrency, o.queue)}, nil
}

// CheckPasswordPolicy says why a password is not acceptable, or nil.
func CheckPasswordPolicy(pw string) error {
	switch {
	case len(pw) < MinPasswordLength:
		return fmt.Errorf("must be at least %d characters", MinPasswordLength)
	case len(pw) > maxPasswordBytes:
		return fmt.Errorf("must be at most %d bytes", maxPasswordBytes)
	}
	return nil
}

// Hash returns a salted bcrypt hash of pw, at once: for start-up work (the admin account, demo
// data). What a client asks for goes through HashContext.
func (a *Auth) Hash(pw string) ([]byte, error) {
	if len(pw) > maxPasswordBytes {
		return nil, errors.New("auth: password too long")
	}
	a.hashes.Add(1)
	return bcrypt.GenerateFromPassword([]byte(pw), a.cost)
}

// HashContext is Hash in one of the hashing slots: it waits for one in a bounded queue, and
// returns ErrBusy when the queue is full or ctx ends first.
func (a *Auth) HashContext(ctx context.Context, pw string) ([]byte, error) {
	if len(pw) > maxPasswordBytes {
		return nil, errors.New("auth: password too long")
	}
	if err := a.gate.acquire(ctx); err != nil {
		return nil, err
	}
	defer a.gate.release()
	return a.Hash(pw)
}

// Verify reports whether pw matches hash. A nil hash (unknown account) is compared against a
// dummy hash so that the answer takes the same time.
func (a *Auth) Verify(hash []byte, pw string) bool {
	known := hash != nil
	if !known {
		hash = a.dummy
	}
	a.hashes.Add(1)
	ok := bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil
	return subtle.ConstantTimeEq(boolInt(ok), 1)&subtle.ConstantTimeEq(boolInt(known), 1) == 1
}

// VerifyContext is Verify in one of the hashing slots, as HashContext: a comparison costs a
// hash. It returns ErrBusy, and false, when it got no slot.
func (a *Auth) VerifyContext(ctx context.Context, hash []byte, pw string) (bool, error) {
	if err := a.gate.acquire(ctx); err != nil {
		return false, err
	}
	defer a.gate.release()
	return a.Verify(hash, pw), nil
}

// Hashes is how many bcrypt runs (hashes and comparisons) this Auth has made since New, not
// counting New's own.
func (a *Auth) Hashes() uint64 { return a.hashes.Load() }

// Collectors returns the hashing metrics, for the caller to register:
// eventide_password_hashes_total, eventide_password_hash_refused_total and the gauges
// eventide_password_hashes_running and eventide_password_hashes_waiting.
func (a *Auth) Collectors() []prometheus.Collector {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: "eventide", Subsystem: "password", Name: name, Help: help}
	}
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("hashes_total", "bcrypt runs: password hashes and comparisons.")),
			func() float64 { return float64(a.hashes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts(opts("hash_refused_total", "Password hashes refused because every slot and the queue were taken.")),
			func() float64 { return float64(a.gate.refused.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("hashes_running", "Password hashes running now.")),
			func() float64 { return float64(a.gate.running()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts(opts("hashes_waiting", "Password hashes waiting for a slot.")),
			func() float64 { return float64(a.gate.waiting()) }),
	}
}

func boolInt(b bool) int32 {
	if b {
		return 1
	}
	return 0
}

// Issue returns a signed token for userID.
func (a *Auth) Issue(userID string) (string, error) {
	t := a.now()
	claims := jwt.RegisteredClaims{
		Subject:   userID,
		Issuer:    a.issuer,
		IssuedAt:  jwt.NewNumericDate(t),
		ExpiresAt: jwt.NewNumericDate(t.Add(a.ttl)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(a.secret)
}

// Parse verifies a token and returns its user id; any failure is ErrInvalidToken.
func (a *Auth) Parse(token string) (string, error) {
	id, _, err := a.ParseExpiry(token)
	return id, err
}

// ParseExpiry verifies a token and returns its user id and the instant it expires; any failure
// is ErrInvalidToken. Long-lived connections end their session at that instant.
func (a *Auth) ParseExpiry(token string) (string, time.Time, error) {
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(a.issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.now),
	)
	if err != nil || claims.Subject == "" || claims.ExpiresAt == nil {
		return "", time.Time{}, ErrInvalidToken
	}
	return claims.Subject, claims.ExpiresAt.Time, nil
}
