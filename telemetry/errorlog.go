package telemetry

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
)

// errorEvery is how often ErrorLog writes a line at most.
const errorEvery = 30 * time.Second

// ErrorLog takes the OpenTelemetry SDK's errors (a failed export: the collector is down) to a
// logger, at most one line per errorEvery with the number left out. The SDK has one error
// handler per process (otel.SetErrorHandler), so main sets an ErrorLog once and points it at the
// server's logger when that exists; errors before SetLogger are dropped.
type ErrorLog struct {
	log     atomic.Pointer[slog.Logger]
	mu      sync.Mutex
	last    time.Time
	skipped int
}

// SetLogger makes l receive the lines from now on.
func (o *ErrorLog) SetLogger(l *slog.Logger) { o.log.Store(l) }

// Handle is the SDK's otel.ErrorHandler.
func (o *ErrorLog) Handle(err error) {
	l := o.log.Load()
	if l == nil {
		return
	}
	o.mu.Lock()
	if time.Since(o.last) < errorEvery {
		o.skipped++
		o.mu.Unlock()
		return
	}
	skipped := o.skipped
	o.last, o.skipped = time.Now(), 0
	o.mu.Unlock()
	l.Warn("tracing: "+err.Error(), "similar_errors_left_out", skipped)
}

var _ otel.ErrorHandler = (*ErrorLog)(nil)
