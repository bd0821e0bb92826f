package store

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/telemetry"
)

// PoolStats is what the driver's monitors report about the connection pool and the server.
type PoolStats = eventide.StoreStats

// monitor turns the driver's command, pool and server events into a command counter, pool
// gauges and one log line per change of state (not per heartbeat).
type monitor struct {
	log      *slog.Logger
	maxPool  int
	commands *prometheus.CounterVec
	cmds     *telemetry.Commands // latency histogram and tracer; nil: none
	spans    commandSpans

	open, inUse atomic.Int64

	mu          sync.Mutex
	connected   bool
	lastEvent   string
	lastEventAt time.Time
	hbFailing   bool

	// up is cancelled, with the error calls should end in, the moment the store is known down:
	// the server monitor saw it go from a known kind to Unknown (a failed heartbeat, or a network
	// error in a command), or Close began. Until it has been up once it is not known down (Open
	// waits for the server anyway). A new one replaces it when the server is back. Guarded by mu.
	up     context.Context
	upDown context.CancelCauseFunc
	closed bool
	upNow  atomic.Pointer[context.Context] // m.up, for Up without the lock (every store call)
}

// errStoreDown is what calls end in while the store is known down.
var errStoreDown = &eventide.Error{Code: eventide.CodeUnavailable, Message: "the store is unavailable; try again shortly",
	Err: errors.New("store: the server monitor reports the server down")}

// errStoreClosing is what calls end in once Close has begun (the server is shutting down).
var errStoreClosing = &eventide.Error{Code: eventide.CodeUnavailable, Message: "the server is shutting down; try again shortly",
	Err: errors.New("store: closing")}

// Up returns a context that is cancelled as soon as the store is known down, with the error a
// call should end in as its cause; it is already cancelled while the store is down. A call made
// under it (see storecache.FailFast) fails at once instead of waiting out server selection.
func (m *monitor) Up() context.Context {
	return *m.upNow.Load()
}

// setUp records whether the server is up, for Up. Called with mu held.
func (m *monitor) setUp(up bool) {
	if m.closed {
		return
	}
	known := m.up.Err() == nil
	switch {
	case up && !known:
		m.up, m.upDown = context.WithCancelCause(context.Background())
		cur := m.up
		m.upNow.Store(&cur) // a copy: m.up is replaced under mu, read here without it
	case !up && known:
		m.upDown(errStoreDown)
	}
}

// close marks the store closing: every call made from now on, and every one in flight, fails.
func (m *monitor) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.upDown(errStoreClosing)
}

func newMonitor(log *slog.Logger, maxPool uint64, reg prometheus.Registerer, cmds *telemetry.Commands) *monitor {
	m := &monitor{
		log:     log,
		cmds:    cmds,
		maxPool: int(maxPool),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eventide_mongo_commands_total",
			Help: "Commands sent to the store, by command name.",
		}, []string{"command"}),
	}
	m.up, m.upDown = context.WithCancelCause(context.Background())
	cur := m.up
	m.upNow.Store(&cur)
	if reg != nil {
		reg.MustRegister(m.commands)
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eventide_mongo_connections_open", Help: "Open connections in the store pool.",
		}, func() float64 { return float64(m.open.Load()) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "eventide_mongo_connections_in_use", Help: "Store connections checked out.",
		}, func() float64 { return float64(m.inUse.Load()) }))
	}
	return m
}

// knownCommands bounds the label values of the command counter: anything else counts as "other".
var knownCommands = map[string]bool{
	"find": true, "insert": true, "update": true, "delete": true, "findAndModify": true,
	"aggregate": true, "count": true, "distinct": true, "getMore": true, "killCursors": true,
	"createIndexes": true, "listIndexes": true, "ping": true, "hello": true, "isMaster": true,
	"endSessions": true, "listCollections": true, "drop": true, "dropDatabase": true,
}

func (m *monitor) commandMonitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Started: func(ctx context.Context, e *event.CommandStartedEvent) {
			name := commandLabel(e.CommandName)
			m.commands.WithLabelValues(name).Inc()
			m.spans.start(ctx, m.cmds.Tracer(), e, name)
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			m.cmds.Observe("mongodb", commandLabel(e.CommandName), e.Duration)
			m.spans.end(e.RequestID, nil)
		},
		Failed: func(_ context.Context, e *event.CommandFailedEvent) {
			m.cmds.Observe("mongodb", commandLabel(e.CommandName), e.Duration)
			m.spans.end(e.RequestID, e.Failure)
		},
	}
}

