package querylimit

import (
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/lexer"
)

// CountTokens counts the lexical tokens of the GraphQL document src the way gqlparser's parser
// counts them for its own token limit: every token but the end of input, comments included (a
// comment is cheap to skip but not to keep, and the parser keeps each one).
//
// It stops reading as soon as the count passes max, so the work is bounded by max however long
// src is: n is exact when n <= max, and max+1 ("more than max") otherwise. max <= 0 counts to
// the end.
//
// err is the lexer's syntax error (a *gqlerror.Error) when it meets one before stopping; n then
// counts the tokens before it. An over-long document is not an error: compare n with max.
func CountTokens(src string, max int) (n int, err error) {
	lx := lexer.New(&ast.Source{Input: src})
	for max <= 0 || n <= max {
		tok, err := lx.ReadToken()
		if err != nil {
			return n, err
		}
		if tok.Kind == lexer.EOF {
			return n, nil
		}
		n++
	}
	return n, nil
}
