package querylimit

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// MaxPageSize is the most items one page of a connection holds (API.md caps `first` at 100); a
// page argument counts as at most this many items, and as this many when its value is unknown.
const MaxPageSize = 100

// MaxSelections bounds the walk that counts repeated fields: it visits every selection with each
// fragment spread expanded in place, which a few lines of fragments can make exponential, so it
// stops after this many selections, or when spreads nest absurdly deep, and
// Measurements.Selections reports MaxSelections+1.
const MaxSelections = 1 << 14

// maxNesting bounds the recursion of the walks. The parser already refuses selection sets nested
// deeper than parser.MaxNestingDepth (1000), but fragments spread inside fragments nest further.
const maxNesting = 4096

// saturated is where sums and products stop growing, so that a fragment bomb reports a huge
// complexity instead of overflowing.
const saturated = math.MaxInt32

// Spreads is Measurements.RepeatedField when fragment spreads are what repeats most.
const Spreads = "..."

// StoreQueryCost is what a field that returns a connection adds to its own cost of 1 each time
// it resolves: one store query for its page, about the work of resolving ten records.
const StoreQueryCost = 10

// CountCost is what totalCount on a connection costs each time it resolves. A count reads every
// match, where a page stops after it: on the reported store, thirty aliased counts of all events
// cost 480 ms of CPU, 16 ms each, as much as a page of a hundred events with their venues and
// organizers. So ten counts in one document already reach the default limit of 1000.
const CountCost = 100

// pageArgs are the arguments that size a list: Relay's first and last.
var pageArgs = [...]string{"first", "last"}

// Measurements are what Measure finds in a document.
type Measurements struct {
	// Depth is the deepest nesting of fields in the operation, following fragment spreads and
	// inline fragments (which add no depth themselves): `{ me { id } }` is 2. __typename and
	// fields inside introspection (__schema, __type) add none; gqlparser's MaxIntrospectionDepth
	// validation rule bounds those.
	Depth int
	// Complexity estimates what the operation costs to resolve, charging the store's work
	// above all:
	//
	//   - a field that returns a connection (a type with edges and pageInfo) runs a store query
	//     for its page each time it resolves: 1 + StoreQueryCost;
	//   - totalCount on a connection runs a count over every match each time: CountCost;
	//   - any other field that returns an object or a list costs 1 each time it resolves;
	//   - a scalar or enum field (or a list of them) costs 1 where it is written: it is read off a
	//     record that its object already paid for, so it is not multiplied by the page it is
	//     read from (100 events cost the same with 3 fields or 15), only by the pages around
	//     that one.
	//
	// A field with a page argument (first or last, the schema's default when absent, at most
	// MaxPageSize) multiplies what each item of its page resolves: its list-typed children (a
	// connection's edges) or, when it returns a list itself, all of them. So thirty aliased
	// `events(first: 1) { totalCount }` cost 30 × (1 + StoreQueryCost + CountCost), where one
	// page of 100 events with their venue and organizer costs about 600. __typename costs 0; an
	// introspection field costs 1 with no multiplier (it reads the in-memory schema). Fields are
	// charged at each place they are written, even where the executor would merge them, so this
	// is an upper bound. It saturates at math.MaxInt32.
	Complexity int
	// Aliases counts the aliased fields of the operation, fragments expanded (`a: id` counts,
	// `id` and `id: id` do not).
	Aliases int
	// Repeats is the most fields that land on one response name at one place of the merged
	// selection tree, fragments expanded, in any operation or fragment definition of the
	// document, or the most named fragments spread at one place if that is more; RepeatedField
	// is that response name, or Spreads. The validator's OverlappingFieldsCanBeMerged rule
	// compares every pair of either, so its time grows with the square of this number.
	Repeats       int
	RepeatedField string
	// Selections counts the selections that walk visited (every operation and fragment
	// definition, spreads expanded), up to MaxSelections+1, where it stopped.
	Selections int
	// FragmentCycle reports a fragment that spreads itself, directly or not. The walks do not
	// follow the spread that closes a cycle; the validator refuses the document.
	FragmentCycle bool
	// UsesVariables reports that Complexity depends on the values of variables.
	UsesVariables bool
}

// Measure measures the operation named op of doc (the only one when op is empty; the most costly
// of them all when no operation has that name) against schema, without the variables: a page
// size given by a variable counts as MaxPageSize. doc is a parsed document that need not be
// valid; schema may be nil, when no field has a definition (page arguments then count wherever
// they are written, and every field is taken for a list). Measure never fails: malformed or
// hostile documents yield large numbers, not errors, and its work is linear in the size of doc
// (the repeated-field walk is bounded by MaxSelections).
func Measure(doc *ast.QueryDocument, schema *ast.Schema, op string) Measurements {
	return measure(doc, schema, op, variables{}, 0)
}

