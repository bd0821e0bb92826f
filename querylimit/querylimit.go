// Package querylimit refuses hostile GraphQL documents before they cost anything.
//
// Extension plugs into gqlgen (srv.Use) and measures each document before gqlgen parses and
// validates it: tokens first, on the raw text, then depth, complexity, aliases and repeated
// fields on a parsed copy. The validator matters as much as the resolvers here: gqlparser's
// OverlappingFieldsCanBeMerged rule compares every pair of fields that share a response name
// (and every pair of fragments spread side by side), so a document repeating `__typename` two
// thousand times (22 KB, within the default token limit) holds a core for a quarter of a second,
// and, as reported, one of 260 KB for over a minute. Measuring is linear in the document and the
// token count stops at the limit, so a refusal costs a fraction of a millisecond whatever the
// body size.
//
// Where each check runs in gqlgen's pipeline (graphql/executor.CreateOperationContext):
//
//  1. OperationParameterMutators run first, before the query cache, the parser and the
//     validator. MutateOperationParameters counts tokens with gqlparser's lexer, stopping at
//     MaxTokens+1, then parses the text itself and measures the AST. A document that passes is
//     remembered by a hash of its text (a bounded LRU of small entries), so a repeated query
//     skips both.
//  2. gqlgen then parses again (or hits its query cache) and validates.
//  3. OperationContextMutators run after validation. MutateOperationContext checks what the
//     first hook did not see (the query an APQ hash stands for, when this extension runs before
//     the APQ one) and the complexity of a remembered document under the request's variables,
//     on the AST gqlgen parsed. What was measured is left in the operation's stats (Stats).
//
// Use it after extension.AutomaticPersistedQuery, so that a hash-only request is checked before
// validation too. A refusal is a *gqlerror.Error wrapping an *eventide.Error with code
// QUERY_TOO_COMPLEX, with extensions {"code", "limit", "measured", "max"}. gqlgen answers it with
// HTTP 200, as any error it does not know; to answer 422 as for validation failures, the server
// may register the code once: errcode.RegisterErrorType("QUERY_TOO_COMPLEX", errcode.KindProtocol).
package querylimit

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/eventide/server/eventide"
)

// Limits are the configured bounds (QUERY_MAX_DEPTH, QUERY_MAX_COMPLEXITY, QUERY_MAX_ALIASES,
// QUERY_MAX_TOKENS); each is the largest value accepted, and zero or less turns that check off.
// See Measurements for what each measures, and CountTokens for tokens.
type Limits struct {
	MaxDepth, MaxComplexity, MaxAliases, MaxTokens int
}

// DefaultLimits are API.md's defaults.
func DefaultLimits() Limits {
	return Limits{MaxDepth: 12, MaxComplexity: 1000, MaxAliases: 30, MaxTokens: 2000}
}

// CodeTooComplex is the code of every refusal (API.md's QUERY_TOO_COMPLEX: depth, complexity,
// aliases, tokens).
const CodeTooComplex eventide.Code = "QUERY_TOO_COMPLEX"

// The limits a refusal names, in extensions.limit and OnReject's what.
const (
	LimitTokens     = "tokens"
	LimitDepth      = "depth"
	LimitComplexity = "complexity"
	LimitAliases    = "aliases"
	LimitRepeats    = "repeats"
	LimitSelections = "selections"
)

// DefaultMaxRepeats bounds Measurements.Repeats unless MaxRepeats says otherwise: how many fields
// may share a response name at one place, and how many fragments may be spread there. A real
// client repeats a field at one place a few times, where its fragments overlap (Apollo adds
// __typename to each), and spreads a handful of fragments there. gqlparser parses and validates
// twenty repeated fields in 0.07 ms, two thousand in a quarter of a second; two hundred distinct
// fragments spread side by side in 12 ms.
const DefaultMaxRepeats = 20

// DefaultCacheSize is how many passed documents a Limiter remembers unless CacheSize says otherwise.
const DefaultCacheSize = 1000

// Option configures Extension.
type Option func(*Limiter)

// OnReject has fn called on every refusal, with the limit it broke (one of the Limit constants),
// the measured value, the limit's value and the operation name; the server logs it as a
// QUERY_REJECTED security event. fn runs on the request's goroutine and must not block.
func OnReject(fn func(ctx context.Context, what string, measured, max int, operationName string)) Option {
	return func(l *Limiter) { l.onReject = fn }
}

// MaxRepeats sets the most fields that may share one response name at one place of a document,
// and the most fragments that may be spread there (Measurements.Repeats); n <= 0 keeps
// DefaultMaxRepeats, as this bound may not be turned off.
func MaxRepeats(n int) Option {
	return func(l *Limiter) {
		if n > 0 {
			l.maxRepeats = n
		}
	}
}

