package httpapi

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/respcache"
)

// maxResponseKeyBytes bounds the requests whose responses are kept: the key is the request itself.
const maxResponseKeyBytes = 8 << 10

// CacheableRoots are the query fields whose resolvers read nothing but the cached store (and the
// clock, through the pages' validity): a query selecting only these, anonymously and without an
// error, may be answered from the response cache. Every other root field (the viewer's, the
// admin's, the server's own state) is built anew each time.
var CacheableRoots = map[string]bool{
	"__typename": true, "event": true, "events": true, "venue": true, "venues": true, "user": true,
}

// memBody is a request body graphQLBody has read into memory; the response cache keys on it
// without reading it again.
type memBody struct {
	*bytes.Reader
	b []byte
}

func (memBody) Close() error { return nil }

// pendingResponse is what the response cache learns about a request it let through: the cache
// reads it collected, and whether gqlgen found the operation one that may be kept.
type pendingResponse struct {
	deps respcache.Deps
	keep atomic.Bool
	// partial: the operation was answered in parts (@defer); its body, multipart or merged, is
	// never kept, so no repeat can be answered with half of it.
	partial atomic.Bool
	op      atomic.Pointer[string]
}

type pendingKey struct{}

// cacheResponses answers an anonymous query from rc when the same request's response is kept and
// still exact, and keeps the responses of those it lets through when keepResponses marked them.
// It runs behind every guard (throttle, CSRF, body limits) and right in front of gqlgen.
func cacheResponses(rc *respcache.Cache, ops *Operations) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if rc == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key, ok := responseKey(r)
			if !ok {
				next.ServeHTTP(w, r)
				return
			}
			began := time.Now()
			e, known := rc.Lookup(r.Context(), key)
			if e != nil {
				serveKept(w, r, e)
				ops.countKept(e.Operation, time.Since(began))
				return
			}
			// A response that was kept before (a popular page gone stale) is rebuilt once while
			// the others wait; one never kept (a clock-bound count, say) is built by each.
			if known {
				release, waited := rc.Begin(r.Context(), key)
				if waited {
					if e := rc.Get(r.Context(), key); e != nil {
						serveKept(w, r, e)
						ops.countKept(e.Operation, time.Since(began))
						return
					}
				} else {
					defer release() // after the Put below: those waiting look the key up again
				}
			}
			p := &pendingResponse{}
			ctx := respcache.WithDeps(context.WithValue(r.Context(), pendingKey{}, p), &p.deps)
			rec := &captureWriter{statusRecorder: statusRecorder{ResponseWriter: w}, limit: maxCapturedBytes}
			next.ServeHTTP(rec, r.WithContext(ctx))
			if rec.status != http.StatusOK || rec.over || !p.keep.Load() || p.partial.Load() {
				return
			}
			keys, vals, until, ok := p.deps.Result()
			if !ok {
				return
			}
			op := ""
			if n := p.op.Load(); n != nil {
				op = *n
			}
			rc.Put(key, rec.buf, rec.Header().Get("Content-Type"), op, keys, vals, until)
		})
	}
}

// serveKept answers with a kept response.
func serveKept(w http.ResponseWriter, r *http.Request, e *respcache.Entry) {
	if o, _ := r.Context().Value(opNameKey{}).(*opName); o != nil {
		o.name.Store(&e.Operation)
	}
	if span := trace.SpanFromContext(r.Context()); span.IsRecording() {
		span.SetAttributes(attribute.Bool("eventide.response_cache.hit", true), attribute.String("graphql.operation.name", e.Operation))
	}
	h := w.Header()
	h["Content-Type"] = []string{e.ContentType}
	h["Content-Length"] = []string{strconv.Itoa(len(e.Body))}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(e.Body)
}

// responseKey is the key of r's response, and whether it may be answered from the cache at all:
// an anonymous POST or GET that is not a stream, short enough. The key is the request as the
// server reads it (method, Accept, body or query string), so equal keys are equal requests.
func responseKey(r *http.Request) (string, bool) {
	if eventide.ViewerFrom(r.Context()) != nil || isStream(r) {
		return "", false
	}
	accept := r.Header.Get("Accept")
	switch r.Method {
	case http.MethodPost:
		b, ok := r.Body.(memBody)
		if !ok || len(b.b)+len(accept) > maxResponseKeyBytes {
			return "", false
		}
		return "P" + accept + "\x00" + string(b.b), true
	case http.MethodGet:
		if len(r.URL.RawQuery)+len(accept) > maxResponseKeyBytes {
			return "", false
		}
		return "G" + accept + "\x00" + r.URL.RawQuery, true
	}
	return "", false
}

// maxCapturedBytes bounds the copy of one response taken for the cache; longer ones pass through
// and are not kept.
const maxCapturedBytes = 512 << 10

// captureWriter passes a response through, recording its status, and keeps a copy of its body,
// up to limit.
type captureWriter struct {
	statusRecorder
	buf   []byte
	limit int
	over  bool
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if !c.over {
		if len(c.buf)+len(b) > c.limit {
			c.over, c.buf = true, nil
		} else {
			c.buf = append(c.buf, b...)
		}
	}
	return c.statusRecorder.Write(b)
}

// keepResponses is the gqlgen side of cacheResponses: it marks a response that may be kept, one
// to a query selecting only CacheableRoots that ended without an error or extension, and not
// delivered in parts (@defer).
type keepResponses struct{}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = keepResponses{}

func (keepResponses) ExtensionName() string                   { return "ResponseCache" }
func (keepResponses) Validate(graphql.ExecutableSchema) error { return nil }
func (keepResponses) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	resp := next(ctx)
	p, _ := ctx.Value(pendingKey{}).(*pendingResponse)
	if p != nil && resp != nil && resp.HasNext != nil {
		p.partial.Store(true)
	}
	if p == nil || resp == nil || len(resp.Errors) > 0 || len(resp.Extensions) > 0 || !graphql.HasOperationContext(ctx) {
		return resp
	}
	oc := graphql.GetOperationContext(ctx)
	if oc.Operation == nil || oc.Operation.Operation != ast.Query {
		return resp
	}
	for _, f := range graphql.CollectFields(oc, oc.Operation.SelectionSet, []string{"Query"}) {
		if !CacheableRoots[f.Name] {
			return resp
		}
	}
	name := oc.OperationName
	if name == "" {
		name = oc.Operation.Name
	}
	p.op.Store(&name)
	p.keep.Store(true)
	return resp
}
