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
		// The example: the page's query 11, and 50 events × (edges 1 + node 1 + attendees:
		// its query 11, ten attendees × (edges 1 + node 1), their two fields once).
		{"Multiplied", `{ events(first: 50) { edges { node { attendees(first: 10) { edges { node { id name } } } } } } }`, "", want{7, 11 + 50*(2+11+10*2+2), 0, 1}},
		{"FragmentsMultiplied", `{ events(first: 50) { ... on EventConnection { edges { node { ...A } } } } }
			fragment A on Event { attendees(first: 10) { edges { node { ...U } } } }
			fragment U on User { id name }`, "", want{7, 11 + 50*(2+11+10*2+2), 0, 1}},
		// edges, the list, is multiplied by the page size: each edge resolves an edge, a node and a
		// venue; pageInfo and totalCount (a count) are not, nor the five scalars (once each).
		{"EventsPageDefaults", `{ events { edges { cursor node { id title venue { name } } } pageInfo { hasNextPage } totalCount } }`, "", want{5, 11 + 20*3 + 1 + CountCost + 5, 0, 1}},
		{"PageCapped", `{ events(first: 1000) { edges { node { id } } } }`, "", want{4, 11 + 100*2 + 1, 0, 1}},
		{"PageFloor", `{ events(first: 0) { edges { node { id } } } }`, "", want{4, 11 + 2 + 1, 0, 1}},
		{"ListField", `{ event(id: "1") { tags } }`, "", want{2, 2, 0, 1}},
		{"AliasesThroughFragments", `{ a: me { ...F } b: me { ...F } } fragment F on User { x: id y: name id: id }`, "", want{2, 8, 6, 1}},
		{"Introspection", `{ __schema { types { name fields { name } } } }`, "", want{0, 5, 0, 1}},
		{"IntrospectionType", `{ __type(name: "Event") { name } me { id } }`, "", want{2, 4, 0, 1}},
		{"RepeatedRoot", `{ events { id } events { id } }`, "", want{2, 2 * (11 + 20), 0, 2}},
		{"RepeatedMerged", `{ me { id } me { id } me { id } }`, "", want{2, 6, 0, 3}},
		{"RepeatedThroughFragments", `{ me { ...F ...F id ... on User { id } } } fragment F on User { id }`, "", want{2, 5, 0, 4}},
		{"RepeatedSpreads", `{ me { ...A ...B ... on User { ...A } } } fragment A on User { id } fragment B on User { name }`, "", want{2, 4, 0, 3}},
		{"OperationByName", `query A { me { id } } query B { me { organizedEvents { edges { node { id } } } } }`, "A", want{2, 2, 0, 1}},
		{"OperationWorstWhenUnnamed", `query A { me { id } } query B { me { organizedEvents { edges { node { id } } } } }`, "", want{5, 1 + 11 + 20*2 + 1, 0, 1}},
		{"OperationWorstWhenUnknown", `query A { me { id } } query B { me { organizedEvents { edges { node { id } } } } }`, "C", want{5, 1 + 11 + 20*2 + 1, 0, 1}},
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
	// events costs 11 + n×2 + 1; me costs 1 + (11 + CountCost): organizedEvents multiplies only
	// its lists, and there are none.
	const me = 1 + 11 + CountCost
	ev := func(n int) int { return 11 + n*2 + 1 }
	for _, tc := range []struct {
		name string
		vars map[string]any
		want int
	}{
		{"Given", map[string]any{"n": 5}, ev(5) + me},
		{"JSONNumber", map[string]any{"n": json.Number("7")}, ev(7) + me},
		{"Float", map[string]any{"n": 9.0}, ev(9) + me},
		{"AbsentTakesSchemaDefault", map[string]any{}, ev(20) + me},
		{"NilMapIsNone", nil, ev(20) + me},
		{"NullTakesSchemaDefault", map[string]any{"n": nil}, ev(20) + me},
		{"Capped", map[string]any{"n": 1000}, ev(100) + me},
		{"Negative", map[string]any{"n": -5}, ev(1) + me},
		{"NotAnInt", map[string]any{"n": "many"}, ev(100) + me},
		{"Fraction", map[string]any{"n": 2.5}, ev(100) + me},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := MeasureVariables(doc, schema, "Q", tc.vars)
			if m.Complexity != tc.want || !m.UsesVariables {
				t.Errorf("complexity %d (uses variables %v), want %d", m.Complexity, m.UsesVariables, tc.want)
			}
		})
	}
	t.Run("UnknownCountAtMaxPageSize", func(t *testing.T) {
		if m := Measure(doc, schema, "Q"); m.Complexity != ev(100)+me {
			t.Errorf("complexity %d, want %d", m.Complexity, ev(100)+me)
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

// webAppPages are the documents the web app sends (API.md's domain queries) at page sizes up to
// the cap of 100: every one must fit the default complexity limit. The one exception to the cap
// is EventCards, which previews five attendees of each event: each preview is a store query of
// its own (attendees are not batched), so 30 cards fit and 100 (100 queries, 500 attendees) do
// not; the event's own page lists its attendees 100 at a time.
var webAppPages = map[string]string{
	"EventsPage": `query EventsPage($filter: EventFilter, $first: Int = 100, $after: String) {
  events(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id title description startsAt endsAt status capacity tags attendeeCount waitlistCount cancelReason createdAt updatedAt
      viewerRegistration { id status createdAt }
      venue { id name address city capacity }
      organizer { id name }
    } }
  }
}`,
	"EventCards": `query EventCards {
  events(first: 30) {
    totalCount
    edges { node { id title startsAt attendeeCount capacity venue { name city } organizer { name }
      attendees(first: 5) { edges { node { id name } } } } }
    pageInfo { hasNextPage endCursor }
  }
}`,
	"EventDetail": `query EventDetail($id: ID!) {
  event(id: $id) {
    id title description startsAt endsAt status capacity tags attendeeCount waitlistCount cancelReason createdAt updatedAt
    venue { id name address city capacity events(first: 5) { edges { node { id title startsAt } } } }
    organizer { id name organizedEvents(first: 5) { totalCount edges { node { id title startsAt } } } }
    viewerRegistration { id status createdAt }
    attendees(first: 100) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name } } }
  }
}`,
	"VenuePage": `query VenuePage($id: ID!) {
  venue(id: $id) {
    id name address city capacity
    events(first: 100) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { cursor node { id title startsAt endsAt status capacity attendeeCount waitlistCount organizer { id name } } }
    }
  }
}`,
	"Venues": `query Venues($city: String) {
  venues(city: $city, first: 100) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id name address city capacity } } }
}`,
	"Dashboard": `query Dashboard {
  me {
    id name email role createdAt
    organizedEvents(first: 100) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { id title status startsAt endsAt capacity attendeeCount waitlistCount tags venue { id name city } } }
    }
  }
}`,
	// What the load tool sends (cmd/eventide-load), and this package's own listing at the cap.
	"LoadEventsPage":  `query EventsPage { events(first: 100) { edges { node { id title startsAt venue { name city } organizer { name } attendeeCount waitlistCount } } pageInfo { hasNextPage endCursor } } }`,
	"LoadEventDetail": `query EventDetail($id: ID!) { event(id: $id) { id title description startsAt endsAt status capacity tags venue { id name address city capacity } organizer { id name } attendeeCount waitlistCount attendees(first: 10) { totalCount edges { node { id name } } } } }`,
	"ListingAtTheCap": eventsPage,
}

// TestStoreWorkIsCharged: a count and a page query cost what the store does for them, so thirty
// aliased counts (the reported 480 ms of CPU for a complexity of 60) no longer fit the default
// limit, where every page of the web app, at up to 100 a page, does.
func TestStoreWorkIsCharged(t *testing.T) {
	schema := realSchema().Schema()
	limit := DefaultLimits().MaxComplexity
	t.Run("WebAppPagesFit", func(t *testing.T) {
		for name, doc := range webAppPages {
			m := MeasureVariables(mustParse(t, doc), schema, "", map[string]any{"first": 100})
			if m.Complexity > limit {
				t.Errorf("%s: complexity %d over the default limit %d", name, m.Complexity, limit)
			}
			t.Logf("%s: %d", name, m.Complexity)
		}
	})
	aliased := func(n int, field string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, " c%d: %s", i, field)
		}
		return b.String() + " }"
	}
	t.Run("ThirtyAliasedCountsDoNot", func(t *testing.T) {
		for _, field := range []string{
			`events(first: 1) { totalCount }`,
			`venues(first: 1) { totalCount }`,
			`me { organizedEvents(first: 1) { totalCount } }`,
			`event(id: "1") { attendees(first: 1) { totalCount } }`,
		} {
			one := Measure(mustParse(t, aliased(1, field)), schema, "").Complexity
			if one > limit || one < 1+StoreQueryCost+CountCost {
				t.Errorf("one %s: complexity %d", field, one)
			}
			if m := Measure(mustParse(t, aliased(30, field)), schema, ""); m.Complexity <= limit || m.Complexity != 30*one {
				t.Errorf("30 × %s: complexity %d, want 30 × %d, over %d", field, m.Complexity, one, limit)
			}
		}
		// The exact price of the reported document: a page query and a count, thirty times.
		if m := Measure(mustParse(t, aliased(30, `events(first: 1) { totalCount }`)), schema, ""); m.Complexity != 30*(1+StoreQueryCost+CountCost) {
			t.Errorf("complexity %d", m.Complexity)
		}
	})
	t.Run("PageQueriesAreChargedToo", func(t *testing.T) {
		// Thirty aliased pages of one cursor each: thirty store queries, but cheap ones.
		m := Measure(mustParse(t, aliased(30, `events(first: 1) { edges { cursor } }`)), schema, "")
		if m.Complexity != 30*(1+StoreQueryCost+1+1) {
			t.Errorf("complexity %d", m.Complexity)
		}
		// A count per item of a page is a count per item: refused at any useful page size.
		m = Measure(mustParse(t, `{ events(first: 10) { edges { node { organizer { organizedEvents { totalCount } } } } } }`), schema, "")
		if m.Complexity <= limit {
			t.Errorf("ten nested counts: complexity %d", m.Complexity)
		}
	})
}
