package config

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestLoad_BadValues(t *testing.T) {
	const (
		shortSecret = "tooshort-jwt"
		mongoPass   = "hunter2hunter2"
	)
	tests := []struct {
		name    string
		noTest  bool     // leave out APP_ENV=test
		environ []string // on top of APP_ENV=test
		args    []string
		yaml    string
		key     string // the key the *Error must name
		value   string // the value it must show
		secret  string // must appear nowhere in the error
	}{
		{name: "ErrAppEnvUnknown", environ: []string{"APP_ENV=staging"}, key: "APP_ENV", value: "staging"},
		{name: "ErrAppEnvEmpty", environ: []string{"APP_ENV="}, key: "APP_ENV", value: ""},
		{name: "ErrAppEnvChangedByYAML", noTest: true, yaml: "app_env: production\n", key: "APP_ENV", value: "production"},
		{name: "ErrPortNotInteger", environ: []string{"PORT=abc"}, key: "PORT", value: "abc"},
		{name: "ErrPortNegative", environ: []string{"PORT=-1"}, key: "PORT", value: "-1"},
		{name: "ErrPortTooLarge", environ: []string{"PORT=65536"}, key: "PORT", value: "65536"},
		{name: "ErrPortFlag", args: []string{"-port", "-5"}, key: "PORT", value: "-5"},
		{name: "ErrPortYAML", yaml: "port: eighty\n", key: "PORT", value: "eighty"},
		{name: "ErrFirstInStructOrder", environ: []string{"LOG_LEVEL=trace", "PORT=x", "CACHE_TTL=-1"}, key: "PORT", value: "x"},
		{name: "ErrMongoURIScheme", environ: []string{"MONGO_URI=http://admin:" + mongoPass + "@db:27017"}, key: "MONGO_URI", value: "http://admin:***@db:27017", secret: mongoPass},
		{name: "ErrMongoURINoScheme", environ: []string{"MONGO_URI=admin:" + mongoPass + "@db"}, key: "MONGO_URI", value: "admin:***@db", secret: mongoPass},
		{name: "ErrMongoDatabaseEmpty", environ: []string{"MONGO_DATABASE="}, key: "MONGO_DATABASE", value: ""},
		{name: "ErrMongoDatabaseDot", environ: []string{"MONGO_DATABASE=a.b"}, key: "MONGO_DATABASE", value: "a.b"},
		{name: "ErrMongoPoolZero", environ: []string{"MONGO_POOL_SIZE=0"}, key: "MONGO_POOL_SIZE", value: "0"},
		{name: "ErrMongoPoolNegative", environ: []string{"MONGO_POOL_SIZE=-3"}, key: "MONGO_POOL_SIZE", value: "-3"},
		{name: "ErrMongoMinPoolOverMax", environ: []string{"MONGO_POOL_SIZE=5", "MONGO_MIN_POOL_SIZE=6"}, key: "MONGO_MIN_POOL_SIZE", value: "6"},
		{name: "ErrMongoConnectTimeoutZero", environ: []string{"MONGO_CONNECT_TIMEOUT=0s"}, key: "MONGO_CONNECT_TIMEOUT", value: "0s"},
		{name: "ErrMongoConnectTimeoutNoUnit", environ: []string{"MONGO_CONNECT_TIMEOUT=10"}, key: "MONGO_CONNECT_TIMEOUT", value: "10"},
		{name: "ErrMongoSelectionTimeout", environ: []string{"MONGO_SERVER_SELECTION_TIMEOUT=soon"}, key: "MONGO_SERVER_SELECTION_TIMEOUT", value: "soon"},
		{name: "ErrMongoIdleNegative", environ: []string{"MONGO_MAX_CONN_IDLE_TIME=-5m"}, key: "MONGO_MAX_CONN_IDLE_TIME", value: "-5m"},
		{name: "ErrDataDirEmpty", environ: []string{"DATA_DIR="}, key: "DATA_DIR", value: ""},
		{name: "ErrUseRedisNotBool", environ: []string{"USE_REDIS=maybe"}, key: "USE_REDIS", value: "maybe"},
		{name: "ErrRedisHostEmpty", environ: []string{"USE_REDIS=true", "REDIS_HOST="}, key: "REDIS_HOST", value: ""},
		{name: "ErrRedisPortZero", environ: []string{"REDIS_PORT=0"}, key: "REDIS_PORT", value: "0"},
		{name: "ErrRedisPortTooLarge", environ: []string{"REDIS_PORT=70000"}, key: "REDIS_PORT", value: "70000"},
		{name: "ErrRedisDBNegative", environ: []string{"REDIS_DB=-1"}, key: "REDIS_DB", value: "-1"},
		{name: "ErrRedisAddrsNoPort", environ: []string{"REDIS_ADDRS=a:1, b"}, key: "REDIS_ADDRS", value: "a:1,b"},
		{name: "ErrPprofNotLoopback", environ: []string{"PPROF_ADDR=0.0.0.0:6060"}, key: "PPROF_ADDR", value: "0.0.0.0:6060"},
		{name: "ErrPprofNoPort", environ: []string{"PPROF_ADDR=localhost"}, key: "PPROF_ADDR", value: "localhost"},
		{name: "ErrCacheTTLNegative", environ: []string{"CACHE_TTL=-5"}, key: "CACHE_TTL", value: "-5"},
		{name: "ErrCacheTTLZero", environ: []string{"CACHE_TTL=0"}, key: "CACHE_TTL", value: "0"},
		{name: "ErrCacheTTLNotNumber", environ: []string{"CACHE_TTL=1.5"}, key: "CACHE_TTL", value: "1.5"},
		{name: "ErrCacheFallbackTTLZero", environ: []string{"CACHE_FALLBACK_TTL=0s"}, key: "CACHE_FALLBACK_TTL", value: "0s"},
		{name: "ErrCacheFallbackTTLNotDuration", environ: []string{"CACHE_FALLBACK_TTL=2"}, key: "CACHE_FALLBACK_TTL", value: "2"},
		{name: "ErrCacheMaxEntriesZero", environ: []string{"CACHE_MAX_ENTRIES=0"}, key: "CACHE_MAX_ENTRIES", value: "0"},
		{name: "ErrSeedDemoNotBool", environ: []string{"SEED_DEMO=2"}, key: "SEED_DEMO", value: "2"},
		{name: "ErrSeedDemoInProduction", environ: []string{"APP_ENV=production", "JWT_SECRET=" + strings.Repeat("p", 40), "SEED_DEMO=true"}, key: "SEED_DEMO", value: "true"},
		{name: "ErrSecurityMaxEventsZero", environ: []string{"SECURITY_MAX_EVENTS=0"}, key: "SECURITY_MAX_EVENTS", value: "0"},
		{name: "ErrSecurityEventMaxAgeZero", environ: []string{"SECURITY_EVENT_MAX_AGE=0"}, key: "SECURITY_EVENT_MAX_AGE", value: "0s"},
		{name: "ErrThrottleTTLZero", environ: []string{"THROTTLE_TTL=0"}, key: "THROTTLE_TTL", value: "0"},
		{name: "ErrThrottleLimitZero", environ: []string{"THROTTLE_LIMIT=0"}, key: "THROTTLE_LIMIT", value: "0"},
		{name: "ErrLoginThrottleNegative", environ: []string{"LOGIN_THROTTLE_LIMIT=-3"}, key: "LOGIN_THROTTLE_LIMIT", value: "-3"},
		{name: "ErrSignupThrottleZero", environ: []string{"SIGNUP_THROTTLE_LIMIT=0"}, key: "SIGNUP_THROTTLE_LIMIT", value: "0"},
		{name: "ErrTrustedProxiesBadBits", environ: []string{"TRUSTED_PROXIES=10.0.0.0/33"}, key: "TRUSTED_PROXIES", value: "10.0.0.0/33"},
		{name: "ErrTrustedProxiesName", environ: []string{"TRUSTED_PROXIES=10.0.0.0/8,proxy.local"}, key: "TRUSTED_PROXIES", value: "10.0.0.0/8,proxy.local"},
		{name: "ErrCORSAllowedHeadersSpace", environ: []string{"CORS_ALLOWED_HEADERS=X-Tenant,X Trace"}, key: "CORS_ALLOWED_HEADERS", value: "X-Tenant,X Trace"},
		{name: "ErrWebhookURLScheme", environ: []string{"WEBHOOK_URLS=ftp://hooks.example.com/x", "WEBHOOK_SECRET=s"}, key: "WEBHOOK_URLS", value: "ftp://hooks.example.com/x"},
		{name: "ErrWebhookURLRelative", environ: []string{"WEBHOOK_URLS=https://ok.example.com/a,/hooks", "WEBHOOK_SECRET=s"}, key: "WEBHOOK_URLS", value: "https://ok.example.com/a,/hooks"},
		{name: "ErrWebhookSecretMissing", environ: []string{"WEBHOOK_URLS=https://hooks.example.com/x"}, key: "WEBHOOK_SECRET", value: ""},
		{name: "ErrWebhookMaxAttemptsZero", environ: []string{"WEBHOOK_MAX_ATTEMPTS=0"}, key: "WEBHOOK_MAX_ATTEMPTS", value: "0"},
		{name: "ErrWebhookBackoffZero", environ: []string{"WEBHOOK_BACKOFF=0s"}, key: "WEBHOOK_BACKOFF", value: "0s"},
		{name: "ErrCORSAllowedHeadersColon", environ: []string{"CORS_ALLOWED_HEADERS=X-Tenant:1"}, key: "CORS_ALLOWED_HEADERS", value: "X-Tenant:1"},
		{name: "ErrBruteForceThresholdZero", environ: []string{"BRUTE_FORCE_THRESHOLD=0"}, key: "BRUTE_FORCE_THRESHOLD", value: "0"},
		{name: "ErrBruteForceWindowNoUnit", environ: []string{"BRUTE_FORCE_WINDOW=15"}, key: "BRUTE_FORCE_WINDOW", value: "15"},
		{name: "ErrQueryMaxDepthZero", environ: []string{"QUERY_MAX_DEPTH=0"}, key: "QUERY_MAX_DEPTH", value: "0"},
		{name: "ErrQueryMaxComplexityNegative", environ: []string{"QUERY_MAX_COMPLEXITY=-1"}, key: "QUERY_MAX_COMPLEXITY", value: "-1"},
		{name: "ErrQueryMaxAliasesZero", environ: []string{"QUERY_MAX_ALIASES=0"}, key: "QUERY_MAX_ALIASES", value: "0"},
		{name: "ErrQueryMaxTokensNotInteger", environ: []string{"QUERY_MAX_TOKENS=2k"}, key: "QUERY_MAX_TOKENS", value: "2k"},
		{name: "ErrBodyTooSmall", environ: []string{"HTTP_MAX_BODY_BYTES=100"}, key: "HTTP_MAX_BODY_BYTES", value: "100"},
		{name: "ErrBodyNegative", environ: []string{"HTTP_MAX_BODY_BYTES=-1"}, key: "HTTP_MAX_BODY_BYTES", value: "-1"},
		{name: "ErrBodyBadUnit", environ: []string{"HTTP_MAX_BODY_BYTES=1XB"}, key: "HTTP_MAX_BODY_BYTES", value: "1XB"},
		{name: "ErrWSConnectionsZero", environ: []string{"WS_MAX_CONNECTIONS_PER_CLIENT=0"}, key: "WS_MAX_CONNECTIONS_PER_CLIENT", value: "0"},
		{name: "ErrWSTransportUnknown", environ: []string{"WS_TRANSPORT=gorilla"}, key: "WS_TRANSPORT", value: "gorilla"},
		{name: "ErrWSSubscriptionsZero", environ: []string{"WS_MAX_SUBSCRIPTIONS_PER_CONNECTION=0"}, key: "WS_MAX_SUBSCRIPTIONS_PER_CONNECTION", value: "0"},
		{name: "ErrHTTPReadTimeoutZero", environ: []string{"HTTP_READ_TIMEOUT=0s"}, key: "HTTP_READ_TIMEOUT", value: "0s"},
		{name: "ErrHTTPReadTimeoutNoUnit", environ: []string{"HTTP_READ_TIMEOUT=15"}, key: "HTTP_READ_TIMEOUT", value: "15"},
		{name: "ErrHTTPConnectionsZero", environ: []string{"HTTP_MAX_CONNECTIONS_PER_CLIENT=0"}, key: "HTTP_MAX_CONNECTIONS_PER_CLIENT", value: "0"},
		{name: "ErrHTTPConnectionsNotInteger", environ: []string{"HTTP_MAX_CONNECTIONS_PER_CLIENT=many"}, key: "HTTP_MAX_CONNECTIONS_PER_CLIENT", value: "many"},
		{name: "ErrSSEKeepAliveNegative", environ: []string{"SSE_KEEPALIVE_INTERVAL=-1s"}, key: "SSE_KEEPALIVE_INTERVAL", value: "-1s"},
		{name: "ErrSSEWriteTimeoutZero", environ: []string{"SSE_WRITE_TIMEOUT=0s"}, key: "SSE_WRITE_TIMEOUT", value: "0s"},
		{name: "ErrMultipartHeartbeatZero", environ: []string{"MULTIPART_HEARTBEAT_INTERVAL=0s"}, key: "MULTIPART_HEARTBEAT_INTERVAL", value: "0s"},
		{name: "ErrMetricsAddrNoPort", environ: []string{"METRICS_ADDR=localhost"}, key: "METRICS_ADDR", value: "localhost"},
		{name: "ErrPublicURLNotHTTP", environ: []string{"PUBLIC_URL=ftp://example.com"}, key: "PUBLIC_URL", value: "ftp://example.com"},
		{name: "ErrPublicURLRelative", environ: []string{"PUBLIC_URL=/events"}, key: "PUBLIC_URL", value: "/events"},
		{name: "ErrMetricsAddrBadPort", environ: []string{"METRICS_ADDR=:99999"}, key: "METRICS_ADDR", value: ":99999"},
		{name: "ErrOtelEndpointNoScheme", environ: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=collector:4318"}, key: "OTEL_EXPORTER_OTLP_ENDPOINT", value: "collector:4318"},
		{name: "ErrOtelTracesEndpointGRPCScheme", environ: []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=grpc://c:4317"}, key: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", value: "grpc://c:4317"},
		{name: "ErrOtelProtocolGRPC", environ: []string{"OTEL_EXPORTER_OTLP_PROTOCOL=grpc"}, key: "OTEL_EXPORTER_OTLP_PROTOCOL", value: "grpc"},
		{name: "ErrOtelSampler", environ: []string{"OTEL_TRACES_SAMPLER=sometimes"}, key: "OTEL_TRACES_SAMPLER", value: "sometimes"},
		{name: "ErrOtelSamplerArgOverOne", environ: []string{"OTEL_TRACES_SAMPLER_ARG=1.5"}, key: "OTEL_TRACES_SAMPLER_ARG", value: "1.5"},
		{name: "ErrOtelSamplerArgNaN", environ: []string{"OTEL_TRACES_SAMPLER_ARG=NaN"}, key: "OTEL_TRACES_SAMPLER_ARG", value: "NaN"},
		{name: "ErrOtelSDKDisabledNotBool", environ: []string{"OTEL_SDK_DISABLED=maybe"}, key: "OTEL_SDK_DISABLED", value: "maybe"},
		{name: "ErrOtelServiceNameEmpty", environ: []string{"OTEL_SERVICE_NAME= "}, key: "OTEL_SERVICE_NAME", value: " "},
		{name: "ErrOtelExporterZipkin", environ: []string{"OTEL_TRACES_EXPORTER=zipkin"}, key: "OTEL_TRACES_EXPORTER", value: "zipkin"},
		{name: "ErrOtelHeadersSecret", environ: []string{"OTEL_EXPORTER_OTLP_HEADERS=api-key%zz"}, key: "OTEL_EXPORTER_OTLP_HEADERS", value: "***", secret: "api-key%zz"},
		{name: "ErrShutdownTimeoutZero", environ: []string{"SHUTDOWN_TIMEOUT=0s"}, key: "SHUTDOWN_TIMEOUT", value: "0s"},
		{name: "ErrJWTSecretShort", environ: []string{"JWT_SECRET=" + shortSecret}, key: "JWT_SECRET", value: "***", secret: shortSecret},
		{name: "ErrJWTSecretMissingInProduction", environ: []string{"APP_ENV=production"}, key: "JWT_SECRET", value: ""},
		{name: "ErrJWTTTLZero", environ: []string{"JWT_TTL=0s"}, key: "JWT_TTL", value: "0s"},
		{name: "ErrHashCostLow", environ: []string{"PASSWORD_HASH_COST=3"}, key: "PASSWORD_HASH_COST", value: "3"},
		{name: "ErrHashCostHigh", environ: []string{"PASSWORD_HASH_COST=32"}, key: "PASSWORD_HASH_COST", value: "32"},
		{name: "ErrHashConcurrencyZero", environ: []string{"PASSWORD_HASH_CONCURRENCY=0"}, key: "PASSWORD_HASH_CONCURRENCY", value: "0"},
		{name: "ErrAdminEmailNoAt", environ: []string{"ADMIN_EMAIL=admin", "ADMIN_PASSWORD=long-enough-pw"}, key: "ADMIN_EMAIL", value: "admin", secret: "long-enough-pw"},
		{name: "ErrAdminEmailWithoutPassword", environ: []string{"ADMIN_EMAIL=admin@x.y"}, key: "ADMIN_PASSWORD", value: ""},
		{name: "ErrAdminPasswordWithoutEmail", environ: []string{"ADMIN_PASSWORD=long-enough-pw"}, key: "ADMIN_EMAIL", value: "", secret: "long-enough-pw"},
		{name: "ErrAdminPasswordShort", environ: []string{"ADMIN_EMAIL=admin@x.y", "ADMIN_PASSWORD=short7!"}, key: "ADMIN_PASSWORD", value: "***", secret: "short7!"},
		{name: "ErrSuperviseNotBool", args: []string{"--supervise=perhaps"}, key: "SUPERVISE", value: "perhaps"},
		{name: "ErrRestartThresholdNegative", environ: []string{"MEMORY_RESTART_THRESHOLD=-1"}, key: "MEMORY_RESTART_THRESHOLD", value: "-1"},
		{name: "ErrRestartThresholdWords", environ: []string{"MEMORY_RESTART_THRESHOLD=lots"}, key: "MEMORY_RESTART_THRESHOLD", value: "lots"},
		{name: "ErrRestartAfterZero", environ: []string{"MEMORY_RESTART_AFTER=0"}, key: "MEMORY_RESTART_AFTER", value: "0"},
		{name: "ErrCheckIntervalZero", environ: []string{"MEMORY_CHECK_INTERVAL=0s"}, key: "MEMORY_CHECK_INTERVAL", value: "0s"},
		{name: "ErrMemoryLimitOverflow", environ: []string{"MEMORY_LIMIT=8EiB"}, key: "MEMORY_LIMIT", value: "8EiB"},
		{name: "ErrShutdownDelayNegative", environ: []string{"SHUTDOWN_DELAY=-1s"}, key: "SHUTDOWN_DELAY", value: "-1s"},
		{name: "ErrShutdownDelayNoUnit", environ: []string{"SHUTDOWN_DELAY=5"}, key: "SHUTDOWN_DELAY", value: "5"},
		{name: "ErrSuperviseMaxRestartsZero", environ: []string{"SUPERVISE_MAX_RESTARTS=0"}, key: "SUPERVISE_MAX_RESTARTS", value: "0"},
		{name: "ErrLogIntervalNegative", environ: []string{"MEMORY_LOG_INTERVAL=-1s"}, key: "MEMORY_LOG_INTERVAL", value: "-1s"},
		{name: "ErrLogFormat", environ: []string{"LOG_FORMAT=xml"}, key: "LOG_FORMAT", value: "xml"},
		{name: "ErrLogLevel", environ: []string{"LOG_LEVEL=trace"}, key: "LOG_LEVEL", value: "trace"},
		{name: "ErrLogMaxSizeZero", environ: []string{"LOG_MAX_SIZE_MB=0"}, key: "LOG_MAX_SIZE_MB", value: "0"},
		{name: "ErrLogMaxBackupsNegative", environ: []string{"LOG_MAX_BACKUPS=-1"}, key: "LOG_MAX_BACKUPS", value: "-1"},
		{name: "ErrLogMaxAgeNegative", environ: []string{"LOG_MAX_AGE_DAYS=-1"}, key: "LOG_MAX_AGE_DAYS", value: "-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src := Sources{Dir: dir, Environ: append([]string{"APP_ENV=test"}, tt.environ...), Args: tt.args}
			if tt.noTest {
				src.Environ = tt.environ
			}
			if tt.yaml != "" {
				src.Args = append(src.Args, "-config", writeFile(t, dir, "c.yaml", tt.yaml))
			}
			_, err := Load(src)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Load error = %v (%T), want *config.Error", err, err)
			}
			if e.Key != tt.key || e.Value != tt.value || e.Allowed == "" {
				t.Errorf("Error{Key: %q, Value: %q, Allowed: %q}, want Key %q, Value %q", e.Key, e.Value, e.Allowed, tt.key, tt.value)
			}
			msg := err.Error()
			if want := "config: " + tt.key + "=" + strconv.Quote(tt.value) + " is invalid: "; !strings.HasPrefix(msg, want) {
				t.Errorf("message %q does not start with %q", msg, want)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("message %q spans lines", msg)
			}
			if tt.secret != "" && strings.Contains(msg, tt.secret) {
				t.Errorf("message %q shows the secret", msg)
			}
		})
	}
}

func TestError(t *testing.T) {
	e := &Error{Key: "PORT", Value: "abc", Allowed: "must be an integer 0-65535"}
	if got, want := e.Error(), `config: PORT="abc" is invalid: must be an integer 0-65535`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	e = &Error{Key: "HOST", Value: "a\nb", Allowed: "x"}
	if strings.Contains(e.Error(), "\n") {
		t.Errorf("Error() = %q spans lines", e.Error())
	}
}
