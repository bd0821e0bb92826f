package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// kind says how a key's text becomes a Config field.
type kind int

const (
	kindText     kind = iota // string as given
	kindEnum                 // string, lower-cased, one of field.enum
	kindInt                  // int in [min, max]
	kindUint                 // uint64 in [min, max]
	kindBool                 // ParseBool
	kindDuration             // ParseDuration, > 0
	kindDelay                // ParseDuration, >= 0
	kindSeconds              // ParseSeconds, > 0
	kindSize                 // ParseSize, >= min
	kindList                 // ParseList
	kindPrefixes             // ParsePrefixes
)

// field describes one key: its name, how it is parsed and checked, and where it lives in Config.
type field struct {
	key      string
	usage    string
	kind     kind
	secret   bool
	min, max int64
	enum     []string
	ptr      func(*Config) any      // pointer to the Config field
	check    func(c *Config) string // extra rule: "" when c is fine, else what is allowed
}

// fields lists every key in the order of Config's fields; errors are reported in this order.
var fields = []field{
	enum("APP_ENV", "environment: selects defaults and .env.<APP_ENV>", []string{EnvDevelopment, EnvTest, EnvProduction}, func(c *Config) *string { return &c.AppEnv }),
	text("CONFIG_FILE", "optional YAML configuration file", func(c *Config) *string { return &c.ConfigFile }),

	text("HOST", "HTTP bind address", func(c *Config) *string { return &c.Host }),
	integer("PORT", "HTTP port (0 picks a free one)", 0, 65535, func(c *Config) *int { return &c.Port }),

	text("MONGO_URI", "MongoDB connection string; empty selects the embedded store", func(c *Config) *string { return &c.MongoURI }).
		withCheck(checkMongoURI),
	text("MONGO_DATABASE", "MongoDB database name", func(c *Config) *string { return &c.MongoDatabase }).
		withCheck(checkMongoDatabase),
	unsigned("MONGO_POOL_SIZE", "MongoDB maximum pool size", 1, math.MaxInt64, func(c *Config) *uint64 { return &c.MongoPoolSize }),
	unsigned("MONGO_MIN_POOL_SIZE", "MongoDB minimum pool size", 0, math.MaxInt64, func(c *Config) *uint64 { return &c.MongoMinPoolSize }).
		withCheck(func(c *Config) string {
			if c.MongoMinPoolSize > c.MongoPoolSize {
				return fmt.Sprintf("must be an integer from 0 to MONGO_POOL_SIZE (%d)", c.MongoPoolSize)
			}
			return ""
		}),
	duration("MONGO_CONNECT_TIMEOUT", "MongoDB connect timeout", func(c *Config) *time.Duration { return &c.MongoConnectTimeout }),
	duration("MONGO_SERVER_SELECTION_TIMEOUT", "MongoDB server selection timeout", func(c *Config) *time.Duration { return &c.MongoServerSelectionTimeout }),
	duration("MONGO_MAX_CONN_IDLE_TIME", "MongoDB idle connection lifetime", func(c *Config) *time.Duration { return &c.MongoMaxConnIdleTime }),
	text("DATA_DIR", "directory of the embedded store", func(c *Config) *string { return &c.DataDir }).
		withCheck(func(c *Config) string {
			if c.MongoURI == "" && strings.TrimSpace(c.DataDir) == "" {
				return "must be a directory when MONGO_URI is empty"
			}
			return ""
		}),

	boolean("USE_REDIS", "use Redis as the shared cache", func(c *Config) *bool { return &c.UseRedis }),
	text("REDIS_HOST", "Redis host", func(c *Config) *string { return &c.RedisHost }).
		withCheck(func(c *Config) string {
			if c.UseRedis && len(c.RedisAddrs) == 0 && strings.TrimSpace(c.RedisHost) == "" {
				return "must be a host name when USE_REDIS is true and REDIS_ADDRS is empty"
			}
			return ""
		}),
	integer("REDIS_PORT", "Redis port", 1, 65535, func(c *Config) *int { return &c.RedisPort }),
	text("REDIS_PASSWORD", "Redis password", func(c *Config) *string { return &c.RedisPassword }).secretKey(),
	integer("REDIS_DB", "Redis database number", 0, math.MaxInt, func(c *Config) *int { return &c.RedisDB }),
	list("REDIS_ADDRS", "comma-separated Redis seeds host:port (Sentinel with REDIS_MASTER_NAME, Cluster with several)", func(c *Config) *[]string { return &c.RedisAddrs }).
		withCheck(func(c *Config) string {
			for _, a := range c.RedisAddrs {
				_, port, err := net.SplitHostPort(a)
				if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
					return "must be comma-separated host:port addresses"
				}
			}
			return ""
		}),
	text("REDIS_MASTER_NAME", "Redis Sentinel master name", func(c *Config) *string { return &c.RedisMasterName }),
	text("REDIS_SENTINEL_PASSWORD", "password the Sentinels require (requirepass on the sentinels), when it differs from none", func(c *Config) *string { return &c.RedisSentinelPassword }).secretKey(),

	seconds("CACHE_TTL", "cache entry lifetime in seconds", func(c *Config) *time.Duration { return &c.CacheTTL }),
	integer("CACHE_MAX_ENTRIES", "in-memory cache capacity", 1, math.MaxInt, func(c *Config) *int { return &c.CacheMaxEntries }),
	duration("CACHE_FALLBACK_TTL", "while Redis is unreachable, values kept in memory expire after this (bounds how long replicas disagree)", func(c *Config) *time.Duration { return &c.CacheFallbackTTL }),
	size("RESPONSE_CACHE_MAX_BYTES", "memory for whole responses to anonymous queries, kept exact by the cache's tokens (0 disables)", 0, func(c *Config) *int64 { return &c.ResponseCacheMaxBytes }),

	boolean("SEED_DEMO", "seed demo data into an empty store (never in production)", func(c *Config) *bool { return &c.SeedDemo }).
		withCheck(func(c *Config) string {
			if c.SeedDemo && c.IsProduction() {
				return "must be false in production: demo accounts share a published password"
			}
			return ""
		}),

	integer("SECURITY_MAX_EVENTS", "security events kept in memory", 1, math.MaxInt, func(c *Config) *int { return &c.SecurityMaxEvents }),
	duration("SECURITY_EVENT_MAX_AGE", "age after which security events are dropped", func(c *Config) *time.Duration { return &c.SecurityEventMaxAge }),

	seconds("THROTTLE_TTL", "throttle window in seconds", func(c *Config) *time.Duration { return &c.ThrottleTTL }),
	integer("THROTTLE_LIMIT", "requests per client per window", 1, math.MaxInt, func(c *Config) *int { return &c.ThrottleLimit }),
	integer("LOGIN_THROTTLE_LIMIT", "login attempts per client and per email per window", 1, math.MaxInt, func(c *Config) *int { return &c.LoginThrottleLimit }),
	integer("SIGNUP_THROTTLE_LIMIT", "sign-ups per client per window", 1, math.MaxInt, func(c *Config) *int { return &c.SignupThrottleLimit }),
	prefixes("TRUSTED_PROXIES", "comma-separated CIDRs whose X-Forwarded-For is believed", func(c *Config) *[]netip.Prefix { return &c.TrustedProxies }),
	integer("BRUTE_FORCE_THRESHOLD", "failed logins within the window that raise BRUTE_FORCE_SUSPECTED", 1, math.MaxInt, func(c *Config) *int { return &c.BruteForceThreshold }),
	duration("BRUTE_FORCE_WINDOW", "window for counting failed logins", func(c *Config) *time.Duration { return &c.BruteForceWindow }),

	integer("QUERY_MAX_DEPTH", "maximum GraphQL query depth", 1, math.MaxInt, func(c *Config) *int { return &c.QueryMaxDepth }),
	integer("QUERY_MAX_COMPLEXITY", "maximum GraphQL query complexity", 1, math.MaxInt, func(c *Config) *int { return &c.QueryMaxComplexity }),
	integer("QUERY_MAX_ALIASES", "maximum aliases in a GraphQL document", 1, math.MaxInt, func(c *Config) *int { return &c.QueryMaxAliases }),
	integer("QUERY_MAX_TOKENS", "maximum tokens in a GraphQL document", 1, math.MaxInt, func(c *Config) *int { return &c.QueryMaxTokens }),

	size("HTTP_MAX_BODY_BYTES", "largest request body (a size such as 1MiB)", 1024, func(c *Config) *int64 { return &c.HTTPMaxBodyBytes }),
	integer("WS_MAX_CONNECTIONS_PER_CLIENT", "websocket connections per client", 1, math.MaxInt, func(c *Config) *int { return &c.WSMaxConnectionsPerClient }),
	integer("WS_MAX_SUBSCRIPTIONS_PER_CONNECTION", "subscriptions per websocket connection", 1, math.MaxInt, func(c *Config) *int { return &c.WSMaxSubscriptionsPerConnection }),
	enum("WS_TRANSPORT", "websocket transport: lean (event loop, no goroutine per idle socket) or gqlgen (gqlgen's own)", []string{WSTransportLean, WSTransportGqlgen}, func(c *Config) *string { return &c.WSTransport }),
	duration("WS_WRITE_TIMEOUT", "how long a websocket's writes may wait for its reader before the socket is closed", func(c *Config) *time.Duration { return &c.WSWriteTimeout }),
	duration("HTTP_READ_TIMEOUT", "time for a whole request to arrive, body included (not a stream once open)", func(c *Config) *time.Duration { return &c.HTTPReadTimeout }),
	integer("HTTP_MAX_CONNECTIONS_PER_CLIENT", "open connections per client address, websockets and SSE included", 1, math.MaxInt, func(c *Config) *int { return &c.HTTPMaxConnectionsPerClient }),
	duration("SSE_KEEPALIVE_INTERVAL", "interval of keep-alive comments on an idle Server-Sent Events stream", func(c *Config) *time.Duration { return &c.SSEKeepAliveInterval }),
	duration("SSE_WRITE_TIMEOUT", "how long one write to a Server-Sent Events stream or multipart subscription may wait for its reader", func(c *Config) *time.Duration { return &c.SSEWriteTimeout }),
	duration("MULTIPART_HEARTBEAT_INTERVAL", "interval of heartbeat parts on an idle multipart subscription", func(c *Config) *time.Duration { return &c.MultipartHeartbeatInterval }),
	text("METRICS_ADDR", "host:port serving /metrics on its own listener; empty: on the public port", func(c *Config) *string { return &c.MetricsAddr }).
		withCheck(func(c *Config) string {
			if c.MetricsAddr == "" {
				return ""
			}
			if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil || !validPort(port) {
				return "must be empty or host:port, such as 127.0.0.1:9090 or :9090"
			}
			return ""
		}),
	text("PUBLIC_URL", "base URL of this server as clients reach it (calendarUrl); empty: the scheme and host of each request", func(c *Config) *string { return &c.PublicURL }).
		withCheck(checkPublicURL),
	duration("SHUTDOWN_TIMEOUT", "how long draining may take", func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
	delay("SHUTDOWN_DELAY", "how long /readyz answers 503 before the listener closes on SIGTERM", func(c *Config) *time.Duration { return &c.ShutdownDelay }),

	text("JWT_SECRET", "token signing secret, at least 32 bytes; random per start outside production when empty", func(c *Config) *string { return &c.JWTSecret }).
		secretKey().withCheck(func(c *Config) string {
		switch {
		case c.JWTSecret == "" && c.IsProduction():
			return fmt.Sprintf("required in production: at least %d bytes", minJWTSecret)
		case c.JWTSecret != "" && len(c.JWTSecret) < minJWTSecret:
			return fmt.Sprintf("must be at least %d bytes", minJWTSecret)
		}
		return ""
	}),
	duration("JWT_TTL", "token lifetime", func(c *Config) *time.Duration { return &c.JWTTTL }),
	integer("PASSWORD_HASH_COST", "bcrypt cost", 4, 31, func(c *Config) *int { return &c.PasswordHashCost }),
	integer("PASSWORD_HASH_CONCURRENCY", "password hashes running at once (default: the number of CPUs)", 1, math.MaxInt, func(c *Config) *int { return &c.PasswordHashConcurrency }),
	text("ADMIN_EMAIL", "admin account ensured at start-up", func(c *Config) *string { return &c.AdminEmail }).
		withCheck(func(c *Config) string {
			switch {
			case c.AdminEmail == "" && c.AdminPassword != "":
				return "required when ADMIN_PASSWORD is set"
			case c.AdminEmail != "" && !strings.Contains(c.AdminEmail, "@"):
				return "must be an email address"
			}
			return ""
		}),
	text("ADMIN_PASSWORD", "password of the admin account", func(c *Config) *string { return &c.AdminPassword }).
		secretKey().withCheck(func(c *Config) string {
		switch {
		case c.AdminPassword == "" && c.AdminEmail != "":
			return "required when ADMIN_EMAIL is set"
		case c.AdminPassword != "" && utf8.RuneCountInString(c.AdminPassword) < minAdminPassword:
			return fmt.Sprintf("must be at least %d characters", minAdminPassword)
		}
		return ""
	}),
	list("CORS_ORIGINS", "comma-separated allowed origins (* for any)", func(c *Config) *[]string { return &c.CORSOrigins }),
	list("CORS_ALLOWED_HEADERS", "comma-separated request headers CORS preflights accept beyond the built-in list", func(c *Config) *[]string { return &c.CORSAllowedHeaders }).
		withCheck(checkHeaderNames),

	list("WEBHOOK_URLS", "comma-separated http(s) URLs that receive webhooks (empty: none)", func(c *Config) *[]string { return &c.WebhookURLs }).
		withCheck(checkWebhookURLs),
	text("WEBHOOK_SECRET", "HMAC-SHA256 key of the Eventide-Signature header; required with WEBHOOK_URLS", func(c *Config) *string { return &c.WebhookSecret }).
		secretKey().withCheck(func(c *Config) string {
		if len(c.WebhookURLs) > 0 && c.WebhookSecret == "" {
			return "required when WEBHOOK_URLS is set"
		}
		return ""
	}),
	duration("WEBHOOK_TIMEOUT", "how long one webhook delivery attempt may take", func(c *Config) *time.Duration { return &c.WebhookTimeout }),
	integer("WEBHOOK_MAX_ATTEMPTS", "webhook delivery attempts before a delivery is FAILED", 1, 100, func(c *Config) *int { return &c.WebhookMaxAttempts }),
	duration("WEBHOOK_BACKOFF", "delay before the first webhook retry, doubling (with jitter) up to an hour", func(c *Config) *time.Duration { return &c.WebhookBackoff }),
	duration("WEBHOOK_RETENTION", "how long delivered and failed webhook deliveries are kept", func(c *Config) *time.Duration { return &c.WebhookRetention }),

	boolean("SUPERVISE", "run the server as a supervised child process", func(c *Config) *bool { return &c.Supervise }),
	integer("SUPERVISE_MAX_RESTARTS", "crashes within 10 minutes after which -supervise gives up (exit 1)", 1, math.MaxInt, func(c *Config) *int { return &c.SuperviseMaxRestarts }),
	size("MEMORY_RESTART_THRESHOLD", "memory that, held too long, asks for a restart (0 disables)", 0, func(c *Config) *int64 { return &c.MemoryRestartThreshold }),
	integer("MEMORY_RESTART_AFTER", "consecutive checks over the threshold before a restart", 1, math.MaxInt, func(c *Config) *int { return &c.MemoryRestartAfter }),
	duration("MEMORY_CHECK_INTERVAL", "interval of memory checks", func(c *Config) *time.Duration { return &c.MemoryCheckInterval }),
	size("MEMORY_LIMIT", "Go runtime soft memory limit (0: none)", 0, func(c *Config) *int64 { return &c.MemoryLimit }),
	duration("MEMORY_LOG_INTERVAL", "interval of the memory log line", func(c *Config) *time.Duration { return &c.MemoryLogInterval }),
	boolean("MEMORY_RELEASE_STARTUP", "once serving, give the kernel back the pages of the binary that start-up read (Linux)", func(c *Config) *bool { return &c.MemoryReleaseStartup }),

	enum("LOG_FORMAT", "log format", []string{"json", "text"}, func(c *Config) *string { return &c.LogFormat }),
	enum("LOG_LEVEL", "log level", []string{"debug", "info", "warn", "error"}, func(c *Config) *string { return &c.LogLevel }),
	text("LOG_FILE", "log file (empty: stderr)", func(c *Config) *string { return &c.LogFile }),
	integer("LOG_MAX_SIZE_MB", "log file size before rotation, in MB", 1, math.MaxInt, func(c *Config) *int { return &c.LogMaxSizeMB }),
	integer("LOG_MAX_BACKUPS", "rotated log files kept", 0, math.MaxInt, func(c *Config) *int { return &c.LogMaxBackups }),
	integer("LOG_MAX_AGE_DAYS", "days rotated log files are kept", 0, math.MaxInt, func(c *Config) *int { return &c.LogMaxAgeDays }),

	text("PPROF_ADDR", "loopback host:port serving Go's profiler (/debug/pprof/); empty: off", func(c *Config) *string { return &c.PprofAddr }).
		withCheck(func(c *Config) string {
			if c.PprofAddr == "" {
				return ""
			}
			host, port, err := net.SplitHostPort(c.PprofAddr)
			if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
				return "must be host:port on a loopback address, such as 127.0.0.1:6060"
			}
			if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
				return "must be on a loopback address (127.0.0.1, ::1 or localhost): the profiler is not for the network"
			}
			return ""
		}),

	boolean("OTEL_SDK_DISABLED", "switch OpenTelemetry tracing off whatever else is set", func(c *Config) *bool { return &c.OtelSDKDisabled }),
	text("OTEL_SERVICE_NAME", "service.name of the traces", func(c *Config) *string { return &c.OtelServiceName }).
		withCheck(func(c *Config) string {
			if strings.TrimSpace(c.OtelServiceName) == "" {
				return "must not be empty"
			}
			return ""
		}),
	enum("OTEL_TRACES_EXPORTER", "where traces go: otlp (when an endpoint is set) or none", []string{"otlp", "none"}, func(c *Config) *string { return &c.OtelTracesExporter }),
	text("OTEL_EXPORTER_OTLP_ENDPOINT", "OTLP/HTTP base URL (traces to <URL>/v1/traces); empty: no traces", func(c *Config) *string { return &c.OtelEndpoint }).
		withCheck(func(c *Config) string { return checkHTTPURL(c.OtelEndpoint) }),
	text("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTLP/HTTP traces URL, used as given; wins over OTEL_EXPORTER_OTLP_ENDPOINT", func(c *Config) *string { return &c.OtelTracesEndpoint }).
		withCheck(func(c *Config) string { return checkHTTPURL(c.OtelTracesEndpoint) }),
	enum("OTEL_EXPORTER_OTLP_PROTOCOL", "OTLP protocol (only http/protobuf is built in)", []string{"http/protobuf"}, func(c *Config) *string { return &c.OtelProtocol }),
	text("OTEL_EXPORTER_OTLP_HEADERS", "headers sent with each export: key=value,key2=value2 (values URL-encoded)", func(c *Config) *string { return &c.OtelHeaders }).
		secretKey().withCheck(func(c *Config) string {
		if _, err := ParseOtelHeaders(c.OtelHeaders); err != nil {
			return "must be comma-separated key=value pairs, values URL-encoded"
		}
		return ""
	}),
	enum("OTEL_TRACES_SAMPLER", "trace sampler", []string{"always_on", "always_off", "traceidratio",
		"parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}, func(c *Config) *string { return &c.OtelTracesSampler }),
	text("OTEL_TRACES_SAMPLER_ARG", "ratio of the traceidratio samplers, 0 to 1 (empty: 1)", func(c *Config) *string { return &c.OtelTracesSamplerArg }).
		withCheck(func(c *Config) string {
			if _, err := ParseRatio(c.OtelTracesSamplerArg); err != nil {
				return "must be a number from 0 to 1, such as 0.25"
			}
			return ""
		}),
}

const (
	minJWTSecret     = 32
	minAdminPassword = 8
)

// fieldIndex maps a key to its position in fields.
var fieldIndex = func() map[string]int {
	m := make(map[string]int, len(fields))
	for i, f := range fields {
		m[f.key] = i
	}
	return m
}()

func text(key, usage string, p func(*Config) *string) field {
	return field{key: key, usage: usage, kind: kindText, ptr: func(c *Config) any { return p(c) }}
}

func enum(key, usage string, allowed []string, p func(*Config) *string) field {
	return field{key: key, usage: usage, kind: kindEnum, enum: allowed, ptr: func(c *Config) any { return p(c) }}
}

func integer(key, usage string, lo, hi int64, p func(*Config) *int) field {
	return field{key: key, usage: usage, kind: kindInt, min: lo, max: hi, ptr: func(c *Config) any { return p(c) }}
}

func unsigned(key, usage string, lo, hi int64, p func(*Config) *uint64) field {
	return field{key: key, usage: usage, kind: kindUint, min: lo, max: hi, ptr: func(c *Config) any { return p(c) }}
}

func boolean(key, usage string, p func(*Config) *bool) field {
	return field{key: key, usage: usage, kind: kindBool, ptr: func(c *Config) any { return p(c) }}
}

func duration(key, usage string, p func(*Config) *time.Duration) field {
	return field{key: key, usage: usage, kind: kindDuration, ptr: func(c *Config) any { return p(c) }}
}

// delay is a duration that may be 0 (off).
func delay(key, usage string, p func(*Config) *time.Duration) field {
	return field{key: key, usage: usage, kind: kindDelay, ptr: func(c *Config) any { return p(c) }}
}

func seconds(key, usage string, p func(*Config) *time.Duration) field {
	return field{key: key, usage: usage, kind: kindSeconds, ptr: func(c *Config) any { return p(c) }}
}

func size(key, usage string, lo int64, p func(*Config) *int64) field {
	return field{key: key, usage: usage, kind: kindSize, min: lo, ptr: func(c *Config) any { return p(c) }}
}

func list(key, usage string, p func(*Config) *[]string) field {
	return field{key: key, usage: usage, kind: kindList, ptr: func(c *Config) any { return p(c) }}
}

func prefixes(key, usage string, p func(*Config) *[]netip.Prefix) field {
	return field{key: key, usage: usage, kind: kindPrefixes, ptr: func(c *Config) any { return p(c) }}
}

func (f field) secretKey() field { f.secret = true; return f }

func (f field) withCheck(check func(*Config) string) field { f.check = check; return f }

// allowed says, for an error message, what values f takes.
func (f field) allowed() string {
	switch f.kind {
	case kindEnum:
		return "must be one of " + strings.Join(f.enum, ", ")
	case kindInt, kindUint:
		if f.max == math.MaxInt64 || f.max == math.MaxInt {
			return fmt.Sprintf("must be an integer >= %d", f.min)
		}
		return fmt.Sprintf("must be an integer %d-%d", f.min, f.max)
	case kindBool:
		return "must be true or false (or 1/0, yes/no, on/off)"
	case kindDuration:
		return "must be a duration > 0 such as 30s, 15m or 24h"
	case kindDelay:
		return "must be a duration >= 0 such as 0, 500ms or 5s"
	case kindSeconds:
		return "must be a whole number of seconds > 0 (or a duration such as 90s)"
	case kindSize:
		if f.min > 0 {
			return fmt.Sprintf("must be a size of at least %d bytes such as 1048576, 64MB or 1MiB", f.min)
		}
		return "must be a size such as 536870912, 512MiB or 1GiB (0 or empty disables)"
	case kindPrefixes:
		return "must be comma-separated CIDRs or IP addresses such as 10.0.0.0/8,192.168.1.1"
	}
	return "is not allowed"
}

// parse reads raw into f's field of c. On failure c is left as it was.
func (f field) parse(c *Config, raw string) *Error {
	fail := func() *Error { return f.errorFor(raw) }
	switch p := f.ptr(c).(type) {
	case *string:
		if f.kind == kindEnum {
			raw = strings.ToLower(strings.TrimSpace(raw))
		}
		*p = raw
	case *int:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 0)
		if err != nil {
			return fail()
		}
		*p = int(n)
	case *uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			return fail()
		}
		*p = n
	case *bool:
		b, err := ParseBool(raw)
		if err != nil {
			return fail()
		}
		*p = b
	case *time.Duration:
		parse := ParseDuration
		if f.kind == kindSeconds {
			parse = ParseSeconds
		}
		d, err := parse(raw)
		if err != nil {
			return fail()
		}
		*p = d
	case *int64:
		n, err := ParseSize(raw)
		if err != nil {
			return fail()
		}
		*p = n
	case *[]string:
		*p = ParseList(raw)
	case *[]netip.Prefix:
		ps, err := ParsePrefixes(raw)
		if err != nil {
			return fail()
		}
		*p = ps
	default:
		panic("config: field " + f.key + " has an unsupported type")
	}
	return nil
}