// MeasureVariables is Measure with the request's variables, which size page arguments given by
// variables; a variable absent from vars (nil is none) takes its default, as in execution.
func MeasureVariables(doc *ast.QueryDocument, schema *ast.Schema, op string, vars map[string]any) Measurements {
	return measure(doc, schema, op, variables{known: true, values: vars}, 0)
}

// variables are a request's variable values; unknown ones count at their worst.
type variables struct {
	known  bool
	values map[string]any
}

// measure is Measure; stopRepeatsAt > 0 ends the repeated-field walk as soon as one response
// name reaches that count, when the caller only needs to know that it did.
func measure(doc *ast.QueryDocument, schema *ast.Schema, op string, vars variables, stopRepeatsAt int) Measurements {
	var m Measurements
	if doc == nil {
		return m
	}
	frags := fragmentsByName(doc)
	m.Depth, m.Complexity, m.Aliases, m.UsesVariables, m.FragmentCycle = measureCost(doc, frags, schema, op, vars)
	r := repeatWalker{
		frags:  frags,
		ids:    make(map[pathKey]int32),
		active: make(map[string]bool),
		stopAt: stopRepeatsAt,
	}
	for _, o := range doc.Operations {
		if o != nil && !r.stopped {
			r.walk(r.node(), o.SelectionSet)
		}
	}
	for _, f := range doc.Fragments {
		if f != nil && !r.stopped {
			r.active[f.Name] = true
			r.walk(r.node(), f.SelectionSet)
			delete(r.active, f.Name)
		}
	}
	m.Repeats, m.RepeatedField = r.best, r.bestName
	m.Selections = r.visits
	m.FragmentCycle = m.FragmentCycle || r.cycle
	return m
}

func fragmentsByName(doc *ast.QueryDocument) map[string]*ast.FragmentDefinition {
	frags := make(map[string]*ast.FragmentDefinition, len(doc.Fragments))
	for _, f := range doc.Fragments {
		if f == nil {
			continue
		}
		if _, dup := frags[f.Name]; !dup {
			frags[f.Name] = f
		}
	}
	return frags
}

// measureCost measures depth, complexity and aliases of the operation op, or the worst of all
// operations when there is none of that name. Each fragment is measured once per operation:
// what it costs depends only on its type condition and the variables, not on where it is spread.
func measureCost(doc *ast.QueryDocument, frags map[string]*ast.FragmentDefinition, schema *ast.Schema, op string, vars variables) (depth, complexity, aliases int, usesVars, cycle bool) {
	ops := doc.Operations
	if o := doc.Operations.ForName(op); o != nil {
		ops = ast.OperationList{o}
	}
	for _, o := range ops {
		if o == nil {
			continue
		}
		w := costWalker{
			schema: schema,
			op:     o,
			vars:   vars,
			frags:  frags,
			memo:   make(map[string]cost),
			active: make(map[string]bool),
		}
		c := w.selectionSet(o.SelectionSet, w.rootType(o.Operation))
		depth = max(depth, c.depth)
		complexity = max(complexity, add(add(c.list, c.once), c.leaves))
		aliases = max(aliases, c.aliases)
		usesVars = usesVars || w.usesVars
		cycle = cycle || w.cycle
	}
	return depth, complexity, aliases, usesVars, cycle
}

// cost is what a selection set costs. Complexity is kept in two parts so that a field with a
// page argument can multiply only what repeats per item: list is the cost of the fields that
// return lists (or whose type is unknown), once that of the others.
//
// leaves is the cost of scalar and enum fields not yet under a field with a page argument. Object
// and list fields without one pass their leaves up; the field with the page argument charges the
// leaves selected on its items once, not per item: they are read from records the page already
// paid for, so 100 events cost the same with 3 fields or 10, and a plain list of records
// (securityEvents, memoryHistory) likewise.
type cost struct {
	depth, aliases     int
	list, once, leaves int
}

func (c *cost) merge(d cost) {
	c.depth = max(c.depth, d.depth)
	c.aliases = add(c.aliases, d.aliases)
	c.list = add(c.list, d.list)
	c.once = add(c.once, d.once)
	c.leaves = add(c.leaves, d.leaves)
}

// typeRef is the type a selection set selects from: def is nil when the schema does not know it.
type typeRef struct {
	name string
	def  *ast.Definition
}

func (t typeRef) introspection() bool { return strings.HasPrefix(t.name, "__") }

