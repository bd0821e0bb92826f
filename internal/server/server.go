// Package server is the Eventide GraphQL server's wiring: Main runs the command (package main is
// main.go calling it), Start builds and serves one server, as the end-to-end tests in e2e/ do.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
	"gopkg.in/natefinch/lumberjack.v2"

	services "github.com/eventide/server/app"
	"github.com/eventide/server/apq"
	"github.com/eventide/server/auth"
	"github.com/eventide/server/bus"
	"github.com/eventide/server/cache"
	"github.com/eventide/server/calendar"
	"github.com/eventide/server/config"
	"github.com/eventide/server/dataloader"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/graph"
	"github.com/eventide/server/graph/model"
	"github.com/eventide/server/httpapi"
	"github.com/eventide/server/internal/heapsample"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/internal/startpages"
	"github.com/eventide/server/memstats"
	"github.com/eventide/server/monitor"
	"github.com/eventide/server/playground"
	"github.com/eventide/server/pubsub"
	"github.com/eventide/server/querylimit"
	"github.com/eventide/server/resolvers"
	"github.com/eventide/server/respcache"
	"github.com/eventide/server/security"
	"github.com/eventide/server/seed"
	"github.com/eventide/server/storecache"
	"github.com/eventide/server/supervisor"
	"github.com/eventide/server/telemetry"
	"github.com/eventide/server/webhook"
)

// version is main's, set at build time with -ldflags "-X main.version=..." and passed to Main.
var version = "dev"

// Exit codes. exitConfig is for a configuration that cannot be used: the one line on stderr
// names the key.
const (
	exitOK     = 0
	exitError  = 1
	exitConfig = 2
)

// redisLogs and otelErrors take go-redis's log lines and the OpenTelemetry SDK's errors to the
// server's logger once run has one: each library has one such hook per process.
var (
	redisLogs  = &cache.RedisLogger{}
	otelErrors = &telemetry.ErrorLog{}
)

// exitCode prints err (one line) and maps it to the process exit status.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, config.ErrHelp) {
		fmt.Fprintln(stderr, "usage: eventide [flags]\n"+config.Usage())
		return exitOK
	}
	fmt.Fprintln(stderr, "eventide:", err)
	if errors.Is(err, errRestart) {
		return memstats.ExitRestart
	}
	var se *supervisor.ExitError
	if errors.As(err, &se) {
		return se.ExitCode()
	}
	var ce *config.Error
	if errors.As(err, &ce) || errors.Is(err, errBadFlags) {
		return exitConfig
	}
	return exitError
}

var errBadFlags = errors.New("bad command line or config file")

// run loads the configuration, serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "backup" {
		return runBackup(ctx, args[1:], environ, stdout)
	}
	cfg, err := config.Load(config.Sources{Args: args, Environ: environ})
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) || errors.Is(err, config.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errBadFlags, err)
	}
	if cfg.MongoURI == "" {
		// Before anything starts: a supervisor must not restart what cannot work.
		if err := checkDataDir(cfg.DataDir); err != nil {
			return err
		}
	}
	if cfg.Supervise {
		return supervise(ctx, cfg, args, environ, stdout, stderr)
	}
	inherited, err := supervisor.FromEnv(environ)
	if err != nil {
		return err
	}
	defer inherited.Close()
	log, closeLog, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	defer closeLog.Close()
	redisLogs.SetLogger(log.With("component", "redis"))
	otelErrors.SetLogger(log.With("component", "tracing"))
	log.Info("configuration", "config", cfg)

	a, err := startWith(ctx, cfg, log, startOptions{restarts: supervisor.RestartsFromEnv(environ), inherited: inherited})
	if err != nil {
		if ctx.Err() != nil {
			// Stopped (SIGTERM, SIGINT) while starting: a clean stop, not a failure, or a
			// supervisor stopping a child it has just started would report an error.
			log.Info("stopped during start-up", "reason", context.Cause(ctx), "error", err)
			return nil
		}
		log.Error("start-up failed", "error", err)
		return err
	}
	if inherited != nil {
		if err := inherited.Ready(); err != nil {
			log.Warn("could not tell the supervisor this process is ready", "error", err)
		}
	}
	served, result := a.serveUntilStop(ctx)
	if served {
		a.drain()
	}
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := a.shutdown(sctx); err != nil {
		return errors.Join(result, err)
	}
	log.Info("stopped cleanly")
	return result
}

