package cache

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/eventide/server/eventide"
)

// Channels of the bus, after the key prefix.
const (
	channelInvalidate = "bus:invalidate"
	channelEvents     = "bus:events"
)

// busQueue bounds the messages waiting to be sent; when it is full a message is dropped and
// counted (every message is also handled locally first, so a drop only delays other replicas).
const busQueue = 1024

// busHeld bounds the invalidations held back while Redis is not serving; past it they are dropped
// and counted (Redis is emptied on recovery anyway: what is lost is only the other replicas'
// local reactions, such as their sessions re-checking a changed user).
const busHeld = 1024

// heldResend is when held invalidations are sent after Redis returns, counted from the return:
// once when this replica's subscription has had time to come back, and once more for replicas
// whose subscription took longer (an invalidation heard twice costs a few cache misses).
var heldResend = [...]time.Duration{echoEvery, 3 * echoEvery}

// Bus carries messages between replicas over Redis pub/sub: one subscription per replica, one
// sender goroutine fed by a bounded queue, so a write never waits on Redis to broadcast. A message
// is handled by its sender locally before it is queued; replicas ignore their own messages when
// they come back. While Redis is not serving, nothing is sent: the other replicas cannot be
// reached, and the shared tokens (Redis is emptied when it returns) are what keep them exact
// once it does; the invalidations made meanwhile are held (at most busHeld) and sent after the
// return, so that the other replicas' local reactions (sessions re-checking a user) happen too.
type Bus struct {
	sw     *Switch
	prefix string
	origin []byte
	log    *slog.Logger

	handlers map[string]func([]byte) // by channel suffix; set before Start
	queue    chan busMsg
	chans    []string                     // the subscribed channels, whole
	ps       atomic.Pointer[redis.PubSub] // the current subscription; replaced when it is split
	lastEcho atomic.Int64                 // unix nanos when this bus last heard its own probe
	stop     chan struct{}
	wg       sync.WaitGroup
	once     sync.Once

	// held are the invalidations made while Redis was not serving, oldest first, at most busHeld;
	// only the sender goroutine touches them.
	held    [][]byte
	resends []time.Time // when held is sent next (the last one empties it)

	sent, received, dropped, resubscribed atomic.Int64
}

// echoEvery is how often the bus checks that its subscription hears what it publishes. After a
// Sentinel failover go-redis moves its connection pool to the new master, but an open
// subscription stays on the old master, which keeps running until the sentinel demotes it: the
// messages of the other replicas, published on the new master, would not arrive. A probe that
// does not come back within echoEvery ends that subscription and subscribes again (on the
// current master).
const echoEvery = time.Second

type busMsg struct {
	channel string
	payload []byte
}

// NewBus returns a bus over sw's Redis; without Redis it only handles messages locally. Register
// handlers (NewStore and NewEventRelay do), then Start.
func NewBus(sw *Switch, log *slog.Logger) *Bus {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &Bus{sw: sw, origin: newToken(), log: log, handlers: map[string]func([]byte){},
		queue: make(chan busMsg, busQueue), stop: make(chan struct{})}
	if sw != nil && sw.redis != nil {
		b.prefix = sw.redis.prefix
	}
	return b
}

