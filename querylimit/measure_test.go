package querylimit

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMeasure(t *testing.T) {
	schema := realSchema().Schema()
	type want struct{ depth, complexity, aliases, repeats int }
	for _, tc := range []struct {
		name string
		doc  string
		op   string
		want want
	}{
		{"Scalar", `{ me { id } }`, "", want{2, 2, 0, 1}},
		{"Typename", `{ __typename }`, "", want{0, 0, 0, 1}},
		// The example: 50 events × (edges 1 + node 1 + 41 for ten attendees).
		{"Multiplied", `{ events(first: 50) { edges { node { attendees(first: 10) { edges { node { id name } } } } } } }`, "", want{7, 2151, 0, 1}},
		{"FragmentsMultiplied", `{ events(first: 50) { ... on EventConnection { edges { node { ...A } } } } }
			fragment A on Event { attendees(first: 10) { edges { node { ...U } } } }
			fragment U on User { id name }`, "", want{7, 2151, 0, 1}},
		// edges, the list, is multiplied by the page size; pageInfo and totalCount are not.
		{"EventsPageDefaults", `{ events { edges { cursor node { id title venue { name } } } pageInfo { hasNextPage } totalCount } }`, "", want{5, 1 + 20*(1+1+1+2+2) + 2 + 1, 0, 1}},
		{"PageCapped", `{ events(first: 1000) { edges { node { id } } } }`, "", want{4, 1 + 100*3, 0, 1}},
		{"PageFloor", `{ events(first: 0) { edges { node { id } } } }`, "", want{4, 1 + 3, 0, 1}},
		{"ListField", `{ event(id: "1") { tags } }`, "", want{2, 2, 0, 1}},
		{"AliasesThroughFragments", `{ a: me { ...F } b: me { ...F } } fragment F on User { x: id y: name id: id }`, "", want{2, 8, 6, 1}},
		{"Introspection", `{ __schema { types { name fields { name } } } }`, "", want{0, 5, 0, 1}},
		{"IntrospectionType", `{ __type(name: "Event") { name } me { id } }`, "", want{2, 4, 0, 1}},
		{"RepeatedRoot", `{ events { id } events { id } }`, "", want{2, 2 * 21, 0, 2}},
		{"RepeatedMerged", `{ me { id } me { id } me { id } }`, "", want{2, 6, 0, 3}},
		{"RepeatedThroughFragments", `{ me { ...F ...F id ... on User { id } } } fragment F on User { id }`, "", want{2, 5, 0, 4}},
		{"RepeatedSpreads", `{ me { ...A ...B ... on User { ...A } } } fragment A on User { id } fragment B on User { name }`, "", want{2, 4, 0, 3}},
		{"OperationByName", `query A { me { id } } query B { me { organizedEvents { edges { node { id } } } } }`, "A", want{2, 2, 0, 1}},
		{"OperationWorstWhenUnnamed", `query A { me { id } } query B { me { organizedEvents { edges { node { id } } } } }`, "", want{5, 1 + 1 + 20*3, 0, 1}},
		{"OperationWorstWhenUnknown", `query A { me { id } } query B { me { organizedEvents { edges { node { id } } } } }`, "C", want{5, 1 + 1 + 20*3, 0, 1}},
		{"Mutation", `mutation { login(email: "a", password: "b") { token user { id } } }`, "", want{3, 4, 0, 1}},
		{"UnknownFields", `{ nope { deeper { id } } }`, "", want{3, 3, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := Measure(mustParse(t, tc.doc), schema, tc.op)
			got := want{m.Depth, m.Complexity, m.Aliases, m.Repeats}
			if got != tc.want {
				t.Errorf("got %+v, want %+v (%+v)", got, tc.want, m)
			}
			if m.FragmentCycle {
				t.Errorf("FragmentCycle in an acyclic document")
			}
		})
	}
}

func TestMeasureVariables(t *testing.T) {
	schema := realSchema().Schema()
	doc := mustParse(t, `query Q($n: Int, $m: Int = 7) { events(first: $n) { edges { node { id } } } me { organizedEvents(first: $m) { totalCount } } }`)
	// events costs 1 + n×3; me costs 1 + (1 + 1×1): organizedEvents multiplies only its lists.
	const me = 3
	for _, tc := range []struct {
		name string
		vars map[string]any
		want int
	}{
		{"Given", map[string]any{"n": 5}, 1 + 5*3 + me},
		{"JSONNumber", map[string]any{"n": json.Number("7")}, 1 + 7*3 + me},
		{"Float", map[string]any{"n": 9.0}, 1 + 9*3 + me},
		{"AbsentTakesSchemaDefault", map[string]any{}, 1 + 20*3 + me},
		{"NilMapIsNone", nil, 1 + 20*3 + me},
		{"NullTakesSchemaDefault", map[string]any{"n": nil}, 1 + 20*3 + me},
		{"Capped", map[string]any{"n": 1000}, 1 + 100*3 + me},
		{"Negative", map[string]any{"n": -5}, 1 + 1*3 + me},
		{"NotAnInt", map[string]any{"n": "many"}, 1 + 100*3 + me},
		{"Fraction", map[string]any{"n": 2.5}, 1 + 100*3 + me},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := MeasureVariables(doc, schema, "Q", tc.vars)
			if m.Complexity != tc.want || !m.UsesVariables {
				t.Errorf("complexity %d (uses variables %v), want %d", m.Complexity, m.UsesVariables, tc.want)
			}
		})
	}
	t.Run("UnknownCountAtMaxPageSize", func(t *testing.T) {
		if m := Measure(doc, schema, "Q"); m.Complexity != 1+100*3+me {
			t.Errorf("complexity %d, want %d", m.Complexity, 1+100*3+me)
		}
	})
	t.Run("LiteralsDoNotUseVariables", func(t *testing.T) {
		if m := Measure(mustParse(t, `{ events(first: 5) { totalCount } }`), schema, ""); m.UsesVariables {
			t.Error("UsesVariables for a literal page size")
		}
	})
}

