// Package security watches who does what to the server: a bounded log of security events with
// live fan-out (shared between replicas over Redis), a brute-force detector, throttling with a
// Redis limiter that falls back to memory, and the client identity both are keyed by.
//
// The log keeps what matters even when someone tries to wipe it. Its SECURITY_MAX_EVENTS are
// split into three shares by severity, each a ring of its own: INFO and LOW get half, MEDIUM a
// quarter, HIGH and CRITICAL a quarter. An event only ever pushes out an older event of its own
// share, so a flood of routine events (failed sign-ins, forged tokens, throttling) cannot push
// out a MEDIUM one, and a flood of MEDIUM ones (ACCESS_DENIED from throwaway accounts) cannot
// push out a brute-force alarm. Queries merge the shares newest first. The flood itself is
// mostly one event: repeated ACCESS_DENIED of one user (or anonymous client) for one refusal
// are counted in the event of the first, once per window, as the throttle reports RATE_LIMITED
// once per key and window. And every event is also one structured log line (msg=security_event),
// so the record outlives the rings and the process.
package security

import (
	"time"
	"unicode/utf8"

	"github.com/eventide/server/eventide"
)

// EventType names what happened. The values are API.md's SecurityEventType enum.
type EventType string

// The security event types.
const (
	LoginSucceeded      EventType = "LOGIN_SUCCEEDED"
	LoginFailed         EventType = "LOGIN_FAILED"
	SignedUp            EventType = "SIGNED_UP"
	TokenInvalid        EventType = "TOKEN_INVALID"
	AccessDenied        EventType = "ACCESS_DENIED"
	RateLimited         EventType = "RATE_LIMITED"
	BruteForceSuspected EventType = "BRUTE_FORCE_SUSPECTED"
	QueryRejected       EventType = "QUERY_REJECTED"
	RoleChanged         EventType = "ROLE_CHANGED"
	AdminAction         EventType = "ADMIN_ACTION"
	SessionEnded        EventType = "SESSION_ENDED"
)

var eventTypes = [...]EventType{
	LoginSucceeded, LoginFailed, SignedUp, TokenInvalid,
	AccessDenied, RateLimited, BruteForceSuspected, QueryRejected,
	RoleChanged, AdminAction, SessionEnded,
}

// EventTypes returns every event type, in API.md's order.
func EventTypes() []EventType { return append([]EventType(nil), eventTypes[:]...) }

// index is t's position in eventTypes, or -1 for an unknown type.
func (t EventType) index() int {
	for i, v := range eventTypes {
		if v == t {
			return i
		}
	}
	return -1
}

// Valid reports whether t is one of API.md's event types.
func (t EventType) Valid() bool { return t.index() >= 0 }

// DefaultSeverity is the severity an event of type t gets when it is logged without one.
func (t EventType) DefaultSeverity() Severity {
	switch t {
	case LoginSucceeded, SignedUp, SessionEnded:
		return SeverityInfo
	case LoginFailed, TokenInvalid, RateLimited, QueryRejected:
		return SeverityLow
	case AccessDenied, RoleChanged, AdminAction:
		return SeverityMedium
	case BruteForceSuspected:
		return SeverityHigh
	}
	return SeverityInfo
}

// Severity grades an event. Severities are ordered from INFO to CRITICAL.
type Severity string

// The severities, from least to most severe.
const (
	SeverityInfo     Severity = "INFO"
	SeverityLow      Severity = "LOW"
	SeverityMedium   Severity = "MEDIUM"
	SeverityHigh     Severity = "HIGH"
	SeverityCritical Severity = "CRITICAL"
)

// Severities returns every severity, least severe first.
func Severities() []Severity {
	return []Severity{SeverityInfo, SeverityLow, SeverityMedium, SeverityHigh, SeverityCritical}
}

// rank orders severities: 1 for INFO up to 5 for CRITICAL, 0 for an unknown one.
func (s Severity) rank() int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityLow:
		return 2
	case SeverityMedium:
		return 3
	case SeverityHigh:
		return 4
	case SeverityCritical:
		return 5
	}
	return 0
}

// Valid reports whether s is one of API.md's severities.
func (s Severity) Valid() bool { return s.rank() > 0 }

// AtLeast reports whether s is min or more severe. Every valid severity is at least "" (no
// minimum).
func (s Severity) AtLeast(min Severity) bool { return s.rank() >= min.rank() }

// ErrInvalidSeverity is returned for a severity that is not one of API.md's.
var ErrInvalidSeverity = &eventide.Error{Code: eventide.CodeBadUserInput, Field: "minSeverity",
	Message: "minSeverity: must be one of INFO, LOW, MEDIUM, HIGH, CRITICAL"}

// Event is one security event. The log fills ID and, when zero, At, Severity and Count.
type Event struct {
	ID        string
	Type      EventType
	Severity  Severity
	At        time.Time
	IP        string
	UserID    string
	Email     string
	UserAgent string
	Operation string
	Message   string
	// Count is how many times it happened: 1, or more for an event that counts the repeats of
	// its window (ACCESS_DENIED, see Log).
	Count int
}

// Field bounds: an event's strings come from the outside (a user agent, a typed email), and the
// log keeps SECURITY_MAX_EVENTS of them, so each is cut to a size that bounds the whole ring.
const (
	maxFieldBytes   = 256
	maxMessageBytes = 1024
)

// bounded returns e with every string cut to its bound. A cut string is copied, so the ring never
// pins a large request header in memory; the common case allocates nothing.
func (e Event) bounded() Event {
	e.ID = clip(e.ID, maxFieldBytes)
	e.IP = clip(e.IP, maxFieldBytes)
	e.UserID = clip(e.UserID, maxFieldBytes)
	e.Email = clip(e.Email, maxFieldBytes)
	e.UserAgent = clip(e.UserAgent, maxFieldBytes)
	e.Operation = clip(e.Operation, maxFieldBytes)
	e.Message = clip(e.Message, maxMessageBytes)
	return e
}

// clip returns s cut to at most n bytes on a rune boundary, copied when cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return string([]byte(s[:n]))
}
