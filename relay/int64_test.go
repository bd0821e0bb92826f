package relay

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"

	"github.com/eventide/server/eventide"
)

func TestInt64Scalar(t *testing.T) {
	var buf bytes.Buffer
	MarshalInt64(math.MaxInt64).MarshalGQL(&buf)
	if buf.String() != "9223372036854775807" {
		t.Fatalf("marshal: %s", buf.String())
	}
	for _, ok := range []any{int64(5), 5, json.Number("5"), "5", float64(5)} {
		if v, err := UnmarshalInt64(ok); err != nil || v != 5 {
			t.Errorf("%T %v: %d %v", ok, ok, v, err)
		}
	}
	for _, bad := range []any{5.5, "five", json.Number("1e400"), true, nil, math.Inf(1)} {
		if _, err := UnmarshalInt64(bad); !eventide.IsCode(err, eventide.CodeBadUserInput) {
			t.Errorf("%T %v: err %v, want BAD_USER_INPUT", bad, bad, err)
		}
	}
}
