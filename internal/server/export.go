package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"

	"github.com/eventide/server/auth"
	"github.com/eventide/server/cache"
	"github.com/eventide/server/config"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/httpapi"
	"github.com/eventide/server/telemetry"
)

// Main is the eventide command: it runs with args (without the program name) until ctx ends and
// returns the process exit status. v is the build's version (main.version).
func Main(ctx context.Context, v string, args, environ []string, stdout, stderr io.Writer) int {
	version = v
	// go-redis logs through one process-wide logger (a line per failed dial while Redis is away),
	// and the OpenTelemetry SDK reports failed exports through one process-wide handler: set once
	// here, not in run, which tests call concurrently.
	redis.SetLogger(redisLogs)
	otel.SetErrorHandler(otelErrors)
	// The process is this server's: once it serves, it may give back the pages of its binary
	// that start-up read (MEMORY_RELEASE_STARTUP). A test process running servers through Run
	// or Start keeps its own pages.
	ownsProcess.Store(true)
	return exitCode(run(ctx, args, environ, stdout, stderr), stderr)
}

// Run is Main without the process-wide hooks and the exit status: what the tests drive.
func Run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	return run(ctx, args, environ, stdout, stderr)
}

// ExitCode prints err (one line) to stderr and maps it to the process exit status.
func ExitCode(err error, stderr io.Writer) int { return exitCode(err, stderr) }

// ExitConfig is the exit status of a configuration that cannot be used.
const ExitConfig = exitConfig

// Store kinds, as App.StoreKind and /readyz name them.
const (
	StoreSQLite  = storeSQLite
	StoreMongoDB = storeMongoDB
)

// App is one running server (see Start).
type App = app

// Start builds every part and starts serving; it returns once the listener is open. Stop it with
// Shutdown.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (*App, error) {
	return start(ctx, cfg, log)
}

// Addr is the host:port the server listens on.
func (a *app) Addr() string { return a.addr }

// Shutdown stops serving and closes everything the server owns.
func (a *app) Shutdown(ctx context.Context) error { return a.shutdown(ctx) }

// Config is the configuration the server started with.
func (a *app) Config() *config.Config { return a.cfg }

// Auth is the server's authenticator (its Hashes count every bcrypt run).
func (a *app) Auth() *auth.Auth { return a.auth }

// Store is the store the server writes to, under its cache.
func (a *app) Store() eventide.Store { return a.store }

// StoreKind is StoreSQLite or StoreMongoDB.
func (a *app) StoreKind() string { return a.storeIs }

// Cache is the key-value cache with its fallback switch.
func (a *app) Cache() *cache.Switch { return a.cache }

// Tracing is the server's tracing (off unless OTEL_* configures an endpoint).
func (a *app) Tracing() *telemetry.Tracing { return a.tracing }

// Sessions are the long-lived connections' sessions.
func (a *app) Sessions() *httpapi.Sessions { return a.sessions }

// LeanSockets is the lean websocket transport; nil with WS_TRANSPORT=gqlgen.
func (a *app) LeanSockets() *httpapi.LeanSockets { return a.lean }

// Handler is the server's whole HTTP handler, for tests that serve it on a listener of their
// own (TLS, HTTP/2).
func (a *app) Handler() http.Handler { return a.http.Handler() }

// SQLitePath is the SQLite store's file in dataDir.
func SQLitePath(dataDir string) string { return sqlitePath(dataDir) }

// NewLogger builds the slog logger cfg asks for, to stderr or a rotated file.
func NewLogger(cfg *config.Config, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	return newLogger(cfg, stderr)
}
