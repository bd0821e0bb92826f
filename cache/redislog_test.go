package cache

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestRedisLoggerAtDebug: go-redis's lines reach the logger at debug level, formatted; lines
// before SetLogger are dropped.
func TestRedisLoggerAtDebug(t *testing.T) {
	var buf bytes.Buffer
	var r RedisLogger
	r.Printf(context.Background(), "dropped %d", 1)
	r.SetLogger(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	r.Printf(context.Background(), "dial tcp %s: refused", "127.0.0.1:1")
	got := buf.String()
	if strings.Count(got, "\n") != 1 || !strings.Contains(got, "level=DEBUG") || !strings.Contains(got, `msg="dial tcp 127.0.0.1:1: refused"`) {
		t.Fatalf("logged %q, want one debug line with the formatted message", got)
	}
}
