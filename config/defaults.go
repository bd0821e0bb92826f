package config

import (
	"runtime"
	"time"
)

// Defaults returns the built-in configuration of appEnv (development, test or production), before
// any file, environment variable or flag is applied. An unknown appEnv is an *Error for APP_ENV.
func Defaults(appEnv string) (*Config, error) {
	switch appEnv {
	case EnvProduction:
		return productionDefaults(), nil
	case EnvDevelopment:
		return developmentDefaults(), nil
	case EnvTest:
		return testDefaults(), nil
	}
	return nil, fields[fieldIndex["APP_ENV"]].errorFor(appEnv)
}

// productionDefaults is the table of API.md: safe and sized for a real deployment.
func productionDefaults() *Config {
	return &Config{
		AppEnv: EnvProduction,

		Host: "0.0.0.0",
		Port: 8080,

		MongoDatabase:               "eventide",
		MongoPoolSize:               10,
		MongoMinPoolSize:            0,
		MongoConnectTimeout:         10 * time.Second,
		MongoServerSelectionTimeout: 5 * time.Second,
		MongoMaxConnIdleTime:        60 * time.Second,
		DataDir:                     "./data",

		UseRedis:  true,
		RedisHost: "localhost",
		RedisPort: 6379,
		RedisDB:   0,

		CacheTTL:              300 * time.Second,
		CacheMaxEntries:       10000,
		CacheFallbackTTL:      2 * time.Second,
		ResponseCacheMaxBytes: 8 << 20,

		SeedDemo: false,

		SecurityMaxEvents:   1000,
		SecurityEventMaxAge: 24 * time.Hour,

		ThrottleTTL:         60 * time.Second,
		ThrottleLimit:       300,
		LoginThrottleLimit:  10,
		SignupThrottleLimit: 5,
		BruteForceThreshold: 5,
		BruteForceWindow:    15 * time.Minute,

		QueryMaxDepth:      12,
		QueryMaxComplexity: 1000,
		QueryMaxAliases:    30,
		QueryMaxTokens:     2000,

		HTTPMaxBodyBytes:                1 << 20,
		WSMaxConnectionsPerClient:       50,
		WSMaxSubscriptionsPerConnection: 20,
		WSTransport:                     WSTransportLean,
		WSWriteTimeout:                  10 * time.Second,
		HTTPReadTimeout:                 15 * time.Second,
		HTTPMaxConnectionsPerClient:     100,
		SSEKeepAliveInterval:            15 * time.Second,
		SSEWriteTimeout:                 10 * time.Second,
		MultipartHeartbeatInterval:      5 * time.Second,
		ShutdownTimeout:                 15 * time.Second,
		ShutdownDelay:                   5 * time.Second,

		WebhookTimeout:     5 * time.Second,
		WebhookMaxAttempts: 10,
		WebhookBackoff:     time.Second,
		WebhookRetention:   72 * time.Hour,

		JWTTTL:                  24 * time.Hour,
		PasswordHashCost:        12,
		PasswordHashConcurrency: runtime.NumCPU(),

		SuperviseMaxRestarts: 10,
		MemoryRestartAfter:   3,
		MemoryCheckInterval:  5 * time.Second,
		MemoryLogInterval:    30 * time.Second,
		MemoryReleaseStartup: true,

		LogFormat:     "json",
		LogLevel:      "info",
		LogMaxSizeMB:  10,
		LogMaxBackups: 5,
		LogMaxAgeDays: 14,

		OtelServiceName:    "eventide",
		OtelTracesExporter: "otlp",
		OtelProtocol:       "http/protobuf",
		OtelTracesSampler:  "parentbased_always_on",
	}
}

// developmentDefaults is production made local and light: loopback only, small Mongo pool, no
// Redis, short cache TTL, demo data, any CORS origin, cheaper hashing, text logs.
func developmentDefaults() *Config {
	c := productionDefaults()
	c.AppEnv = EnvDevelopment
	c.Host = "127.0.0.1"
	c.MongoPoolSize = 5
	c.UseRedis = false
	c.CacheTTL = 60 * time.Second
	c.SeedDemo = true
	c.PasswordHashCost = 10
	c.CORSOrigins = []string{"*"}
	c.LogFormat = "text"
	c.ShutdownDelay = 0 // nothing balances load in front of a laptop
	return c
}

// testDefaults is development without demo data, with the cheapest hashing and quiet logs.
func testDefaults() *Config {
	c := developmentDefaults()
	c.AppEnv = EnvTest
	c.SeedDemo = false
	c.PasswordHashCost = 4
	c.LogLevel = "warn"
	return c
}
