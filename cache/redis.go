package cache

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"
)

// RedisOptions configures NewRedis. Zero durations and sizes take the defaults below: short,
// because a slow Redis must cost a request little before the Switch falls back to memory.
type RedisOptions struct {
	// Addrs are host:port seeds. One address is a single node; with MasterName they are Sentinels;
	// several addresses without a master name are a Cluster.
	Addrs      []string
	MasterName string
	Password   string
	// SentinelPassword is what the Sentinels themselves require (REDIS_SENTINEL_PASSWORD); the
	// data nodes take Password.
	SentinelPassword string
	DB               int
	// Prefix starts every key (the Switch and Store add nothing else in front).
	Prefix string
	TTL    time.Duration
	// PoolSize bounds the connections (default 16); OpTimeout bounds each call (default 250ms)
	// and DialTimeout each connection attempt (default 250ms).
	PoolSize    int
	OpTimeout   time.Duration
	DialTimeout time.Duration
	// Tracer, when set, makes each command sent for a traced request a span (nil: tracing off).
	Tracer trace.Tracer
}

// Redis is the shared backend. Every key carries Prefix and a TTL; batches are one MGET, or one
// pipeline, per call.
type Redis struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // set when the client is a cluster: MGET cannot span slots there
	prefix  string
	ttl     time.Duration
	timeout time.Duration
	mode    string

	// lastEvicted is Redis's evicted_keys from the last Stats call, for when INFO fails.
	lastEvicted atomic.Int64
}

var _ Cache = (*Redis)(nil)

// NewRedis builds the client; it does not connect until the first call.
func NewRedis(o RedisOptions) *Redis {
	if o.PoolSize <= 0 {
		o.PoolSize = 16
	}
	if o.OpTimeout <= 0 {
		o.OpTimeout = 250 * time.Millisecond
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 250 * time.Millisecond
	}
	uo := &redis.UniversalOptions{
		Addrs:                 o.Addrs,
		MasterName:            o.MasterName,
		Password:              o.Password,
		SentinelPassword:      o.SentinelPassword,
		DB:                    o.DB,
		ClientName:            "eventide",
		PoolSize:              o.PoolSize,
		MinIdleConns:          0, // no background dialling while Redis is away: the probe does that
		MaxIdleConns:          o.PoolSize,
		PoolTimeout:           o.OpTimeout,
		DialTimeout:           o.DialTimeout,
		DialerRetries:         1,
		ReadTimeout:           o.OpTimeout,
		WriteTimeout:          o.OpTimeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // no retries: a failed call falls back at once
		ConnMaxIdleTime:       time.Minute,
		DisableIdentity:       true,
	}
	r := &Redis{client: redis.NewUniversalClient(uo), prefix: o.Prefix, ttl: o.TTL, timeout: o.OpTimeout}
	if o.Tracer != nil {
		r.client.AddHook(traceHook{tracer: o.Tracer})
	}
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		r.cluster, r.mode = c, "cluster"
	case *redis.Client:
		r.mode = "single"
		if o.MasterName != "" {
			r.mode = "sentinel"
		}
	default:
		r.mode = "sentinel"
	}
	return r
}

// Mode is "single", "sentinel" or "cluster".
func (r *Redis) Mode() string { return r.mode }

// Client is the underlying client, for pub/sub.
func (r *Redis) Client() redis.UniversalClient { return r.client }

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// Prefix starts every key and channel of this deployment in Redis.
func (r *Redis) Prefix() string { return r.prefix }

// WithTimeout bounds ctx by one call's timeout (OpTimeout), for callers of Client.
func (r *Redis) WithTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return r.op(ctx)
}

func (r *Redis) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// SetLocal implements Cache: Redis is shared, so another replica's write is in it already.
func (r *Redis) SetLocal(context.Context, []Item, []string, time.Duration) {}

func (r *Redis) ttlOr(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return r.ttl
	}
	return ttl
}

// Ping checks that Redis answers.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := r.op(ctx)
	defer cancel()
	return r.client.Ping(ctx).Err()
}

// Get implements Cache with one MGET (a pipeline of GETs on a cluster).
func (r *Redis) Get(ctx context.Context, keys []string) ([][]byte, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	out := make([][]byte, len(keys))
	if r.cluster != nil {
		cmds := make([]*redis.StringCmd, len(keys))
		_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.Get(ctx, r.prefix+k)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for i, c := range cmds {
			if b, err := c.Bytes(); err == nil {
				out[i] = b
			}
		}
		return out, nil
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.prefix + k
	}
	vals, err := r.client.MGet(ctx, full...).Result()
	if err != nil {
		return nil, err
	}
	for i, v := range vals {
		if s, ok := v.(string); ok {
			out[i] = []byte(s)
		}
	}
	return out, nil
}

