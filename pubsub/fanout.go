package pubsub

import (
	"context"
	"sync"
	"sync/atomic"
)

// Fanout offers values to a bounded set of subscribers without ever waiting on one. Each has a
// buffer of its own; one that falls behind by more than its buffer is dropped (its channel closed)
// and counted; the set holds at most max subscribers, and with PerOwner at most a share of them
// per owner; a subscriber leaves when its context ends. Values are published to the subscribers
// of one key: a Broker's topic, or the one key of a producer with a single stream (struct{}).
//
// The server's fan-outs all are one: the brokers of eventUpdated and myRegistrations (Broker),
// the security event log's subscribers and the memory sampler's. Its methods are safe for
// concurrent use; Publish may be called under a lock of the caller's, as long as no Want,
// Convert or Leave function takes that lock.
type Fanout[K comparable, V any] struct {
	buffer int
	max    int
	opts   options

	mu   sync.Mutex
	keys map[K]map[*member[V]]struct{}
	n    int // subscribers counted in max: all but shared consumers' (WithSharedNotifier)
	// owners counts subscribers per owner, only owners that hold one: bounded by the
	// subscribers, an owner's entry goes with its last one.
	owners map[string]int
	closed error // set by Close: what Subscribe returns from then on
	// members is how many subscribers there are, shared consumers' included: Publish to none
	// (a security log nobody watches) skips the lock.
	members atomic.Int64

	delivered atomic.Uint64
	dropped   atomic.Uint64
}

type member[V any] struct {
	want  func(V) bool // nil: every value
	offer func(V) bool // puts a value in the channel without waiting; false when it is full
	end   func()       // closes the channel and tells the notifier, if any
	leave func()       // the subscriber's Leave, if any
	stop  func() bool  // releases the context.AfterFunc
	owner string
	// uncounted: a shared consumer's subscription (WithSharedNotifier), whose consumers each
	// take their place with Reserve: it takes none in the bound itself.
	uncounted bool
}

// NewFanout returns a fan-out giving each subscriber a buffer of buffer values and holding at most
// max subscribers in all. Options: PerOwner, NoNotifier.
func NewFanout[K comparable, V any](buffer, max int, opts ...Option) *Fanout[K, V] {
	f := &Fanout[K, V]{buffer: buffer, max: max, keys: make(map[K]map[*member[V]]struct{}), owners: map[string]int{}}
	for _, o := range opts {
		o(&f.opts)
	}
	return f
}

// NoNotifier makes a fan-out's subscriptions leave ctx's Notifier alone: for a producer whose
// consumer reads another channel than the subscription's (a forwarder of its own), so that only
// that forwarder may claim it.
func NoNotifier() Option {
	return func(o *options) { o.noNotifier = true }
}

// Sub is what one subscriber asks of a Fanout (SubscribeAs).
type Sub[V, T any] struct {
	// Want says which published values it takes; nil takes all. It runs under the fan-out's
	// lock, only for values published to the subscriber's key, and may keep state of its own
	// (Publish calls it for one value at a time).
	Want func(V) bool
	// Convert turns a value into what the channel carries; it runs under the fan-out's lock.
	Convert func(V) T
	// First values go in the channel as soon as it is subscribed, before any published one; at
	// most the buffer's worth.
	First []V
	// Leave, if set, runs once when the subscriber leaves (its context ended, it was dropped,
	// Close), under the fan-out's lock.
	Leave func()
}

// Subscribe returns a channel of the values published to key from now on that want takes (nil:
// all). The channel is closed when ctx ends, when the subscriber falls behind by more than its
// buffer, and by Close. Errors: ErrTooManySubscribers when the fan-out is full, ErrOwnerShare when
// ctx's owner holds its share, Close's error once it was closed.
func (f *Fanout[K, V]) Subscribe(ctx context.Context, key K, want func(V) bool) (<-chan V, error) {
	return SubscribeAs(f, ctx, key, Sub[V, V]{Want: want, Convert: func(v V) V { return v }})
}

