package querylimit

import (
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"
)

// RulesWithoutSuggestions returns gqlparser's default validation rules with each rule that adds
// "Did you mean ...?" to its message swapped for its variant without: FieldsOnCorrectType,
// ScalarLeafs, KnownArgumentNames, KnownTypeNames and ValuesOfCorrectType. Suggestions name
// fields, arguments, types and enum values close to what a client typed, which maps the schema
// for anyone when introspection is off.
func RulesWithoutSuggestions() *rules.Rules {
	r := rules.NewDefaultRules()
	for _, swap := range [...]struct {
		old string
		new core.Rule
	}{
		{rules.FieldsOnCorrectTypeRule.Name, rules.FieldsOnCorrectTypeRuleWithoutSuggestions},
		{rules.ScalarLeafsRule.Name, rules.ScalarLeafsRuleWithoutSuggestions},
		{rules.KnownArgumentNamesRule.Name, rules.KnownArgumentNamesRuleWithoutSuggestions},
		{rules.KnownTypeNamesRule.Name, rules.KnownTypeNamesRuleWithoutSuggestions},
		{rules.ValuesOfCorrectTypeRule.Name, rules.ValuesOfCorrectTypeRuleWithoutSuggestions},
	} {
		r.RemoveRule(swap.old)
		r.AddRule(swap.new.Name, swap.new.RuleFunc)
	}
	return r
}

// DisableSuggestions makes srv validate without "Did you mean ...?" suggestions; production
// servers want it. gqlgen's own srv.SetDisableSuggestion(true) covers only FieldsOnCorrectType
// and ScalarLeafs, so this also sets srv's validation rules to RulesWithoutSuggestions, replacing
// any rules function set before.
func DisableSuggestions(srv *handler.Server) {
	srv.SetDisableSuggestion(true)
	srv.SetValidationRulesFn(RulesWithoutSuggestions)
}
