package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
)

// Answers in multipart/mixed (the GraphQL-over-HTTP incremental delivery RFC, as Apollo Client 4
// reads it: boundary "graphql", each part a JSON document with Content-Type: application/json):
//
//   - A subscription, in Apollo's multipart subscription protocol (subscriptionSpec="1.0"): a
//     heartbeat part {} at once and after each heartbeat interval without a part, each event as
//     {"payload": {data, errors}}, and the closing delimiter when the subscription completes. An
//     error of the transport itself (the server shutting down) is {"payload": null, "errors": [..]}
//     before the close. It is a stream like SSE: counted in the per-client stream cap, held by its
//     session (a role change or an expired token ends it with an error part, then the close),
//     written within a deadline (a reader that stalls is cut), ended at shutdown.
//   - A query whose @defer leaves parts to follow (deferSpec=20220824): {data, hasNext: true}, then
//     one {"incremental": [{data, path, label}], "hasNext": ...} per deferred fragment, the last
//     with hasNext false, then the close. A client that prefers one JSON answer gets every part
//     merged into it instead (mergeDeferred), never the first part alone.
//
// Each part is followed at once by the next delimiter, so a client hands it on without waiting
// for the part after it.

// DefaultMultipartHeartbeat is how long a multipart subscription stays without a part before a
// heartbeat part {} is written (Apollo's router: 5 s).
const DefaultMultipartHeartbeat = 5 * time.Second

const multipartBoundary = "graphql"

// The Content-Type values of multipart answers: a subscription's, a deferred query's.
const (
	multipartSubscriptionType = `multipart/mixed; boundary="` + multipartBoundary + `"; subscriptionSpec="1.0"`
	multipartDeferType        = `multipart/mixed; boundary="` + multipartBoundary + `"; deferSpec=20220824`
)

var (
	partHeader = []byte("\r\nContent-Type: application/json; charset=utf-8\r\n\r\n")
	delimiter  = []byte("\r\n--" + multipartBoundary)
	heartbeat  = []byte("{}")
)

// errServerShutdown is the cause of a stream's context when the server shuts down.
var errServerShutdown = errors.New("httpapi: the server is shutting down")

// multipartWriter writes the parts of one multipart/mixed body.
type multipartWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	buf     bytes.Buffer
	started bool
}

func newMultipartWriter(w http.ResponseWriter) *multipartWriter {
	return &multipartWriter{w: w, rc: http.NewResponseController(w)}
}

// part writes one JSON part, then the delimiter that ends it, and flushes.
func (m *multipartWriter) part(doc []byte) error {
	m.buf.Reset()
	if !m.started {
		m.started = true
		m.buf.WriteString("--" + multipartBoundary)
	}
	m.buf.Write(partHeader)
	m.buf.Write(doc)
	m.buf.Write(delimiter)
	return m.flush()
}

// close ends the body with the closing delimiter.
func (m *multipartWriter) close() error {
	m.buf.Reset()
	if !m.started {
		m.started = true
		m.buf.WriteString("--" + multipartBoundary)
	}
	m.buf.WriteString("--\r\n")
	return m.flush()
}

func (m *multipartWriter) flush() error {
	if _, err := m.w.Write(m.buf.Bytes()); err != nil {
		return err
	}
	return m.rc.Flush()
}

// multipartTransport answers the subscriptions negotiation makes multipart streams: on the event
// loop when lean is set and the connection allows it (leanstream.go), else on the request's
// goroutine.
type multipartTransport struct {
	heartbeat time.Duration
	lean      *LeanSockets
	share     *leanShare // which lean streams join a shared subscription (leanshare.go)
}

var _ graphql.Transport = multipartTransport{}

func (multipartTransport) Supports(r *http.Request) bool {
	return isJSONRequest(r) && isMultipartSubscription(r)
}

