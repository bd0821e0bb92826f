package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/cors"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventide/server/auth"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/respcache"
	"github.com/eventide/server/security"
)

// Check reports whether one dependency works; Detail adds what a reader of /readyz wants to know
// (the cache backend, say).
type Check struct {
	Name string
	// Required checks make /readyz 503 when they fail; others are reported only.
	Required bool
	Probe    func(ctx context.Context) (detail string, err error)
}

// Options configures New.
type Options struct {
	Logger         *slog.Logger
	GraphQL        http.Handler
	Playground     http.Handler // served at /playground and below
	Authenticator  *auth.Authenticator
	Checks         []Check
	Registry       *prometheus.Registry
	MaxBodyBytes   int64
	CORSOrigins    []string
	ReadyTimeout   time.Duration
	RequestTimeout time.Duration // header read timeout and idle timeout base
	Monitor        http.Handler  // served at /monitor and below

	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Throttle, when set, limits requests per client (429 with Retry-After).
	Throttle *security.Throttle
	// Security, when set, hears of invalid tokens (TOKEN_INVALID).
	Security *security.Log
	// MaxSocketsPerClient caps open streams (websockets, SSE and multipart subscriptions
	// together) per client address (0: no cap).
	MaxSocketsPerClient int
	// MaxConnectionsPerClient caps open connections per client address, and requests in flight
	// per client behind a trusted proxy (0: no cap); see conns.go.
	MaxConnectionsPerClient int
	// MaxBodyBytesPerClient bounds the request-body bytes one client address has in flight
	// (BodiesPerClient x MaxBodyBytes when 0).
	MaxBodyBytesPerClient int64
	// ReadTimeout is how long a whole request, body included, may take to arrive
	// (DefaultReadTimeout when 0); a stream, once open, is not cut by it.
	ReadTimeout time.Duration
	// SSEKeepAlive is the interval of keep-alive comments on an idle SSE stream
	// (DefaultSSEKeepAlive when 0); SSEWriteTimeout how long one write to an HTTP stream (SSE or
	// a multipart subscription) may wait for its reader before the stream is cut
	// (DefaultSSEWriteTimeout when 0).
	SSEKeepAlive    time.Duration
	SSEWriteTimeout time.Duration
	// MetricsApart leaves /metrics off this server: it is served on its own listener
	// (ServeMetrics, METRICS_ADDR), and here it is 404 like any unknown path.
	MetricsApart bool
	// ResponseCache, when set, answers anonymous queries with kept responses; GraphQL must be
	// built with the same cache (GraphQLOptions.ResponseCache) for it to keep any.
	ResponseCache *respcache.Cache
	// Sessions, when set, makes websockets and HTTP streams follow their token and their user's
	// current role (see Sessions).
	Sessions *Sessions

	// Calendar, when set, serves GET /events/{id}.ics and GET /calendar/{token}.ics; PublicURL,
	// when set, is the base of the URLs calendarUrl gives out (else the request's scheme and host).
	Calendar  Calendar
	PublicURL string

	// CORSAllowedHeaders are request headers a preflight accepts beyond BuiltinCORSHeaders
	// (CORS_ALLOWED_HEADERS).
	CORSAllowedHeaders []string

	// Tracer, when set, makes each /graphql request a server span, under the caller's span when
	// the request carries a W3C traceparent (nil: tracing off).
	Tracer trace.Tracer
	// Operations, the one GraphQLOptions has, counts the answers of the response cache too.
	Operations *Operations
	// LeanSockets, when GraphQL serves websockets with the lean transport, is stopped by Shutdown
	// once its sockets are closed.
	LeanSockets *LeanSockets
}