// serveUntilStop serves until ctx ends, the server fails (served is false then: there is
// nothing to drain) or the memory watchdog asks for a restart. Under a supervisor that restart
// is the supervisor's to make, and this process serves on until it is stopped; alone it returns
// errRestart.
func (a *app) serveUntilStop(ctx context.Context) (served bool, _ error) {
	restart := a.restart
	for {
		select {
		case <-ctx.Done():
			a.log.Info("shutting down", "reason", context.Cause(ctx))
			return true, nil
		case err := <-a.serveErr:
			a.log.Error("server stopped", "error", err)
			return false, nil
		case <-restart:
			if a.inherited.AskRestart() != nil {
				a.log.Error("memory stayed over MEMORY_RESTART_THRESHOLD: draining, then exiting to be restarted",
					"exit_code", memstats.ExitRestart)
				return true, errRestart
			}
			// The supervisor starts the next process on the same socket and, once it serves,
			// sends SIGTERM here: serving on until then refuses nobody.
			a.log.Warn("memory stayed over MEMORY_RESTART_THRESHOLD: asked the supervisor for a restart; serving until it stops this process")
			restart = nil // asked once; now wait for the stop
		}
	}
}

// errRestart asks for a restart: the process exits with memstats.ExitRestart (75, EX_TEMPFAIL),
// which the -supervise parent, systemd (RestartForceExitStatus=75) or Kubernetes restart on.
var errRestart = errors.New("memory stayed over MEMORY_RESTART_THRESHOLD; exiting to be restarted")

// newLogger builds the slog logger the configuration asks for, to stderr or a rotated file.
func newLogger(cfg *config.Config, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	var w io.Writer = stderr
	var closer io.Closer = io.NopCloser(nil)
	if cfg.LogFile != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.LogFile), 0o750); err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		lj := &lumberjack.Logger{
			Filename: cfg.LogFile, MaxSize: cfg.LogMaxSizeMB, MaxBackups: cfg.LogMaxBackups,
			MaxAge: cfg.LogMaxAgeDays, Compress: true,
		}
		w, closer = lj, lj
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, nil, &config.Error{Key: "LOG_LEVEL", Value: cfg.LogLevel, Allowed: "must be debug, info, warn or error"}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(h), closer, nil
}

// app is one running server with everything it owns, in the order it is shut down.
type app struct {
	cfg      *config.Config
	log      *slog.Logger
	addr     string
	http     *httpapi.Server
	store    appStore
	storeIs  string // storeSQLite or storeMongoDB, as /readyz names it
	cache    *cache.Switch
	tracing  *telemetry.Tracing // Off() unless OTEL_* configures an endpoint
	bus      *bus.Bus
	sessions *httpapi.Sessions
	lean     *httpapi.LeanSockets // nil with WS_TRANSPORT=gqlgen
	auth     *auth.Auth           // its Hashes count every bcrypt run (tests read it)
	serveErr chan error
	// inherited holds the sockets a -supervise parent handed over (nil without one).
	inherited *supervisor.Inherited
	// draining fails /readyz once shutdown began (SHUTDOWN_DELAY).
	draining atomic.Bool
	// listener is the public one, closed by drain before the HTTP server's Shutdown.
	listener *drainListener
	// restart is closed when the memory watchdog asks for a restart.
	restart     chan struct{}
	restartOnce sync.Once
	// stop ends the background loops (sampler, security sweep, Redis limiter) at shutdown.
	stop context.CancelFunc
	bg   sync.WaitGroup
}

// start builds every part and starts serving; it returns once the listener is open.
func start(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	return startWith(ctx, cfg, log, startOptions{})
}

// startOptions is what start needs beyond the configuration.
type startOptions struct {
	restarts int // how often the -supervise parent restarted this process (EVENTIDE_RESTARTS)
	// inherited has the sockets the -supervise parent handed over; nil: listen on the addresses.
	inherited *supervisor.Inherited
}

