package relay

import (
	"io"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventide/server/eventide"
)

// MarshalTime writes t as an RFC 3339 string in UTC with millisecond precision (the store's).
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.Quote(t.UTC().Format("2006-01-02T15:04:05.000Z07:00")))
	})
}

// UnmarshalTime reads an RFC 3339 string; anything else is BAD_USER_INPUT.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, eventide.Errorf(eventide.CodeBadUserInput, "a Time must be an RFC 3339 string")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, eventide.Errorf(eventide.CodeBadUserInput, "%q is not an RFC 3339 time", s)
	}
	return t.UTC(), nil
}
