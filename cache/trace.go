package cache

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventide/server/telemetry"
)

// traceHook makes each Redis command, and each pipeline, a span under the request that sent it.
// Commands of background loops (the probe, the bus) have no request span and are not traced.
// redisotel (go-redis/extra) does this and metrics besides, but no release of it matching go-redis
// v9.23 is served to us; a hook of twenty lines is smaller than pinning a mismatched one.
type traceHook struct{ tracer trace.Tracer }

var _ redis.Hook = traceHook{}

func (traceHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h traceHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		ctx, span := telemetry.Child(ctx, h.tracer, "redis "+cmd.Name(), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", cmd.Name())))
		err := next(ctx, cmd)
		telemetry.End(span, redisFailure(err))
		return err
	}
}

func (h traceHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		ctx, span := telemetry.Child(ctx, h.tracer, "redis pipeline", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("db.system.name", "redis"), attribute.String("db.operation.name", "pipeline"),
				attribute.Int("db.operation.batch.size", len(cmds))))
		err := next(ctx, cmds)
		telemetry.End(span, redisFailure(err))
		return err
	}
}

// redisFailure is err unless it is redis.Nil (a missing key: a cache miss, not a failure).
func redisFailure(err error) error {
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
}