// SubscribeAs is Subscribe for a subscriber described by s, whose channel carries s.Convert of
// each value it takes.
//
// Unless the fan-out was made with NoNotifier, a Notifier that ctx carries is claimed (Claim)
// once the subscription is sure, and told of every value and of the close; a shared one
// (WithSharedNotifier) not yet claimed makes a subscription that takes no place in the bounds, its
// consumers taking theirs with Reserve, and whose buffer is sharedBuffer times the fan-out's.
func SubscribeAs[K comparable, V, T any](f *Fanout[K, V], ctx context.Context, key K, s Sub[V, T]) (<-chan T, error) {
	m := &member[V]{want: s.Want, leave: s.Leave}
	buffer := f.buffer
	n, _ := ctx.Value(notifierKey{}).(*Notifier)
	if !f.opts.noNotifier && n != nil && n.shared && !n.claimed.Load() {
		m.uncounted = true
		buffer *= sharedBuffer
	} else if f.opts.perOwner > 0 && f.opts.owner != nil {
		m.owner = f.opts.owner(ctx)
	}
	ch := make(chan T, buffer)
	ready := func(bool) {}
	m.offer = func(v V) bool {
		select {
		case ch <- s.Convert(v):
			ready(false)
			return true
		default:
			return false
		}
	}
	m.end = func() { close(ch); ready(true) }

	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.admitLocked(m.owner, m.uncounted); err != nil {
		return nil, err
	}
	if !f.opts.noNotifier {
		if fn := Claim(ctx); fn != nil { // once it is sure to be subscribed: a refusal is answered at once
			ready = fn
		}
	}
	subs := f.keys[key]
	if subs == nil {
		subs = make(map[*member[V]]struct{})
		f.keys[key] = subs
	}
	subs[m] = struct{}{}
	f.members.Add(1)
	for _, v := range s.First[:min(len(s.First), buffer)] {
		m.offer(v) // the buffer is empty: it fits
		f.delivered.Add(1)
	}
	// Registered under the lock, so that a drop by Publish cannot miss stop; if ctx is already
	// done, the function runs on its own goroutine and waits for the lock.
	m.stop = context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.removeLocked(key, m)
	})
	return ch, nil
}

// admitLocked takes a place in the bounds for a subscriber of owner ("": none), or says why not.
func (f *Fanout[K, V]) admitLocked(owner string, uncounted bool) error {
	switch {
	case f.closed != nil:
		return f.closed
	case uncounted:
		return nil
	case f.n >= f.max:
		return ErrTooManySubscribers
	}
	if owner != "" {
		if f.owners[owner] >= f.opts.perOwner {
			return ErrOwnerShare
		}
		f.owners[owner]++
	}
	f.n++
	return nil
}

// releaseLocked gives back the place admitLocked took.
func (f *Fanout[K, V]) releaseLocked(owner string, uncounted bool) {
	if uncounted {
		return
	}
	f.n--
	if owner != "" {
		if f.owners[owner]--; f.owners[owner] <= 0 {
			delete(f.owners, owner)
		}
	}
}

// Reserve counts one more subscriber for ctx's owner without a channel of its own: a consumer
// that shares another subscription's values (the lean websocket transport's shared operations,
// Share) takes its place in the fan-out's bound and in its owner's share as if it had subscribed.
// The same errors as Subscribe; release gives the place back, once.
func (f *Fanout[K, V]) Reserve(ctx context.Context) (release func(), err error) {
	owner := ""
	if f.opts.perOwner > 0 && f.opts.owner != nil {
		owner = f.opts.owner(ctx)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.admitLocked(owner, false); err != nil {
		return nil, err
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.releaseLocked(owner, false)
		})
	}, nil
}

// removeLocked unsubscribes m and closes its channel, once.
func (f *Fanout[K, V]) removeLocked(key K, m *member[V]) {
	subs := f.keys[key]
	if _, ok := subs[m]; !ok {
		return
	}
	delete(subs, m)
	f.members.Add(-1)
	if len(subs) == 0 {
		delete(f.keys, key)
	}
	f.releaseLocked(m.owner, m.uncounted)
	m.stop()
	m.end()
	if m.leave != nil {
		m.leave()
	}
}

// Publish offers v to every subscriber of key that wants it, without waiting: a subscriber whose
// buffer is full is dropped. It returns how many were dropped.
func (f *Fanout[K, V]) Publish(key K, v V) (dropped int) {
	if f.members.Load() == 0 {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for m := range f.keys[key] {
		if m.want != nil && !m.want(v) {
			continue
		}
		if m.offer(v) {
			f.delivered.Add(1)
			continue
		}
		f.removeLocked(key, m)
		f.dropped.Add(1)
		dropped++
	}
	return dropped
}

// Close ends every subscriber; Subscribe and Reserve return err from then on.
func (f *Fanout[K, V]) Close(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = err
	for key, subs := range f.keys {
		for m := range subs {
			f.removeLocked(key, m)
		}
	}
}

// Stats reports the current subscribers (those counted in the bound), values delivered and
// subscribers dropped for being slow.
func (f *Fanout[K, V]) Stats() (subscribers int, delivered, dropped uint64) {
	f.mu.Lock()
	n := f.n
	f.mu.Unlock()
	return n, f.delivered.Load(), f.dropped.Load()
}

// owned is how many owners hold a subscriber (the size of the owners map).
func (f *Fanout[K, V]) owned() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.owners)
}