type costWalker struct {
	schema   *ast.Schema
	op       *ast.OperationDefinition
	vars     variables
	frags    map[string]*ast.FragmentDefinition
	memo     map[string]cost
	active   map[string]bool
	nest     int
	usesVars bool
	cycle    bool
}

func (w *costWalker) rootType(op ast.Operation) typeRef {
	if w.schema == nil {
		return typeRef{}
	}
	var def *ast.Definition
	switch op {
	case ast.Query:
		def = w.schema.Query
	case ast.Mutation:
		def = w.schema.Mutation
	case ast.Subscription:
		def = w.schema.Subscription
	}
	if def == nil {
		return typeRef{}
	}
	return typeRef{name: def.Name, def: def}
}

func (w *costWalker) named(name string) typeRef {
	t := typeRef{name: name}
	if w.schema != nil {
		t.def = w.schema.Types[name]
	}
	return t
}

func (w *costWalker) selectionSet(set ast.SelectionSet, parent typeRef) cost {
	if w.nest >= maxNesting {
		return cost{depth: maxNesting, list: saturated}
	}
	w.nest++
	defer func() { w.nest-- }()
	var c cost
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			c.merge(w.field(s, parent))
		case *ast.InlineFragment:
			t := parent
			if s.TypeCondition != "" {
				t = w.named(s.TypeCondition)
			}
			c.merge(w.selectionSet(s.SelectionSet, t))
		case *ast.FragmentSpread:
			c.merge(w.fragment(s.Name))
		}
	}
	return c
}

func (w *costWalker) fragment(name string) cost {
	if c, ok := w.memo[name]; ok {
		return c
	}
	def := w.frags[name]
	if def == nil {
		return cost{} // unknown: the validator refuses it
	}
	if w.active[name] {
		w.cycle = true
		return cost{}
	}
	w.active[name] = true
	c := w.selectionSet(def.SelectionSet, w.named(def.TypeCondition))
	delete(w.active, name)
	w.memo[name] = c
	return c
}

func (w *costWalker) field(f *ast.Field, parent typeRef) cost {
	var c cost
	if f.Alias != "" && f.Alias != f.Name {
		c.aliases = 1
	}
	if f.Name == "__typename" {
		return c
	}
	var def *ast.FieldDefinition
	if parent.def != nil {
		def = parent.def.Fields.ForName(f.Name)
	}
	introspection := strings.HasPrefix(f.Name, "__") || parent.introspection()
	var child typeRef
	switch {
	case def != nil:
		child = w.named(def.Type.Name())
	case introspection:
		child.name = "__" // unknown, but still inside introspection
	}
	sub := w.selectionSet(f.SelectionSet, child)
	c.aliases = add(c.aliases, sub.aliases)
	if introspection {
		c.depth = sub.depth
		c.once = add(1, add(add(sub.list, sub.once), sub.leaves))
		return c
	}
	c.depth = sub.depth + 1
	if def != nil && len(f.SelectionSet) == 0 {
		if f.Name == "totalCount" && isConnection(parent) {
			c.once = CountCost
		} else {
			c.leaves = 1
		}
		return c
	}
	self := 1
	if isConnection(child) {
		self = add(self, StoreQueryCost)
	}
	n, paged := w.multiplier(f, def)
	list := def == nil || def.Type.Elem != nil
	switch {
	case paged && list:
		c.list = add(add(self, mul(n, add(sub.list, sub.once))), sub.leaves)
	case paged:
		c.once = add(add(self, add(mul(n, sub.list), sub.once)), sub.leaves)
	case list:
		c.list, c.leaves = add(self, add(sub.list, sub.once)), sub.leaves
	default:
		c.once, c.leaves = add(self, add(sub.list, sub.once)), sub.leaves
	}
	return c
}

// isConnection reports whether t is a Relay connection (an object with edges and pageInfo): the
// field that returns one runs a store query, and its totalCount a count.
func isConnection(t typeRef) bool {
	return t.def != nil && t.def.Kind == ast.Object && t.def.Fields.ForName("edges") != nil && t.def.Fields.ForName("pageInfo") != nil
}

// multiplier is how many items the field's page arguments ask for: the larger of first and last
// when the field has them (paged), else 1.
func (w *costWalker) multiplier(f *ast.Field, def *ast.FieldDefinition) (n int, paged bool) {
	n = 1
	for _, name := range pageArgs {
		var argDef *ast.ArgumentDefinition
		if def != nil {
			if argDef = def.Arguments.ForName(name); argDef == nil {
				continue
			}
		}
		arg := f.Arguments.ForName(name)
		if arg == nil && argDef == nil {
			continue
		}
		n, paged = max(n, w.pageSize(arg, argDef)), true
	}
	return n, paged
}