// startWith builds every part, each by its builder below, in the order they need each other,
// and starts serving; it returns once the listener is open. On an error what was built is
// stopped and closed.
func startWith(ctx context.Context, cfg *config.Config, log *slog.Logger, o startOptions) (_ *app, err error) {
	began := time.Now()
	if cfg.PprofAddr != "" {
		// The profiler will be served: its heap profile samples from here on (internal/heapsample
		// keeps sampling off in a process that has no profiler to ask).
		heapsample.Resume()
	}
	a := &app{cfg: cfg, log: log, serveErr: make(chan error, 1), restart: make(chan struct{}), inherited: o.inherited}
	bgctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	a.stop = stop
	defer func() {
		if err != nil {
			a.stopBackground()
			_ = a.closeStore(context.Background())
			a.stopTracing(context.Background())
		}
	}()
	w := &wiring{app: a, reg: prometheus.NewRegistry(), bgctx: bgctx, calendar: calendar.NewKeys(cfg.JWTSecret)}
	w.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := w.buildTracing(ctx); err != nil {
		return nil, err
	}
	hooks, err := w.buildStore(ctx)
	if err != nil {
		return nil, err
	}
	// Long-lived connections re-check their viewer whenever a user is written, here or on
	// another replica; the sessions exist once the authenticator does, below.
	var sessions atomic.Pointer[httpapi.Sessions]
	data := w.buildCache(ctx, func(id string) { sessions.Load().UserChanged(id) })
	sec := w.buildSecurity()
	w.startBus(ctx, data.store)
	sampler := w.buildMemory()
	authn, err := w.buildAuth(data.store, sec.log)
	if err != nil {
		return nil, err
	}
	sessions.Store(a.sessions)
	if err := w.buildSeed(ctx, data.store, authn); err != nil {
		return nil, err
	}
	server := model.ServerInfo{Pid: os.Getpid(), StartedAt: began, Version: version, GoVersion: runtime.Version(),
		Environment: cfg.AppEnv, Restarts: o.restarts}
	schema := w.buildSchema(data, sec, sampler, hooks, server)
	ops := httpapi.NewOperations(w.reg, w.tracer, 0)
	gql := w.buildGraphQL(schema, data, sec, authn, ops)
	a.http = w.buildHTTP(gql, data, sec, authn, ops)
	if err := w.serve(); err != nil {
		return nil, err
	}
	log.Info("listening", "addr", "http://"+a.addr, "playground", "http://"+a.addr+"/playground",
		"startup_ms", time.Since(began).Milliseconds())
	return a, nil
}

// wiring is what startWith's builders share: the app they fill in, the registry of its metrics,
// its tracer (nil with tracing off), the context of its background loops (ended by app.stop) and
// the keys of calendar feed URLs (which the resolvers make and the HTTP server checks).
type wiring struct {
	*app
	reg      *prometheus.Registry
	tracer   trace.Tracer
	bgctx    context.Context
	calendar *calendar.Keys
}

// buildTracing starts OpenTelemetry tracing as the OTEL_* keys say: off (no SDK, a nil tracer
// everywhere) unless they name an endpoint.
func (w *wiring) buildTracing(ctx context.Context) error {
	w.tracing = telemetry.Off()
	if endpoint := w.cfg.TracesEndpoint(); endpoint != "" {
		// Both were validated by config; parsing again cannot fail.
		headers, _ := config.ParseOtelHeaders(w.cfg.OtelHeaders)
		ratio, _ := config.ParseRatio(w.cfg.OtelTracesSamplerArg)
		t, err := telemetry.Start(ctx, telemetry.Options{
			Endpoint: endpoint, Headers: headers, ServiceName: w.cfg.OtelServiceName, ServiceVersion: version,
			Sampler: w.cfg.OtelTracesSampler, SamplerArg: ratio,
		})
		if err != nil {
			return err
		}
		w.tracing = t
		w.log.Info("tracing on", "endpoint", endpoint, "sampler", w.cfg.OtelTracesSampler, "queue", telemetry.DefaultQueueSize)
	}
	w.tracer = w.tracing.Tracer("github.com/eventide/server")
	return nil
}

// buildStore opens the store (MongoDB when MONGO_URI is set, else SQLite under DATA_DIR: see
// openStore) and the webhook worker. The stores write each webhook message in the write of its
// change (nothing without WEBHOOK_URLS); the worker, woken by those writes, delivers them. The
// outbox is nil when the store keeps none.
func (w *wiring) buildStore(ctx context.Context) (eventide.WebhookOutbox, error) {
	var wake atomic.Pointer[webhook.Worker]
	outbox := eventide.OutboxOptions{Receivers: w.cfg.WebhookURLs, Notify: func() {
		if wk := wake.Load(); wk != nil {
			wk.Notify()
		}
	}}
	var err error
	w.store, w.storeIs, err = openStore(ctx, w.cfg, w.log, w.reg, telemetry.NewCommands(w.reg, w.tracer), outbox)
	if err != nil {
		return nil, err
	}
	hooks, _ := w.store.(eventide.WebhookOutbox)
	if len(w.cfg.WebhookURLs) > 0 && hooks != nil {
		wake.Store(w.buildWebhooks(hooks))
	}
	return hooks, nil
}

