// Package bus is the replica bus: one Redis pub/sub subscription per replica, under the
// deployment's key prefix, that carries the messages of every package that must reach the other
// replicas (the shared cache's invalidations, eventUpdated and myRegistrations messages, security
// events). Each of those packages registers its topic and what to do with a message; the bus
// owns the queue, the sender, the failover probe and their bounds.
package bus

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/eventide/server/cache"
)

// channelPrefix starts every channel of the bus, after the key prefix: a topic t is the channel
// KeyPrefix + "bus:" + t.
const channelPrefix = "bus:"

// MaxQueued bounds the messages waiting to be sent; when the queue is full a message is dropped
// and counted (every message is also handled locally by its sender, so a drop only costs other
// replicas the message).
const MaxQueued = 1024

// MaxHeld bounds the messages of held topics (Topic.Hold) kept while Redis is not serving; past
// it they are dropped and counted (Redis is emptied on recovery anyway: what is lost is only the
// other replicas' local reactions, such as their sessions re-checking a changed user).
const MaxHeld = 1024

// echoEvery is how often the bus checks that its subscription hears what it publishes. After a
// Sentinel failover go-redis moves its connection pool to the new master, but an open
// subscription stays on the old master, which keeps running until the sentinel demotes it: the
// messages of the other replicas, published on the new master, would not arrive. A probe that
// does not come back within echoEvery ends that subscription and subscribes again (on the
// current master).
const echoEvery = time.Second

// heldResend is when held messages are sent after Redis returns, counted from the return: once
// when this replica's subscription has had time to come back, and once more for replicas whose
// subscription took longer (an invalidation heard twice costs a few cache misses).
var heldResend = [...]time.Duration{echoEvery, 3 * echoEvery}

// Link is the Redis the bus crosses, as the shared cache sees it (cache.Switch): the bus sends
// only while Redis takes writes, and tells the cache when a PUBLISH failed.
type Link interface {
	// Redis is the Redis backend; nil without Redis (the bus then sends nothing).
	Redis() *cache.Redis
	// Serving reports whether Redis serves; Accepting whether it takes writes (it serves, or it
	// is being emptied after a return).
	Serving() bool
	Accepting() bool
	// Recovered receives a signal each time Redis serves again.
	Recovered() <-chan struct{}
	// Failed reports a Redis call of the bus that failed.
	Failed(err error)
}

// Topic is what a package registers to send and receive messages over the bus.
type Topic struct {
	// Name is the topic, unique on the bus: the channel is the key prefix, "bus:" and Name.
	Name string
	// Hold keeps the messages published while Redis does not serve (at most MaxHeld in all) and
	// sends them after it returns; without it they are dropped (what is stale by then).
	Hold bool
	// Receive handles a message published by another replica (never this one's own). It runs on
	// the bus's one receiving goroutine: it should be quick and must not block. An error says the
	// message was malformed: the bus drops it, counts it and logs it.
	Receive func(payload []byte) error
}

// Bus carries messages between replicas over Redis pub/sub: one subscription per replica, one
// sender goroutine fed by a bounded queue, so a publisher never waits on Redis. A publisher
// handles its message locally itself; replicas ignore their own messages when they come back.
// While Redis is not serving, nothing is sent: the other replicas cannot be reached, and the
// shared tokens (Redis is emptied when it returns) are what keep them exact once it does; the
// messages of held topics made meanwhile are kept (at most MaxHeld) and sent after the return.
type Bus struct {
	link   Link
	redis  *cache.Redis // nil without Redis
	prefix string
	origin []byte
	log    *slog.Logger

	topics   map[string]Topic // by name; set before Start
	queue    chan message
	chans    []string                     // the subscribed channels, whole
	ps       atomic.Pointer[redis.PubSub] // the current subscription; replaced when it is split
	lastEcho atomic.Int64                 // unix nanos when this bus last heard its own probe
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once

	// held are the messages of held topics published while Redis was not serving, oldest first,
	// at most MaxHeld; only the sender goroutine touches them.
	held    []message
	resends []time.Time // when held is sent next (the last one empties it)

	sent, received, dropped, resubscribed, malformed atomic.Int64
}