// commandLabel bounds a command name to knownCommands, else "other".
func commandLabel(name string) string {
	if !knownCommands[name] {
		return "other"
	}
	return name
}

// maxOpenSpans bounds the command spans waiting for their command's end: far above the pool's
// connections, each of which runs one command at a time. Past it, commands go untraced.
const maxOpenSpans = 1024

// commandSpans holds the span of each command in flight between the driver's Started and its
// Succeeded or Failed event, by request id.
type commandSpans struct {
	mu   sync.Mutex
	open map[int64]trace.Span
}

func (c *commandSpans) start(ctx context.Context, tracer trace.Tracer, e *event.CommandStartedEvent, name string) {
	attrs := []attribute.KeyValue{attribute.String("db.system.name", "mongodb"),
		attribute.String("db.operation.name", name), attribute.String("db.namespace", e.DatabaseName)}
	if coll, ok := e.Command.Lookup(e.CommandName).StringValueOK(); ok {
		attrs = append(attrs, attribute.String("db.collection.name", coll))
	}
	_, span := telemetry.Child(ctx, tracer, "mongodb "+name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	if span == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open = make(map[int64]trace.Span)
	}
	if len(c.open) >= maxOpenSpans {
		span.End() // not kept: ended at once rather than leaked
		return
	}
	c.open[e.RequestID] = span
}

func (c *commandSpans) end(id int64, failure error) {
	c.mu.Lock()
	span, ok := c.open[id]
	delete(c.open, id)
	c.mu.Unlock()
	if ok {
		telemetry.End(span, failure)
	}
}

func (m *monitor) record(ev string) {
	m.lastEvent, m.lastEventAt = ev, time.Now()
}

func (m *monitor) poolMonitor() *event.PoolMonitor {
	return &event.PoolMonitor{Event: func(e *event.PoolEvent) {
		switch e.Type {
		case event.ConnectionCreated:
			m.open.Add(1)
		case event.ConnectionClosed:
			m.open.Add(-1)
		case event.ConnectionCheckedOut:
			m.inUse.Add(1)
		case event.ConnectionCheckedIn:
			m.inUse.Add(-1)
		case event.ConnectionPoolCleared:
			m.mu.Lock()
			m.record("pool cleared")
			m.mu.Unlock()
			m.log.Warn("store connection pool cleared", "address", e.Address, "error", e.Error)
		}
	}}
}

func (m *monitor) serverMonitor() *event.ServerMonitor {
	return &event.ServerMonitor{
		ServerDescriptionChanged: func(e *event.ServerDescriptionChangedEvent) {
			up := e.NewDescription.Kind != "" && e.NewDescription.Kind != "Unknown"
			m.mu.Lock()
			changed := up != m.connected
			m.connected = up
			if changed {
				m.setUp(up)
			}
			if changed {
				if up {
					m.record("connected")
				} else {
					m.record("disconnected")
				}
			}
			m.mu.Unlock()
			if !changed {
				return
			}
			if up {
				m.log.Info("store connected", "address", e.Address.String(), "kind", e.NewDescription.Kind)
			} else {
				m.log.Warn("store disconnected", "address", e.Address.String())
			}
		},
		ServerHeartbeatFailed: func(e *event.ServerHeartbeatFailedEvent) {
			m.mu.Lock()
			first := !m.hbFailing
			m.hbFailing = true
			m.record("heartbeat failed")
			m.mu.Unlock()
			if first {
				m.log.Warn("store heartbeat failed", "connection", e.ConnectionID, "error", e.Failure)
			}
		},
		ServerHeartbeatSucceeded: func(*event.ServerHeartbeatSucceededEvent) {
			m.mu.Lock()
			recovered := m.hbFailing
			m.hbFailing = false
			m.mu.Unlock()
			if recovered {
				m.log.Info("store heartbeat recovered")
			}
		},
	}
}

func (m *monitor) stats() PoolStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return PoolStats{
		Connected:       m.connected,
		MaxPoolSize:     m.maxPool,
		ConnectionsOpen: int(m.open.Load()),
		ConnectionsUsed: int(m.inUse.Load()),
		LastEvent:       m.lastEvent,
		LastEventAt:     m.lastEventAt,
	}
}
