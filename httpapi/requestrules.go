package httpapi

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/eventide"
)

// MaxErrors is how many errors one response carries at most (API.md, "Errors"). Past it, the
// last one kept says how many more were left out: a small hostile document (650 unknown
// directives in 2 KB) cannot make a response a hundred times its size.
const MaxErrors = 50

// requestRules is a gqlgen extension for the rules every operation obeys whatever its fields:
//
//   - A string argument holds no C0 control character (U+0000 to U+001F): BAD_USER_INPUT naming
//     the field, before any resolver runs, so no NUL byte reaches a store, a regular expression
//     or a log line. Multi-line free text (the fields in freeText) may hold tab, LF and CR.
//   - A subscription runs on a stream only (a websocket, Server-Sent Events or a multipart
//     subscription): over plain JSON it is BAD_REQUEST, never a request held open for its first
//     event.
//   - A response carries at most MaxErrors errors.
type requestRules struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
	graphql.ResponseInterceptor
} = requestRules{}

func (requestRules) ExtensionName() string                   { return "RequestRules" }
func (requestRules) Validate(graphql.ExecutableSchema) error { return nil }

func (requestRules) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if oc.Operation == nil {
		return nil
	}
	if oc.Operation.Operation == ast.Subscription && !streaming(oc.Headers) {
		return requestError(eventide.Errorf(eventide.CodeBadRequest,
			"a subscription needs a stream: open a websocket (graphql-transport-ws), or POST with Accept: text/event-stream or multipart/mixed;subscriptionSpec=1.0"))
	}
	s := argScan{doc: oc.Doc, vars: oc.Variables}
	if err := s.selections(oc.Operation.SelectionSet); err != nil {
		return requestError(err)
	}
	return nil
}

func (requestRules) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	if resp != nil {
		resp.Errors = capErrors(resp.Errors)
	}
	return resp
}

// requestError is a domain error as gqlgen's operation mutators return it, coded already.
func requestError(e *eventide.Error) *gqlerror.Error {
	ext := map[string]any{"code": string(e.Code)}
	if e.Field != "" {
		ext["field"] = e.Field
	}
	return &gqlerror.Error{Message: e.Message, Err: e, Extensions: ext}
}

// streaming reports whether a subscription sent with headers h runs on a stream: a websocket
// upgrade (its operations carry the upgrade request's headers) or a POST that accepts Server-Sent
// Events or multipart/mixed (negotiation answers every such subscription with one: httpStream).
// One whose text negotiation could not see (sent by its APQ hash) reaches the POST transport,
// which refuses it at once.
func streaming(h http.Header) bool {
	if strings.EqualFold(h.Get("Upgrade"), "websocket") {
		return true
	}
	return parseAccept(h.Values("Accept")).subscriptionStream() != streamNone
}

// capErrors keeps the first MaxErrors-1 errors of errs and replaces the rest by one that says how
// many were left out, with the code of the first of them.
func capErrors(errs gqlerror.List) gqlerror.List {
	if len(errs) <= MaxErrors {
		return errs
	}
	keep := MaxErrors - 1
	dropped := len(errs) - keep
	code, _ := errs[keep].Extensions["code"].(string)
	if code == "" {
		code = string(eventide.CodeBadRequest)
	}
	out := make(gqlerror.List, keep, MaxErrors)
	copy(out, errs[:keep])
	return append(out, &gqlerror.Error{
		Message:    fmt.Sprintf("%d more errors left out: a response carries at most %d", dropped, MaxErrors),
		Extensions: map[string]any{"code": code, "droppedErrors": dropped},
	})
}

// freeText names the arguments and input fields that hold multi-line free text: tab, LF and CR
// are allowed in them. Every other string (ids, cursors, emails, names, titles, passwords,
// search and filter values) refuses every C0 control character.
var freeText = map[string]bool{"description": true, "reason": true, "address": true}

// controlAt returns the byte offset of the first C0 control character in s that text does not
// allow (tab, LF and CR when text is set), or -1. UTF-8 never uses a byte below 0x20 inside a
// multi-byte character, so scanning bytes is exact.
func controlAt(s string, text bool) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && !(text && (c == '\t' || c == '\n' || c == '\r')) {
			return i
		}
	}
	return -1
}

// checkString refuses a value of argument or input field name that holds a control character.
func checkString(name, s string) *eventide.Error {
	if i := controlAt(s, freeText[name]); i >= 0 {
		return eventide.InvalidField(name, "must not contain control characters (U+%04X at byte %d)", s[i], i)
	}
	return nil
}

// checkValue walks a variable's value (as decoded from JSON and coerced by gqlparser): strings
// are checked under the name of the argument or input field that holds them.
func checkValue(name string, v any) *eventide.Error {
	switch x := v.(type) {
	case string:
		return checkString(name, x)
	case []any:
		for _, e := range x {
			if err := checkValue(name, e); err != nil {
				return err
			}
		}
	case map[string]any:
		for k, e := range x {
			if checkValue(k, e) != nil {
				// The first refused field in key order, so the answer does not vary: sorting
				// only here leaves the clean path without allocations.
				for _, k := range slices.Sorted(maps.Keys(x)) {
					if err := checkValue(k, x[k]); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// argScan checks every argument of an operation: of its fields and directives, through inline
// fragments and fragment spreads (each fragment once). Validation has run: fragments exist and
// do not cycle, and the depth is bounded by the query limits.
type argScan struct {
	doc  *ast.QueryDocument
	vars map[string]any
	seen map[string]bool // fragments walked; made at the first spread
}

func (s *argScan) selections(set ast.SelectionSet) *eventide.Error {
	for _, sel := range set {
		var err *eventide.Error
		switch f := sel.(type) {
		case *ast.Field:
			if err = s.arguments(f.Arguments); err == nil {
				if err = s.directives(f.Directives); err == nil {
					err = s.selections(f.SelectionSet)
				}
			}
		case *ast.InlineFragment:
			if err = s.directives(f.Directives); err == nil {
				err = s.selections(f.SelectionSet)
			}
		case *ast.FragmentSpread:
			if err = s.directives(f.Directives); err == nil && !s.seen[f.Name] {
				if s.seen == nil {
					s.seen = map[string]bool{}
				}
				s.seen[f.Name] = true
				if def := s.doc.Fragments.ForName(f.Name); def != nil {
					err = s.selections(def.SelectionSet)
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (s *argScan) directives(list ast.DirectiveList) *eventide.Error {
	for _, d := range list {
		if err := s.arguments(d.Arguments); err != nil {
			return err
		}
	}
	return nil
}

func (s *argScan) arguments(args ast.ArgumentList) *eventide.Error {
	for _, a := range args {
		if err := s.value(a.Name, a.Value); err != nil {
			return err
		}
	}
	return nil
}

// value checks a literal in the document, or the variable it names, under name.
func (s *argScan) value(name string, v *ast.Value) *eventide.Error {
	if v == nil {
		return nil
	}
	switch v.Kind {
	case ast.StringValue, ast.BlockValue:
		return checkString(name, v.Raw)
	case ast.Variable:
		if val, ok := s.vars[v.Raw]; ok {
			return checkValue(name, val)
		}
		if v.VariableDefinition != nil {
			return s.value(name, v.VariableDefinition.DefaultValue)
		}
	case ast.ListValue:
		for _, c := range v.Children {
			if err := s.value(name, c.Value); err != nil {
				return err
			}
		}
	case ast.ObjectValue:
		for _, c := range v.Children {
			if err := s.value(c.Name, c.Value); err != nil {
				return err
			}
		}
	}
	return nil
}