// validate applies f's range and extra rule to the parsed c.
func (f field) validate(c *Config) *Error {
	ok := true
	switch p := f.ptr(c).(type) {
	case *string:
		ok = f.kind != kindEnum || slices.Contains(f.enum, *p)
	case *int:
		ok = int64(*p) >= f.min && int64(*p) <= f.max
	case *uint64:
		ok = *p >= uint64(f.min) && *p <= uint64(f.max)
	case *time.Duration:
		ok = *p > 0 || (f.kind == kindDelay && *p == 0)
	case *int64:
		ok = *p >= f.min
	case *[]netip.Prefix:
		for _, pr := range *p {
			ok = ok && pr.IsValid()
		}
	}
	if !ok {
		return f.errorFor(f.format(c))
	}
	if f.check != nil {
		if allowed := f.check(c); allowed != "" {
			return &Error{Key: f.key, Value: f.mask(f.format(c)), Allowed: allowed}
		}
	}
	return nil
}

func (f field) errorFor(raw string) *Error {
	return &Error{Key: f.key, Value: f.mask(raw), Allowed: f.allowed()}
}

// mask hides a secret value: "***" for a secret key that is set, credentials in MONGO_URI.
func (f field) mask(v string) string {
	switch {
	case f.secret && v != "":
		return "***"
	case f.key == "MONGO_URI":
		return MaskURI(v)
	}
	return v
}

