package cache

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
)

// RedisLogger takes go-redis's own log lines (one per failed dial while Redis is away) to a
// logger at debug level: the Switch logs one warning per outage itself. go-redis has one logger
// per process (redis.SetLogger), so main sets a RedisLogger once and points it at the server's
// logger when that exists; lines before SetLogger are dropped.
type RedisLogger struct{ log atomic.Pointer[slog.Logger] }

// SetLogger makes l receive the lines from now on.
func (r *RedisLogger) SetLogger(l *slog.Logger) { r.log.Store(l) }

// Printf is go-redis's logging interface (internal.Logging).
func (r *RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	if l := r.log.Load(); l != nil {
		l.DebugContext(ctx, fmt.Sprintf(format, v...))
	}
}