func (t multipartTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	mt := responseType(r)
	w.Header().Set("Content-Type", mt) // a request error is one JSON answer
	params, ok := readPOST(w, r)
	if !ok {
		return
	}
	beat := t.heartbeat
	if beat <= 0 {
		beat = DefaultMultipartHeartbeat
	}
	ctx := r.Context()
	sw, lean := t.lean.streamable(w, r)
	var cancel context.CancelCauseFunc
	if lean {
		ctx, cancel = streamContext(r)
		params.Headers = multipartHeaders
	}
	oc, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil || oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		if cancel != nil {
			cancel(nil)
		}
		// A request error, or not the subscription negotiation read (it only scans the text):
		// answered as the POST transport answers it.
		answer(w, r, exec, oc, errs, mt, false)
		return
	}
	if lean {
		t.lean.openStream(w, r, exec, ctx, cancel, oc, t.share, false, beat, sw)
		return
	}
	h := w.Header()
	h.Set("Content-Type", multipartSubscriptionType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each part on at once
	w.WriteHeader(http.StatusOK)
	mw := newMultipartWriter(w)
	if mw.part(heartbeat) != nil {
		return
	}

	// The operation's own context ends with the subscription (its session may end it, with an
	// error response still to come); ctx, the request's, ends with the stream. Each event is
	// encoded here, before the next is asked for: gqlgen reuses the buffer a response's data is in.
	responses, opCtx := exec.DispatchOperation(ctx, oc)
	next := make(chan []byte)
	go func() {
		defer close(next)
		for {
			resp := responses(opCtx)
			if resp == nil {
				return
			}
			select {
			case next <- marshalPart(payloadPart{Payload: resp}):
			case <-ctx.Done():
				return
			}
		}
	}()

	timer := time.NewTimer(beat)
	defer timer.Stop()
	for {
		select {
		case part, open := <-next:
			if !open {
				t.finish(ctx, mw)
				return
			}
			if mw.part(part) != nil {
				return
			}
			timer.Reset(beat)
		case <-timer.C:
			if mw.part(heartbeat) != nil {
				return
			}
			timer.Reset(beat)
		case <-ctx.Done():
			t.finish(ctx, mw)
			return
		}
	}
}

// finish ends a subscription's body: at shutdown with a transport error first (the client may
// subscribe again, elsewhere), else with the close alone. A stream whose reader is gone or stalled
// is not written to again.
func (multipartTransport) finish(ctx context.Context, mw *multipartWriter) {
	if errors.Is(context.Cause(ctx), errServerShutdown) {
		if mw.part(shutdownPart(ctx)) != nil {
			return
		}
	} else if ctx.Err() != nil {
		return
	}
	_ = mw.close()
}

// shutdownPart is the part that tells a subscriber the server is shutting down.
func shutdownPart(ctx context.Context) []byte {
	msg := "the server is shutting down; subscribe again"
	return marshalPart(payloadPart{Errors: gqlerror.List{{Message: msg,
		Extensions: map[string]any{"code": string(eventide.CodeUnavailable), "requestId": reqmeta.IDFrom(ctx)}}}})
}

// payloadPart is one part of a multipart subscription: an event ({"payload": response}), or an
// error of the transport ({"payload": null, "errors": [...]}).
type payloadPart struct {
	Payload *graphql.Response `json:"payload"`
	Errors  gqlerror.List     `json:"errors,omitempty"`
}

