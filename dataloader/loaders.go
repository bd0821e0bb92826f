package dataloader

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventide/server/eventide"
)

// Source is what the loaders read: the cached store, whose batch reads look up the shared cache
// for all keys at once and load the misses with one $in query.
type Source interface {
	UsersByIDs(ctx context.Context, ids []string) ([]*eventide.User, error)
	VenuesByIDs(ctx context.Context, ids []string) ([]*eventide.Venue, error)
	EventsByIDs(ctx context.Context, ids []string) ([]*eventide.Event, error)
	RegistrationsOf(ctx context.Context, userID string, eventIDs []string) ([]*eventide.Registration, error)
	WaitlistPositions(ctx context.Context, ids []string) (map[string]int, error)
}

// Loaders are one response's loaders. A relation that the schema resolves per object has one
// here; counts need none of their own, since they are fields of the event record (kept exact by
// the store), so the Events loader serves them.
type Loaders struct {
	Users  *Loader[*eventide.User]
	Venues *Loader[*eventide.Venue]
	Events *Loader[*eventide.Event]
	// Registrations is the viewer's registration by event id; nil when the viewer has none (or
	// is anonymous).
	Registrations *Loader[*eventide.Registration]
	// Positions is a registration's place in its event's waitlist by registration id; 0 when it
	// is not waitlisted.
	Positions *Loader[int]
}

// Options configures New and Middleware.
type Options struct {
	Config
	// Metrics, when set, observes batch sizes by loader.
	Metrics *Metrics
	// Tracer, when set, makes each batch a span (nil: tracing off).
	Tracer trace.Tracer
}

// New returns loaders reading src for viewer (nil when anonymous).
func New(src Source, viewer *eventide.User, o Options) *Loaders {
	cfg := func(name string) Config {
		c := o.Config
		c.Name, c.Tracer = name, o.Tracer
		if o.Metrics != nil {
			c.Observe = o.Metrics.observer(name)
		}
		return c
	}
	return &Loaders{
		Users:         newUserLoader(src, cfg("users")),
		Venues:        newVenueLoader(src, cfg("venues")),
		Events:        newEventLoader(src, cfg("events")),
		Registrations: newRegistrationLoader(src, viewer, cfg("registrations")),
		Positions:     newPositionLoader(src, cfg("positions")),
	}
}

// Clear forgets what every loader remembers; a resolver calls it after a write, so that the rest
// of the response reads what the write left.
func (l *Loaders) Clear() {
	l.Users.Clear()
	l.Venues.Clear()
	l.Events.Clear()
	l.Registrations.Clear()
	l.Positions.Clear()
}

type ctxKey struct{}

// With returns ctx carrying l.
func With(ctx context.Context, l *Loaders) context.Context {
	return context.WithValue(ctx, ctxKey{}, l)
}

// For returns the loaders of the response ctx belongs to, or nil outside one.
func For(ctx context.Context) *Loaders {
	l, _ := ctx.Value(ctxKey{}).(*Loaders)
	return l
}

// Middleware is the gqlgen extension that gives each response fresh loaders: each query and
// mutation, and each event a subscription delivers (a websocket may live for hours, and its
// events must not be resolved from what an earlier one remembered). It runs after the HTTP
// middleware has put the viewer in the context.
type Middleware struct {
	Source  Source
	Options Options
}

var _ interface {
	graphql.HandlerExtension
	graphql.ResponseInterceptor
} = Middleware{}

// ExtensionName implements graphql.HandlerExtension.
func (Middleware) ExtensionName() string { return "DataLoaders" }

// Validate implements graphql.HandlerExtension.
func (Middleware) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptResponse implements graphql.ResponseInterceptor.
func (m Middleware) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	return next(With(ctx, New(m.Source, eventide.ViewerFrom(ctx), m.Options)))
}

// Metrics is the batch-size histogram of every loader.
type Metrics struct{ sizes *prometheus.HistogramVec }

// NewMetrics registers eventide_dataloader_batch_size{loader} with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{sizes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "eventide_dataloader_batch_size",
		Help:    "Keys per dataloader batch (one cache look-up, at most one $in query).",
		Buckets: []float64{1, 2, 5, 10, 20, 50, 100},
	}, []string{"loader"})}
	reg.MustRegister(m.sizes)
	return m
}

func (m *Metrics) observer(name string) func(int) {
	o := m.sizes.WithLabelValues(name)
	return func(n int) { o.Observe(float64(n)) }
}