// Register adds the bus counters to reg.
func (b *Bus) Register(reg prometheus.Registerer) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventide_bus_sent_total", Help: "Messages sent to other replicas over Redis pub/sub."},
			func() float64 { return float64(b.sent.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventide_bus_received_total", Help: "Messages received from other replicas."},
			func() float64 { return float64(b.received.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventide_bus_resubscribed_total", Help: "Subscriptions ended and opened again because they did not hear this replica's own probe (after a failover)."},
			func() float64 { return float64(b.resubscribed.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "eventide_bus_dropped_total", Help: "Messages not sent: the queue was full or Redis was not serving."},
			func() float64 { return float64(b.dropped.Load()) }),
	)
}

func (b *Bus) handle(channel string, fn func([]byte)) { b.handlers[channel] = fn }

func (b *Bus) enabled() bool { return b.sw != nil && b.sw.redis != nil }

// Start subscribes to every handled channel and starts the sender. Without Redis it does nothing.
func (b *Bus) Start() {
	if !b.enabled() || len(b.handlers) == 0 {
		return
	}
	for c := range b.handlers {
		b.chans = append(b.chans, b.prefix+c)
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

// subscribe opens a subscription to every handled channel and drains it until it is closed.
// Subscribe does not wait for Redis: go-redis (re)subscribes whenever it can connect.
func (b *Bus) subscribe() {
	ps := b.sw.redis.client.Subscribe(context.Background(), b.chans...)
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
		if !b.sw.readsRedis() {
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
		ctx, cancel := b.sw.redis.op(context.Background())
		if err := b.sw.redis.client.Publish(ctx, b.chans[0], b.origin).Err(); err != nil {
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

// publish queues payload for the other replicas; it never blocks.
func (b *Bus) publish(_ context.Context, channel string, payload []byte) {
	if !b.enabled() || b.ps.Load() == nil {
		return
	}
	select {
	case b.queue <- busMsg{channel: channel, payload: payload}:
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
		case <-b.sw.recovered:
			now := time.Now()
			b.resends = b.resends[:0]
			for _, d := range heldResend {
				b.resends = append(b.resends, now.Add(d))
			}
		case <-tick.C:
			b.sendHeld(time.Now())
		case m := <-b.queue:
			if !b.sw.readsRedis() && b.sw.state.Load() != stateRecovering {
				b.hold(m)
				continue
			}
			if err := b.publishNow(m); err != nil {
				b.hold(m)
				_ = b.sw.redisFailed(context.Background(), err)
			}
		}
	}
}

func (b *Bus) publishNow(m busMsg) error {
	frame := make([]byte, 0, len(b.origin)+len(m.payload))
	frame = append(append(frame, b.origin...), m.payload...)
	ctx, cancel := b.sw.redis.op(context.Background())
	err := b.sw.redis.client.Publish(ctx, b.prefix+m.channel, frame).Err()
	cancel()
	if err != nil {
		return err
	}
	b.sent.Add(1)
	return nil
}

// hold keeps an invalidation that could not be sent, for sendHeld after Redis returns; anything
// else (eventUpdated, stale by then) and anything past busHeld is dropped.
func (b *Bus) hold(m busMsg) {
	if m.channel != channelInvalidate || len(b.held) >= busHeld {
		b.dropped.Add(1)
		return
	}
	b.held = append(b.held, m.payload)
}

// sendHeld sends the held invalidations when a resend is due and Redis serves; after the last
// resend they are forgotten.
func (b *Bus) sendHeld(now time.Time) {
	if len(b.resends) == 0 || now.Before(b.resends[0]) || !b.sw.readsRedis() {
		return
	}
	for _, p := range b.held {
		if err := b.publishNow(busMsg{channel: channelInvalidate, payload: p}); err != nil {
			_ = b.sw.redisFailed(context.Background(), err)
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
	fn := b.handlers[strings.TrimPrefix(m.Channel, b.prefix)]
	if fn == nil {
		return
	}
	b.received.Add(1)
	fn(frame[len(b.origin):])
}

// LocalEvents delivers eventUpdated messages within one process (a *pubsub.Broker).
type LocalEvents interface {
	Publish(topic string, e *eventide.Event)
	Subscribe(ctx context.Context, topic string) (<-chan *eventide.Event, error)
	Reserve(ctx context.Context) (release func(), err error)
}

// EventRelay carries eventUpdated messages to every replica's subscribers: Publish delivers to
// this replica's subscribers at once and sends the event over the bus; events from other
// replicas are delivered here as they arrive.
type EventRelay struct {
	bus   *Bus
	local LocalEvents
}

// NewEventRelay registers the relay's channel on bus; call it before bus.Start.
func NewEventRelay(bus *Bus, local LocalEvents) *EventRelay {
	r := &EventRelay{bus: bus, local: local}
	bus.handle(channelEvents, r.remote)
	return r
}

// Publish implements resolvers.EventBus.
func (r *EventRelay) Publish(topic string, e *eventide.Event) {
	r.local.Publish(topic, e)
	enc := newValue(kindMessage, nil, 256)
	enc.str(topic)
	encodeEvent(enc, e)
	r.bus.publish(context.Background(), channelEvents, enc.b)
}

// Subscribe implements resolvers.EventBus.
func (r *EventRelay) Subscribe(ctx context.Context, topic string) (<-chan *eventide.Event, error) {
	return r.local.Subscribe(ctx, topic)
}

// Reserve counts one more subscriber of this replica's without a channel (pubsub.Broker's
// Reserve): a consumer that shares another subscription's values.
func (r *EventRelay) Reserve(ctx context.Context) (release func(), err error) {
	return r.local.Reserve(ctx)
}

func (r *EventRelay) remote(payload []byte) {
	_, d := openValue(payload, kindMessage)
	topic := d.str()
	e := decodeEvent(d)
	if !d.done() {
		r.bus.log.Warn("bus: malformed eventUpdated message dropped")
		return
	}
	r.local.Publish(topic, e)
}
