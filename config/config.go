// Package config holds Eventide's typed configuration: defaults per environment, layered loading
// with koanf, and validation that names the offending key.
package config

import (
	"net/netip"
	"strings"
	"time"
)

// Config is the whole resolved configuration. It is loaded once by Load and passed down by value
// or pointer; no other package reads the environment.
type Config struct {
	AppEnv     string // APP_ENV: development, test or production
	ConfigFile string // CONFIG_FILE or -config: optional YAML file

	Host string // HOST
	Port int    // PORT (0 picks a free port; tests use it)

	MongoURI                    string        // MONGO_URI: empty selects the embedded store
	MongoDatabase               string        // MONGO_DATABASE
	MongoPoolSize               uint64        // MONGO_POOL_SIZE
	MongoMinPoolSize            uint64        // MONGO_MIN_POOL_SIZE
	MongoConnectTimeout         time.Duration // MONGO_CONNECT_TIMEOUT
	MongoServerSelectionTimeout time.Duration // MONGO_SERVER_SELECTION_TIMEOUT
	MongoMaxConnIdleTime        time.Duration // MONGO_MAX_CONN_IDLE_TIME
	DataDir                     string        // DATA_DIR: where the embedded store keeps its files

	UseRedis              bool     // USE_REDIS
	RedisHost             string   // REDIS_HOST
	RedisPort             int      // REDIS_PORT
	RedisPassword         string   // REDIS_PASSWORD (secret)
	RedisDB               int      // REDIS_DB
	RedisAddrs            []string // REDIS_ADDRS: comma-separated seeds
	RedisMasterName       string   // REDIS_MASTER_NAME
	RedisSentinelPassword string   // REDIS_SENTINEL_PASSWORD (secret)

	CacheTTL        time.Duration // CACHE_TTL: given in seconds
	CacheMaxEntries int           // CACHE_MAX_ENTRIES
	// CACHE_FALLBACK_TTL: while Redis is unreachable, the longest a value lives in memory
	CacheFallbackTTL time.Duration
	// RESPONSE_CACHE_MAX_BYTES: a size; the whole-response cache of anonymous queries, 0 disables
	ResponseCacheMaxBytes int64

	SeedDemo bool // SEED_DEMO

	SecurityMaxEvents   int           // SECURITY_MAX_EVENTS
	SecurityEventMaxAge time.Duration // SECURITY_EVENT_MAX_AGE

	ThrottleTTL         time.Duration  // THROTTLE_TTL: given in seconds
	ThrottleLimit       int            // THROTTLE_LIMIT
	LoginThrottleLimit  int            // LOGIN_THROTTLE_LIMIT
	SignupThrottleLimit int            // SIGNUP_THROTTLE_LIMIT
	TrustedProxies      []netip.Prefix // TRUSTED_PROXIES: comma-separated CIDRs (a bare IP is a /32 or /128)
	BruteForceThreshold int            // BRUTE_FORCE_THRESHOLD
	BruteForceWindow    time.Duration  // BRUTE_FORCE_WINDOW

	QueryMaxDepth      int // QUERY_MAX_DEPTH
	QueryMaxComplexity int // QUERY_MAX_COMPLEXITY
	QueryMaxAliases    int // QUERY_MAX_ALIASES
	QueryMaxTokens     int // QUERY_MAX_TOKENS

	HTTPMaxBodyBytes                int64         // HTTP_MAX_BODY_BYTES (a size: 1048576 or 1MiB)
	WSMaxConnectionsPerClient       int           // WS_MAX_CONNECTIONS_PER_CLIENT
	WSMaxSubscriptionsPerConnection int           // WS_MAX_SUBSCRIPTIONS_PER_CONNECTION
	WSTransport                     string        // WS_TRANSPORT: lean (event loop) or gqlgen
	WSWriteTimeout                  time.Duration // WS_WRITE_TIMEOUT: how long a websocket's writes may wait for its reader
	HTTPReadTimeout                 time.Duration // HTTP_READ_TIMEOUT: the whole request, body included
	HTTPMaxConnectionsPerClient     int           // HTTP_MAX_CONNECTIONS_PER_CLIENT: open connections per client address
	SSEKeepAliveInterval            time.Duration // SSE_KEEPALIVE_INTERVAL: keep-alive comments on an idle SSE stream
	SSEWriteTimeout                 time.Duration // SSE_WRITE_TIMEOUT: how long one SSE write may wait for a reader
	MultipartHeartbeatInterval      time.Duration // MULTIPART_HEARTBEAT_INTERVAL: heartbeat parts on an idle multipart subscription
	MetricsAddr                     string        // METRICS_ADDR: host:port serving /metrics apart; empty: the public port
	PublicURL                       string        // PUBLIC_URL: base of the URLs the server gives out (calendarUrl); empty: the request's
	ShutdownTimeout                 time.Duration // SHUTDOWN_TIMEOUT: how long draining may take
	ShutdownDelay                   time.Duration // SHUTDOWN_DELAY: /readyz 503 this long before the listener closes

	JWTSecret        string        // JWT_SECRET (secret); random per start outside production when empty
	JWTSecretRandom  bool          // true when JWTSecret was generated at start-up
	JWTTTL           time.Duration // JWT_TTL
	PasswordHashCost int           // PASSWORD_HASH_COST: bcrypt cost
	// PasswordHashConcurrency is PASSWORD_HASH_CONCURRENCY: password hashes running at once
	// (default: the number of CPUs).
	PasswordHashConcurrency int
	AdminEmail              string   // ADMIN_EMAIL
	AdminPassword           string   // ADMIN_PASSWORD (secret)
	CORSOrigins             []string // CORS_ORIGINS: comma-separated
	// CORSAllowedHeaders is CORS_ALLOWED_HEADERS: request headers preflights accept beyond the
	// built-in list (comma-separated).
	CORSAllowedHeaders []string

	// Webhooks (API.md, "Webhooks").
	WebhookURLs        []string      // WEBHOOK_URLS: comma-separated http(s) receivers; empty: off
	WebhookSecret      string        // WEBHOOK_SECRET (secret): HMAC-SHA256 key of Eventide-Signature
	WebhookTimeout     time.Duration // WEBHOOK_TIMEOUT: per attempt
	WebhookMaxAttempts int           // WEBHOOK_MAX_ATTEMPTS: then FAILED
	WebhookBackoff     time.Duration // WEBHOOK_BACKOFF: first retry delay, doubling up to an hour
	WebhookRetention   time.Duration // WEBHOOK_RETENTION: DELIVERED/FAILED deliveries kept this long

	Supervise              bool          // SUPERVISE or -supervise
	SuperviseMaxRestarts   int           // SUPERVISE_MAX_RESTARTS: crashes within 10 minutes before -supervise gives up
	MemoryRestartThreshold int64         // MEMORY_RESTART_THRESHOLD: a size; 0 disables
	MemoryRestartAfter     int           // MEMORY_RESTART_AFTER
	MemoryCheckInterval    time.Duration // MEMORY_CHECK_INTERVAL
	MemoryLimit            int64         // MEMORY_LIMIT: a size; 0 means none configured
	MemoryLogInterval      time.Duration // MEMORY_LOG_INTERVAL
	MemoryReleaseStartup   bool          // MEMORY_RELEASE_STARTUP: give start-up's binary pages back once serving

	LogFormat     string // LOG_FORMAT: json or text
	LogLevel      string // LOG_LEVEL: debug, info, warn, error
	LogFile       string // LOG_FILE: empty logs to stderr
	LogMaxSizeMB  int    // LOG_MAX_SIZE_MB
	LogMaxBackups int    // LOG_MAX_BACKUPS
	LogMaxAgeDays int    // LOG_MAX_AGE_DAYS

	PprofAddr string // PPROF_ADDR: loopback host:port for net/http/pprof; empty: off

	// OpenTelemetry traces, through the specification's own variables; off unless an endpoint is
	// set (see TracesEndpoint).
	OtelSDKDisabled      bool   // OTEL_SDK_DISABLED
	OtelServiceName      string // OTEL_SERVICE_NAME
	OtelTracesExporter   string // OTEL_TRACES_EXPORTER: otlp or none
	OtelEndpoint         string // OTEL_EXPORTER_OTLP_ENDPOINT: base URL; traces go to <base>/v1/traces
	OtelTracesEndpoint   string // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: full URL, wins over the base
	OtelProtocol         string // OTEL_EXPORTER_OTLP_PROTOCOL: http/protobuf only
	OtelHeaders          string // OTEL_EXPORTER_OTLP_HEADERS (secret): k=v,k2=v2, values URL-encoded
	OtelTracesSampler    string // OTEL_TRACES_SAMPLER
	OtelTracesSamplerArg string // OTEL_TRACES_SAMPLER_ARG: the ratio of the traceidratio samplers
}

// Environments Eventide knows.
const (
	EnvDevelopment = "development"
	EnvTest        = "test"
	EnvProduction  = "production"
)

// IsProduction reports whether c is a production configuration.
func (c *Config) IsProduction() bool { return c.AppEnv == EnvProduction }

// TracesEndpoint is the URL traces are exported to, or "" when tracing is off: OTEL_SDK_DISABLED,
// OTEL_TRACES_EXPORTER=none, or neither endpoint set. OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used
// as given; the base OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/traces appended, as the specification
// says.
func (c *Config) TracesEndpoint() string {
	switch {
	case c.OtelSDKDisabled || c.OtelTracesExporter == "none":
		return ""
	case c.OtelTracesEndpoint != "":
		return c.OtelTracesEndpoint
	case c.OtelEndpoint != "":
		return strings.TrimRight(c.OtelEndpoint, "/") + "/v1/traces"
	}
	return ""
}

// WS_TRANSPORT values: lean is the event-loop websocket transport (httpapi/leanws.go), the
// default; gqlgen gqlgen's own, kept for one release so an operator can switch back.
const (
	WSTransportLean   = "lean"
	WSTransportGqlgen = "gqlgen"
)
