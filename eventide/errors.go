package eventide

import (
	"errors"
	"fmt"
	"time"
)

// Code is a machine-readable error class; it becomes extensions.code in a GraphQL error.
type Code string

// The error codes of API.md that the domain and its adapters raise. CodeUnavailable: a dependency
// (the store) is down, so the request may succeed when retried.
//
// The protocol's codes live with what raises them: GRAPHQL_PARSE_FAILED and
// GRAPHQL_VALIDATION_FAILED are gqlgen's (graphql/errcode), QUERY_TOO_COMPLEX is querylimit's,
// PERSISTED_QUERY_NOT_FOUND, PAYLOAD_TOO_LARGE, METHOD_NOT_ALLOWED and NOT_ACCEPTABLE are
// httpapi's. CodeBadRequest stays here for now: the error presenter (resolvers, beneath the
// transport) gives it to gqlgen's uncoded request errors, and httpapi to the requests it
// refuses, and neither imports the other.
const (
	CodeUnauthenticated Code = "UNAUTHENTICATED"
	CodeForbidden       Code = "FORBIDDEN"
	CodeBadUserInput    Code = "BAD_USER_INPUT"
	CodeNotFound        Code = "NOT_FOUND"
	CodeRateLimited     Code = "RATE_LIMITED"
	CodeBadRequest      Code = "BAD_REQUEST"
	CodeInternal        Code = "INTERNAL_SERVER_ERROR"
	CodeUnavailable     Code = "SERVICE_UNAVAILABLE"
)

// Error is the one error type of the domain. Message is safe to show to the client; Field names
// the input field at fault, when there is one; RetryAfter, when positive, is how long the client
// should wait before it tries again (a refused attempt: the HTTP transport answers 429 with
// Retry-After); Err is the cause, for the log only.
type Error struct {
	Code       Code
	Message    string
	Field      string
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidField returns a BAD_USER_INPUT error naming field.
func InvalidField(field, format string, args ...any) *Error {
	return &Error{Code: CodeBadUserInput, Field: field, Message: field + ": " + fmt.Sprintf(format, args...)}
}

// Internal wraps err as an INTERNAL_SERVER_ERROR whose message is generic.
func Internal(err error) *Error {
	return &Error{Code: CodeInternal, Message: "internal server error", Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, CodeInternal for any other
// non-nil error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// IsCode reports whether err carries code.
func IsCode(err error, code Code) bool { return ErrorCode(err) == code }

// NotFound returns a NOT_FOUND error for the kind of thing and its id.
func NotFound(kind, id string) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf("%s %q not found", kind, id)}
}
