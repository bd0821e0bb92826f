// Command eventide is the Eventide GraphQL server. `go run .` serves it on an embedded store with
// demo data; see README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/eventide/server/auth"
	"github.com/eventide/server/cache"
	"github.com/eventide/server/calendar"
	"github.com/eventide/server/config"
	"github.com/eventide/server/dataloader"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/graph"
	"github.com/eventide/server/graph/model"
	"github.com/eventide/server/httpapi"
	"github.com/eventide/server/memstats"
	"github.com/eventide/server/monitor"
	"github.com/eventide/server/playground"
	"github.com/eventide/server/pubsub"
	"github.com/eventide/server/querylimit"
	"github.com/eventide/server/resolvers"
	"github.com/eventide/server/respcache"
	"github.com/eventide/server/security"
	"github.com/eventide/server/seed"
	"github.com/eventide/server/supervisor"
	"github.com/eventide/server/telemetry"
	"github.com/eventide/server/webhook"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes. exitConfig is for a configuration that cannot be used: the one line on stderr
// names the key.
const (
	exitOK     = 0
	exitError  = 1
	exitConfig = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// go-redis logs through one process-wide logger (a line per failed dial while Redis is away);
	// set once here, not in run, which tests call concurrently.
	redis.SetLogger(redisLogs)
	// The OpenTelemetry SDK reports failed exports through one process-wide handler too.
	otel.SetErrorHandler(otelErrors)
	os.Exit(exitCode(run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr), os.Stderr))
}

// redisLogs routes go-redis's own log lines to the server's logger at debug level: the cache
// logs one warning per outage itself. Lines before run has a logger are dropped.
var redisLogs = &redisLogger{}

type redisLogger struct{ log atomic.Pointer[slog.Logger] }

func (r *redisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := r.log.Load(); l != nil {
		l.DebugContext(ctx, fmt.Sprintf(format, v...))
	}
}

// otelErrors routes the OpenTelemetry SDK's errors (a failed export: the collector is down) to
// the server's logger, at most one line per otelErrorEvery with the number left out.
var otelErrors = &otelErrorLog{}

const otelErrorEvery = 30 * time.Second

type otelErrorLog struct {
	log     atomic.Pointer[slog.Logger]
	mu      sync.Mutex
	last    time.Time
	skipped int
}

func (o *otelErrorLog) Handle(err error) {
	l := o.log.Load()
	if l == nil {
		return
	}
	o.mu.Lock()
	if time.Since(o.last) < otelErrorEvery {
		o.skipped++
		o.mu.Unlock()
		return
	}
	skipped := o.skipped
	o.last, o.skipped = time.Now(), 0
	o.mu.Unlock()
	l.Warn("tracing: "+err.Error(), "similar_errors_left_out", skipped)
}

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
		// The parent only supervises: it logs to stderr (the child owns LOG_FILE's rotation). It
		// holds the sockets, so that connections wait in their backlog between two children.
		listeners, closeListeners, err := superviseListeners(cfg)
		if err != nil {
			return err
		}
		defer closeListeners()
		plog := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "supervisor")
		return supervisor.Run(ctx, supervisor.Options{
			Args: args, Env: environ, Stdout: stdout, Stderr: stderr, Logger: plog,
			Listeners: listeners, MaxRestarts: cfg.SuperviseMaxRestarts,
			StopTimeout: cfg.ShutdownDelay + cfg.ShutdownTimeout + 5*time.Second,
		})
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
	redisLogs.log.Store(log.With("component", "redis"))
	otelErrors.log.Store(log.With("component", "tracing"))
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
	var result error
	served := true
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case err := <-a.serveErr:
		log.Error("server stopped", "error", err)
		served = false
	case <-a.restart:
		if inherited.AskRestart() == nil {
			// The supervisor starts the next process on the same socket and, once it serves,
			// sends SIGTERM here: serving on until then refuses nobody.
			log.Warn("memory stayed over MEMORY_RESTART_THRESHOLD: asked the supervisor for a restart; serving until it stops this process")
			select {
			case <-ctx.Done():
				log.Info("shutting down", "reason", context.Cause(ctx))
			case err := <-a.serveErr:
				log.Error("server stopped", "error", err)
				served = false
			}
			break
		}
		log.Error("memory stayed over MEMORY_RESTART_THRESHOLD: draining, then exiting to be restarted",
			"exit_code", memstats.ExitRestart)
		result = errRestart
	}
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
	bus      *cache.Bus
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
	// stop ends the background loops (sampler, security sweep, Redis bridges) at shutdown.
	stop context.CancelFunc
	bg   sync.WaitGroup
}

