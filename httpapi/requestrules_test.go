package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/eventide/server/eventide"
)

func TestControlAt(t *testing.T) {
	for _, tc := range []struct {
		s    string
		text bool
		want int
	}{
		{"plain", false, -1},
		{"", false, -1},
		{"a\x00b", false, 1},
		{"a\x00b", true, 1},
		{"tab\there", false, 3},
		{"tab\there", true, -1},
		{"lines\r\nmore\n", true, -1},
		{"lines\r\n", false, 5},
		{"esc\x1b[2J", true, 3},
		{"unit\x1f", true, 4},
		{"del\x7f and é and 日本", false, -1}, // DEL and non-ASCII are not C0
		{"\xff\xfe\x01", false, 2},          // invalid UTF-8 around a control byte
	} {
		if got := controlAt(tc.s, tc.text); got != tc.want {
			t.Errorf("controlAt(%q, %v) = %d, want %d", tc.s, tc.text, got, tc.want)
		}
	}
}

// refControlAt is controlAt written by runes, to fuzz against.
func refControlAt(s string, text bool) int {
	for i, r := range s {
		if r < 0x20 && !(text && (r == '\t' || r == '\n' || r == '\r')) {
			return i
		}
	}
	return -1
}

func FuzzControlAt(f *testing.F) {
	for _, s := range []string{"", "a\x00b", "tab\t", "\r\n", "é\x01", "\xff\x00", "\x1b[31m"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, text bool) {
		if got, want := controlAt(s, text), refControlAt(s, text); got != want {
			t.Fatalf("controlAt(%q, %v) = %d, want %d", s, text, got, want)
		}
	})
}

// refBad lists the names under which v (a decoded JSON value) holds a refused string.
func refBad(name string, v any, out map[string]bool) {
	switch x := v.(type) {
	case string:
		if refControlAt(x, freeText[name]) >= 0 {
			out[name] = true
		}
	case []any:
		for _, e := range x {
			refBad(name, e, out)
		}
	case map[string]any:
		for k, e := range x {
			refBad(k, e, out)
		}
	}
}

// FuzzCheckValue: checkValue accepts a variable's value exactly when no string in it holds a
// control character its field refuses, and when it refuses, it names such a field.
func FuzzCheckValue(f *testing.F) {
	for _, s := range []string{`"a"`, `"a\u0000"`, `{"description":"a\nb","name":"x"}`, `{"name":"a\nb"}`,
		`[{"reason":"\t"},{"title":"\u0007"}]`, `{"in":{"description":"\u0000"}}`, `[1, true, null, "ok"]`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		dec := json.NewDecoder(strings.NewReader(data))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return
		}
		bad := map[string]bool{}
		refBad("arg", v, bad)
		err := checkValue("arg", v)
		switch {
		case err == nil && len(bad) > 0:
			t.Fatalf("%s accepted; control characters under %v", data, slices.Sorted(maps.Keys(bad)))
		case err != nil && !bad[err.Field]:
			t.Fatalf("%s refused on %q (%s); bad fields %v", data, err.Field, err.Message, bad)
		case err != nil && err.Code != eventide.CodeBadUserInput:
			t.Fatalf("code %s", err.Code)
		}
	})
}

const testSchema = `
type Query {
	f(s: String, id: ID, in: In, list: [String], text: String): String
	g: Query
}
input In { description: String, name: String, nested: In, tags: [String!] }
`

// scan parses and validates query against testSchema, coerces vars, and runs requestRules'
// argument check on it.
func scan(t *testing.T, query string, vars map[string]any) *eventide.Error {
	t.Helper()
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: testSchema})
	doc, errs := gqlparser.LoadQuery(schema, query)
	if len(errs) > 0 {
		t.Fatalf("%s: %v", query, errs)
	}
	coerced, err := validator.VariableValues(schema, doc.Operations[0], vars)
	if err != nil {
		t.Fatalf("variables: %v", err)
	}
	s := argScan{doc: doc, vars: coerced}
	return s.selections(doc.Operations[0].SelectionSet)
}

