package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/lexer"

	"github.com/eventide/server/eventide"
)

// Content negotiation of /graphql (API.md, "HTTP surface"): the client's Accept decides, by
// q-value, then by how specific the range that names a type is, then by its order; the server's
// own order breaks what is still tied (plain JSON first, so `*/*` gets application/json). A stream
// is answered only when the client prefers Server-Sent Events, or when the operation is a
// subscription and the client accepts a stream: Server-Sent Events or multipart/mixed (Apollo's
// multipart subscriptions), whichever it prefers, SSE on a tie. urql's default Accept
// (application/graphql-response+json first, text/event-stream after) gets plain JSON for its
// queries and mutations and SSE for its subscriptions; Apollo Client's subscription Accept
// (multipart/mixed;subscriptionSpec=1.0 first) gets multipart. A query whose @defer leaves parts
// to follow is answered in multipart/mixed when the client accepts it (transports.go), else as one
// JSON answer with the parts merged.

// The media types /graphql answers with.
const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
	mediaSSE             = "text/event-stream"
	mediaMultipart       = "multipart/mixed"
)

// The protocol codes of API.md's "Errors" that only the transport raises: a method /graphql does
// not take, an Accept it cannot serve, a body over its limit, a persisted query the cache does
// not hold (gqlgen's APQ extension raises it; the transport answers it with 200).
const (
	codeMethodNotAllowed       eventide.Code = "METHOD_NOT_ALLOWED"
	codeNotAcceptable          eventide.Code = "NOT_ACCEPTABLE"
	codePayloadTooLarge        eventide.Code = "PAYLOAD_TOO_LARGE"
	codePersistedQueryNotFound eventide.Code = "PERSISTED_QUERY_NOT_FOUND"
)

// offers are the server's media types in its own order of preference, which breaks ties.
var offers = [...]string{mediaJSON, mediaGraphQLResponse, mediaSSE, mediaMultipart}

const (
	offerJSON = iota
	offerGraphQLResponse
	offerSSE
	offerMultipart
)

// maxAcceptRanges bounds how many ranges of one Accept header are read; later ones are ignored.
const maxAcceptRanges = 32

// preference is how much a client wants one offer: q (0: not at all), the specificity of the
// range that named it (2 exact, 1 type/*, 0 */*) and that range's position.
type preference struct {
	named       bool
	q           float64
	specificity int
	order       int
}

// better reports whether a is preferred to b (ties: neither).
func (a preference) better(b preference) bool {
	if a.q != b.q {
		return a.q > b.q
	}
	if a.specificity != b.specificity {
		return a.specificity > b.specificity
	}
	return a.order < b.order
}

// accept is what a request's Accept header says of each offer.
type accept [len(offers)]preference

// parseAccept reads an Accept header (its values joined). No header at all is application/json
// (GraphQL over HTTP: "as if it had Accept: application/json").
func parseAccept(values []string) accept {
	var a accept
	header := strings.Join(values, ",")
	if strings.TrimSpace(header) == "" {
		a[offerJSON] = preference{named: true, q: 1, specificity: 2}
		return a
	}
	order := 0
	for part := range strings.SplitSeq(header, ",") {
		if order >= maxAcceptRanges {
			break
		}
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		mt, params, err := mime.ParseMediaType(part)
		if err != nil {
			// A range mime cannot parse whole may still name its type: keep the type, drop the rest.
			mt = strings.ToLower(strings.TrimSpace(strings.SplitN(part, ";", 2)[0]))
			params = nil
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil && v >= 0 && v <= 1 {
				q = v
			}
		}
		for i, offer := range offers {
			spec := matches(mt, offer)
			if spec < 0 {
				continue
			}
			// The most specific range naming an offer decides its q (RFC 9110, 12.5.1).
			if p := a[i]; !p.named || spec > p.specificity {
				a[i] = preference{named: true, q: q, specificity: spec, order: order}
			}
		}
		order++
	}
	return a
}

// matches is how specifically media range mt names offer: 2 exactly, 1 as type/*, 0 as */*, -1
// not at all.
func matches(mt, offer string) int {
	switch {
	case mt == offer:
		return 2
	case mt == "*/*":
		return 0
	case strings.HasSuffix(mt, "/*") && strings.HasPrefix(offer, mt[:len(mt)-1]):
		return 1
	}
	return -1
}

