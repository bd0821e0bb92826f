package security

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// BridgeConfig tunes a Bridge. Zero fields take the defaults named beside them.
type BridgeConfig struct {
	Prefix         string        // the deployment's Redis key prefix (storecache.KeyPrefix): the channel is Prefix+"security"
	Channel        string        // the Redis pub/sub channel, whole; default Prefix+"security", or "eventide:security"
	QueueSize      int           // events waiting to be published at most (more are dropped); default 256
	PublishTimeout time.Duration // per PUBLISH; default 2s
	HealthInterval time.Duration // a quiet subscription pings Redis this often to notice it gone; default 5s
	RetryMax       time.Duration // longest pause between two attempts to resubscribe; default 2s
	// EchoInterval: this often the bridge publishes a probe and checks that its subscription
	// heard the previous one; default 1s. After a Sentinel failover the subscription can stay on
	// the old master (still running until the sentinel demotes it) while publishes go to the new
	// one: a probe not heard back ends the subscription, and it is made again on the master.
	EchoInterval time.Duration
	Logger       *slog.Logger // default slog.Default()
}

// maxPayload bounds a message the bridge will decode: an event is at most a few KiB.
const maxPayload = 16 << 10

// Bridge joins the Logs of the replicas of one deployment through Redis pub/sub, on a channel
// under the deployment's key prefix, so that deployments sharing a Redis keep their events apart:
// every event logged here is PUBLISHed, tagged with this log's Origin, and every event another
// replica publishes is added to this log and fanned out to its subscribers (its own come back
// and are ignored). Publishing goes
// through a bounded queue drained by Run, so Log never waits on Redis; when the queue is full the
// event is still logged here, and the drop counted. When Redis goes away, local logging goes on,
// one warning is logged, and Run resubscribes (with backoff) until Redis is back. Pub/sub does not
// replay: events published while a replica was cut off do not reach it.
type Bridge struct {
	log   *Log
	rdb   redis.UniversalClient
	cfg   BridgeConfig
	queue chan Event

	subscribed atomic.Bool

	published, publishDropped, publishFailed, malformed prometheus.Counter
	subscribedGauge                                     prometheus.GaugeFunc
}

// NewBridge attaches a bridge on rdb to l: from now on l's events are queued for publishing.
// Run must run for anything to cross.
func NewBridge(l *Log, rdb redis.UniversalClient, cfg BridgeConfig) *Bridge {
	if cfg.Channel == "" {
		cfg.Channel = cfg.Prefix + "security"
		if cfg.Prefix == "" {
			cfg.Channel = "eventide:security"
		}
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 2 * time.Second
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 5 * time.Second
	}
	if cfg.EchoInterval <= 0 {
		cfg.EchoInterval = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "eventide", Subsystem: "security", Name: name, Help: help})
	}
	b := &Bridge{
		log: l, rdb: rdb, cfg: cfg, queue: make(chan Event, cfg.QueueSize),
		published:      counter("bridge_published_total", "Security events published to other replicas."),
		publishDropped: counter("bridge_publish_dropped_total", "Security events not published because the queue was full."),
		publishFailed:  counter("bridge_publish_failed_total", "Security events whose PUBLISH to Redis failed."),
		malformed:      counter("bridge_malformed_total", "Messages on the security channel that were not a valid event."),
	}
	b.subscribedGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "eventide", Subsystem: "security", Name: "bridge_subscribed",
		Help: "1 while this replica receives other replicas' security events.",
	}, func() float64 {
		if b.subscribed.Load() {
			return 1
		}
		return 0
	})
	forward := b.enqueue
	l.forward.Store(&forward)
	return b
}

func (b *Bridge) enqueue(e Event) {
	select {
	case b.queue <- e:
	default:
		b.publishDropped.Inc()
	}
}

// wireEvent is an event on the channel.
type wireEvent struct {
	Origin    string    `json:"origin"`
	ID        string    `json:"id"`
	Type      EventType `json:"type"`
	Severity  Severity  `json:"severity"`
	At        time.Time `json:"at"`
	IP        string    `json:"ip,omitempty"`
	UserID    string    `json:"userId,omitempty"`
	Email     string    `json:"email,omitempty"`
	UserAgent string    `json:"userAgent,omitempty"`
	Operation string    `json:"operation,omitempty"`
	Message   string    `json:"message,omitempty"`
	Count     int       `json:"count,omitempty"`
}

func toWire(origin string, e Event) wireEvent {
	return wireEvent{Origin: origin, ID: e.ID, Type: e.Type, Severity: e.Severity, At: e.At,
		IP: e.IP, UserID: e.UserID, Email: e.Email, UserAgent: e.UserAgent,
		Operation: e.Operation, Message: e.Message, Count: e.Count}
}

func (w wireEvent) event() Event {
	return Event{ID: w.ID, Type: w.Type, Severity: w.Severity, At: w.At,
		IP: w.IP, UserID: w.UserID, Email: w.Email, UserAgent: w.UserAgent,
		Operation: w.Operation, Message: w.Message, Count: w.Count}
}

