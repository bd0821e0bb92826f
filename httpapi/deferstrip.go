package httpapi

import (
	"bytes"
	"encoding/json"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// stripDeferred removes from the initial part of a deferred query the fields whose every
// selection at their place is inside an active @defer and whose value is null: gqlgen writes such a
// field as a null placeholder, where the incremental delivery RFC leaves it out until its
// incremental payload brings it. A client reads the placeholder as the field's value: Apollo
// Client 4 takes the initial part as the complete result (dataState "complete", organizer null)
// and never shows the deferred data. A field also selected outside a @defer is kept, as are
// fields of values gqlgen nulled for an error. On data it cannot read it gives data back as it is.
func stripDeferred(oc *graphql.OperationContext, data json.RawMessage) json.RawMessage {
	if oc == nil || oc.Operation == nil || !isObject(data) {
		return data
	}
	return stripSets(oc, data, []ast.SelectionSet{oc.Operation.SelectionSet})
}

// stripDeferredItem does what stripDeferred does for the data of an incremental payload: the
// fields of the fragment deferred with label at path, less those deferred again inside it.
func stripDeferredItem(oc *graphql.OperationContext, path ast.Path, label string, data json.RawMessage) json.RawMessage {
	if oc == nil || oc.Operation == nil || !isObject(data) {
		return data
	}
	sets := []ast.SelectionSet{oc.Operation.SelectionSet}
	for _, el := range path {
		name, ok := el.(ast.PathName)
		if !ok {
			continue // a list index: the same selections
		}
		keys := map[string]*selected{}
		for _, s := range sets {
			collectKeys(oc, s, false, keys, 0)
		}
		k := keys[string(name)]
		if k == nil {
			return data
		}
		sets = k.sub
	}
	var frags []ast.SelectionSet
	for _, s := range sets {
		deferredFragments(oc, s, label, &frags, 0)
	}
	if len(frags) == 0 {
		return data
	}
	return stripSets(oc, data, frags)
}

// deferredFragments appends the selections of the fragments in set deferred with label, looking
// through fragments that are not deferred.
func deferredFragments(oc *graphql.OperationContext, set ast.SelectionSet, label string, out *[]ast.SelectionSet, depth int) {
	if depth > 64 {
		return
	}
	for _, s := range set {
		var dirs ast.DirectiveList
		var sub ast.SelectionSet
		switch s := s.(type) {
		case *ast.InlineFragment:
			dirs, sub = s.Directives, s.SelectionSet
		case *ast.FragmentSpread:
			if s.Definition == nil {
				continue
			}
			dirs, sub = s.Directives, s.Definition.SelectionSet
		default:
			continue
		}
		if !included(oc, dirs) {
			continue
		}
		if activeDefer(oc, dirs) {
			if l, _ := dirs.ForName("defer").ArgumentMap(oc.Variables)["label"].(string); l == label {
				*out = append(*out, sub)
			}
			continue
		}
		deferredFragments(oc, sub, label, out, depth+1)
	}
}

// selected is what the selections of one object say of a response key.
type selected struct {
	plain bool               // selected at least once outside an active @defer
	sub   []ast.SelectionSet // its sub-selections, from every occurrence
}

func stripSets(oc *graphql.OperationContext, raw json.RawMessage, sets []ast.SelectionSet) json.RawMessage {
	t := bytes.TrimSpace(raw)
	switch {
	case len(t) > 0 && t[0] == '[':
		var items []json.RawMessage
		if json.Unmarshal(t, &items) != nil {
			return raw
		}
		var b bytes.Buffer
		b.WriteByte('[')
		for i, it := range items {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(stripSets(oc, it, sets))
		}
		b.WriteByte(']')
		return b.Bytes()
	case isObject(t):
		keys := map[string]*selected{}
		for _, s := range sets {
			collectKeys(oc, s, false, keys, 0)
		}
		members, err := objectMembers(t)
		if err != nil {
			return raw
		}
		kept := members[:0]
		for _, m := range members {
			sel := keys[m.key]
			if sel != nil && !sel.plain && isNull(m.val) {
				continue
			}
			if sel != nil && len(sel.sub) > 0 && !isNull(m.val) {
				m.val = stripSets(oc, m.val, sel.sub)
			}
			kept = append(kept, m)
		}
		return encodeObject(kept)
	}
	return raw
}

// collectKeys notes each response key set selects, through fragments, and whether it is selected
// outside an active @defer. depth bounds fragment spreads (validation already refuses cycles).
func collectKeys(oc *graphql.OperationContext, set ast.SelectionSet, inDefer bool, keys map[string]*selected, depth int) {
	if depth > 64 {
		return
	}
	for _, s := range set {
		switch s := s.(type) {
		case *ast.Field:
			if !included(oc, s.Directives) {
				continue
			}
			key := s.Alias
			if key == "" {
				key = s.Name
			}
			k := keys[key]
			if k == nil {
				k = &selected{}
				keys[key] = k
			}
			k.plain = k.plain || !inDefer
			if len(s.SelectionSet) > 0 {
				k.sub = append(k.sub, s.SelectionSet)
			}
		case *ast.InlineFragment:
			if !included(oc, s.Directives) {
				continue
			}
			collectKeys(oc, s.SelectionSet, inDefer || activeDefer(oc, s.Directives), keys, depth+1)
		case *ast.FragmentSpread:
			if s.Definition != nil && included(oc, s.Directives) {
				collectKeys(oc, s.Definition.SelectionSet, inDefer || activeDefer(oc, s.Directives), keys, depth+1)
			}
		}
	}
}

// activeDefer says whether directives hold a @defer whose `if` is not false.
func activeDefer(oc *graphql.OperationContext, directives ast.DirectiveList) bool {
	d := directives.ForName("defer")
	if d == nil {
		return false
	}
	if on, ok := d.ArgumentMap(oc.Variables)["if"].(bool); ok && !on {
		return false
	}
	return true
}

// included says whether @skip and @include let a selection in.
func included(oc *graphql.OperationContext, directives ast.DirectiveList) bool {
	if d := directives.ForName("skip"); d != nil {
		if on, ok := d.ArgumentMap(oc.Variables)["if"].(bool); ok && on {
			return false
		}
	}
	if d := directives.ForName("include"); d != nil {
		if on, ok := d.ArgumentMap(oc.Variables)["if"].(bool); ok && !on {
			return false
		}
	}
	return true
}
