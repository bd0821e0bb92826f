package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/internal/server"
)

// TestBadConfigExits2 runs the real server.Run() with each bad value and checks exit status 2 and one
// line naming the key, never the secret.
func TestBadConfigExits2(t *testing.T) {
	for _, tc := range []struct {
		name, key string
		args, env []string
		secret    string
	}{
		{name: "PortNotNumber", key: "PORT", env: []string{"PORT=abc"}},
		{name: "PortFlag", key: "PORT", args: []string{"--port", "99999"}},
		{name: "NegativeTTL", key: "CACHE_TTL", env: []string{"CACHE_TTL=-5"}},
		{name: "UnknownEnv", key: "APP_ENV", env: []string{"APP_ENV=staging"}},
		{name: "MissingJWTSecretInProduction", key: "JWT_SECRET", env: []string{"APP_ENV=production"}},
		{name: "ShortJWTSecret", key: "JWT_SECRET", env: []string{"JWT_SECRET=tooshort-secret"}, secret: "tooshort-secret"},
		{name: "BadSize", key: "MEMORY_RESTART_THRESHOLD", env: []string{"MEMORY_RESTART_THRESHOLD=lots"}},
		{name: "BadDuration", key: "MONGO_SERVER_SELECTION_TIMEOUT", env: []string{"MONGO_SERVER_SELECTION_TIMEOUT=soon"}},
		{name: "BadLogFormat", key: "LOG_FORMAT", env: []string{"LOG_FORMAT=xml"}},
		{name: "BadMongoURI", key: "MONGO_URI", env: []string{"MONGO_URI=postgres://x"}},
		{name: "BadBool", key: "USE_REDIS", env: []string{"USE_REDIS=perhaps"}},
		{name: "WebhookURLNotHTTP", key: "WEBHOOK_URLS", env: []string{"WEBHOOK_URLS=mailto:ops@example.com", "WEBHOOK_SECRET=hook-secret-value"}, secret: "hook-secret-value"},
		{name: "WebhookURLWithoutSecret", key: "WEBHOOK_SECRET", env: []string{"WEBHOOK_URLS=https://hooks.example.com/in"}},
		{name: "BadOtelEndpoint", key: "OTEL_EXPORTER_OTLP_ENDPOINT", env: []string{"OTEL_EXPORTER_OTLP_ENDPOINT=localhost:4318"}},
		{name: "BadOtelSampler", key: "OTEL_TRACES_SAMPLER", env: []string{"OTEL_TRACES_SAMPLER=jaeger_remote"}},
		{name: "BadOtelSamplerArg", key: "OTEL_TRACES_SAMPLER_ARG", env: []string{"OTEL_TRACES_SAMPLER_ARG=half"}},
		{name: "OtelHeadersSecret", key: "OTEL_EXPORTER_OTLP_HEADERS", env: []string{"OTEL_EXPORTER_OTLP_HEADERS=x-api-key"}, secret: "x-api-key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := append([]string{"DATA_DIR=" + t.TempDir()}, tc.env...)
			err := server.Run(context.Background(), tc.args, env, &stdout, &stderr)
			code := server.ExitCode(err, &stderr)
			out := stderr.String()
			if code != 2 {
				t.Fatalf("exit %d, want 2 (%s)", code, out)
			}
			if lines := strings.Count(strings.TrimSpace(out), "\n") + 1; lines != 1 {
				t.Fatalf("%d lines, want 1: %s", lines, out)
			}
			if !strings.Contains(out, tc.key) {
				t.Fatalf("message does not name %s: %s", tc.key, out)
			}
			if tc.secret != "" && strings.Contains(out, tc.secret) {
				t.Fatalf("secret printed: %s", out)
			}
		})
	}
	t.Run("UnknownFlag", func(t *testing.T) {
		var stderr bytes.Buffer
		if code := server.ExitCode(server.Run(context.Background(), []string{"--no-such-flag"}, nil, &stderr, &stderr), &stderr); code != 2 {
			t.Fatalf("exit %d", code)
		}
	})
}

// TestUnusableDataDirExits2: a data directory that cannot be created, is a file, or cannot be
// written is a configuration error: exit 2 and one line naming DATA_DIR, before the store opens.
func TestUnusableDataDirExits2(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, dir string }{
		{"AFile", file},
		{"NotCreatable", filepath.Join(file, "sub")},
		{"NotWritable", "/proc/self"}, // read-only even to root
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := []string{"APP_ENV=test", "PORT=0", "HOST=127.0.0.1", "DATA_DIR=" + tc.dir, "LOG_FORMAT=json"}
			done := make(chan error, 1)
			go func() { done <- server.Run(context.Background(), nil, env, &stdout, &stderr) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("run still going 30s later")
			}
			code := server.ExitCode(err, &stderr)
			out := strings.TrimSpace(stderr.String())
			if code != 2 {
				t.Fatalf("exit %d, want 2: %s", code, out)
			}
			if n := strings.Count(out, "\n") + 1; n != 1 {
				t.Fatalf("%d lines, want 1: %s", n, out)
			}
			if !strings.Contains(out, "DATA_DIR") {
				t.Fatalf("does not name DATA_DIR: %s", out)
			}
		})
	}
}