// Run publishes queued events and receives other replicas' until ctx ends.
func (b *Bridge) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { b.publishLoop(ctx) })
	wg.Go(func() { b.subscribeLoop(ctx) })
	wg.Wait()
}

// Subscribed reports whether the bridge is receiving other replicas' events right now.
func (b *Bridge) Subscribed() bool { return b.subscribed.Load() }

func (b *Bridge) publishLoop(ctx context.Context) {
	failing := false
	for {
		var e Event
		select {
		case <-ctx.Done():
			return
		case e = <-b.queue:
		}
		payload, err := json.Marshal(toWire(b.log.Origin(), e))
		if err == nil {
			pctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
			err = b.rdb.Publish(pctx, b.cfg.Channel, payload).Err()
			cancel()
		}
		switch {
		case err == nil:
			b.published.Inc()
			if failing {
				failing = false
				b.cfg.Logger.Info("security bridge: publishing to Redis again")
			}
		case ctx.Err() != nil:
			return
		default:
			b.publishFailed.Inc()
			if !failing {
				failing = true
				b.cfg.Logger.Warn("security bridge: cannot publish to Redis; events stay local", "err", err)
			}
		}
	}
}

func (b *Bridge) subscribeLoop(ctx context.Context) {
	const retryMin = 50 * time.Millisecond
	retry := retryMin
	warned := false
	for ctx.Err() == nil {
		err := b.receive(ctx, func() {
			retry = retryMin
			if warned {
				warned = false
				b.cfg.Logger.Info("security bridge: resubscribed to Redis", "channel", b.cfg.Channel)
			}
		})
		b.subscribed.Store(false)
		if ctx.Err() != nil {
			return
		}
		if !warned {
			warned = true
			b.cfg.Logger.Warn("security bridge: lost the Redis subscription; retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(retry*2, b.cfg.RetryMax)
	}
}

// receive subscribes once and handles messages until the connection fails or ctx ends; it calls
// onSubscribed when Redis confirms the subscription.
func (b *Bridge) receive(ctx context.Context, onSubscribed func()) error {
	ps := b.rdb.Subscribe(ctx, b.cfg.Channel)
	defer ps.Close()
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() }) // unblocks a pending receive
	defer stop()
	probe := probePrefix + b.log.Origin() + `"}`
	var sentAt, lastEcho time.Time // sentAt zero: no probe waiting for its echo
	lastPing := time.Now()
	next := time.Now().Add(b.cfg.EchoInterval)
	for {
		msg, err := ps.ReceiveTimeout(ctx, max(time.Until(next), time.Millisecond))
		if err != nil {
			ne := net.Error(nil)
			if !errors.As(err, &ne) || !ne.Timeout() || ctx.Err() != nil {
				return err
			}
			if time.Since(lastPing) >= b.cfg.HealthInterval {
				if err := ps.Ping(ctx); err != nil {
					return err
				}
				lastPing = time.Now()
			}
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && m.Channel == b.cfg.Channel {
				b.subscribed.Store(true)
				onSubscribed()
			}
		case *redis.Message:
			if m.Payload == probe {
				lastEcho = time.Now()
			} else {
				b.handle(m.Payload)
			}
		}
		if time.Now().Before(next) {
			continue
		}
		next = time.Now().Add(b.cfg.EchoInterval)
		if !sentAt.IsZero() && lastEcho.Before(sentAt) && b.subscribed.Load() {
			return errors.New("security bridge: the subscription did not hear this replica's probe (a failover?)")
		}
		pctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
		if err := b.rdb.Publish(pctx, b.cfg.Channel, probe).Err(); err == nil {
			sentAt = time.Now()
		} else {
			sentAt = time.Time{} // Redis failing: the ping finds out whether the subscription is gone
		}
		cancel()
	}
}

// probePrefix starts a probe message: {"probe":"<origin>"}. Probes are not events.
const probePrefix = `{"probe":"`

func (b *Bridge) handle(payload string) {
	if strings.HasPrefix(payload, probePrefix) {
		return // another replica's probe
	}
	if len(payload) > maxPayload {
		b.malformed.Inc()
		return
	}
	var w wireEvent
	if err := json.Unmarshal([]byte(payload), &w); err != nil || w.Origin == "" || !w.Type.Valid() {
		b.malformed.Inc()
		return
	}
	if w.Origin == b.log.Origin() {
		return // our own, already logged here
	}
	b.log.receive(w.event())
}

// Collectors returns the bridge's Prometheus metrics, for the caller to register:
// eventide_security_bridge_published_total, _bridge_publish_dropped_total,
// _bridge_publish_failed_total, _bridge_malformed_total and the gauge _bridge_subscribed.
func (b *Bridge) Collectors() []prometheus.Collector {
	return []prometheus.Collector{b.published, b.publishDropped, b.publishFailed, b.malformed, b.subscribedGauge}
}