func TestMeasureWithoutSchema(t *testing.T) {
	// Without definitions every field is taken for a list and page arguments count where written.
	m := Measure(mustParse(t, `{ events(first: 50) { edges { node { id } } pageInfo { hasNextPage } } }`), nil, "")
	if want := 1 + 50*(3+2); m.Complexity != want || m.Depth != 4 {
		t.Errorf("got depth %d complexity %d, want 4 and %d", m.Depth, m.Complexity, want)
	}
}

// TestMeasureFragmentCycles shows that cycles end the walks without hanging, however they loop.
func TestMeasureFragmentCycles(t *testing.T) {
	schema := realSchema().Schema()
	var bomb strings.Builder
	bomb.WriteString(`{ ...F1 }`)
	for i := 1; i < 40; i++ {
		fmt.Fprintf(&bomb, " fragment F%d on Query { ...F%d ...F%d }", i, i+1, i+1)
	}
	bomb.WriteString(" fragment F40 on Query { ...F1 __typename }")
	for _, tc := range []struct{ name, doc string }{
		{"Self", `{ ...A } fragment A on Query { ...A }`},
		{"Mutual", `{ ...A } fragment A on Query { me { id ...B } } fragment B on User { organizedEvents { edges { node { organizer { ...B } } } } }`},
		{"Unused", `{ me { id } } fragment A on User { ...B } fragment B on User { ...A }`},
		// 2^39 expansions that end in the spread closing the cycle: only MaxSelections stops them.
		{"ExponentialSpreads", bomb.String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			m := Measure(mustParse(t, tc.doc), schema, "")
			if !m.FragmentCycle {
				t.Errorf("no FragmentCycle in %+v", m)
			}
			t.Logf("%+v in %v", m, time.Since(start))
		})
	}
}

// TestMeasureFragmentBombs shows that fragments spread twice at each of 40 levels (2^40 fields
// once expanded) are measured in linear time and come out huge.
func TestMeasureFragmentBombs(t *testing.T) {
	schema := realSchema().Schema()
	bomb := func(leaf string) string {
		var b strings.Builder
		b.WriteString(`{ ...F1 }`)
		for i := 1; i < 40; i++ {
			fmt.Fprintf(&b, " fragment F%d on Query { ...F%d ...F%d }", i, i+1, i+1)
		}
		b.WriteString(" fragment F40 on Query { " + leaf + " }")
		return b.String()
	}
	t.Run("Fields", func(t *testing.T) {
		m := Measure(mustParse(t, bomb("me { id }")), schema, "")
		if m.Complexity != math.MaxInt32 || m.Repeats < DefaultMaxRepeats {
			t.Errorf("want saturated complexity and many repeats, got %+v", m)
		}
	})
	t.Run("Typenames", func(t *testing.T) {
		// Free to execute, but the validator would compare 2^40 of them.
		m := Measure(mustParse(t, bomb("__typename")), schema, "")
		if m.Complexity != 0 || m.Repeats < DefaultMaxRepeats || m.Selections != MaxSelections+1 {
			t.Errorf("want no complexity, many repeats, selections over the bound, got %+v", m)
		}
	})
	t.Run("Aliases", func(t *testing.T) {
		m := Measure(mustParse(t, bomb("a: __typename")), schema, "")
		if m.Aliases != math.MaxInt32 {
			t.Errorf("want saturated aliases, got %+v", m)
		}
	})
}

// TestMeasureDeepSpreads: a chain of fragments nests deeper than the parser lets selection sets
// nest; the walks stop at maxNesting and report a depth no limit accepts.
func TestMeasureDeepSpreads(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{ ...F0 }`)
	const n = 2 * maxNesting
	for i := range n {
		fmt.Fprintf(&b, " fragment F%d on Query { me { ...F%d } }", i, i+1)
	}
	fmt.Fprintf(&b, " fragment F%d on Query { __typename }", n)
	m := Measure(mustParse(t, b.String()), realSchema().Schema(), "")
	if m.Depth < maxNesting || m.Selections != MaxSelections+1 {
		t.Errorf("got %+v", m)
	}
}

func TestMeasureNil(t *testing.T) {
	if m := Measure(nil, nil, ""); m != (Measurements{}) {
		t.Errorf("got %+v", m)
	}
}

// TestAdminListDefaultsFit: the admin lists at their schema defaults, every field selected, fit
// the default complexity limit — the scalars of a plain list of records are charged once.
func TestAdminListDefaultsFit(t *testing.T) {
	schema := realSchema().Schema()
	for q, want := range map[string]int{
		`{ securityEvents { id type severity at ip userId email userAgent operation message } }`:                                                                                  11,
		`{ memoryHistory { at rssBytes heapAllocBytes heapInuseBytes heapSysBytes stackInuseBytes totalBytes goroutines gcCycles lastGcPauseNs memoryLimitBytes usagePercent } }`: 13,
	} {
		m := Measure(mustParse(t, q), schema, "")
		if m.Complexity != want || m.Complexity > DefaultLimits().MaxComplexity {
			t.Errorf("%s: complexity %d, want %d", q[:20], m.Complexity, want)
		}
	}
	// A list of records that resolve more records still multiplies those.
	m := Measure(mustParse(t, `{ events(first: 100) { edges { node { venue { id } } } } }`), schema, "")
	if m.Complexity < 300 {
		t.Errorf("nested records not multiplied: %d", m.Complexity)
	}
}
