package eventide

import "strings"

// The folds below are the one place each comparison rule is written: every side that compares
// (the resolvers' input, the stores' keys and filters, the cache's keys of queries) calls them,
// so that a query the cache keys one way is never filtered another way by a store.

// NormalizeEmail is the form an email is stored and looked up in: trimmed and lower-cased, so
// that addresses differing in case are one account.
func NormalizeEmail(email string) string { return fold(email) }

// FoldCity is the form cities are compared in (city filters, the stores' city keys, the cache's
// keys of city queries): trimmed and lower-cased, so "Lisbon " and "lisbon" are one city.
func FoldCity(city string) string { return fold(city) }

// FoldName is the form venues' names are ordered in: trimmed and lower-cased.
func FoldName(name string) string { return fold(name) }

func fold(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