// buildWebhooks starts the worker that delivers the outbox's messages.
func (w *wiring) buildWebhooks(hooks eventide.WebhookOutbox) *webhook.Worker {
	cfg := w.cfg
	wk := webhook.New(hooks, webhook.Options{
		Receivers: cfg.WebhookURLs, Secret: cfg.WebhookSecret, Timeout: cfg.WebhookTimeout,
		MaxAttempts: cfg.WebhookMaxAttempts, Backoff: cfg.WebhookBackoff, Retention: cfg.WebhookRetention,
		Logger: w.log.With("component", "webhook"),
	})
	w.reg.MustRegister(wk.Collectors()...)
	w.goBackground(func() { wk.Run(w.bgctx) })
	w.log.Info("webhooks on", "receivers", len(cfg.WebhookURLs), "max_attempts", cfg.WebhookMaxAttempts, "timeout", cfg.WebhookTimeout)
	return wk
}

// dataParts is the store as everything reads it: through the shared cache, with the relays that carry
// its changes to subscribers (on every replica) and the response cache (nil when off).
type dataParts struct {
	store     *storecache.Store
	events    *storecache.EventRelay
	regs      *storecache.RegistrationRelay
	responses *respcache.Cache
}

// maxEventSubscribers bounds eventUpdated's subscribers in one process.
const maxEventSubscribers = 10_000

// buildCache opens the shared cache, Redis when configured (unreachable is a fallback, not a
// failure) else memory, the replica bus over it, and the store read through it: every write
// invalidates it, here and, over the bus, on the other replicas. The store and the relays
// register their topics on the bus; startBus starts it. userChanged hears of every user written.
func (w *wiring) buildCache(ctx context.Context, userChanged func(id string)) dataParts {
	cfg, log := w.cfg, w.log.With("component", "cache")
	w.cache = cache.Open(ctx, cache.Options{
		UseRedis: cfg.UseRedis,
		Redis: cache.RedisOptions{
			Addrs: cache.Addrs(cfg.RedisAddrs, cfg.RedisHost, cfg.RedisPort), MasterName: cfg.RedisMasterName, SentinelPassword: cfg.RedisSentinelPassword,
			Password: cfg.RedisPassword, DB: cfg.RedisDB, Prefix: storecache.KeyPrefix(cfg.MongoDatabase),
			Tracer: w.tracer,
		},
		MaxEntries: cfg.CacheMaxEntries, TTL: cfg.CacheTTL, FallbackTTL: cfg.CacheFallbackTTL, Logger: log, Registerer: w.reg,
	})
	w.bus = bus.New(w.cache, log)
	w.reg.MustRegister(w.bus.Collectors()...)
	var d dataParts
	var backing storecache.Backing = w.store
	if h, ok := w.store.(storecache.Health); ok { // MongoDB: fail at once while known down
		backing = storecache.FailFast(w.store, h)
	}
	opts := storecache.StoreOptions{TTL: cfg.CacheTTL, Logger: log, Bus: w.bus, Registerer: w.reg, OnUserChanged: userChanged}
	if cfg.ResponseCacheMaxBytes > 0 {
		d.responses = respcache.New(w.cache, respcache.Options{MaxBytes: cfg.ResponseCacheMaxBytes, TTL: cfg.CacheTTL})
		w.reg.MustRegister(d.responses.Collectors()...)
		opts.Responses = d.responses
	}
	d.store = storecache.NewStore(backing, w.cache, opts)
	// Subscribers of eventUpdated and of myRegistrations: 10 000 of each in all, each client
	// address at most 1% of them, so that a hundred addresses are needed to fill a broker (the
	// stream and subscription caps alone let one address hold 1 000: 50 websockets x 20).
	perAddr := pubsub.PerOwner(maxEventSubscribers/100, func(ctx context.Context) string { return reqmeta.ClientFrom(ctx).AddrKey })
	d.events = storecache.NewEventRelay(w.bus, pubsub.New[*eventide.Event](16, maxEventSubscribers, perAddr))
	d.regs = storecache.NewRegistrationRelay(w.bus, pubsub.New[*eventide.Registration](16, maxEventSubscribers, perAddr))
	log.Info("cache ready", "backend", w.cache.Describe(), "redis", cfg.UseRedis, "ttl", cfg.CacheTTL, "max_entries", cfg.CacheMaxEntries)
	return d
}

