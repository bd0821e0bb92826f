package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/eventide"
)

// The HTTP transports of /graphql, in place of gqlgen's POST, GET and SSE ones, so that the
// answer follows the GraphQL-over-HTTP spec and API.md:
//
//   - the media type of a JSON answer is the one the client prefers (negotiate.go);
//   - a request error (the document does not parse or validate, a variable cannot be coerced, a
//     rule refuses the operation before it runs) carries no "data" key, and its status is 200
//     in application/json and a 4xx in application/graphql-response+json;
//   - a mutation or subscription over GET is 405 METHOD_NOT_ALLOWED with Allow: POST;
//   - Server-Sent Events and multipart subscriptions answer exactly the requests negotiation
//     names (httpStream), whatever else Accept lists;
//   - a query with @defer is answered whole: in parts over multipart/mixed, or merged (multipart.go).

// sseTransport is gqlgen's SSE transport, taking only the requests negotiation makes streams:
// gqlgen's own takes any POST whose Accept merely contains "text/event-stream". With lean set, a
// subscription whose connection allows it runs on the event loop instead (leanstream.go);
// queries and mutations, which end with their answer, stay on gqlgen's.
type sseTransport struct {
	transport.SSE
	lean  *LeanSockets
	share *leanShare // which lean streams join a shared subscription (leanshare.go)
}

func (t sseTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	body, inMemory := r.Body.(memBody)
	sw, lean := (*streamWriter)(nil), false
	if inMemory && isSubscription(body.b) {
		sw, lean = t.lean.streamable(w, r)
	}
	params := &graphql.RawParams{}
	start := graphql.Now()
	if !lean || decodeJSON(body.b, params) != nil {
		t.SSE.Do(w, r, exec) // its body is still unread: memBody's reader
		return
	}
	params.Headers = sseHeaders
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	ctx, cancel := streamContext(r)
	rc, errs := exec.CreateOperationContext(ctx, params)
	if errs == nil && isSubscriptionRequest(rc) {
		t.lean.openStream(w, r, exec, ctx, cancel, rc, t.share, true, sw.keepAliveInterval(), sw)
		return
	}
	defer cancel(nil)
	// A request error, or not the subscription the scan read: answered as gqlgen's SSE answers.
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.Header().Set("Content-Type", mediaSSE)
	rctl := http.NewResponseController(w)
	write := func(b ...[]byte) {
		for _, p := range b {
			_, _ = w.Write(p)
		}
		_ = rctl.Flush()
	}
	write(sseOpen)
	ctx = graphql.WithOperationContext(ctx, rc)
	if errs != nil {
		write(sseNext, marshalResponse(exec.DispatchError(ctx, errs)), sseEnd)
	} else {
		responses, ctx := exec.DispatchOperation(ctx, rc)
		for resp := responses(ctx); resp != nil; resp = responses(ctx) {
			write(sseNext, marshalResponse(resp), sseEnd)
		}
	}
	write(sseComplete)
}

func (t sseTransport) Supports(r *http.Request) bool {
	return isJSONRequest(r) && isSSE(r)
}

// isJSONRequest reports whether r is a POST with a JSON body (preventCSRF has made a
// preflighted text/plain one JSON).
func isJSONRequest(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && r.Method == http.MethodPost && mt == mediaJSON && !isUpgrade(r)
}

// postTransport runs a JSON POST and answers with one JSON response.
type postTransport struct{}

var _ graphql.Transport = postTransport{}

func (postTransport) Supports(r *http.Request) bool { return isJSONRequest(r) }

func (postTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	mt := responseType(r)
	w.Header().Set("Content-Type", mt)
	params, ok := readPOST(w, r)
	if !ok {
		return
	}
	run(w, r, exec, params, mt, false)
}

// readPOST reads the GraphQL request of a JSON POST, or answers BAD_REQUEST.
func readPOST(w http.ResponseWriter, r *http.Request) (*graphql.RawParams, bool) {
	start := graphql.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, eventide.CodeBadRequest, "could not read the request body")
		return nil, false
	}
	params := &graphql.RawParams{}
	if err := decodeJSON(body, params); err != nil {
		writeError(w, r, http.StatusBadRequest, eventide.CodeBadRequest,
			"the request body must be a JSON object {query, variables, operationName, extensions}")
		return nil, false
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	return params, true
}

// getTransport runs a query sent as GET /graphql?query=...&variables=...
type getTransport struct{}

var _ graphql.Transport = getTransport{}

func (getTransport) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && !isUpgrade(r)
}