// start builds every part and starts serving; it returns once the listener is open.
func start(ctx context.Context, cfg *config.Config, log *slog.Logger) (*app, error) {
	return startWith(ctx, cfg, log, startOptions{})
}

// maxEventSubscribers bounds eventUpdated's subscribers in one process.
const maxEventSubscribers = 10_000

// startOptions is what start needs beyond the configuration.
type startOptions struct {
	restarts int // how often the -supervise parent restarted this process (EVENTIDE_RESTARTS)
	// inherited has the sockets the -supervise parent handed over; nil: listen on the addresses.
	inherited *supervisor.Inherited
}

func startWith(ctx context.Context, cfg *config.Config, log *slog.Logger, o startOptions) (_ *app, err error) {
	began := time.Now()
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

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// Traces: off (no SDK, a nil tracer everywhere) unless the OTEL_* keys name an endpoint.
	a.tracing, err = startTracing(ctx, cfg)
	if err != nil {
		return nil, err
	}
	tracer := a.tracing.Tracer("github.com/eventide/server")
	if a.tracing.Enabled() {
		log.Info("tracing on", "endpoint", cfg.TracesEndpoint(), "sampler", cfg.OtelTracesSampler, "queue", telemetry.DefaultQueueSize)
	}

	// The store: MongoDB when MONGO_URI is set, else SQLite under DATA_DIR (an earlier version's
	// FerretDB files there are imported first).
	// Webhooks: the stores write each message in the write of its change (nothing without
	// WEBHOOK_URLS); the worker, woken by those writes, delivers them.
	var wake atomic.Pointer[webhook.Worker]
	outbox := eventide.OutboxOptions{Receivers: cfg.WebhookURLs, Notify: func() {
		if w := wake.Load(); w != nil {
			w.Notify()
		}
	}}
	a.store, a.storeIs, err = openStore(ctx, cfg, log, reg, telemetry.NewCommands(reg, tracer), outbox)
	if err != nil {
		return nil, err
	}
	hooks, _ := a.store.(eventide.WebhookOutbox)
	if len(cfg.WebhookURLs) > 0 && hooks != nil {
		w := webhook.New(hooks, webhook.Options{
			Receivers: cfg.WebhookURLs, Secret: cfg.WebhookSecret, Timeout: cfg.WebhookTimeout,
			MaxAttempts: cfg.WebhookMaxAttempts, Backoff: cfg.WebhookBackoff, Retention: cfg.WebhookRetention,
			Logger: log.With("component", "webhook"),
		})
		reg.MustRegister(w.Collectors()...)
		wake.Store(w)
		a.goBackground(func() { w.Run(bgctx) })
		log.Info("webhooks on", "receivers", len(cfg.WebhookURLs), "max_attempts", cfg.WebhookMaxAttempts, "timeout", cfg.WebhookTimeout)
	}

	// The shared cache: Redis when configured (unreachable is a fallback, not a failure), else
	// memory; everything reads the store through it, so every write invalidates it.
	cacheLog := log.With("component", "cache")
	a.cache = cache.Open(ctx, cache.Options{
		UseRedis: cfg.UseRedis,
		Redis: cache.RedisOptions{
			Addrs: cache.Addrs(cfg.RedisAddrs, cfg.RedisHost, cfg.RedisPort), MasterName: cfg.RedisMasterName, SentinelPassword: cfg.RedisSentinelPassword,
			Password: cfg.RedisPassword, DB: cfg.RedisDB, Prefix: cache.KeyPrefix(cfg.MongoDatabase),
			Tracer: tracer,
		},
		MaxEntries: cfg.CacheMaxEntries, TTL: cfg.CacheTTL, FallbackTTL: cfg.CacheFallbackTTL, Logger: cacheLog, Registerer: reg,
	})
	a.bus = cache.NewBus(a.cache, cacheLog)
	a.bus.Register(reg)
	// Long-lived connections re-check their viewer whenever a user is written, here or on
	// another replica; the registry is filled once the authenticator exists, below.
	var sessionsReady atomic.Pointer[httpapi.Sessions]
	var backing cache.Backing = a.store
	if h, ok := a.store.(cache.Health); ok { // MongoDB: fail at once while known down
		backing = cache.FailFast(a.store, h)
	}
	cached := cache.NewStore(backing, a.cache, cache.StoreOptions{TTL: cfg.CacheTTL, Logger: cacheLog, Bus: a.bus, Registerer: reg,
		OnUserChanged: func(id string) { sessionsReady.Load().UserChanged(id) }})
	// eventUpdated subscribers: 10 000 in all, each client address at most 1% of them, so that a
	// hundred addresses are needed to fill the broker (the stream and subscription caps alone let
	// one address hold 1 000: 50 websockets x 20).
	events := cache.NewEventRelay(a.bus, pubsub.New[*eventide.Event](16, maxEventSubscribers,
		pubsub.PerOwner(maxEventSubscribers/100, func(ctx context.Context) string { return eventide.ClientFrom(ctx).AddrKey })))
	// myRegistrations subscribers, by user id, bounded like eventUpdated's.
	myRegs := cache.NewRegistrationRelay(a.bus, pubsub.New[*eventide.Registration](16, maxEventSubscribers,
		pubsub.PerOwner(maxEventSubscribers/100, func(ctx context.Context) string { return eventide.ClientFrom(ctx).AddrKey })))
	a.bus.Start()
	cached.Init(ctx)
	log.Info("cache ready", "backend", a.cache.Describe(), "redis", cfg.UseRedis, "ttl", cfg.CacheTTL, "max_entries", cfg.CacheMaxEntries)

	// Security: the bounded event log (shared between replicas over Redis when it is on), the
	// brute-force detector and the throttle (its budgets in Redis, or in memory as a fallback).
	secLog := log.With("component", "security")
	secEvents := security.NewLog(security.LogConfig{MaxEvents: cfg.SecurityMaxEvents, MaxAge: cfg.SecurityEventMaxAge,
		RepeatWindow: cfg.ThrottleTTL, Logger: secLog})
	a.goBackground(func() { secEvents.Run(bgctx) })
	reg.MustRegister(secEvents.Collectors()...)
	memLimiter := security.NewMemoryLimiter(security.MemoryLimiterConfig{})
	var limiter security.Limiter = memLimiter
	if r := a.cache.Redis(); r != nil {
		bridge := security.NewBridge(secEvents, r.Client(), security.BridgeConfig{Prefix: cache.KeyPrefix(cfg.MongoDatabase), Logger: secLog})
		a.goBackground(func() { bridge.Run(bgctx) })
		reg.MustRegister(bridge.Collectors()...)
		rl := security.NewRedisLimiter(r.Client(), memLimiter, security.RedisLimiterConfig{Prefix: cache.KeyPrefix(cfg.MongoDatabase) + "rl:", Logger: secLog})
		a.goBackground(func() { rl.Run(bgctx) })
		reg.MustRegister(rl.Collectors()...)
		limiter = rl
	}
	brute := security.NewBruteForce(security.BruteForceConfig{Threshold: cfg.BruteForceThreshold, Window: cfg.BruteForceWindow, Log: secEvents})
	throttle := security.NewThrottle(limiter, security.ThrottleConfig{
		Window: cfg.ThrottleTTL, Limit: cfg.ThrottleLimit, LoginLimit: cfg.LoginThrottleLimit, SignupLimit: cfg.SignupThrottleLimit,
		BruteForce: brute, Log: secEvents, Logger: secLog,
	})
	reg.MustRegister(throttle.Collectors()...)

	// Memory: one sampler for the process (history, subscriptions, the periodic log line) and
	// the watchdog that empties the memory cache, then asks for a restart, when RSS stays high.
	memLog := log.With("component", "memory")
	limit := memstats.ApplyMemoryLimit(cfg.MemoryLimit, memLog)
	sampler := memstats.New(memstats.Options{
		LimitBytes: limit, LogInterval: cfg.MemoryLogInterval, Logger: memLog,
		// Subscribers are admins' websockets, already capped per client (sockets x subscriptions):
		// the sampler must not refuse one that those caps allow.
		MaxSubscribers: max(memstats.DefaultMaxSubscribers, cfg.WSMaxConnectionsPerClient*cfg.WSMaxSubscriptionsPerConnection),
		Watchdog: memstats.WatchdogOptions{
			Threshold: cfg.MemoryRestartThreshold, After: cfg.MemoryRestartAfter, Interval: cfg.MemoryCheckInterval,
			OnPressure: func() {
				n, _ := a.cache.Memory().Purge(context.Background())
				memLog.Warn("memory pressure: emptied the in-memory cache", "entries", n)
			},
			OnRestart: func() { a.restartOnce.Do(func() { close(a.restart) }) },
		},
	})
	a.goBackground(func() { _ = sampler.Run(bgctx) })
	reg.MustRegister(sampler.Collectors()...)

	tokens, err := auth.New(cfg.PasswordHashCost, cfg.JWTSecret, cfg.JWTTTL, auth.HashConcurrency(cfg.PasswordHashConcurrency))
	if err != nil {
		return nil, err
	}
	a.auth = tokens
	reg.MustRegister(tokens.Collectors()...)
	if cfg.JWTSecretRandom {
		log.Warn("JWT_SECRET is not set: using a random secret, so tokens end with this process")
	}
	authn := &auth.Authenticator{Auth: tokens, Users: cached}
	sessions := httpapi.NewSessions(httpapi.SessionsOptions{Authenticator: authn, Security: secEvents, Logger: log.With("component", "sessions")})
	sessionsReady.Store(sessions)
	a.goBackground(func() { sessions.Run(bgctx) })
	a.sessions = sessions

	if cfg.SeedDemo {
		hash, err := tokens.Hash(seed.DemoPassword)
		if err != nil {
			return nil, err
		}
		if _, err := seed.Demo(ctx, cached, hash, time.Now(), log.With("component", "seed")); err != nil {
			return nil, err
		}
	}
	if cfg.AdminEmail != "" {
		created, err := authn.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword)
		if err != nil {
			return nil, err
		}
		log.Info("admin account ready", "email", cfg.AdminEmail, "created", created, "password", "from ADMIN_PASSWORD")
	}

	var responses *respcache.Cache
	var cacheAdmin resolvers.CacheAdmin = cached
	if cfg.ResponseCacheMaxBytes > 0 {
		responses = respcache.New(a.cache, respcache.Options{MaxBytes: cfg.ResponseCacheMaxBytes, TTL: cfg.CacheTTL})
		reg.MustRegister(responses.Collectors()...)
		cacheAdmin = purgeResponses{cached, responses}
	}
	calKeys := calendar.NewKeys(cfg.JWTSecret)
	root := &resolvers.Resolver{
		Calendar:      calKeys,
		PublicURL:     cfg.PublicURL,
		Store:         cached,
		Auth:          tokens,
		Events:        events,
		Cache:         cacheAdmin,
		Registrations: myRegs,
		Log:           log,

		Security:   secEvents,
		Throttle:   throttle,
		BruteForce: brute,
		Memory:     sampler,
		Pool:       a.store.Stats,
		Webhooks:   hooks,
		Server: model.ServerInfo{
			Pid: os.Getpid(), StartedAt: began, Version: version, GoVersion: runtime.Version(),
			Environment: cfg.AppEnv, Restarts: o.restarts,
		},
	}
	es := graph.NewExecutableSchema(graph.Config{
		Resolvers:  root,
		Directives: graph.DirectiveRoot{HasRole: root.HasRole},
	})
	operations := httpapi.NewOperations(reg, tracer, 0)
	var lean *httpapi.LeanSockets
	if cfg.WSTransport != config.WSTransportGqlgen {
		lean = httpapi.NewLeanSockets(log)
	}
	a.lean = lean
	gql := httpapi.NewGraphQL(es, httpapi.GraphQLOptions{
		LeanSockets:    lean,
		Logger:         log,
		Authenticator:  authn,
		Introspection:  !cfg.IsProduction(),
		AllowedOrigins: cfg.CORSOrigins,
		APQ:            cache.NewAPQ(a.cache, cfg.CacheTTL, cacheLog),
		Limits: querylimit.Limits{
			MaxDepth: cfg.QueryMaxDepth, MaxComplexity: cfg.QueryMaxComplexity,
			MaxAliases: cfg.QueryMaxAliases, MaxTokens: cfg.QueryMaxTokens,
		},
		OnReject: func(ctx context.Context, what string, measured, max int, op string) {
			c := eventide.ClientFrom(ctx)
			e := security.Event{Type: security.QueryRejected, IP: c.IP, UserAgent: c.UserAgent, Operation: op,
				Message: fmt.Sprintf("query %s %d exceeds the limit of %d", what, measured, max)}
			if v := eventide.ViewerFrom(ctx); v != nil {
				e.UserID, e.Email = v.ID, v.Email
			}
			secEvents.Log(e)
		},
		DisableSuggestions:            cfg.IsProduction(),
		Security:                      secEvents,
		Throttle:                      throttle,
		MaxSubscriptionsPerConnection: cfg.WSMaxSubscriptionsPerConnection,
		WriteTimeout:                  cfg.WSWriteTimeout,
		MultipartHeartbeat:            cfg.MultipartHeartbeatInterval,
		ResponseCache:                 responses,
		Extensions: []graphql.HandlerExtension{
			dataloader.Middleware{Source: cached, Options: dataloader.Options{Metrics: dataloader.NewMetrics(reg), Tracer: tracer}},
		},
		Operations: operations,
	})
	a.http = httpapi.New(httpapi.Options{
		LeanSockets: lean,
		Logger:      log,
		GraphQL:     gql,
		Playground:  playground.Handler("Eventide", "/graphql"),
		Monitor:     monitor.Handler(),

		TrustedProxies:      cfg.TrustedProxies,
		Throttle:            throttle,
		Security:            secEvents,
		MaxSocketsPerClient: cfg.WSMaxConnectionsPerClient,
		ResponseCache:       responses,
		Sessions:            sessions,
		Authenticator:       authn,
		Registry:            reg,
		Tracer:              tracer,
		Operations:          operations,
		MaxBodyBytes:        cfg.HTTPMaxBodyBytes,
		CORSOrigins:         cfg.CORSOrigins,
		CORSAllowedHeaders:  cfg.CORSAllowedHeaders,
		Calendar:            &calendar.Service{Store: cached, Keys: calKeys},
		PublicURL:           cfg.PublicURL,

		// Each stream is a connection: the connection cap never refuses what the stream cap allows.
		MaxConnectionsPerClient: max(cfg.HTTPMaxConnectionsPerClient, cfg.WSMaxConnectionsPerClient),
		ReadTimeout:             cfg.HTTPReadTimeout,
		SSEKeepAlive:            cfg.SSEKeepAliveInterval,
		SSEWriteTimeout:         cfg.SSEWriteTimeout,
		MetricsApart:            cfg.MetricsAddr != "",

		Checks: []httpapi.Check{a.drainCheck(), {
			Name: "store", Required: true,
			Probe: func(ctx context.Context) (string, error) {
				if err := a.store.Ping(ctx); err != nil {
					return a.storeIs, err
				}
				if f, ok := a.store.(diskFuller); ok {
					return a.storeIs, f.DiskFull(ctx)
				}
				return a.storeIs, nil
			},
		}, {
			// Not required: with Redis gone the cache serves from memory.
			Name: "cache", Required: false,
			Probe: func(context.Context) (string, error) {
				if a.cache.FallbackActive() {
					return a.cache.Describe(), errors.New("redis unreachable; serving from memory")
				}
				return a.cache.Describe(), nil
			},
		}},
	})

	l, err := a.listen(listenerHTTP, net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
	if err != nil {
		return nil, &config.Error{Key: "PORT", Value: strconv.Itoa(cfg.Port), Allowed: "must be a free port: " + err.Error()}
	}
	a.addr = l.Addr().String()
	if cfg.PprofAddr != "" {
		if err := a.servePprof(bgctx, cfg.PprofAddr); err != nil {
			_ = l.Close()
			return nil, err
		}
	}
	if err := a.serveMetrics(bgctx, reg); err != nil {
		_ = l.Close()
		return nil, err
	}
	a.listener = newDrainListener(l)
	// What start-up allocated and dropped (the schema's parse, the demo data, password hashing,
	// an import) goes back to the OS now: the runtime's scavenger would keep it while the heap
	// stays under its goal, and an idle server would hold it for good (about 2–3 MiB here).
	debug.FreeOSMemory()
	go func() { a.serveErr <- a.http.Serve(a.listener) }()
	log.Info("listening", "addr", "http://"+a.addr, "playground", "http://"+a.addr+"/playground",
		"startup_ms", time.Since(began).Milliseconds())
	return a, nil
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

// startTracing starts OpenTelemetry tracing as the OTEL_* keys say: Off when they name no
// endpoint (or switch it off).
func startTracing(ctx context.Context, cfg *config.Config) (*telemetry.Tracing, error) {
	endpoint := cfg.TracesEndpoint()
	if endpoint == "" {
		return telemetry.Off(), nil
	}
	// Both were validated by config; parsing again cannot fail.
	headers, _ := config.ParseOtelHeaders(cfg.OtelHeaders)
	ratio, _ := config.ParseRatio(cfg.OtelTracesSamplerArg)
	return telemetry.Start(ctx, telemetry.Options{
		Endpoint: endpoint, Headers: headers, ServiceName: cfg.OtelServiceName, ServiceVersion: version,
		Sampler: cfg.OtelTracesSampler, SamplerArg: ratio,
	})
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

// purgeResponses makes purgeCache drop the kept responses too (they would never be served again,
// their tokens being gone, but they would hold memory until evicted), and cacheStats report them.
type purgeResponses struct {
	*cache.Store
	responses *respcache.Cache
}

// Stats adds the response cache's figures to the shared cache's.
func (p purgeResponses) Stats(ctx context.Context) cache.Stats {
	st := p.Store.Stats(ctx)
	r := p.responses.Stats()
	st.ResponseHits, st.ResponseMisses, st.ResponseEntries, st.ResponseBytes = r.Hits, r.Misses, r.Entries, r.Bytes
	return st
}

func (p purgeResponses) Purge(ctx context.Context) (int, error) {
	n, err := p.Store.Purge(ctx)
	return n + p.responses.Purge(), err
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
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	a.goBackground(func() { _ = srv.Serve(l) })
	a.goBackground(func() {
		<-ctx.Done()
		_ = srv.Close()
	})
	a.log.Info("profiler listening", "addr", "http://"+l.Addr().String()+"/debug/pprof/")
	return nil
}
