package httpapi

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/querylimit"
	"github.com/eventide/server/telemetry"
)

// DefaultMaxOperationNames bounds the operation label: the first this many distinct names of
// operations that passed validation get a label of their own, later ones count as "other".
const DefaultMaxOperationNames = 100

// Operation label values besides operation names, and the code of an operation without error.
const (
	opAnonymous = "anonymous"
	opOther     = "other"
	codeOK      = "OK"
	typeUnknown = "unknown" // an operation refused before its document was understood
)

// Subscription transports, as the eventide_open_subscriptions label names them. A new transport
// sets its name on the request context (withTransport) and adds it here.
const (
	TransportWebsocket = "ws"
	TransportSSE       = "sse"
	TransportMultipart = "multipart"
)

var subscriptionTransports = []string{TransportWebsocket, TransportSSE, TransportMultipart}

// knownCodes bounds the code label to the codes of API.md; any other code counts as "other".
var knownCodes = map[string]bool{
	string(eventide.CodeUnauthenticated): true, string(eventide.CodeForbidden): true,
	string(eventide.CodeBadUserInput): true, string(eventide.CodeNotFound): true,
	errcode.ParseFailed: true, errcode.ValidationFailed: true,
	string(codePersistedQueryNotFound): true, string(eventide.CodeRateLimited): true,
	string(querylimit.CodeTooComplex): true, string(eventide.CodeBadRequest): true,
	string(codePayloadTooLarge): true, string(eventide.CodeInternal): true,
	string(eventide.CodeUnavailable): true,
}

// Operations reports every GraphQL operation: eventide_graphql_operations_total and
// eventide_graphql_operation_seconds when it ends, eventide_open_subscriptions while a
// subscription is open, and a span around it when tracing is on. It is the first extension, so
// its span is the parent of everything the operation does.
//
// An operation refused before execution (a parse or validation error, a limit, a missing
// persisted query) never reaches InterceptOperation: gqlgen answers it through the response
// interceptors alone, so InterceptResponse counts those.
type Operations struct {
	tracer  trace.Tracer // nil: tracing off
	names   *opNames
	total   *prometheus.CounterVec
	seconds *prometheus.HistogramVec
	open    *prometheus.GaugeVec
}

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
} = (*Operations)(nil)

// NewOperations registers the operation metrics with reg (nil: none) and makes each operation a
// span with tracer (nil: tracing off); maxNames bounds the operation label
// (DefaultMaxOperationNames when 0). GraphQLOptions and Options take the same one.
func NewOperations(reg prometheus.Registerer, tracer trace.Tracer, maxNames int) *Operations {
	if maxNames <= 0 {
		maxNames = DefaultMaxOperationNames
	}
	o := &Operations{
		tracer: tracer,
		names:  &opNames{max: maxNames, known: make(map[string]struct{})},
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventide_graphql_operations_total",
			Help: "GraphQL operations by name (the first names seen, then other), type and the code of their first error (OK without).",
		}, []string{"operation", "type", "code"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventide_graphql_operation_seconds",
			Help:    "GraphQL operation latency (a subscription: how long it stayed open), by name and type.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation", "type"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eventide_open_subscriptions",
			Help: "Subscriptions open now, by transport (ws, sse, multipart).",
		}, []string{"transport"}),
	}
	for _, t := range subscriptionTransports {
		o.open.WithLabelValues(t) // present at 0, so a dashboard shows every transport
	}
	if reg != nil {
		reg.MustRegister(o.total, o.seconds, o.open)
	}
	return o
}

func (*Operations) ExtensionName() string                   { return "Operations" }
func (*Operations) Validate(graphql.ExecutableSchema) error { return nil }

// opState marks a context as inside an operation InterceptOperation reports.
type opState struct{}

func (o *Operations) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	began := time.Now()
	oc := graphql.GetOperationContext(ctx)
	typ := typeUnknown
	if oc.Operation != nil {
		typ = string(oc.Operation.Operation)
	}
	name := o.names.admit(oc)
	var span trace.Span
	if o.tracer != nil {
		spanName := typ
		if oc.OperationName != "" {
			spanName += " " + oc.OperationName
		}
		ctx, span = o.tracer.Start(ctx, spanName, trace.WithAttributes(
			attribute.String("graphql.operation.type", typ),
			attribute.String("graphql.operation.name", oc.OperationName)))
	}
	ctx = context.WithValue(ctx, opState{}, true)

	// The code is set by the goroutine running the operation and read by the one that ends it
	// (for a subscription, possibly gqlgen's cancellation).
	var mu sync.Mutex
	code := codeOK
	setCode := func(c string) {
		mu.Lock()
		defer mu.Unlock()
		if code == codeOK {
			code = c
		}
	}
	var once sync.Once
	finish := func() {
		once.Do(func() {
			mu.Lock()
			code := code
			mu.Unlock()
			if ctx.Value(sharedOpKey{}) == nil { // a shared one's subscribers are counted (openMember)
				o.total.WithLabelValues(name, typ, code).Inc()
				o.seconds.WithLabelValues(name, typ).Observe(time.Since(began).Seconds())
			}
			if span != nil {
				span.SetAttributes(attribute.String("graphql.error.code", code))
				if code != codeOK {
					span.SetStatus(otelcodes.Error, code)
				}
				span.End()
			}
		})
	}
	subscription := typ == string(ast.Subscription)
	if subscription {
		var closeOnce sync.Once
		closed := func() { closeOnce.Do(finish) }
		if ctx.Value(sharedOpKey{}) == nil { // a shared one's members are counted (openMember)
			g := o.open.WithLabelValues(transportLabel(ctx))
			g.Inc()
			closed = func() { closeOnce.Do(func() { g.Dec(); finish() }) }
		}
		// gqlgen cancels a subscription's context when it ends, however it ends (complete, the
		// client's stop, the connection's close), so the gauge cannot stay up.
		context.AfterFunc(ctx, closed)
		h := next(ctx)
		return func(ctx context.Context) *graphql.Response {
			resp := h(ctx)
			if resp == nil {
				closed()
			} else {
				setCode(responseCode(resp.Errors))
			}
			return resp
		}
	}
	h := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := h(ctx)
		if resp != nil {
			setCode(responseCode(resp.Errors))
		}
		finish()
		return resp
	}
}