// CacheSize sets how many passed documents are remembered (n <= 0 keeps DefaultCacheSize).
func CacheSize(n int) Option {
	return func(l *Limiter) {
		if n > 0 {
			l.cacheSize = n
		}
	}
}

// Limiter is the gqlgen extension that Extension returns.
type Limiter struct {
	limits     Limits
	maxRepeats int
	cacheSize  int
	onReject   func(ctx context.Context, what string, measured, max int, operationName string)
	schema     *ast.Schema
	seed       maphash.Seed
	passed     *lru.LRU[*passed]
}

// StatsName is the name of the extension's Stats in gqlgen's operation stats.
const StatsName = "QueryLimit"

// Stats is what the extension measured of an operation that passed, for other extensions and
// logs: graphql.GetOperationContext(ctx).Stats.GetExtension(querylimit.StatsName).(*querylimit.Stats).
// By the time resolvers run, Complexity is measured under this request's variables.
type Stats struct {
	Measurements
	// Tokens is the token count, or 0 when there is no token limit.
	Tokens int
	// Remembered is set when the document had passed before and was not measured again: only
	// its complexity is, after validation, when it depends on variables.
	Remembered bool

	query, operation string
	// complexityDue is set when Complexity is still that of the variables of the request that
	// was measured first.
	complexityDue bool
}

// passed is a document that passed, remembered by a hash of its operation name and text. Its
// AST is not kept: a document whose complexity depends on variables is measured again on the
// AST gqlgen parsed (usually from its query cache), after validation, which the document has
// proved cheap.
type passed struct {
	stats Stats
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationParameterMutator
	graphql.OperationContextMutator
} = (*Limiter)(nil)

// Extension returns a gqlgen extension (srv.Use(querylimit.Extension(limits))) that refuses with
// QUERY_TOO_COMPLEX a document that breaks limits, repeats a field or a spread more than
// DefaultMaxRepeats times at one place, or expands to more than MaxSelections selections.
func Extension(limits Limits, opts ...Option) *Limiter {
	l := &Limiter{limits: limits, maxRepeats: DefaultMaxRepeats, cacheSize: DefaultCacheSize, seed: maphash.MakeSeed()}
	for _, o := range opts {
		o(l)
	}
	l.passed = lru.New[*passed](l.cacheSize)
	return l
}

// ExtensionName implements graphql.HandlerExtension.
func (*Limiter) ExtensionName() string { return StatsName }

// Validate implements graphql.HandlerExtension; it keeps the schema that complexity is measured
// against.
func (l *Limiter) Validate(es graphql.ExecutableSchema) error {
	l.schema = es.Schema()
	return nil
}

// MutateOperationParameters checks the request's document before gqlgen parses and validates it.
// A document that does not lex or parse is left to gqlgen, which reports it in its own words.
func (l *Limiter) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if p.Query == "" {
		return nil // an APQ hash alone: MutateOperationContext checks the query it stands for
	}
	vars := p.Variables
	if vars == nil {
		vars = map[string]any{}
	}
	s, err := l.check(ctx, p.Query, p.OperationName, vars, nil)
	if s != nil && graphql.HasOperationContext(ctx) {
		graphql.GetOperationContext(ctx).Stats.SetExtension(StatsName, s)
	}
	return err
}

// MutateOperationContext checks, after validation, a document that MutateOperationParameters did
// not see (one that a later extension put in place, such as the query an APQ hash stands for),
// and the complexity of a remembered one under this request's variables.
func (l *Limiter) MutateOperationContext(ctx context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	s, ok := oc.Stats.GetExtension(StatsName).(*Stats)
	if !ok || s.query != oc.RawQuery || s.operation != oc.OperationName {
		var err *gqlerror.Error
		if s, err = l.check(ctx, oc.RawQuery, oc.OperationName, oc.Variables, oc.Doc); s == nil {
			return err
		}
		oc.Stats.SetExtension(StatsName, s)
	}
	return l.checkComplexity(ctx, s, oc.Doc, oc.Variables)
}

// checkComplexity measures the complexity of doc under vars when s says it is due.
func (l *Limiter) checkComplexity(ctx context.Context, s *Stats, doc *ast.QueryDocument, vars map[string]any) *gqlerror.Error {
	if !s.complexityDue {
		return nil
	}
	s.complexityDue = false
	_, s.Complexity, _, _, _ = measureCost(doc, fragmentsByName(doc), l.schema, s.operation, variables{known: true, values: vars})
	if over(s.Complexity, l.limits.MaxComplexity) {
		return l.refuse(ctx, s.operation, LimitComplexity, s.Complexity, l.limits.MaxComplexity, "")
	}
	return nil
}