// Defaults of the HTTP timeouts (API.md: HTTP_READ_TIMEOUT, SSE keep-alive every 15 s).
const (
	DefaultReadTimeout     = 15 * time.Second
	DefaultSSEKeepAlive    = 15 * time.Second
	DefaultSSEWriteTimeout = 10 * time.Second
	// BodiesPerClient is how many bodies of the largest size one client may have in flight: a
	// client sends requests of a few KB, hundreds at once fit, and slow bodies pin at most this
	// many times HTTP_MAX_BODY_BYTES of memory per address.
	BodiesPerClient = 8
	// maxHeaderBytes bounds a request's header (Go's default is 1 MiB): a bearer token, cookies
	// and the CORS headers of a browser fit many times over.
	maxHeaderBytes = 64 << 10
	// maxReadHeaderTimeout bounds the header's arrival when HTTP_READ_TIMEOUT is longer.
	maxReadHeaderTimeout = 10 * time.Second
)

// BuiltinCORSHeaders are the request headers every preflight accepts (API.md, "HTTP surface"):
// those browsers' GraphQL clients send (Apollo Client's client awareness and CSRF headers),
// OpenTelemetry's and Sentry's trace propagation, and a request id.
var BuiltinCORSHeaders = []string{"Authorization", "Content-Type", "Accept",
	"Apollographql-Client-Name", "Apollographql-Client-Version", "Apollo-Require-Preflight",
	"X-Apollo-Operation-Name", "Traceparent", "Tracestate", "Baggage", "Sentry-Trace", "X-Request-ID"}

// CORSMaxAge is how long, in seconds, a browser may keep a preflight's answer
// (Access-Control-Max-Age): ten minutes, Chromium's own ceiling.
const CORSMaxAge = 600

// Server is the HTTP server. Shutdown closes websocket subscriptions with a close frame, then
// stops accepting and drains in-flight requests.
type Server struct {
	http *http.Server
	log  *slog.Logger

	// streams is cancelled at shutdown: every websocket and HTTP stream runs under it, so gqlgen
	// completes its subscriptions and sends a proper close.
	streams     context.Context
	stopStreams context.CancelFunc
	streamWG    sync.WaitGroup

	sseKeepAlive, sseWriteTimeout time.Duration
	conns                         *connectionCap // nil: no cap
	draining                      atomic.Bool    // see Drain
	lean                          *LeanSockets
}

// New builds the server and its routes.
func New(o Options) *Server {
	o = o.withDefaults()
	s := &Server{log: o.Logger, sseKeepAlive: o.SSEKeepAlive, sseWriteTimeout: o.SSEWriteTimeout, lean: o.LeanSockets}
	if o.MaxConnectionsPerClient > 0 {
		s.conns = newConnectionCap(o.MaxConnectionsPerClient, o.TrustedProxies, func(key string) {
			if o.Throttle != nil {
				o.Throttle.Refused(security.ScopeConnections, key, o.MaxConnectionsPerClient)
			}
		})
	}
	s.streams, s.stopStreams = context.WithCancel(context.Background())

	m := newMetrics(o.Registry)
	mux := routes(o, s.graphQLHandler(o))
	root := chain(mux, corsFor(o).Handler, limitClients(o.MaxConnectionsPerClient, o.TrustedProxies, o.Throttle),
		accessLog(o.Logger, m, o.TrustedProxies), recoverer(o.Logger), requestID, s.closeWhenDraining,
		holdStreams) // outermost: every release a websocket's middleware defers can wait for its close
	s.http = &http.Server{
		Handler: root,
		// ReadTimeout covers the whole request from its first byte, body included; net/http lifts
		// it once the body is in (startBackgroundRead) or the connection hijacked (a websocket),
		// so neither a stream nor a slow answer is cut by it: TestStreamsOutliveReadTimeout.
		ReadTimeout:       o.ReadTimeout,
		ReadHeaderTimeout: min(o.ReadTimeout, maxReadHeaderTimeout),
		MaxHeaderBytes:    maxHeaderBytes,
		IdleTimeout:       120 * time.Second,
		ConnContext:       connContext,
		ConnState:         clearWriteDeadline,
		ErrorLog:          slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
	}
	return s
}

