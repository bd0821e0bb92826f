package config

import (
	"errors"
	"net/netip"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	// want lists, per environment, the values API.md and the brief fix; every other field is
	// checked to be equal across environments below.
	tests := []struct {
		env  string
		want Config
	}{
		{EnvProduction, Config{
			AppEnv: EnvProduction, Host: "0.0.0.0", MongoPoolSize: 10, UseRedis: true,
			CacheTTL: 300 * time.Second, SeedDemo: false, PasswordHashCost: 12,
			CORSOrigins: nil, LogFormat: "json", LogLevel: "info", ShutdownDelay: 5 * time.Second,
		}},
		{EnvDevelopment, Config{
			AppEnv: EnvDevelopment, Host: "127.0.0.1", MongoPoolSize: 5, UseRedis: false,
			CacheTTL: 60 * time.Second, SeedDemo: true, PasswordHashCost: 10,
			CORSOrigins: []string{"*"}, LogFormat: "text", LogLevel: "info",
		}},
		{EnvTest, Config{
			AppEnv: EnvTest, Host: "127.0.0.1", MongoPoolSize: 5, UseRedis: false,
			CacheTTL: 60 * time.Second, SeedDemo: false, PasswordHashCost: 4,
			CORSOrigins: []string{"*"}, LogFormat: "text", LogLevel: "warn",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			c, err := Defaults(tt.env)
			if err != nil {
				t.Fatal(err)
			}
			got := Config{
				AppEnv: c.AppEnv, Host: c.Host, MongoPoolSize: c.MongoPoolSize, UseRedis: c.UseRedis,
				CacheTTL: c.CacheTTL, SeedDemo: c.SeedDemo, PasswordHashCost: c.PasswordHashCost,
				CORSOrigins: c.CORSOrigins, LogFormat: c.LogFormat, LogLevel: c.LogLevel, ShutdownDelay: c.ShutdownDelay,
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Defaults(%q) =\n%v\nwant\n%v", tt.env, got, tt.want)
			}
		})
	}

	t.Run("Shared", func(t *testing.T) {
		want := Config{
			Port: 8080, MongoDatabase: "eventide", MongoMinPoolSize: 0,
			MongoConnectTimeout: 10 * time.Second, MongoServerSelectionTimeout: 5 * time.Second,
			MongoMaxConnIdleTime: 60 * time.Second, DataDir: "./data",
			RedisHost: "localhost", RedisPort: 6379, RedisDB: 0,
			CacheMaxEntries: 10000, ResponseCacheMaxBytes: 8 << 20, CacheFallbackTTL: 2 * time.Second,
			SecurityMaxEvents: 1000, SecurityEventMaxAge: 24 * time.Hour,
			ThrottleTTL: 60 * time.Second, ThrottleLimit: 300, LoginThrottleLimit: 10, SignupThrottleLimit: 5,
			BruteForceThreshold: 5, BruteForceWindow: 15 * time.Minute,
			QueryMaxDepth: 12, QueryMaxComplexity: 1000, QueryMaxAliases: 30, QueryMaxTokens: 2000,
			HTTPMaxBodyBytes: 1048576, WSMaxConnectionsPerClient: 50, WSMaxSubscriptionsPerConnection: 20, WSTransport: "lean", WSWriteTimeout: 10 * time.Second,
			HTTPReadTimeout: 15 * time.Second, HTTPMaxConnectionsPerClient: 100,
			SSEKeepAliveInterval: 15 * time.Second, SSEWriteTimeout: 10 * time.Second, MultipartHeartbeatInterval: 5 * time.Second,
			ShutdownTimeout: 15 * time.Second, SuperviseMaxRestarts: 10, JWTTTL: 24 * time.Hour, PasswordHashConcurrency: runtime.NumCPU(),
			MemoryRestartAfter: 3, MemoryCheckInterval: 5 * time.Second, MemoryLogInterval: 30 * time.Second, MemoryReleaseStartup: true,
			LogMaxSizeMB: 10, LogMaxBackups: 5, LogMaxAgeDays: 14,
			WebhookTimeout: 5 * time.Second, WebhookMaxAttempts: 10, WebhookBackoff: time.Second, WebhookRetention: 72 * time.Hour,
			OtelServiceName: "eventide", OtelTracesExporter: "otlp", OtelProtocol: "http/protobuf",
			OtelTracesSampler: "parentbased_always_on",
		}
		for _, env := range []string{EnvProduction, EnvDevelopment, EnvTest} {
			c, _ := Defaults(env)
			// Blank the per-environment fields checked above.
			c.AppEnv, c.Host, c.MongoPoolSize, c.UseRedis, c.CacheTTL, c.SeedDemo = "", "", 0, false, 0, false
			c.PasswordHashCost, c.CORSOrigins, c.LogFormat, c.LogLevel = 0, nil, "", ""
			c.ShutdownDelay = 0
			if !reflect.DeepEqual(*c, want) {
				t.Errorf("Defaults(%q) =\n%v\nwant\n%v", env, c, want)
			}
		}
	})

	t.Run("Valid", func(t *testing.T) {
		for _, env := range []string{EnvProduction, EnvDevelopment, EnvTest} {
			c, _ := Defaults(env)
			c.JWTSecret = "0123456789abcdef0123456789abcdef"
			if err := c.Validate(); err != nil {
				t.Errorf("Defaults(%q).Validate() = %v", env, err)
			}
		}
	})

	t.Run("ErrUnknownEnv", func(t *testing.T) {
		_, err := Defaults("staging")
		var e *Error
		if !errors.As(err, &e) || e.Key != "APP_ENV" || e.Value != "staging" {
			t.Fatalf("Defaults(staging) error = %#v, want *Error for APP_ENV", err)
		}
	})
}

// TestFieldsFollowConfig keeps the key table in step with the struct: every field but
// JWTSecretRandom has exactly one key, in struct order, so errors come in struct order.
func TestFieldsFollowConfig(t *testing.T) {
	var c Config
	v := reflect.ValueOf(&c).Elem()
	byAddr := make(map[uintptr]string)
	for i := range v.NumField() {
		byAddr[v.Field(i).UnsafeAddr()] = v.Type().Field(i).Name
	}
	var got []string
	for _, f := range fields {
		name, ok := byAddr[reflect.ValueOf(f.ptr(&c)).Pointer()]
		if !ok {
			t.Fatalf("key %s points outside Config's fields", f.key)
		}
		got = append(got, name)
	}
	var want []string
	for i := range v.NumField() {
		if name := v.Type().Field(i).Name; name != "JWTSecretRandom" {
			want = append(want, name)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("fields map to\n%v\nwant struct order\n%v", got, want)
	}
}

// TestFormatParsesBack checks that every default survives format then parse, which is how the
// defaults enter koanf.
func TestFormatParsesBack(t *testing.T) {
	for _, env := range []string{EnvProduction, EnvDevelopment, EnvTest} {
		want, _ := Defaults(env)
		want.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		want.RedisAddrs = []string{"a:1", "b:2"}
		want.MemoryLimit = 3 << 29
		got := &Config{}
		for _, f := range fields {
			if err := f.parse(got, f.format(want)); err != nil {
				t.Fatalf("%s: %v", env, err)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: parse(format(c)) =\n%v\nwant\n%v", env, got, want)
		}
	}
}