// Set implements Cache with one pipeline of SET EX.
func (r *Redis) Set(ctx context.Context, items []Item, ttl time.Duration) error {
	if len(items) == 0 {
		return nil
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	ttl = r.ttlOr(ttl)
	if len(items) == 1 {
		return r.client.Set(ctx, r.prefix+items[0].Key, items[0].Value, ttl).Err()
	}
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, it := range items {
			p.Set(ctx, r.prefix+it.Key, it.Value, ttl)
		}
		return nil
	})
	return err
}

// AddOrGet implements Cache with one pipeline of SET NX EX then GET per item. The pair is not
// atomic, and need not be: whatever GET returns was stored no earlier than the SET tried.
func (r *Redis) AddOrGet(ctx context.Context, items []Item, ttl time.Duration) ([][]byte, error) {
	if len(items) == 0 {
		return nil, nil
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	ttl = r.ttlOr(ttl)
	gets := make([]*redis.StringCmd, len(items))
	_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, it := range items {
			p.SetNX(ctx, r.prefix+it.Key, it.Value, ttl)
			gets[i] = p.Get(ctx, r.prefix+it.Key)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([][]byte, len(items))
	for i, g := range gets {
		if b, err := g.Bytes(); err == nil {
			out[i] = b
		}
	}
	return out, nil
}

// Delete implements Cache with UNLINK (one per key on a cluster, pipelined).
func (r *Redis) Delete(ctx context.Context, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	ctx, cancel := r.op(ctx)
	defer cancel()
	if r.cluster != nil {
		_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, k := range keys {
				p.Unlink(ctx, r.prefix+k)
			}
			return nil
		})
		return err
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = r.prefix + k
	}
	return r.client.Unlink(ctx, full...).Err()
}

// purgeTimeout bounds a whole purge, which walks every key with the prefix.
const purgeTimeout = 30 * time.Second

// Purge implements Cache: it SCANs for the prefix and UNLINKs in batches, on every master of a
// cluster. Other keys in the same database are left alone.
func (r *Redis) Purge(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, purgeTimeout)
	defer cancel()
	var total atomic.Int64
	purgeNode := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, escapeGlob(r.prefix)+"*", 500).Iterator()
		batch := make([]string, 0, 500)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			var err error
			if r.cluster != nil {
				_, err = c.Pipelined(ctx, func(p redis.Pipeliner) error {
					for _, k := range batch {
						p.Unlink(ctx, k)
					}
					return nil
				})
			} else {
				err = c.Unlink(ctx, batch...).Err()
			}
			total.Add(int64(len(batch)))
			batch = batch[:0]
			return err
		}
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) == cap(batch) {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		return flush()
	}
	var err error
	switch c := r.client.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, purgeNode)
	case *redis.Client:
		err = purgeNode(ctx, c)
	default:
		err = fmt.Errorf("cache: purge: unsupported client %T", r.client)
	}
	return int(total.Load()), err
}

// escapeGlob escapes SCAN MATCH's pattern characters in a literal prefix.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Stats implements Cache: DBSIZE and INFO's evicted_keys, each bounded by the op timeout; on
// failure the last known figures are kept.
func (r *Redis) Stats(ctx context.Context) Stats {
	st := Stats{Backend: "redis", TTLSeconds: int(r.ttl / time.Second)}
	ctx, cancel := r.op(ctx)
	defer cancel()
	if n, err := r.client.DBSize(ctx).Result(); err == nil {
		st.Entries = n
	}
	if info, err := r.client.Info(ctx, "stats").Result(); err == nil {
		if v, ok := infoField(info, "evicted_keys"); ok {
			r.lastEvicted.Store(v)
		}
	}
	st.Evictions = r.lastEvicted.Load()
	return st
}

// infoField reads one integer field of an INFO reply (summed over the nodes of a cluster reply).
func infoField(info, name string) (int64, bool) {
	var sum int64
	found := false
	for line := range strings.SplitSeq(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || k != name {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			sum += n
			found = true
		}
	}
	return sum, found
}

// Addrs derives the seed list from the configuration: REDIS_ADDRS when set, else
// REDIS_HOST:REDIS_PORT.
func Addrs(addrs []string, host string, port int) []string {
	var out []string
	for _, a := range addrs {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		out = []string{net.JoinHostPort(host, strconv.Itoa(port))}
	}
	return out
}