// securityParts are the security event log, the brute-force detector and the throttle.
type securityParts struct {
	log      *security.Log
	brute    *security.BruteForce
	throttle *security.Throttle
}

// startBus subscribes the replica bus to the topics registered by buildCache and buildSecurity,
// then replaces the tokens of the list families (store.Init), which the bus carries to the other
// replicas like any invalidation.
func (w *wiring) startBus(ctx context.Context, store *storecache.Store) {
	w.bus.Start()
	store.Init(ctx)
}

// buildSecurity starts the bounded event log (shared between replicas over Redis when it is on),
// the brute-force detector and the throttle (its budgets in Redis, or in memory as a fallback).
func (w *wiring) buildSecurity() securityParts {
	cfg, log := w.cfg, w.log.With("component", "security")
	events := security.NewLog(security.LogConfig{MaxEvents: cfg.SecurityMaxEvents, MaxAge: cfg.SecurityEventMaxAge,
		RepeatWindow: cfg.ThrottleTTL, Logger: log})
	w.goBackground(func() { events.Run(w.bgctx) })
	w.reg.MustRegister(events.Collectors()...)
	memLimiter := security.NewMemoryLimiter(security.MemoryLimiterConfig{})
	var limiter security.Limiter = memLimiter
	if r := w.cache.Redis(); r != nil {
		limiter = w.buildSecurityRedis(r.Client(), events, memLimiter, log)
	}
	brute := security.NewBruteForce(security.BruteForceConfig{Threshold: cfg.BruteForceThreshold, Window: cfg.BruteForceWindow, Log: events})
	throttle := security.NewThrottle(limiter, security.ThrottleConfig{
		Window: cfg.ThrottleTTL, Limit: cfg.ThrottleLimit, LoginLimit: cfg.LoginThrottleLimit, SignupLimit: cfg.SignupThrottleLimit,
		BruteForce: brute, Log: events, Logger: log,
	})
	w.reg.MustRegister(throttle.Collectors()...)
	return securityParts{log: events, brute: brute, throttle: throttle}
}

// buildSecurityRedis shares the event log with the other replicas over the replica bus and
// returns the limiter that keeps the throttle's budgets in Redis, falling back to local.
func (w *wiring) buildSecurityRedis(r redis.UniversalClient, events *security.Log, local *security.MemoryLimiter, log *slog.Logger) security.Limiter {
	prefix := storecache.KeyPrefix(w.cfg.MongoDatabase)
	w.bus.Handle(bus.Topic{Name: security.Topic, Receive: events.Receive})
	events.Share(w.bus)
	rl := security.NewRedisLimiter(r, local, security.RedisLimiterConfig{Prefix: prefix + "rl:", Logger: log})
	w.goBackground(func() { rl.Run(w.bgctx) })
	w.reg.MustRegister(rl.Collectors()...)
	return rl
}

// buildMemory starts one sampler for the process (history, subscriptions, the periodic log line)
// and the watchdog that empties the memory cache, then asks for a restart, when RSS stays high.
func (w *wiring) buildMemory() *memstats.Sampler {
	cfg, log := w.cfg, w.log.With("component", "memory")
	sampler := memstats.New(memstats.Options{
		LimitBytes: memstats.ApplyMemoryLimit(cfg.MemoryLimit, log), LogInterval: cfg.MemoryLogInterval, Logger: log,
		// Subscribers are admins' websockets, already capped per client (sockets x subscriptions):
		// the sampler must not refuse one that those caps allow.
		MaxSubscribers: max(memstats.DefaultMaxSubscribers, cfg.WSMaxConnectionsPerClient*cfg.WSMaxSubscriptionsPerConnection),
		Watchdog: memstats.WatchdogOptions{
			Threshold: cfg.MemoryRestartThreshold, After: cfg.MemoryRestartAfter, Interval: cfg.MemoryCheckInterval,
			OnPressure: func() {
				n, _ := w.cache.Memory().Purge(context.Background())
				log.Warn("memory pressure: emptied the in-memory cache", "entries", n)
			},
			OnRestart: func() { w.restartOnce.Do(func() { close(w.restart) }) },
		},
	})
	w.goBackground(func() { _ = sampler.Run(w.bgctx) })
	w.reg.MustRegister(sampler.Collectors()...)
	return sampler
}