func TestArgScan(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		vars        map[string]any
		field       string // "" when accepted
	}{
		{"Clean", `{ f(s: "hello", in: {description: "a", name: "b"}) }`, nil, ""},
		{"NULLiteral", `{ f(s: "a\u0000b") }`, nil, "s"},
		{"NULVariable", `query($v: String) { f(s: $v) }`, map[string]any{"v": "a\x00"}, "s"},
		{"IDVariable", `query($v: ID) { f(id: $v) }`, map[string]any{"v": "1\n"}, "id"},
		{"InputFieldLiteral", `{ f(in: {name: "x\u001b"}) }`, nil, "name"},
		{"InputFieldVariable", `query($i: In) { f(in: $i) }`, map[string]any{"i": map[string]any{"nested": map[string]any{"name": "\x01"}}}, "name"},
		{"ListItem", `query($l: [String]) { f(list: $l) }`, map[string]any{"l": []any{"ok", "no\x02"}}, "list"},
		{"TagsInInput", `{ f(in: {tags: ["a", "b\u0000"]}) }`, nil, "tags"},
		{"DescriptionKeepsNewlines", `query($i: In) { f(in: $i) }`, map[string]any{"i": map[string]any{"description": "one\r\n\ttwo"}}, ""},
		{"DescriptionRefusesNUL", `query($i: In) { f(in: $i) }`, map[string]any{"i": map[string]any{"description": "one\x00"}}, "description"},
		{"NameRefusesNewline", `query($i: In) { f(in: $i) }`, map[string]any{"i": map[string]any{"name": "one\ntwo"}}, "name"},
		{"BlockString", "{ f(text: \"\"\"a\nb\"\"\") }", nil, "text"},
		{"VariableDefault", `query($v: String = "d\u0000") { f(s: $v) }`, nil, "s"},
		{"InFragment", `{ ...F } fragment F on Query { g { f(s: "\u0007") } }`, nil, "s"},
		{"InInlineFragment", `{ ... on Query { f(s: "\u0007") } }`, nil, "s"},
		{"Nested", `{ g { g { f(s: "\u0003") } } }`, nil, "s"},
		{"FragmentUsedTwice", `{ a: g { ...F } b: g { ...F } } fragment F on Query { f(s: "ok") }`, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := scan(t, tc.query, tc.vars)
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field != "" && (err == nil || err.Field != tc.field || err.Code != eventide.CodeBadUserInput):
				t.Fatalf("got %v, want BAD_USER_INPUT on %s", err, tc.field)
			case err != nil && !strings.HasPrefix(err.Message, tc.field+": must not contain control characters"):
				t.Fatalf("message %q", err.Message)
			}
		})
	}
}

func TestStreaming(t *testing.T) {
	for _, tc := range []struct {
		h    http.Header
		want bool
	}{
		{http.Header{}, false},
		{nil, false},
		{http.Header{"Accept": {"application/json"}}, false},
		{http.Header{"Accept": {"application/graphql-response+json, application/json"}}, false},
		{http.Header{"Upgrade": {"websocket"}}, true},
		{http.Header{"Upgrade": {"WebSocket"}}, true},
		{http.Header{"Upgrade": {"h2c"}}, false},
		{http.Header{"Accept": {"text/event-stream"}}, true},
		{http.Header{"Accept": {`multipart/mixed;subscriptionSpec="1.0", application/json`}}, true},
		{http.Header{"Accept": {"application/json", "Multipart/Mixed"}}, true},
		{http.Header{"Accept": {"multipart/mixed;q=0, application/json"}}, false},
		{http.Header{"Accept": {"application/json", "Text/Event-Stream;q=0.1"}}, true},
		{http.Header{"Accept": {"text/event-stream;q=0"}}, false},
		{http.Header{"Accept": {"*/*"}}, true},
	} {
		if got := streaming(tc.h); got != tc.want {
			t.Errorf("streaming(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

func TestCapErrors(t *testing.T) {
	list := func(n int) gqlerror.List {
		l := make(gqlerror.List, n)
		for i := range l {
			code := "GRAPHQL_VALIDATION_FAILED"
			if i >= 49 {
				code = "BAD_USER_INPUT"
			}
			l[i] = &gqlerror.Error{Message: fmt.Sprint(i), Extensions: map[string]any{"code": code}}
		}
		return l
	}
	for _, n := range []int{0, 1, 49, 50} {
		if got := capErrors(list(n)); len(got) != n {
			t.Errorf("%d errors became %d", n, len(got))
		}
	}
	for _, n := range []int{51, 100, 1299} {
		in := list(n)
		got := capErrors(in)
		if len(got) != MaxErrors {
			t.Fatalf("%d errors became %d, want %d", n, len(got), MaxErrors)
		}
		if got[48].Message != "48" || len(in) != n || in[49].Message != "49" {
			t.Fatalf("the first 49 are not kept as they were, or the input changed")
		}
		last := got[MaxErrors-1]
		dropped := n - 49
		if last.Extensions["droppedErrors"] != dropped || !strings.HasPrefix(last.Message, fmt.Sprintf("%d more errors left out", dropped)) ||
			last.Extensions["code"] != "BAD_USER_INPUT" {
			t.Fatalf("%d errors: last is %q %v", n, last.Message, last.Extensions)
		}
	}
}

// BenchmarkRequestRules is what the rules cost an operation whose arguments are all clean: a
// listing with a filter object and a paging variable, through a fragment (the shape of the web
// app's queries).
func BenchmarkRequestRules(b *testing.B) {
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: testSchema})
	doc, errs := gqlparser.LoadQuery(schema, `query Page($in: In, $after: String) {
		f(s: "jazz", id: "6b0f52f563243f936769533d", in: $in, list: ["a", "b"]) g { ...F g { f(s: $after) } } }
		fragment F on Query { f(text: "x", in: {name: "Lisbon", tags: ["music", "outdoor"]}) }`)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	vars, err := validator.VariableValues(schema, doc.Operations[0], map[string]any{
		"in":    map[string]any{"description": "A long evening of jazz\nby the river", "name": "Riverside", "tags": []any{"jazz", "free"}},
		"after": "ZXZlbnQ6MTIz",
	})
	if err != nil {
		b.Fatal(err)
	}
	oc := &graphql.OperationContext{Doc: doc, Operation: doc.Operations[0], Variables: vars,
		Headers: http.Header{"Content-Type": {"application/json"}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := (requestRules{}).MutateOperationContext(ctx, oc); err != nil {
			b.Fatal(err)
		}
	}
}
