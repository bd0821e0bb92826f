// Package calendar writes events as iCalendar (RFC 5545) files, "add to calendar" for one
// event and a personal feed per user, and makes and checks the secret tokens of those feeds.
package calendar

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// Keys makes and checks feed tokens. A token is "<user id>.<mac>", the mac an HMAC-SHA256 of the
// user id and the user's secret under a key derived from the server's secret (JWT_SECRET). The
// store keeps only the random secret, so a copy of the database does not give the feeds away,
// and the URL can be shown again (calendarUrl) without being stored; a new secret
// (resetCalendarToken) makes the old token fail. A user who never reset has the empty secret:
// the token is still unguessable without the key.
type Keys struct{ key []byte }

// NewKeys derives the token key from the server's secret.
func NewKeys(serverSecret string) *Keys {
	m := hmac.New(sha256.New, []byte(serverSecret))
	m.Write([]byte("eventide calendar feed v1"))
	return &Keys{key: m.Sum(nil)}
}

func (k *Keys) mac(userID, secret string) string {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(userID))
	m.Write([]byte{0})
	m.Write([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Token is the user's feed token for secret.
func (k *Keys) Token(userID, secret string) string { return userID + "." + k.mac(userID, secret) }

// maxToken bounds what UserOf looks at: an id and a mac are far shorter.
const maxToken = 128

// UserOf returns the user id a well-formed token names; ok is false for anything else.
func (k *Keys) UserOf(token string) (userID string, ok bool) {
	if len(token) > maxToken {
		return "", false
	}
	id, mac, found := strings.Cut(token, ".")
	if !found || id == "" || len(mac) != base64.RawURLEncoding.EncodedLen(sha256.Size) {
		return "", false
	}
	return id, true
}

// Valid reports whether token is the user's token for secret, in constant time.
func (k *Keys) Valid(token, userID, secret string) bool {
	return hmac.Equal([]byte(token), []byte(k.Token(userID, secret)))
}

// NewSecret returns a fresh random secret (256 bits).
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// FeedPath is the path of a feed: /calendar/<token>.ics.
func FeedPath(token string) string { return "/calendar/" + token + ".ics" }

type baseKey struct{}

// WithBase returns a context carrying the server's public base URL ("https://events.example"),
// which calendarUrl prefixes the feed's path with.
func WithBase(ctx context.Context, base string) context.Context {
	return context.WithValue(ctx, baseKey{}, strings.TrimRight(base, "/"))
}

// CarryBase calls put with the key and value of src's base URL, if it has one: for a context
// that keeps the few values it carries in one object (the lean websocket transport's).
func CarryBase(src context.Context, put func(key, val any)) {
	if v := src.Value(baseKey{}); v != nil {
		put(baseKey{}, v)
	}
}

// BaseFrom returns the base URL WithBase set, or "".
func BaseFrom(ctx context.Context) string {
	b, _ := ctx.Value(baseKey{}).(string)
	return b
}
