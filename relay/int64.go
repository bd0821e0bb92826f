package relay

import (
	"encoding/json"
	"io"
	"math"
	"strconv"

	"github.com/99designs/gqlgen/graphql"

	"github.com/eventide/server/eventide"
)

// MarshalInt64 writes v as a JSON number.
func MarshalInt64(v int64) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.FormatInt(v, 10))
	})
}

// UnmarshalInt64 reads a whole JSON number (or a numeric string, as variables may carry one);
// anything else is BAD_USER_INPUT.
func UnmarshalInt64(v any) (int64, error) {
	bad := eventide.Errorf(eventide.CodeBadUserInput, "an Int64 must be a whole number")
	switch n := v.(type) {
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case int32:
		return int64(n), nil
	case json.Number:
		return parseInt64(string(n), bad)
	case string:
		return parseInt64(n, bad)
	case float64:
		if n != math.Trunc(n) || n < math.MinInt64 || n >= math.MaxInt64 {
			return 0, bad
		}
		return int64(n), nil
	}
	return 0, bad
}

func parseInt64(s string, bad error) (int64, error) {
	i, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, bad
	}
	return i, nil
}
