package httpapi

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/eventide/server/calendar"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
)

type otherKey struct{}

// leanContext keeps every value a socket's operations read, in one object, and nothing else of
// the request: not its other values, not its cancellation.
func TestLeanContext(t *testing.T) {
	cell := &eventide.ViewerCell{}
	cell.Store(&eventide.User{ID: "u1"})
	ss := &session{}
	client := reqmeta.Client{IP: "192.0.2.1", Key: "ip:192.0.2.1", AddrKey: "ip:192.0.2.1", UserAgent: "test"}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: trace.FlagsSampled})

	req, cancel := context.WithCancel(context.Background())
	src := eventide.WithViewerCell(req, cell)
	src = reqmeta.WithID(src, "rid-1")
	src = reqmeta.WithClient(src, client)
	src = context.WithValue(src, sessionKey{}, ss)
	src = withTransport(src, TransportWebsocket)
	src = calendar.WithBase(src, "https://events.example/")
	src = trace.ContextWithSpanContext(src, sc)
	src = context.WithValue(src, otherKey{}, "not carried")

	ctx := leanContext(src)
	cancel()
	if ctx.Err() != nil || ctx.Done() != nil {
		t.Fatal("the socket's context ends with its upgrade request")
	}
	if ctx.n != 6 || ctx.Context.Value(sessionKey{}) != nil {
		t.Fatalf("not one object of the 6 values: %+v", ctx)
	}
	if u := eventide.ViewerFrom(ctx); u == nil || u.ID != "u1" {
		t.Fatalf("viewer %v", u)
	}
	cell.Store(&eventide.User{ID: "u2"}) // the cell, not a copy: a role change reaches the socket
	if u := eventide.ViewerFrom(ctx); u == nil || u.ID != "u2" {
		t.Fatalf("viewer after the cell changed: %v", u)
	}
	if got := reqmeta.IDFrom(ctx); got != "rid-1" {
		t.Errorf("request id %q", got)
	}
	if got := reqmeta.ClientFrom(ctx); got != client {
		t.Errorf("client %+v", got)
	}
	if sessionFrom(ctx) != ss {
		t.Error("session not carried")
	}
	if got := transportLabel(ctx); got != TransportWebsocket {
		t.Errorf("transport %q", got)
	}
	if got := calendar.BaseFrom(ctx); got != "https://events.example" {
		t.Errorf("calendar base %q", got)
	}
	if got := trace.SpanContextFromContext(ctx); !got.Equal(sc) {
		t.Errorf("trace %v", got)
	}
	if ctx.Value(otherKey{}) != nil {
		t.Error("a value the operations do not read is kept")
	}

	// A plain request's context: nothing to carry, nothing kept.
	if v := leanContext(context.Background()); v.n != 0 || v.Context != context.Background() {
		t.Fatalf("from an empty context: %+v", v)
	}
	// More values than the array: the rest still answer.
	v := &leanValues{Context: context.Background()}
	for i := range 8 {
		v.put(i, i*10)
	}
	for i := range 8 {
		if got := v.Value(i); got != i*10 {
			t.Fatalf("value %d = %v", i, got)
		}
	}
}
