// Package auth hashes passwords and issues and verifies the JWTs that carry a user id. Roles are
// not in the token: the caller loads the user on each request, so a role change or a deleted
// account takes effect at once.
package auth

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
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
}

// New returns an Auth. cost is bcrypt's cost (4–31); secret signs tokens (HS256); ttl is their life.
func New(cost int, secret string, ttl time.Duration) (*Auth, error) {
	if len(secret) == 0 {
		return nil, errors.New("auth: empty token secret")
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("eventide-timing-equaliser"), cost)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return &Auth{cost: cost, secret: []byte(secret), ttl: ttl, issuer: "eventide", dummy: dummy, now: time.Now}, nil
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

// Hash returns a salted bcrypt hash of pw.
func (a *Auth) Hash(pw string) ([]byte, error) {
	if len(pw) > maxPasswordBytes {
		return nil, errors.New("auth: password too long")
	}
	return bcrypt.GenerateFromPassword([]byte(pw), a.cost)
}

// Verify reports whether pw matches hash. A nil hash (unknown account) is compared against a
// dummy hash so that the answer takes the same time.
func (a *Auth) Verify(hash []byte, pw string) bool {
	known := hash != nil
	if !known {
		hash = a.dummy
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil
	return subtle.ConstantTimeEq(boolInt(ok), 1)&subtle.ConstantTimeEq(boolInt(known), 1) == 1
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