// withDefaults fills the zero durations and sizes of o with their defaults.
func (o Options) withDefaults() Options {
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 2 * time.Second
	}
	if o.MaxBodyBytesPerClient <= 0 {
		o.MaxBodyBytesPerClient = BodiesPerClient * o.MaxBodyBytes
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.SSEKeepAlive <= 0 {
		o.SSEKeepAlive = DefaultSSEKeepAlive
	}
	if o.SSEWriteTimeout <= 0 {
		o.SSEWriteTimeout = DefaultSSEWriteTimeout
	}
	return o
}

// graphQLHandler is /graphql: o.GraphQL behind its guards.
func (s *Server) graphQLHandler(o Options) http.Handler {
	// Innermost first: the last one wraps all the others. Every guard that needs only the
	// headers (who the client is, its budget, its streams) runs before the body is read, so a
	// client over its budget is refused without its body being waited for or held in memory.
	return chain(o.GraphQL,
		codeErrorBodies, // innermost: the net under gqlgen's own uncoded error bodies
		cacheResponses(o.ResponseCache, o.Operations), // outside the transports: it sees the status they set
		withCalendarBase(o.PublicURL),
		s.trackStreams,
		o.Sessions.track, // inside authenticate (it binds the viewer the header named) and the stream caps
		limitStreams(o.MaxSocketsPerClient, o.Throttle),
		// The body, read whole within ReadTimeout, after every guard of the client; before the
		// stream caps, since whether a POST is a stream can depend on its operation (isSSE).
		graphQLBody(o.MaxBodyBytes, o.MaxBodyBytesPerClient, o.Throttle),
		checkOrigin(o.CORSOrigins),
		throttle(o.Throttle),
		keyByViewer,
		authenticate(o.Authenticator, o.Throttle, o.Security, o.Logger),
		identify(o.TrustedProxies),
		preventCSRF,
		negotiate,               // a method or an Accept /graphql cannot answer costs nothing
		traceRequests(o.Tracer), // outermost: the request's span covers every refusal too
	)
}

// routes maps every path the server answers: gql at /graphql, calendar files, the monitor and
// playground, health, readiness and (unless apart) metrics; anything else is NOT_FOUND.
func routes(o Options, gql http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/graphql", gql)
	if o.Calendar != nil {
		// The guards of /graphql that need only the headers: who the client is, who the viewer
		// is (a draft's organizer), and the client's budget.
		ics := chain(calendarFiles(o.Calendar, o.Logger), throttle(o.Throttle), keyByViewer,
			authenticate(o.Authenticator, o.Throttle, o.Security, o.Logger), identify(o.TrustedProxies))
		mux.Handle(eventFilePrefix, ics)
		mux.Handle(feedPrefix, ics)
	}
	if o.Monitor != nil {
		mux.Handle("/monitor", o.Monitor)
		mux.Handle("/monitor/", o.Monitor)
	}
	if o.Playground != nil {
		mux.Handle("/playground", o.Playground)
		mux.Handle("/playground/", o.Playground)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/playground", http.StatusFound)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.Handle("GET /readyz", readyHandler(o.Checks, o.ReadyTimeout))
	if !o.MetricsApart {
		mux.Handle("GET /metrics", metricsHandler(o.Registry))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, eventide.CodeNotFound, "no such path: "+r.URL.Path)
	})
	return mux
}

// corsFor is the CORS policy of CORS_ORIGINS and CORS_ALLOWED_HEADERS.
func corsFor(o Options) *cors.Cors {
	corsOpts := cors.Options{
		AllowedOrigins: o.CORSOrigins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost, http.MethodOptions},
		AllowedHeaders: append(slices.Clone(BuiltinCORSHeaders), o.CORSAllowedHeaders...),
		ExposedHeaders: []string{"X-Request-ID", "Retry-After",
			"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"},
		AllowCredentials: false,
		MaxAge:           CORSMaxAge,
	}
	if len(o.CORSOrigins) == 0 {
		// rs/cors takes an empty list for "*"; no CORS_ORIGINS means no other origin, as for
		// websockets (development configures "*").
		corsOpts.AllowOriginFunc = func(string) bool { return false }
	}
	return cors.New(corsOpts)
}

