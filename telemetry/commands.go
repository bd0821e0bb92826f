package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Commands is what the stores report of each command they send: its latency in
// eventide_store_command_seconds{store,command}, and a span when tracing is on. A nil *Commands
// reports nothing.
type Commands struct {
	seconds *prometheus.HistogramVec
	tracer  trace.Tracer
}

// CommandBuckets are the latency buckets of a store command, from 50µs (an SQLite read from the
// page cache) to 5s (a server-selection timeout).
var CommandBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

// NewCommands registers eventide_store_command_seconds with reg; tracer may be nil (tracing off).
func NewCommands(reg prometheus.Registerer, tracer trace.Tracer) *Commands {
	c := &Commands{
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eventide_store_command_seconds",
			Help:    "Latency of the commands sent to the store (MongoDB commands, SQLite statements), by store and command.",
			Buckets: CommandBuckets,
		}, []string{"store", "command"}),
		tracer: tracer,
	}
	if reg != nil {
		reg.MustRegister(c.seconds)
	}
	return c
}

// Observe records one command of store that took d. The caller bounds command to a fixed set.
func (c *Commands) Observe(store, command string, d time.Duration) {
	if c == nil {
		return
	}
	c.seconds.WithLabelValues(store, command).Observe(d.Seconds())
}

// Tracer is the tracer of the commands' spans, nil when tracing is off.
func (c *Commands) Tracer() trace.Tracer {
	if c == nil {
		return nil
	}
	return c.tracer
}