// buildAuth makes the password hasher and token issuer, the authenticator that reads users
// through the cache, and the registry of long-lived connections' sessions (app.sessions).
func (w *wiring) buildAuth(users *storecache.Store, events *security.Log) (*auth.Authenticator, error) {
	cfg := w.cfg
	tokens, err := auth.New(cfg.PasswordHashCost, cfg.JWTSecret, cfg.JWTTTL, auth.HashConcurrency(cfg.PasswordHashConcurrency))
	if err != nil {
		return nil, err
	}
	w.auth = tokens
	w.reg.MustRegister(tokens.Collectors()...)
	if cfg.JWTSecretRandom {
		w.log.Warn("JWT_SECRET is not set: using a random secret, so tokens end with this process")
	}
	authn := &auth.Authenticator{Auth: tokens, Users: users}
	w.sessions = httpapi.NewSessions(httpapi.SessionsOptions{Authenticator: authn, Security: events, Logger: w.log.With("component", "sessions")})
	w.goBackground(func() { w.sessions.Run(w.bgctx) })
	return authn, nil
}

// buildSeed writes the demo data (SEED_DEMO) and the admin account (ADMIN_EMAIL) the
// configuration asks for.
func (w *wiring) buildSeed(ctx context.Context, store *storecache.Store, authn *auth.Authenticator) error {
	if w.cfg.SeedDemo {
		hash, err := w.auth.Hash(seed.DemoPassword)
		if err != nil {
			return err
		}
		if _, err := seed.Demo(ctx, store, hash, time.Now(), w.log.With("component", "seed")); err != nil {
			return err
		}
	}
	if w.cfg.AdminEmail != "" {
		created, err := authn.EnsureAdmin(ctx, w.cfg.AdminEmail, w.cfg.AdminPassword)
		if err != nil {
			return err
		}
		w.log.Info("admin account ready", "email", w.cfg.AdminEmail, "created", created, "password", "from ADMIN_PASSWORD")
	}
	return nil
}

// buildSchema makes the resolver root, the injection point of everything the resolvers use, and
// the executable schema over it.
func (w *wiring) buildSchema(d dataParts, sec securityParts, sampler *memstats.Sampler, hooks eventide.WebhookOutbox, server model.ServerInfo) graphql.ExecutableSchema {
	root := &resolvers.Resolver{
		App: services.New(services.Config{
			Store: d.store, Events: d.events, Registrations: d.regs, Passwords: resolvers.Passwords(w.auth),
			Guard: resolvers.Guard(sec.throttle, sec.brute), Journal: resolvers.Journal(sec.log),
		}),
		Calendar:      w.calendar,
		PublicURL:     w.cfg.PublicURL,
		Store:         d.store,
		Events:        d.events,
		Cache:         d.store,
		Registrations: d.regs,
		Log:           w.log,

		Security: sec.log,
		Memory:   sampler,
		Pool:     w.store.Stats,
		Webhooks: hooks,
		Server:   server,
	}
	return graph.NewExecutableSchema(graph.Config{
		Resolvers:  root,
		Directives: graph.DirectiveRoot{HasRole: root.HasRole},
	})
}

// buildGraphQL makes the GraphQL handler: its transports (with the lean websockets unless
// WS_TRANSPORT=gqlgen), limits, guards and the schema's own extensions and error presenter.
func (w *wiring) buildGraphQL(schema graphql.ExecutableSchema, d dataParts, sec securityParts, authn *auth.Authenticator, ops *httpapi.Operations) http.Handler {
	cfg := w.cfg
	if cfg.WSTransport != config.WSTransportGqlgen {
		w.lean = httpapi.NewLeanSockets(w.log)
	}
	return httpapi.NewGraphQL(schema, httpapi.GraphQLOptions{
		LeanSockets:    w.lean,
		Logger:         w.log,
		Authenticator:  authn,
		Introspection:  !cfg.IsProduction(),
		AllowedOrigins: cfg.CORSOrigins,
		APQ:            apq.New(w.cache, cfg.CacheTTL, w.log.With("component", "cache")),
		Limits: querylimit.Limits{
			MaxDepth: cfg.QueryMaxDepth, MaxComplexity: cfg.QueryMaxComplexity,
			MaxAliases: cfg.QueryMaxAliases, MaxTokens: cfg.QueryMaxTokens,
		},
		DisableSuggestions:            cfg.IsProduction(),
		Security:                      sec.log,
		Throttle:                      sec.throttle,
		MaxSubscriptionsPerConnection: cfg.WSMaxSubscriptionsPerConnection,
		WriteTimeout:                  cfg.WSWriteTimeout,
		MultipartHeartbeat:            cfg.MultipartHeartbeatInterval,
		ResponseCache:                 d.responses,
		Extensions: []graphql.HandlerExtension{
			resolvers.AccessDenials{},
			resolvers.AuthPayloadViewer{}, // login's and signUp's user, as that user sees themself
			dataloader.Middleware{Source: d.store, Options: dataloader.Options{Metrics: dataloader.NewMetrics(w.reg), Tracer: w.tracer}},
		},
		ErrorPresenter: resolvers.ErrorPresenter(w.log),
		Recover:        resolvers.Recover,
		Operations:     ops,
	})
}