// best is the offer among ids the client prefers, or -1 when it accepts none of them.
func (a accept) best(ids ...int) int {
	out := -1
	for _, id := range ids {
		if a[id].q <= 0 {
			continue
		}
		if out < 0 || a[id].better(a[out]) {
			out = id
		}
	}
	return out
}

// jsonType is the media type of a single JSON answer: application/graphql-response+json when the
// client prefers it to application/json, else application/json.
func (a accept) jsonType() string {
	if a.best(offerJSON, offerGraphQLResponse) == offerGraphQLResponse {
		return mediaGraphQLResponse
	}
	return mediaJSON
}

// acceptsSSE reports whether the client accepts Server-Sent Events at all.
func (a accept) acceptsSSE() bool { return a[offerSSE].q > 0 }

// acceptsMultipart reports whether the client accepts multipart/mixed at all.
func (a accept) acceptsMultipart() bool { return a[offerMultipart].q > 0 }

// acceptsJSON reports whether the client accepts a single JSON answer.
func (a accept) acceptsJSON() bool { return a.best(offerJSON, offerGraphQLResponse) >= 0 }

// subscriptionStream is the stream a subscription gets: the one of SSE and multipart the client
// prefers (SSE on a tie), or streamNone when it accepts neither.
func (a accept) subscriptionStream() streamKind {
	switch a.best(offerSSE, offerMultipart) {
	case offerSSE:
		return streamSSE
	case offerMultipart:
		return streamMultipart
	}
	return streamNone
}

// prefersSSE reports whether Server-Sent Events is what the client wants most.
func (a accept) prefersSSE() bool {
	return a.best(offerJSON, offerGraphQLResponse, offerSSE, offerMultipart) == offerSSE
}

// servable reports whether the server can answer method with a type the client accepts:
// JSON for GET; JSON, Server-Sent Events or multipart/mixed for POST.
func (a accept) servable(method string) bool {
	if method == http.MethodPost && (a.acceptsSSE() || a.acceptsMultipart()) {
		return true
	}
	return a.acceptsJSON()
}

// streamKind is how a POST is answered when it is a long-lived stream.
type streamKind uint8

const (
	streamNone      streamKind = iota
	streamSSE                  // Server-Sent Events (graphql-sse's distinct connections mode)
	streamMultipart            // a multipart/mixed subscription (Apollo's protocol, multipart.go)
)

// negotiation is a request's Accept, read once, and the stream decision, made once the body is in.
type negotiation struct {
	accept  accept
	decided bool
	stream  streamKind
}

type negotiationKey struct{}

// acceptOf returns r's parsed Accept header.
func acceptOf(r *http.Request) accept {
	if n, _ := r.Context().Value(negotiationKey{}).(*negotiation); n != nil {
		return n.accept
	}
	return parseAccept(r.Header.Values("Accept"))
}

// responseType is the media type of an error or JSON answer to r.
func responseType(r *http.Request) string { return acceptOf(r).jsonType() }

// allowGraphQL is what /graphql answers to a method it does not take.
const allowGraphQL = "GET, POST, OPTIONS"