// marshalPart is the JSON of one part; a value that cannot be encoded (never, for gqlgen's
// responses) becomes a coded transport error.
func marshalPart(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"payload":null,"errors":[{"message":"internal server error","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}`)
	}
	return b
}

// incrementalPart is a part after the first of a deferred query.
type incrementalPart struct {
	Incremental []incrementalItem `json:"incremental"`
	HasNext     bool              `json:"hasNext"`
}

type incrementalItem struct {
	Errors     gqlerror.List   `json:"errors,omitempty"`
	Data       json.RawMessage `json:"data"`
	Path       ast.Path        `json:"path"`
	Label      string          `json:"label,omitempty"`
	Extensions map[string]any  `json:"extensions,omitempty"`
}

// writeIncremental answers a query in multipart/mixed: first (hasNext set, its deferred fields'
// null placeholders left out), then every response that follows it, then the close.
func writeIncremental(ctx context.Context, w http.ResponseWriter, oc *graphql.OperationContext, first *graphql.Response, responses graphql.ResponseHandler) {
	w.Header().Set("Content-Type", multipartDeferType)
	w.Header().Set("Cache-Control", "no-cache")
	if retryHeaders(w.Header(), first.Errors) { // a refused attempt, as answer does in JSON
		w.WriteHeader(http.StatusTooManyRequests)
	}
	mw := newMultipartWriter(w)
	more := first.HasNext != nil && *first.HasNext
	if first.HasNext == nil {
		first.HasNext = &more
	}
	if more {
		first.Data = stripDeferred(oc, first.Data)
	}
	if mw.part(marshalPart(first)) != nil {
		return
	}
	for more {
		resp := responses(ctx)
		if resp == nil {
			break
		}
		more = resp.HasNext != nil && *resp.HasNext
		part := incrementalPart{HasNext: more, Incremental: []incrementalItem{{Errors: resp.Errors,
			Data: stripDeferredItem(oc, resp.Path, resp.Label, resp.Data), Path: resp.Path, Label: resp.Label, Extensions: resp.Extensions}}}
		if mw.part(marshalPart(part)) != nil {
			return
		}
	}
	if more { // the operation was cancelled before its last part: the client must not take it whole
		return
	}
	_ = mw.close()
}

// mergeDeferred reads every response that follows first and merges them into it: the deferred
// data placed at its path (gqlgen leaves a deferred field null in the parts before), the errors
// appended, the extensions joined. A fragment deferred inside another may come before it: it waits
// until its parent is in. One whose parent stays null (an error nulled it) has nowhere to go and
// only its errors are kept, as the spec says of such payloads.
func mergeDeferred(ctx context.Context, first *graphql.Response, responses graphql.ResponseHandler) (*graphql.Response, error) {
	out := *first
	out.HasNext = nil
	more := first.HasNext != nil && *first.HasNext
	var waiting []*graphql.Response // parts whose parent is not in yet; at most the parts read
	for more {
		resp := responses(ctx)
		if resp == nil {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			break
		}
		more = resp.HasNext != nil && *resp.HasNext
		out.Errors = append(out.Errors, resp.Errors...)
		for k, v := range resp.Extensions {
			if out.Extensions == nil {
				out.Extensions = map[string]any{}
			}
			out.Extensions[k] = v
		}
		if isNull(resp.Data) {
			continue
		}
		waiting = append(waiting, resp)
		// Place what can be placed, until a pass places nothing more.
		for placedAny := true; placedAny; {
			placedAny = false
			rest := waiting[:0]
			for _, w := range waiting {
				data, placed, err := mergeAt(out.Data, w.Path, w.Data)
				if err != nil {
					return nil, err
				}
				if placed {
					out.Data, placedAny = data, true
				} else {
					rest = append(rest, w)
				}
			}
			waiting = rest
		}
	}
	return &out, nil
}

// mergeAt returns dst with the object src merged into the object at path, and whether there was
// one there (a parent not in yet, or nulled by an error, is null).
func mergeAt(dst json.RawMessage, path ast.Path, src json.RawMessage) (json.RawMessage, bool, error) {
	if isNull(dst) {
		return dst, false, nil
	}
	if len(path) == 0 {
		out, err := mergeObjects(dst, src)
		return out, err == nil, err
	}
	switch step := path[0].(type) {
	case ast.PathName:
		members, err := objectMembers(dst)
		if err != nil {
			return nil, false, err
		}
		for i := range members {
			if members[i].key == string(step) {
				val, placed, err := mergeAt(members[i].val, path[1:], src)
				if !placed || err != nil {
					return dst, placed, err
				}
				members[i].val = val
				return encodeObject(members), true, nil
			}
		}
		return dst, false, nil
	case ast.PathIndex:
		var items []json.RawMessage
		if err := json.Unmarshal(dst, &items); err != nil {
			return nil, false, fmt.Errorf("merge deferred data: %w", err)
		}
		if int(step) < 0 || int(step) >= len(items) {
			return dst, false, nil
		}
		val, placed, err := mergeAt(items[step], path[1:], src)
		if !placed || err != nil {
			return dst, placed, err
		}
		items[step] = val
		out, err := json.Marshal(items)
		return out, err == nil, err
	}
	return nil, false, fmt.Errorf("merge deferred data: unknown path element %T", path[0])
}

// mergeObjects adds the members of src to the object dst, merging objects found in both; the
// members of dst keep their order, new ones follow.
func mergeObjects(dst, src json.RawMessage) (json.RawMessage, error) {
	if isNull(dst) {
		return dst, nil
	}
	into, err := objectMembers(dst)
	if err != nil {
		return nil, err
	}
	from, err := objectMembers(src)
	if err != nil {
		return nil, err
	}
next:
	for _, m := range from {
		for i := range into {
			if into[i].key != m.key {
				continue
			}
			if isObject(into[i].val) && isObject(m.val) {
				if into[i].val, err = mergeObjects(into[i].val, m.val); err != nil {
					return nil, err
				}
			} else {
				into[i].val = m.val
			}
			continue next
		}
		into = append(into, m)
	}
	return encodeObject(into), nil
}

type member struct {
	key string
	val json.RawMessage
}

// objectMembers decodes a JSON object into its members, in order.
func objectMembers(b json.RawMessage) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("merge deferred data: not an object: %.40s", b)
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("merge deferred data: %w", err)
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("merge deferred data: %w", err)
		}
		out = append(out, member{key: key, val: val})
	}
	return out, nil
}

func encodeObject(members []member) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.val)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func isNull(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

func isObject(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{'
}