// buildHTTP makes the HTTP server: the GraphQL handler behind the guards (connections, bodies,
// CORS, throttle, sessions), the playground, the monitor, calendar feeds, /metrics and /readyz.
func (w *wiring) buildHTTP(gql http.Handler, d dataParts, sec securityParts, authn *auth.Authenticator, ops *httpapi.Operations) *httpapi.Server {
	cfg := w.cfg
	return httpapi.New(httpapi.Options{
		LeanSockets: w.lean,
		Logger:      w.log,
		GraphQL:     gql,
		Playground:  playground.Handler("Eventide", "/graphql"),
		Monitor:     monitor.Handler(),

		TrustedProxies:      cfg.TrustedProxies,
		Throttle:            sec.throttle,
		Security:            sec.log,
		MaxSocketsPerClient: cfg.WSMaxConnectionsPerClient,
		ResponseCache:       d.responses,
		Sessions:            w.sessions,
		Authenticator:       authn,
		Registry:            w.reg,
		Tracer:              w.tracer,
		Operations:          ops,
		MaxBodyBytes:        cfg.HTTPMaxBodyBytes,
		CORSOrigins:         cfg.CORSOrigins,
		CORSAllowedHeaders:  cfg.CORSAllowedHeaders,
		Calendar:            &calendar.Service{Store: d.store, Keys: w.calendar},
		PublicURL:           cfg.PublicURL,

		// Each stream is a connection: the connection cap never refuses what the stream cap allows.
		MaxConnectionsPerClient: max(cfg.HTTPMaxConnectionsPerClient, cfg.WSMaxConnectionsPerClient),
		ReadTimeout:             cfg.HTTPReadTimeout,
		SSEKeepAlive:            cfg.SSEKeepAliveInterval,
		SSEWriteTimeout:         cfg.SSEWriteTimeout,
		MetricsApart:            cfg.MetricsAddr != "",

		// The cache's check is not required: with Redis gone it serves from memory.
		Checks: []httpapi.Check{w.drainCheck(), w.storeCheck(),
			{Name: "cache", Required: false, Probe: w.cache.Ready}},
	})
}

// serve opens the listeners (the public one, PPROF_ADDR's and METRICS_ADDR's) and starts serving.
func (w *wiring) serve() error {
	cfg := w.cfg
	l, err := w.listen(listenerHTTP, net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return &config.Error{Key: "PORT", Value: strconv.Itoa(cfg.Port), Allowed: "must be a free port: " + err.Error()}
	}
	w.addr = l.Addr().String()
	if cfg.PprofAddr != "" {
		if err := w.servePprof(w.bgctx, cfg.PprofAddr); err != nil {
			_ = l.Close()
			return err
		}
	}
	if err := w.serveMetrics(w.bgctx, w.reg); err != nil {
		_ = l.Close()
		return err
	}
	w.listener = newDrainListener(l)
	// What start-up allocated and dropped (the schema's parse, the demo data, password hashing,
	// an import) goes back to the OS now: the runtime's scavenger would keep it while the heap
	// stays under its goal, and an idle server would hold it for good (about 2–3 MiB here).
	debug.FreeOSMemory()
	if cfg.MemoryReleaseStartup && ownsProcess.Load() {
		releaseStartupPages(w.log)
	}
	go func() { w.serveErr <- w.http.Serve(w.listener) }()
	return nil
}