type message struct {
	topic   string
	payload []byte
}

// New returns a bus over link's Redis; without Redis (link or its Redis nil) it sends and
// receives nothing. Register every topic with Handle, then Start.
func New(link Link, log *slog.Logger) *Bus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{link: link, origin: binary.LittleEndian.AppendUint64(nil, rand.Uint64()), log: log,
		topics: map[string]Topic{}, queue: make(chan message, MaxQueued), stop: make(chan struct{})}
	if link != nil && link.Redis() != nil {
		b.redis = link.Redis()
		b.prefix = b.redis.Prefix() + channelPrefix
	}
	return b
}

// Collectors returns the bus's metrics, for the caller to register: eventide_bus_sent_total,
// _received_total, _resubscribed_total, _dropped_total, _malformed_total and the gauge
// eventide_bus_subscribed.
func (b *Bus) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventide_bus_sent_total", Help: "Messages sent to other replicas over Redis pub/sub."},
			func() float64 { return float64(b.sent.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventide_bus_received_total", Help: "Messages received from other replicas."},
			func() float64 { return float64(b.received.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventide_bus_resubscribed_total", Help: "Subscriptions ended and opened again because they did not hear this replica's own probe (after a failover)."},
			func() float64 { return float64(b.resubscribed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventide_bus_dropped_total", Help: "Messages not sent: the queue was full, or Redis was not serving and the topic is not held or the held messages were at their bound."},
			func() float64 { return float64(b.dropped.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventide_bus_malformed_total", Help: "Messages from other replicas dropped because they could not be read."},
			func() float64 { return float64(b.malformed.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "eventide_bus_subscribed", Help: "1 while this replica's subscription hears its own probes, so hears the other replicas."},
			func() float64 {
				if b.Subscribed() {
					return 1
				}
				return 0
			}),
	}
}

// Sent is how many messages this bus has sent to the other replicas.
func (b *Bus) Sent() int64 { return b.sent.Load() }

// Handle registers t; call it before Start. A second topic of the same name replaces the first.
func (b *Bus) Handle(t Topic) { b.topics[t.Name] = t }

// Enabled reports whether the bus reaches other replicas (Redis is configured).
func (b *Bus) Enabled() bool { return b.redis != nil }

// Subscribed reports whether the subscription heard this replica's own probe within the last two
// probe periods: whether messages of the other replicas arrive now.
func (b *Bus) Subscribed() bool {
	last := b.lastEcho.Load()
	return last != 0 && time.Since(time.Unix(0, last)) <= 2*echoEvery+echoEvery/2
}

// Start subscribes to every registered topic and starts the sender. Without Redis, or without a
// topic, it does nothing.
func (b *Bus) Start() {
	if !b.Enabled() || len(b.topics) == 0 {
		return
	}
	for name := range b.topics {
		b.chans = append(b.chans, b.prefix+name)
	}
	slices.Sort(b.chans)
	b.subscribe()
	b.wg.Add(2)
	go func() {
		defer b.wg.Done()
		b.send()
	}()
	go func() {
		defer b.wg.Done()
		b.echo()
	}()
}

// subscribe opens a subscription to every topic's channel and drains it until it is closed.
// Subscribe does not wait for Redis: go-redis (re)subscribes whenever it can connect.
func (b *Bus) subscribe() {
	ps := b.redis.Client().Subscribe(context.Background(), b.chans...)
	b.ps.Store(ps)
	msgs := ps.Channel(redis.WithChannelSize(256))
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for m := range msgs {
			b.receive(m)
		}
	}()
}

// echo publishes a probe (this bus's origin alone) every echoEvery while Redis serves, and
// subscribes again when the previous probe was not heard back.
func (b *Bus) echo() {
	t := time.NewTicker(echoEvery)
	defer t.Stop()
	var sentAt int64
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		if !b.link.Serving() {
			sentAt = 0
			continue
		}
		if sentAt != 0 && b.lastEcho.Load() < sentAt {
			b.log.Warn("bus: the subscription does not hear this replica's messages (a failover?); subscribing again")
			old := b.ps.Load()
			b.subscribe()
			_ = old.Close()
			b.resubscribed.Add(1)
			sentAt = 0
			continue
		}
		sentAt = time.Now().UnixNano()
		ctx, cancel := b.redis.WithTimeout(context.Background())
		if err := b.redis.Client().Publish(ctx, b.chans[0], b.origin).Err(); err != nil {
			sentAt = 0 // Redis failing: the Switch notices it on the requests' calls
		}
		cancel()
	}
}

// Close stops the sender and the subscription.
func (b *Bus) Close() {
	b.once.Do(func() {
		close(b.stop)
		if ps := b.ps.Load(); ps != nil {
			_ = ps.Close()
		}
		b.wg.Wait()
		// A resubscription racing Close may have opened one more: close whatever is current.
		if ps := b.ps.Load(); ps != nil {
			_ = ps.Close()
		}
	})
}

// Publish queues payload on topic for the other replicas; it never blocks. The caller has
// handled the message locally: it does not come back here.
func (b *Bus) Publish(topic string, payload []byte) {
	if !b.Enabled() || b.ps.Load() == nil {
		return
	}
	select {
	case b.queue <- message{topic: topic, payload: payload}:
	default:
		b.dropped.Add(1)
	}
}

func (b *Bus) send() {
	tick := time.NewTicker(echoEvery / 4)
	defer tick.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-b.link.Recovered():
			now := time.Now()
			b.resends = b.resends[:0]
			for _, d := range heldResend {
				b.resends = append(b.resends, now.Add(d))
			}
		case <-tick.C:
			b.sendHeld(time.Now())
		case m := <-b.queue:
			if !b.link.Accepting() {
				b.hold(m)
				continue
			}
			if err := b.publishNow(m); err != nil {
				b.hold(m)
				b.link.Failed(err)
			}
		}
	}
}

func (b *Bus) publishNow(m message) error {
	frame := make([]byte, 0, len(b.origin)+len(m.payload))
	frame = append(append(frame, b.origin...), m.payload...)
	ctx, cancel := b.redis.WithTimeout(context.Background())
	err := b.redis.Client().Publish(ctx, b.prefix+m.topic, frame).Err()
	cancel()
	if err != nil {
		return err
	}
	b.sent.Add(1)
	return nil
}

// hold keeps a message of a held topic that could not be sent, for sendHeld after Redis returns;
// anything else (stale by then) and anything past MaxHeld is dropped.
func (b *Bus) hold(m message) {
	if !b.topics[m.topic].Hold || len(b.held) >= MaxHeld {
		b.dropped.Add(1)
		return
	}
	b.held = append(b.held, m)
}

// sendHeld sends the held messages when a resend is due and Redis serves; after the last resend
// they are forgotten.
func (b *Bus) sendHeld(now time.Time) {
	if len(b.resends) == 0 || now.Before(b.resends[0]) || !b.link.Serving() {
		return
	}
	for _, m := range b.held {
		if err := b.publishNow(m); err != nil {
			b.link.Failed(err)
			return // held again for the next recovery
		}
	}
	b.resends = b.resends[1:]
	if len(b.resends) == 0 {
		b.held = nil
	}
}

func (b *Bus) receive(m *redis.Message) {
	frame := []byte(m.Payload)
	if len(frame) == len(b.origin) { // a probe: ours is the echo echo() waits for
		if bytes.Equal(frame, b.origin) {
			b.lastEcho.Store(time.Now().UnixNano())
		}
		return
	}
	if len(frame) < len(b.origin) || bytes.Equal(frame[:len(b.origin)], b.origin) {
		return
	}
	t, ok := b.topics[strings.TrimPrefix(m.Channel, b.prefix)]
	if !ok || t.Receive == nil {
		return
	}
	b.received.Add(1)
	if err := t.Receive(frame[len(b.origin):]); err != nil {
		b.malformed.Add(1)
		b.log.Warn("bus: malformed message dropped", "topic", t.Name, "error", err)
	}
}