// pageSize is the value of a page argument, clamped to 1..MaxPageSize; an absent, null or
// unreadable one takes the schema's default, and MaxPageSize when there is none.
func (w *costWalker) pageSize(arg *ast.Argument, argDef *ast.ArgumentDefinition) int {
	var v *ast.Value
	if arg != nil {
		v = arg.Value
	}
	if v != nil && v.Kind == ast.Variable {
		w.usesVars = true
		if !w.vars.known {
			return MaxPageSize
		}
		if val, ok := w.vars.values[v.Raw]; ok {
			if val == nil {
				v = nil
			} else if n, ok := toInt(val); ok {
				return clampPage(n)
			} else {
				return MaxPageSize
			}
		} else if vd := w.op.VariableDefinitions.ForName(v.Raw); vd != nil && vd.DefaultValue != nil {
			v = vd.DefaultValue
		} else {
			v = nil
		}
	}
	if v == nil || v.Kind == ast.NullValue {
		if argDef == nil || argDef.DefaultValue == nil {
			return MaxPageSize
		}
		v = argDef.DefaultValue
	}
	if v.Kind != ast.IntValue {
		return MaxPageSize
	}
	n, err := strconv.Atoi(v.Raw)
	if err != nil {
		return MaxPageSize
	}
	return clampPage(n)
}

func clampPage(n int) int { return min(max(n, 1), MaxPageSize) }

// toInt reads an integer variable as the transports decode it (json.Number with UseNumber) or as
// gqlgen coerces it.
func toInt(v any) (int, bool) {
	switch n := v.(type) {
	case int:
		return n, true
	case int32:
		return int(n), true
	case int64:
		return int(min(max(n, -saturated), saturated)), true
	case float64:
		if n != math.Trunc(n) {
			return 0, false
		}
		return int(min(max(n, -saturated), saturated)), true
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return 0, false
		}
		return toInt(i)
	}
	return 0, false
}

func add(a, b int) int { return min(a+b, saturated) }

func mul(a, b int) int {
	if a != 0 && b > saturated/a {
		return saturated
	}
	return a * b
}

// pathKey names one place of the merged selection tree: a response name under a parent place.
type pathKey struct {
	parent int32
	name   string
}

// repeatWalker counts, for every place of the merged selection tree, the fields that land there
// under each response name, and the fragments spread there: what gqlparser's
// OverlappingFieldsCanBeMerged compares pairwise.
type repeatWalker struct {
	frags    map[string]*ast.FragmentDefinition
	ids      map[pathKey]int32
	counts   []int32
	active   map[string]bool
	nest     int
	visits   int
	stopAt   int
	stopped  bool
	best     int
	bestName string
	cycle    bool
}

// count counts one more selection of name at the place parent and returns the place it makes.
func (r *repeatWalker) count(parent int32, name string) int32 {
	k := pathKey{parent, name}
	id, ok := r.ids[k]
	if !ok {
		id = r.node()
		r.ids[k] = id
	}
	r.counts[id]++
	if n := int(r.counts[id]); n > r.best {
		r.best, r.bestName = n, name
		r.stopped = r.stopAt > 0 && n >= r.stopAt
	}
	return id
}

// node returns a new place with no parent: the root of an operation or fragment definition.
func (r *repeatWalker) node() int32 {
	r.counts = append(r.counts, 0)
	return int32(len(r.counts) - 1)
}

func (r *repeatWalker) walk(parent int32, set ast.SelectionSet) {
	if r.nest >= maxNesting {
		r.visits, r.stopped = MaxSelections+1, true
		return
	}
	r.nest++
	defer func() { r.nest-- }()
	for _, sel := range set {
		if r.stopped {
			return
		}
		if r.visits++; r.visits > MaxSelections {
			r.stopped = true
			return
		}
		switch s := sel.(type) {
		case *ast.Field:
			name := s.Alias
			if name == "" {
				name = s.Name
			}
			if id := r.count(parent, name); !r.stopped {
				r.walk(id, s.SelectionSet)
			}
		case *ast.InlineFragment:
			r.walk(parent, s.SelectionSet)
		case *ast.FragmentSpread:
			if r.count(parent, Spreads); r.stopped {
				return
			}
			def := r.frags[s.Name]
			if def == nil {
				continue
			}
			if r.active[s.Name] {
				r.cycle = true
				continue
			}
			r.active[s.Name] = true
			r.walk(parent, def.SelectionSet)
			delete(r.active, s.Name)
		}
	}
}
