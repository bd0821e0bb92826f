package querylimit

import (
	"errors"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

func TestCountTokens(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  string
		want int
	}{
		{"Empty", ``, 0},
		{"Field", `{ me { id } }`, 6},
		{"CommasAreSpace", `{ a, b,,, c }`, 5},
		{"CommentsCount", "# hello\n{ me } # bye", 5},
		{"Punctuators", `query Q($a: [Int!]! = [1]) @d { ...F ... on T { x } }`, 28},
		{"Strings", `{ f(a: "x\"y", b: """block "" string""", c: -1.5e3) }`, 14},
		{"EventsPage", eventsPage, 69},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := CountTokens(tc.src, 0)
			if err != nil || n != tc.want {
				t.Errorf("CountTokens = %d, %v; want %d", n, err, tc.want)
			}
			// The same count as the parser's own token limit: it parses with n, not with n-1.
			if _, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: tc.src}, n); isTokenLimit(err) {
				t.Errorf("the parser exceeds %d tokens: %v", n, err)
			}
			if n > 0 {
				if _, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: tc.src}, n-1); !isTokenLimit(err) {
					t.Errorf("the parser takes %d tokens: %v", n-1, err)
				}
			}
		})
	}
}

func isTokenLimit(err error) bool {
	return err != nil && strings.Contains(err.Error(), "exceeded token limit")
}

func TestCountTokensStopsPastMax(t *testing.T) {
	huge := repeat("__typename", 200<<10)
	for _, max := range []int{1, 2000, 10000} {
		if n, err := CountTokens(huge, max); n != max+1 || err != nil {
			t.Errorf("max %d: got %d, %v; want %d", max, n, err, max+1)
		}
	}
	if n, err := CountTokens(huge, 0); n != strings.Count(huge, "__typename")+2 || err != nil {
		t.Errorf("no max: got %d, %v", n, err)
	}
}

func TestCountTokensSyntaxError(t *testing.T) {
	n, err := CountTokens(`{ a b 'c' d }`, 100)
	var gqlErr *gqlerror.Error
	if n != 3 || !errors.As(err, &gqlErr) {
		t.Errorf("got %d, %v; want 3 and a *gqlerror.Error", n, err)
	}
	// Past max the error is never reached: the count is what matters.
	if n, err := CountTokens(`{ a b 'c' d }`, 2); n != 3 || err != nil {
		t.Errorf("got %d, %v; want 3, nil", n, err)
	}
}