// clearWriteDeadline lifts the write deadline an SSE stream left on its connection once the
// connection is idle again, so the next response on it is not cut by a stale one.
func clearWriteDeadline(c net.Conn, st http.ConnState) {
	if st == http.StateIdle {
		_ = c.SetWriteDeadline(time.Time{})
	}
}

func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// ServeMetrics serves /metrics of reg alone on l (METRICS_ADDR) until ctx ends.
func ServeMetrics(ctx context.Context, l net.Listener, reg *prometheus.Registry, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(reg))
	srv := &http.Server{
		Handler:           mux,
		ReadTimeout:       DefaultReadTimeout,
		ReadHeaderTimeout: maxReadHeaderTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServePprof serves Go's profiler (/debug/pprof/) alone on l (PPROF_ADDR, a loopback address
// that config checks) until ctx ends.
func ServePprof(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// chain wraps h in middleware, the last one outermost.
func chain(h http.Handler, mw ...func(http.Handler) http.Handler) http.Handler {
	for _, m := range mw {
		h = m(h)
	}
	return h
}

// Handler is the whole HTTP handler, for tests that drive it without a listener.
func (s *Server) Handler() http.Handler { return s.http.Handler }

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	if s.conns != nil {
		l = limitListener{Listener: l, cap: s.conns}
	}
	err := s.http.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown completes open subscriptions (websockets get a close frame), stops accepting, and waits
// for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopStreams()
	err := s.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() { s.streamWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = ctx.Err()
		}
	}
	s.lean.Stop()
	return err
}

// trackStreams runs long-lived requests (websocket upgrades, SSE and multipart subscriptions)
// under the streams context, so Shutdown can end them properly, and counts them so Shutdown can
// wait for their close. An HTTP stream writes through a streamWriter (write deadlines).
func (s *Server) trackStreams(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isStream(r) {
			next.ServeHTTP(w, r)
			return
		}
		s.streamWG.Add(1)
		defer holdFrom(r.Context()).release(s.streamWG.Done)
		ctx, cancel := context.WithCancelCause(context.WithValue(r.Context(), streamsKey{}, s.streams))
		defer cancel(nil)
		// The cause tells the multipart transport to say why in a last part.
		stop := context.AfterFunc(s.streams, func() { cancel(errServerShutdown) })
		defer stop()
		ctx = withTransport(ctx, TransportWebsocket)
		if kind := httpStream(r); kind != streamNone {
			if kind == streamSSE {
				ctx = withTransport(ctx, TransportSSE)
			} else {
				ctx = withTransport(ctx, TransportMultipart)
			}
			sw := newStreamWriter(w, s.sseWriteTimeout, func() { cancel(nil) })
			defer sw.close()
			if kind == streamSSE { // a multipart subscription writes its own heartbeats
				sw.keepAlive(s.sseKeepAlive)
			}
			w = sw
			ctx = withStreamWriter(ctx, sw)
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// streamsKey holds the streams context in a stream's request: the lean websocket transport, whose
// connection outlives its request, closes its socket when it ends.
type streamsKey struct{}

type readyReport struct {
	Status string                 `json:"status"`
	Checks map[string]readyDetail `json:"checks"`
}

type readyDetail struct {
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
	Error  string `json:"error,omitempty"`
}

func readyHandler(checks []Check, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		rep := readyReport{Status: "ok", Checks: make(map[string]readyDetail, len(checks))}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range checks {
			wg.Go(func() {
				detail, err := c.Probe(ctx)
				d := readyDetail{Status: "up", Detail: detail}
				if err != nil {
					d.Status, d.Error = "down", err.Error()
				}
				mu.Lock()
				defer mu.Unlock()
				rep.Checks[c.Name] = d
				if err != nil && c.Required {
					rep.Status = "unavailable"
				}
			})
		}
		wg.Wait()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if rep.Status != "ok" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(rep)
	})
}