func (getTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	mt := responseType(r)
	w.Header().Set("Content-Type", mt)
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, eventide.CodeBadRequest, "the query string is not URL-encoded")
		return
	}
	params := &graphql.RawParams{Query: q.Get("query"), OperationName: q.Get("operationName"), Headers: r.Header}
	params.ReadTime.Start = graphql.Now()
	for _, p := range []struct {
		name string
		dst  *map[string]any
	}{{"variables", &params.Variables}, {"extensions", &params.Extensions}} {
		if s := q.Get(p.name); s != "" {
			if err := decodeJSON([]byte(s), p.dst); err != nil {
				writeError(w, r, http.StatusBadRequest, eventide.CodeBadRequest, p.name+" must be a JSON object")
				return
			}
		}
	}
	params.ReadTime.End = graphql.Now()
	run(w, r, exec, params, mt, true)
}

// run creates the operation of params and answers it.
func run(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, params *graphql.RawParams, mt string, get bool) {
	oc, errs := exec.CreateOperationContext(r.Context(), params)
	answer(w, r, exec, oc, errs, mt, get)
}

// answer answers the operation oc (or its request errors errs): a request error with its status
// and no data, a query over GET only, a subscription never (it needs a stream), else the executed
// response. A query whose @defer leaves parts to follow is answered in multipart/mixed when the
// client prefers that to JSON, else with every part merged into one JSON answer; a client that
// accepts no JSON at all gets its one answer as a multipart part.
func answer(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, oc *graphql.OperationContext, errs gqlerror.List, mt string, get bool) {
	ctx := r.Context()
	if errs == nil && oc.Operation != nil && oc.Operation.Operation == ast.Subscription {
		// Never held open for its first event: negotiation sends every subscription that
		// accepts a stream to the SSE or multipart transport, so this one accepts none (or its
		// text came from the APQ cache, out of negotiation's sight).
		errs = gqlerror.List{requestError(eventide.Errorf(eventide.CodeBadRequest,
			"a subscription needs a stream: open a websocket (graphql-transport-ws), or POST its query with Accept: text/event-stream or multipart/mixed;subscriptionSpec=1.0"))}
	}
	if errs != nil {
		resp := exec.DispatchError(graphql.WithOperationContext(ctx, oc), errs)
		writeRequestError(w, requestErrorStatus(mt, resp.Errors), resp)
		return
	}
	if get && oc.Operation != nil && oc.Operation.Operation != ast.Query {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, r, http.StatusMethodNotAllowed, codeMethodNotAllowed,
			"GET runs queries only: send a "+string(oc.Operation.Operation)+" as POST")
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, oc)
	resp := responses(ctx)
	deferred := resp != nil && resp.HasNext != nil && *resp.HasNext
	a := acceptOf(r)
	if resp != nil && (deferred && a.best(offerJSON, offerGraphQLResponse, offerMultipart) == offerMultipart ||
		!a.acceptsJSON() && a.acceptsMultipart()) {
		writeIncremental(ctx, w, oc, resp, responses)
		return
	}
	if deferred {
		merged, err := mergeDeferred(ctx, resp, responses)
		if err != nil {
			if ctx.Err() == nil {
				panic(err) // gqlgen's handler recovers it into a masked 500
			}
			return // the client is gone
		}
		resp = merged
	}
	if resp != nil && retryHeaders(w.Header(), resp.Errors) {
		w.WriteHeader(http.StatusTooManyRequests)
	}
	writeResponse(w, resp)
}

// requestErrorStatus is the status of a request error in media type mt: 200 in application/json
// (GraphQL over HTTP: the client may not understand any other), else the status of the first
// error's code. A persisted query not found stays 200: Apollo's link reads it and sends the text.
func requestErrorStatus(mt string, errs gqlerror.List) int {
	if mt != mediaGraphQLResponse || len(errs) == 0 {
		return http.StatusOK
	}
	code, _ := errs[0].Extensions["code"].(string)
	switch eventide.Code(code) {
	case codePersistedQueryNotFound:
		return http.StatusOK
	case eventide.CodeUnauthenticated, eventide.CodeForbidden, eventide.CodeRateLimited,
		eventide.CodeUnavailable, eventide.CodeInternal, codePayloadTooLarge:
		return statusFor(eventide.Code(code))
	}
	return http.StatusBadRequest
}

// requestErrorBody is a response to a request that did not execute: no "data" key.
type requestErrorBody struct {
	Errors     gqlerror.List  `json:"errors"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

func writeRequestError(w http.ResponseWriter, status int, resp *graphql.Response) {
	b, err := json.Marshal(requestErrorBody{Errors: resp.Errors, Extensions: resp.Extensions})
	if err != nil {
		b = []byte(`{"errors":[{"message":"internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}`)
		status = http.StatusInternalServerError
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeResponse(w http.ResponseWriter, resp *graphql.Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		panic(err) // gqlgen's handler recovers it into a masked 500
	}
	_, _ = w.Write(b)
}

// decodeJSON decodes one JSON value into v, numbers kept as json.Number as gqlgen's transports do.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() || strings.TrimSpace(string(b[dec.InputOffset():])) != "" {
		return io.ErrUnexpectedEOF
	}
	return nil
}