// ownsProcess is set by Main: the process is the server's, not a test's that runs servers in it.
var ownsProcess atomic.Bool

// releaseStartupPages gives the kernel back the binary's pages that start-up read (package
// initialisation, the store's schema, seeding): internal/startpages. Whatever runs next faults
// its own pages back in; after its first events page the server maps 18.7 MiB of its binary
// instead of 24.6 (BENCHMARKS.md "Idle RSS, part by part").
func releaseStartupPages(log *slog.Logger) {
	res, err := startpages.Release()
	if err != nil {
		log.Debug("start-up pages not released", "err", err)
		return
	}
	log.Debug("start-up pages released", "ranges", res.Ranges, "bytes", res.Bytes,
		"rss_file_before", res.FileBefore, "rss_file_after", res.FileAfter)
}

// shutdown completes subscriptions, drains requests, then closes the store.
func (a *app) shutdown(ctx context.Context) error {
	defer a.abortStoreLate(ctx)()
	err := a.http.Shutdown(ctx)
	a.stopBackground()
	err = errors.Join(err, a.closeStore(ctx))
	a.stopTracing(ctx)
	return err
}

// maxTraceFlush bounds how long shutdown waits to export the spans still queued: a collector that
// is down must not hold the process past SHUTDOWN_TIMEOUT, nor fail its exit.
const maxTraceFlush = 2 * time.Second

// stopTracing exports the queued spans, within ctx and maxTraceFlush; a failure is logged only.
func (a *app) stopTracing(ctx context.Context) {
	if !a.tracing.Enabled() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, maxTraceFlush)
	defer cancel()
	if err := a.tracing.Shutdown(ctx); err != nil {
		a.log.Warn("tracing: spans not exported at shutdown", "error", err)
	}
}

// abortStoreLate makes the store's calls in flight fail with SERVICE_UNAVAILABLE once three
// quarters of the shutdown's time are gone, so that requests stuck on a hung store are answered
// (and the drain ends) before SHUTDOWN_TIMEOUT. It returns the function that cancels that.
func (a *app) abortStoreLate(ctx context.Context) func() {
	ab, ok := a.store.(interface{ Abort() })
	deadline, has := ctx.Deadline()
	if !ok || !has {
		return func() {}
	}
	t := time.AfterFunc(time.Until(deadline)*3/4, ab.Abort)
	return func() { t.Stop() }
}

// goBackground runs fn until stopBackground, which waits for it.
func (a *app) goBackground(fn func()) {
	a.bg.Go(fn)
}

func (a *app) stopBackground() {
	if a.stop != nil {
		a.stop()
	}
	a.bg.Wait()
}

func (a *app) closeStore(ctx context.Context) error {
	var errs []error
	if a.bus != nil {
		a.bus.Close()
	}
	if a.cache != nil {
		errs = append(errs, a.cache.Close())
	}
	if a.store != nil {
		errs = append(errs, a.store.Close(ctx))
	}
	return errors.Join(errs...)
}

// serveMetrics serves /metrics on METRICS_ADDR, when set, until ctx ends.
func (a *app) serveMetrics(ctx context.Context, reg *prometheus.Registry) error {
	if a.cfg.MetricsAddr == "" {
		if a.cfg.IsProduction() {
			a.log.Warn("METRICS_ADDR is empty: /metrics, security counters included, is served on the public port")
		}
		return nil
	}
	l, err := a.listen(listenerMetrics, a.cfg.MetricsAddr)
	if err != nil {
		return &config.Error{Key: "METRICS_ADDR", Value: a.cfg.MetricsAddr, Allowed: "must be a free port: " + err.Error()}
	}
	a.goBackground(func() { _ = httpapi.ServeMetrics(ctx, l, reg, a.log) })
	a.log.Info("metrics listening", "addr", "http://"+l.Addr().String()+"/metrics")
	return nil
}

// servePprof serves Go's profiler on addr (a loopback address, checked by config) until ctx ends.
func (a *app) servePprof(ctx context.Context, addr string) error {
	l, err := a.listen(listenerPprof, addr)
	if err != nil {
		return &config.Error{Key: "PPROF_ADDR", Value: addr, Allowed: "must be a free port: " + err.Error()}
	}
	a.goBackground(func() { _ = httpapi.ServePprof(ctx, l) })
	a.log.Info("profiler listening", "addr", "http://"+l.Addr().String()+"/debug/pprof/")
	return nil
}
