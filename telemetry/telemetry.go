// Package telemetry is what the server tells about its own work beyond logs: OpenTelemetry traces
// over OTLP/HTTP (off unless configured) and the store-command histogram both stores feed.
//
// Off costs nothing: Tracing.Tracer returns nil and every instrumented part then skips its span
// (no SDK, no exporter, no goroutine). Nothing here is set up at package level, and nothing reads
// the environment: config/ reads the OTEL_* keys and internal/server passes them in as Options.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Samplers are the OTEL_TRACES_SAMPLER values Start understands (the specification's list, less
// the Jaeger and X-Ray remote samplers, which need a service of their own).
var Samplers = []string{"always_on", "always_off", "traceidratio",
	"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// Options configures Start.
type Options struct {
	// Endpoint is the full OTLP/HTTP traces URL (…/v1/traces); empty leaves tracing off.
	Endpoint string
	// Headers are sent with every export (an API key, say).
	Headers map[string]string
	// ServiceName and ServiceVersion name this process in the traces (service.name,
	// service.version).
	ServiceName    string
	ServiceVersion string
	// Sampler is one of Samplers (parentbased_always_on when empty); SamplerArg is the ratio of
	// the traceidratio samplers, in [0, 1].
	Sampler    string
	SamplerArg float64
	// QueueSize bounds the finished spans waiting for export (DefaultQueueSize when 0): when it
	// is full, new spans are dropped, never waited for.
	QueueSize int
	// ExportTimeout bounds one export request (DefaultExportTimeout when 0).
	ExportTimeout time.Duration
}

// Defaults of the span pipeline: the batch span processor keeps at most DefaultQueueSize finished
// spans (about 1-2 KiB each with our attributes, so at most ~4 MiB), sends them in batches of
// DefaultBatchSize every DefaultBatchDelay, and drops what does not fit.
const (
	DefaultQueueSize     = 2048
	DefaultBatchSize     = 512
	DefaultBatchDelay    = 2 * time.Second
	DefaultExportTimeout = 10 * time.Second
)

// Tracing is the process's tracer provider, or nothing when tracing is off.
type Tracing struct {
	sdk *sdktrace.TracerProvider // nil: off
}

// Off is tracing switched off: Tracer returns nil.
func Off() *Tracing { return &Tracing{} }

// Start builds the tracer provider o describes, with an OTLP/HTTP exporter and a bounded batch
// span processor; with o.Endpoint empty it returns Off(). The exporter connects lazily: an
// unreachable collector costs dropped spans (and a log line per failed export), never a request.
func Start(ctx context.Context, o Options) (*Tracing, error) {
	if o.Endpoint == "" {
		return Off(), nil
	}
	sampler, err := NewSampler(o.Sampler, o.SamplerArg)
	if err != nil {
		return nil, err
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.ExportTimeout <= 0 {
		o.ExportTimeout = DefaultExportTimeout
	}
	exp, err := otlptrace.New(ctx, newOTLPClient(o.Endpoint, o.Headers, o.ExportTimeout))
	if err != nil {
		return nil, fmt.Errorf("telemetry: OTLP exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", o.ServiceName)}
	if o.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", o.ServiceVersion))
	}
	tp := sdktrace.NewTracerProvider(
		// Schemaless and without resource.WithFromEnv: the resource is what the configuration
		// says, not what the process environment happens to hold.
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSampler(sampler),
		sdktrace.WithBatcher(exp,
			sdktrace.WithMaxQueueSize(o.QueueSize),
			sdktrace.WithMaxExportBatchSize(min(DefaultBatchSize, o.QueueSize)),
			sdktrace.WithBatchTimeout(DefaultBatchDelay),
			sdktrace.WithExportTimeout(o.ExportTimeout)),
	)
	return &Tracing{sdk: tp}, nil
}

// NewSampler returns the sampler OTEL_TRACES_SAMPLER names (parentbased_always_on for ""), with
// arg the ratio of the traceidratio ones.
func NewSampler(name string, arg float64) (sdktrace.Sampler, error) {
	if arg < 0 || arg > 1 {
		return nil, errors.New("telemetry: sampler ratio must be in [0, 1]")
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(arg), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(arg)), nil
	}
	return nil, fmt.Errorf("telemetry: unknown sampler %q", name)
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t != nil && t.sdk != nil }

// Tracer returns the named tracer, or nil when tracing is off: every caller skips its spans then.
func (t *Tracing) Tracer(name string) trace.Tracer {
	if !t.Enabled() {
		return nil
	}
	return t.sdk.Tracer(name)
}

// Shutdown exports the spans still queued and stops the exporter, until ctx ends.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}

// Propagator reads and writes W3C trace context (traceparent, tracestate).
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// Child starts a span named name under the span in ctx, only when there is one and tracer is not
// nil: commands run by background loops (cache probes, repair sweeps) would otherwise each make a
// trace of their own. The returned span is nil when none was started.
func Child(ctx context.Context, tracer trace.Tracer, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if tracer == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, nil
	}
	return tracer.Start(ctx, name, opts...)
}

// End ends span (nil: none), marking it failed with err when err is not nil.
func End(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