// format writes f's value in c as text that parse reads back.
func (f field) format(c *Config) string {
	switch p := f.ptr(c).(type) {
	case *string:
		return *p
	case *int:
		return strconv.Itoa(*p)
	case *uint64:
		return strconv.FormatUint(*p, 10)
	case *bool:
		return strconv.FormatBool(*p)
	case *time.Duration:
		if f.kind == kindSeconds {
			return FormatSeconds(*p)
		}
		return FormatDuration(*p)
	case *int64:
		return FormatSize(*p)
	case *[]string:
		return strings.Join(*p, ",")
	case *[]netip.Prefix:
		s := make([]string, len(*p))
		for i, pr := range *p {
			s[i] = pr.String()
		}
		return strings.Join(s, ",")
	}
	panic("config: field " + f.key + " has an unsupported type")
}

// flagNames returns the long flags of f: the key in kebab case, plus -config for CONFIG_FILE.
func (f field) flagNames() []string {
	name := strings.ReplaceAll(strings.ToLower(f.key), "_", "-")
	if f.key == "CONFIG_FILE" {
		return []string{"config", name}
	}
	return []string{name}
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

// checkHTTPURL refuses a non-empty value that is not an http or https URL with a host.
func checkHTTPURL(v string) string {
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "must be empty or an http:// or https:// URL, such as http://localhost:4318"
	}
	return ""
}