// negotiate refuses what /graphql cannot answer before anything else runs: a method other than
// GET, POST and OPTIONS is 405 METHOD_NOT_ALLOWED with Allow, and a GET or POST whose Accept names
// nothing the server can send is 406 NOT_ACCEPTABLE. It keeps the parsed Accept for the handlers
// behind.
func negotiate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodPost:
		case http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		default:
			w.Header().Set("Allow", allowGraphQL)
			writeError(w, r, http.StatusMethodNotAllowed, codeMethodNotAllowed,
				"/graphql takes GET (queries) and POST, not "+r.Method)
			return
		}
		n := &negotiation{accept: parseAccept(r.Header.Values("Accept"))}
		r = r.WithContext(context.WithValue(r.Context(), negotiationKey{}, n))
		if !isUpgrade(r) && !n.accept.servable(r.Method) {
			writeError(w, r, http.StatusNotAcceptable, codeNotAcceptable,
				"/graphql answers with application/graphql-response+json, application/json or, for POST, text/event-stream or multipart/mixed; the Accept header allows none of them")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// isStream reports whether r is a long-lived stream: a websocket upgrade, or a POST answered with
// Server-Sent Events or as a multipart subscription. Stream caps, sessions and the shutdown of
// streams all ask this, and the SSE and multipart transports answer exactly the requests it says
// are theirs.
func isStream(r *http.Request) bool {
	return isUpgrade(r) || httpStream(r) != streamNone
}

// isSSE reports whether the POST r is answered with Server-Sent Events.
func isSSE(r *http.Request) bool { return httpStream(r) == streamSSE }

// isMultipartSubscription reports whether the POST r is a subscription answered in multipart/mixed.
func isMultipartSubscription(r *http.Request) bool { return httpStream(r) == streamMultipart }

// httpStream is the stream the POST r is answered with: SSE when the client prefers it, else, for
// a subscription, the stream it prefers of those it accepts. The decision needs the body for the
// second case; it is made once, when the body has been read (graphQLBody), and kept.
func httpStream(r *http.Request) streamKind {
	if r.Method != http.MethodPost {
		return streamNone
	}
	n, _ := r.Context().Value(negotiationKey{}).(*negotiation)
	if n != nil && n.decided {
		return n.stream
	}
	a := acceptOf(r)
	body, inMemory := r.Body.(memBody)
	kind, known := streamNone, true
	switch {
	case a.prefersSSE():
		kind = streamSSE
	case a.subscriptionStream() != streamNone:
		known = inMemory
		if inMemory && isSubscription(body.b) {
			kind = a.subscriptionStream()
		}
	}
	if n != nil && known {
		n.decided, n.stream = true, kind
	}
	return kind
}

// maxScanTokens bounds the tokens isSubscription reads; a longer document is taken for no
// subscription (the query limits refuse it anyway).
const maxScanTokens = 20000

// isSubscription reports whether the JSON GraphQL request body selects a subscription operation.
// It only scans the document's top-level tokens: gqlgen parses and validates it later, and a
// document it refuses gets its error whatever the answer here.
func isSubscription(body []byte) bool {
	// Most bodies cannot hold one: the word is not there, nor a JSON escape that could spell it.
	if !bytes.Contains(body, []byte("subscription")) && !bytes.Contains(body, []byte(`\u`)) {
		return false
	}
	var req struct {
		Query         string `json:"query"`
		OperationName string `json:"operationName"`
	}
	if json.Unmarshal(body, &req) != nil || req.Query == "" {
		return false
	}
	return operationKind(req.Query, req.OperationName) == ast.Subscription
}

// operationKind is the kind of the operation of query named name (the only one when name is
// empty), or "" when there is none such or the document is too long or does not lex.
func operationKind(query, name string) ast.Operation {
	lx := lexer.New(&ast.Source{Input: query})
	depth := 0
	var found ast.Operation
	count := 0
	expectName := false // after an operation keyword at the top level
	var current ast.Operation
	for range maxScanTokens {
		tok, err := lx.ReadToken()
		if err != nil || tok.Kind == lexer.EOF {
			if err != nil || depth != 0 || count != 1 && name == "" {
				return ""
			}
			return found
		}
		switch tok.Kind {
		case lexer.BraceL, lexer.ParenL, lexer.BracketL:
			if depth == 0 && !expectName && current == "" {
				// An anonymous query: `{ ... }` at the top level.
				current = ast.Query
				count++
				if name == "" {
					found = current
				}
			}
			expectName = false
			depth++
		case lexer.BraceR, lexer.ParenR, lexer.BracketR:
			depth--
			if depth == 0 && tok.Kind == lexer.BraceR {
				current = "" // the definition's selection set ended
			}
		case lexer.Name:
			if depth != 0 {
				continue
			}
			switch {
			case current == "" && (tok.Value == "query" || tok.Value == "mutation" || tok.Value == "subscription"):
				current = ast.Operation(tok.Value)
				count++
				expectName = true
				if name == "" {
					found = current
				}
			case current == "" && tok.Value == "fragment":
				current = "fragment"
			case expectName:
				expectName = false
				if name != "" && tok.Value == name && current != "fragment" {
					found = current
				}
			}
		default:
			expectName = false
		}
	}
	return ""
}
