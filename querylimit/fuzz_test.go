package querylimit

import (
	"context"
	"math"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// FuzzCountTokens: CountTokens agrees with itself under any max and with gqlparser's parser,
// whose token limit it stands in for. The seed corpus is in testdata/fuzz/FuzzCountTokens.
func FuzzCountTokens(f *testing.F) {
	f.Add(eventsPage, 2000)
	f.Add("# c\n{ a(b: \"\\u00e9\", c: \"\"\"x\"\"\") }", 3)
	f.Fuzz(func(t *testing.T, src string, max int) {
		all, errAll := CountTokens(src, 0)
		k := 1 + int(uint(max)%uint(all+2)) // 1..all+1
		n, err := CountTokens(src, k)
		switch {
		case k < all && (n != k+1 || err != nil):
			t.Fatalf("max %d of %d tokens: got %d, %v", k, all, n, err)
		case k >= all && (n != all || (err == nil) != (errAll == nil)):
			t.Fatalf("max %d of %d tokens (%v): got %d, %v", k, all, errAll, n, err)
		}
		if errAll != nil {
			return
		}
		if _, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: src}, all); isTokenLimit(err) {
			t.Fatalf("%d tokens counted, the parser wants more: %v", all, err)
		}
		if _, err := parser.ParseQuery(&ast.Source{Input: src}); err == nil && all > 1 { // a limit of 0 is none
			if _, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: src}, all-1); !isTokenLimit(err) {
				t.Fatalf("%d tokens counted, the parser takes %d: %v", all, all-1, err)
			}
		}
	})
}

// FuzzMeasure: Measure and the extension's check never panic and stay within their bounds on any
// document, and whatever the extension lets through, the validator gets through too. The seed
// corpus (hostile shapes, fragment cycles and bombs, introspection) is in testdata/fuzz/FuzzMeasure.
func FuzzMeasure(f *testing.F) {
	f.Add(eventsPage, "EventsPage")
	f.Add(`{ ...A } fragment A on Query { me { ...B } } fragment B on User { organizedEvents { edges { node { organizer { ...B } } } } }`, "")
	schema := realSchema().Schema()
	l := Extension(DefaultLimits())
	l.schema = schema
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, src, op string) {
		s, refused := l.check(ctx, src, op, map[string]any{"first": 7, "n": "x"}, nil)
		doc, err := parser.ParseQuery(&ast.Source{Input: src})
		if err != nil {
			return
		}
		for _, sch := range []*ast.Schema{schema, nil} {
			for _, m := range []Measurements{Measure(doc, sch, op), MeasureVariables(doc, sch, op, map[string]any{"first": 1000})} {
				if m.Depth < 0 || m.Complexity < 0 || m.Complexity > math.MaxInt32 || m.Aliases < 0 || m.Aliases > math.MaxInt32 ||
					m.Repeats < 0 || m.Selections < 0 || m.Selections > MaxSelections+1 || (m.Repeats > 0) != (m.RepeatedField != "") {
					t.Fatalf("out of bounds: %+v", m)
				}
			}
		}
		if refused == nil && s != nil {
			// Passed: cheap enough to validate, whatever the validator says about it.
			validator.ValidateWithRules(schema, doc, rules.NewDefaultRules())
		}
	})
}