func checkMongoURI(c *Config) string {
	if c.MongoURI != "" && !strings.HasPrefix(c.MongoURI, "mongodb://") && !strings.HasPrefix(c.MongoURI, "mongodb+srv://") {
		return "must be empty or start with mongodb:// or mongodb+srv://"
	}
	return ""
}

func checkMongoDatabase(c *Config) string {
	if c.MongoDatabase == "" || strings.ContainsAny(c.MongoDatabase, "/\\. \"$\x00") || len(c.MongoDatabase) > 63 {
		return `must be a MongoDB database name: 1-63 bytes without / \ . " $ or space`
	}
	return ""
}

// maxWebhookURLs bounds WEBHOOK_URLS: the worker runs one delivery loop per receiver.
const maxWebhookURLs = 32

// checkWebhookURLs refuses a WEBHOOK_URLS entry that is not an absolute http(s) URL with a host,
// duplicates, and more than maxWebhookURLs.
func checkWebhookURLs(c *Config) string {
	const want = "must be comma-separated absolute http:// or https:// URLs"
	if len(c.WebhookURLs) > maxWebhookURLs {
		return fmt.Sprintf("at most %d URLs", maxWebhookURLs)
	}
	seen := map[string]bool{}
	for _, raw := range c.WebhookURLs {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
			return want
		}
		if seen[raw] {
			return want + ", each once"
		}
		seen[raw] = true
	}
	return ""
}

// checkHeaderNames refuses a CORS_ALLOWED_HEADERS entry that is not an HTTP header name (a token,
// RFC 9110 5.1).
func checkHeaderNames(c *Config) string {
	for _, h := range c.CORSAllowedHeaders {
		if h == "" || strings.IndexFunc(h, func(r rune) bool {
			return r > 0x7e || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
		}) >= 0 {
			return "comma-separated HTTP header names (letters, digits and !#$%&'*+-.^_`|~)"
		}
	}
	return ""
}

// checkPublicURL refuses a PUBLIC_URL that is not an absolute http(s) URL without a query.
func checkPublicURL(c *Config) string {
	if c.PublicURL == "" {
		return ""
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "must be empty or an http(s) URL such as https://events.example.com"
	}
	return ""
}