// check refuses the document query (parsed as doc, when it already is) when it breaks a limit,
// and remembers it when it does not. Stats are nil for a refused document or one that does not
// parse. For a remembered document whose complexity depends on variables, it is left due.
func (l *Limiter) check(ctx context.Context, query, op string, vars map[string]any, doc *ast.QueryDocument) (*Stats, *gqlerror.Error) {
	key := l.key(query, op)
	if p, ok := l.passed.Get(ctx, key); ok {
		s := p.stats
		s.Remembered, s.query = true, query
		s.complexityDue = s.UsesVariables && l.limits.MaxComplexity > 0
		return &s, nil
	}
	p, err := l.inspect(ctx, query, op, vars, doc)
	if p == nil {
		return nil, err
	}
	l.passed.Add(ctx, key, p)
	s := p.stats
	s.query = query
	return &s, nil
}

// inspect measures the document query (parsed as doc, when it already is): a refusal, or what to
// remember of a document that passed, or neither for one that does not parse.
func (l *Limiter) inspect(ctx context.Context, query, op string, vars map[string]any, doc *ast.QueryDocument) (*passed, *gqlerror.Error) {
	var n int
	if l.limits.MaxTokens > 0 {
		if n, _ = CountTokens(query, l.limits.MaxTokens); over(n, l.limits.MaxTokens) {
			return nil, l.refuse(ctx, op, LimitTokens, n, l.limits.MaxTokens, "")
		}
	}
	if doc == nil {
		var err error
		if doc, err = parser.ParseQuery(&ast.Source{Input: query}); err != nil {
			return nil, nil
		}
	}
	m := measure(doc, l.schema, op, variables{known: true, values: vars}, l.maxRepeats+1)
	for _, c := range [...]struct {
		what          string
		measured, max int
	}{
		{LimitDepth, m.Depth, l.limits.MaxDepth},
		{LimitAliases, m.Aliases, l.limits.MaxAliases},
		{LimitComplexity, m.Complexity, l.limits.MaxComplexity},
		{LimitRepeats, m.Repeats, l.maxRepeats},
		{LimitSelections, m.Selections, MaxSelections},
	} {
		if over(c.measured, c.max) {
			return nil, l.refuse(ctx, op, c.what, c.measured, c.max, m.RepeatedField)
		}
	}
	m.RepeatedField = strings.Clone(m.RepeatedField) // a slice of query, which the cache must not keep
	return &passed{stats: Stats{Measurements: m, Tokens: n, operation: strings.Clone(op)}}, nil
}

// over reports whether measured breaks the limit max; max <= 0 is no limit.
func over(measured, max int) bool { return max > 0 && measured > max }

// refuse reports the refusal to OnReject and returns it as gqlgen needs it from a mutator: a
// *gqlerror.Error with its extensions set, wrapping the *eventide.Error that the server's error
// presenter recognises. field is the repeated response name, for LimitRepeats.
func (l *Limiter) refuse(ctx context.Context, op, what string, measured, max int, field string) *gqlerror.Error {
	if l.onReject != nil {
		l.onReject(ctx, what, measured, max, op)
	}
	var msg string
	switch what {
	case LimitTokens:
		msg = fmt.Sprintf("query is longer than the limit of %d tokens", max)
	case LimitAliases:
		msg = fmt.Sprintf("query uses %d aliases, more than the limit of %d", measured, max)
	case LimitRepeats:
		if field == Spreads {
			msg = fmt.Sprintf("query spreads %d fragments at one place, more than the limit of %d", measured, max)
		} else {
			msg = fmt.Sprintf("query selects %q %d times at one place, more than the limit of %d", field, measured, max)
		}
	case LimitSelections:
		msg = fmt.Sprintf("query expands to more than %d selections once its fragments are spread", max)
	default:
		msg = fmt.Sprintf("query %s %d exceeds the limit of %d", what, measured, max)
	}
	return &gqlerror.Error{
		Message: msg,
		Err:     &eventide.Error{Code: CodeTooComplex, Message: msg},
		Extensions: map[string]any{
			"code":     string(CodeTooComplex),
			"limit":    what,
			"measured": measured,
			"max":      max,
		},
	}
}

// key identifies a document by its operation name and text without keeping the text, which may
// be as large as the body limit. The seed is random per process, so no client can aim a collision.
func (l *Limiter) key(query, op string) string {
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(op)
	h.WriteByte(0)
	h.WriteString(query)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], h.Sum64())
	return string(b[:])
}
