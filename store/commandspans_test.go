package store

import (
	"context"
	"testing"

	"go.mongodb.org/mongo-driver/v2/event"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// TestCommandSpansBounded: the spans of commands in flight are held by request id up to
// maxOpenSpans; past it a command's span is ended at once, not kept, and every end removes its
// entry. Commands without a request span make none.
func TestCommandSpansBounded(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracer := tp.Tracer("test")
	var c commandSpans

	c.start(context.Background(), tracer, &event.CommandStartedEvent{CommandName: "find", RequestID: -1}, "find")
	if len(c.open) != 0 || len(rec.Started()) != 0 {
		t.Fatalf("a command outside any request made a span (%d open)", len(c.open))
	}

	ctx, parent := tracer.Start(context.Background(), "request")
	defer parent.End()
	over := 100
	for i := range maxOpenSpans + over {
		c.start(ctx, tracer, &event.CommandStartedEvent{CommandName: "find", RequestID: int64(i)}, "find")
	}
	if len(c.open) != maxOpenSpans {
		t.Fatalf("%d spans held, want the bound %d", len(c.open), maxOpenSpans)
	}
	if ended := len(rec.Ended()); ended != over {
		t.Fatalf("%d spans ended at once past the bound, want %d", ended, over)
	}
	for i := range maxOpenSpans + over {
		c.end(int64(i), nil)
	}
	if len(c.open) != 0 || len(rec.Ended()) != maxOpenSpans+over {
		t.Fatalf("after every end: %d held, %d ended", len(c.open), len(rec.Ended()))
	}
}