// InterceptResponse counts the operations gqlgen refused before dispatching them (no opState).
func (o *Operations) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if ctx.Value(opState{}) != nil {
		return next(ctx)
	}
	began := time.Now()
	resp := next(ctx)
	if resp == nil {
		return nil
	}
	typ, name := typeUnknown, opOther
	if graphql.HasOperationContext(ctx) {
		oc := graphql.GetOperationContext(ctx)
		op := oc.Operation
		if op == nil && oc.Doc != nil && len(oc.Doc.Operations) == 1 {
			op = oc.Doc.Operations[0] // parsed, then refused (validation, a limit)
		}
		switch {
		case op != nil:
			typ = string(op.Operation)
			name = o.names.lookup(op.Name)
		case oc.OperationName != "":
			name = o.names.lookup(oc.OperationName)
		}
		// Otherwise the document was not understood: neither its name nor whether it has one
		// is known, so it counts as other.
	}
	code := responseCode(resp.Errors)
	o.total.WithLabelValues(name, typ, code).Inc()
	o.seconds.WithLabelValues(name, typ).Observe(time.Since(began).Seconds())
	if sp := trace.SpanFromContext(ctx); sp.IsRecording() {
		sp.SetAttributes(attribute.String("graphql.operation.type", typ), attribute.String("graphql.error.code", code))
	}
	return resp
}

// countKept counts an operation answered from the response cache: a query that ended without
// error when it was kept.
func (o *Operations) countKept(name string, took time.Duration) {
	if o == nil {
		return
	}
	label := o.names.lookup(name)
	o.total.WithLabelValues(label, string(ast.Query), codeOK).Inc()
	o.seconds.WithLabelValues(label, string(ast.Query)).Observe(took.Seconds())
}

// responseCode is the label of a response's errors: the first error's extensions.code when it is
// one of API.md's, "other" for any other, OK without errors.
func responseCode(errs gqlerror.List) string {
	if len(errs) == 0 {
		return codeOK
	}
	c, _ := errs[0].Extensions["code"].(string)
	if !knownCodes[c] {
		return opOther
	}
	return c
}

// opNames bounds the operation label: the first max distinct names that passed validation.
type opNames struct {
	mu    sync.RWMutex
	max   int
	known map[string]struct{}
}

// admit returns the label of a validated operation, making its name known while there is room.
func (n *opNames) admit(oc *graphql.OperationContext) string {
	name := oc.OperationName
	if oc.Operation != nil {
		name = oc.Operation.Name
	}
	if name == "" {
		return opAnonymous
	}
	n.mu.RLock()
	_, ok := n.known[name]
	n.mu.RUnlock()
	if ok {
		return name
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.known[name]; ok {
		return name
	}
	if len(n.known) >= n.max {
		return opOther
	}
	n.known[name] = struct{}{}
	return name
}

// lookup returns the label of a name from a request that was refused: its own when the name is
// already known (so a known operation's errors count under it), else "other". A refused request
// never makes a name known: anything can be written in one.
func (n *opNames) lookup(name string) string {
	if name == "" {
		return opAnonymous
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	if _, ok := n.known[name]; ok {
		return name
	}
	return opOther
}

// sharedOpKey marks the context of a subscription the lean transport shares between identical
// subscribers: the metrics count its subscribers (openMember), not it; its span is its own.
type sharedOpKey struct{}

func withSharedOperation(ctx context.Context) context.Context {
	return context.WithValue(ctx, sharedOpKey{}, true)
}

// openMember counts one subscriber of a shared subscription oc as an operation of its own: open
// on transport until closed, then one more subscription in the totals, with how long it stayed.
func (o *Operations) openMember(oc *graphql.OperationContext, transport string) (closed func()) {
	began := time.Now()
	name := o.names.admit(oc)
	typ := string(ast.Subscription)
	g := o.open.WithLabelValues(transport)
	g.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.Dec()
			o.total.WithLabelValues(name, typ, codeOK).Inc()
			o.seconds.WithLabelValues(name, typ).Observe(time.Since(began).Seconds())
		})
	}
}

type transportKey struct{}

// withTransport names the transport of the subscriptions a request carries.
func withTransport(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, transportKey{}, name)
}

// transportLabel is the subscription transport ctx was marked with, "other" when none.
func transportLabel(ctx context.Context) string {
	if t, ok := ctx.Value(transportKey{}).(string); ok {
		return t
	}
	return opOther
}

// traceRequests makes each request a server span, the child of the caller's span when the
// request carries a W3C traceparent. With tracer nil (tracing off) it is next itself.
func traceRequests(tracer trace.Tracer) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if tracer == nil {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := telemetry.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := tracer.Start(ctx, r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
					attribute.String("http.request.id", reqmeta.IDFrom(ctx))))
			defer span.End()
			rec := &statusRecorder{ResponseWriter: w}
			next.ServeHTTP(rec, r.WithContext(ctx))
			span.SetAttributes(attribute.Int("http.response.status_code", rec.status))
			if rec.status >= http.StatusInternalServerError {
				span.SetStatus(otelcodes.Error, http.StatusText(rec.status))
			}
		})
	}
}
