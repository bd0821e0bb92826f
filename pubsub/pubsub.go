// Package pubsub fans messages out to subscribers in-process without ever blocking the
// publisher: each subscriber has a small buffer, and one that falls behind is dropped and counted.
package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrTooManySubscribers is returned by Subscribe when the broker holds its maximum.
var ErrTooManySubscribers = errors.New("pubsub: too many subscribers")

// ErrOwnerShare is returned by Subscribe when the subscriber's owner holds its share of the
// broker (PerOwner); it is also an ErrTooManySubscribers.
var ErrOwnerShare = fmt.Errorf("%w: this client holds its share", ErrTooManySubscribers)

// Option configures New.
type Option func(*options)

type options struct {
	perOwner int
	owner    func(context.Context) string
}

// PerOwner gives each owner (what owner names a subscriber's context by: its client address, say)
// at most max of the broker's subscribers, so that a few owners cannot take all of them. A
// context owner names "" is not limited.
func PerOwner(max int, owner func(context.Context) string) Option {
	return func(o *options) { o.perOwner, o.owner = max, owner }
}

// Broker delivers values published on a topic to that topic's current subscribers.
type Broker[T any] struct {
	buffer  int
	maxSubs int
	opts    options

	mu     sync.Mutex
	topics map[string]map[*sub[T]]struct{}
	n      int
	// owners counts subscribers per owner, only owners that hold one: bounded by the
	// subscribers, an owner's entry goes with its last one.
	owners map[string]int

	dropped   atomic.Uint64
	delivered atomic.Uint64
}

type sub[T any] struct {
	ch    chan T
	owner string
	// uncounted: a shared consumer's subscription (WithSharedNotifier), whose consumers each
	// take their place with Reserve: it takes none in the bound itself.
	uncounted bool
	// ready, when the subscriber's context carried a Notifier, is called after every value
	// put in ch and after ch is closed: the consumer reads ch only then, and never waits on it.
	ready func(closed bool)
}

// New returns a broker giving each subscriber a buffer of buffer values and holding at most
// maxSubs subscribers in all.
func New[T any](buffer, maxSubs int, opts ...Option) *Broker[T] {
	b := &Broker[T]{buffer: buffer, maxSubs: maxSubs, topics: make(map[string]map[*sub[T]]struct{}), owners: map[string]int{}}
	for _, o := range opts {
		o(&b.opts)
	}
	return b
}

// Subscribe returns a channel of the values published on topic from now on. The channel is
// closed when ctx ends or when the subscriber falls behind by more than its buffer. Errors:
// ErrTooManySubscribers when the broker is full, ErrOwnerShare when ctx's owner holds its share.
func (b *Broker[T]) Subscribe(ctx context.Context, topic string) (<-chan T, error) {
	s := &sub[T]{}
	buffer := b.buffer
	if n, _ := ctx.Value(notifierKey{}).(*Notifier); n != nil && n.shared && !n.claimed.Load() {
		s.uncounted = true
		buffer *= sharedBuffer
	} else if b.opts.perOwner > 0 && b.opts.owner != nil {
		s.owner = b.opts.owner(ctx)
	}
	s.ch = make(chan T, buffer)
	b.mu.Lock()
	if b.n >= b.maxSubs && !s.uncounted {
		b.mu.Unlock()
		return nil, ErrTooManySubscribers
	}
	if s.owner != "" {
		if b.owners[s.owner] >= b.opts.perOwner {
			b.mu.Unlock()
			return nil, ErrOwnerShare
		}
		b.owners[s.owner]++
	}
	subs := b.topics[topic]
	if subs == nil {
		subs = make(map[*sub[T]]struct{})
		b.topics[topic] = subs
	}
	s.ready = Claim(ctx) // once it is sure to be subscribed: a refusal is answered at once
	subs[s] = struct{}{}
	if !s.uncounted {
		b.n++
	}
	b.mu.Unlock()
	context.AfterFunc(ctx, func() { b.remove(topic, s) })
	return s.ch, nil
}

// Reserve counts one more subscriber of topic's kind for ctx's owner without a channel of its
// own: a consumer that shares another subscription's values (the lean websocket transport's
// shared operations, Share) takes its place in the broker's bound and in its owner's share as if
// it had subscribed. The same errors as Subscribe; release gives the place back, once.
func (b *Broker[T]) Reserve(ctx context.Context) (release func(), err error) {
	owner := ""
	if b.opts.perOwner > 0 && b.opts.owner != nil {
		owner = b.opts.owner(ctx)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n >= b.maxSubs {
		return nil, ErrTooManySubscribers
	}
	if owner != "" {
		if b.owners[owner] >= b.opts.perOwner {
			return nil, ErrOwnerShare
		}
		b.owners[owner]++
	}
	b.n++
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.n--
			if owner != "" {
				if b.owners[owner]--; b.owners[owner] <= 0 {
					delete(b.owners, owner)
				}
			}
		})
	}, nil
}

// remove unsubscribes s and closes its channel, once; it reports whether s was still there.
func (b *Broker[T]) remove(topic string, s *sub[T]) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.removeLocked(topic, s)
}

func (b *Broker[T]) removeLocked(topic string, s *sub[T]) bool {
	subs := b.topics[topic]
	if _, ok := subs[s]; !ok {
		return false
	}
	delete(subs, s)
	if len(subs) == 0 {
		delete(b.topics, topic)
	}
	if s.owner != "" {
		if b.owners[s.owner]--; b.owners[s.owner] <= 0 {
			delete(b.owners, s.owner)
		}
	}
	if !s.uncounted {
		b.n--
	}
	close(s.ch)
	if s.ready != nil {
		s.ready(true)
	}
	return true
}

// Publish offers v to every subscriber of topic without waiting; a subscriber whose buffer is
// full is dropped.
func (b *Broker[T]) Publish(topic string, v T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.topics[topic] {
		select {
		case s.ch <- v:
			b.delivered.Add(1)
			if s.ready != nil {
				s.ready(false)
			}
		default:
			b.removeLocked(topic, s)
			b.dropped.Add(1)
		}
	}
}

// owned is how many owners hold a subscriber (the size of the owners map).
func (b *Broker[T]) owned() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.owners)
}

// Stats reports the current subscribers, values delivered and subscribers dropped for being slow.
func (b *Broker[T]) Stats() (subscribers int, delivered, dropped uint64) {
	b.mu.Lock()
	n := b.n
	b.mu.Unlock()
	return n, b.delivered.Load(), b.dropped.Load()
}

// Notifier tells a consumer that a subscription's channel has something to read, instead of a
// goroutine parked on the channel: the lean websocket transport runs a subscription's next
// response only when its notifier has fired, so an idle subscription holds no goroutine.
//
// The first Subscribe (or forwarder) that Claims it calls its function with false after every
// value it puts in the channel it returns, and with true after closing it, each call after the
// value is in: so the consumer's k-th read follows k calls and never blocks, and every read after
// the true one returns at once.
type Notifier struct {
	fn      func(closed bool)
	shared  bool // WithSharedNotifier
	claimed atomic.Bool
	admit   atomic.Pointer[Admit]
}

// Admit is what a producer that may be shared does for one more consumer of its values, on that
// consumer's context: the checks its subscription would have made (who may see it), and its place
// in the producer's bounds (Reserve). release gives the place back.
type Admit func(ctx context.Context) (release func(), err error)

// Share tells the consumer of ctx's notifier, which the caller claimed, that the values it
// produces may serve other consumers that asked for the same thing, each admitted with admit. A
// producer that does not call it is never shared.
func Share(ctx context.Context, admit Admit) {
	if n, _ := ctx.Value(notifierKey{}).(*Notifier); n != nil && n.claimed.Load() {
		n.admit.Store(&admit)
	}
}

// Shared is the Admit of a producer that called Share, nil when none did.
func (n *Notifier) Shared() Admit {
	if p := n.admit.Load(); p != nil {
		return *p
	}
	return nil
}

type notifierKey struct{}

// WithNotifier returns ctx carrying a Notifier that calls fn.
func WithNotifier(ctx context.Context, fn func(closed bool)) (context.Context, *Notifier) {
	n := &Notifier{fn: fn}
	return context.WithValue(ctx, notifierKey{}, n), n
}

// sharedBuffer multiplies the buffer of a shared consumer's subscription: its consumer writes
// each value to many sockets before it reads the next, and falling behind would drop all of them
// at once. Such subscriptions are few (one per distinct subscription), so the bytes are few.
const sharedBuffer = 4

// WithSharedNotifier is WithNotifier for a consumer that serves many subscribers, each admitted
// through Share's Admit and so counted by Reserve: the subscription that claims it takes no place
// in a broker's bound or an owner's share of its own. A subscription that is then not shared
// (its producer does not call Share) must be ended at once. Its buffer is sharedBuffer times the
// broker's.
func WithSharedNotifier(ctx context.Context, fn func(closed bool)) (context.Context, *Notifier) {
	n := &Notifier{fn: fn, shared: true}
	return context.WithValue(ctx, notifierKey{}, n), n
}

// Claim returns the function of ctx's Notifier to the first caller, nil to any other and when
// ctx has none. A producer that claims it promises the calls Notifier describes.
func Claim(ctx context.Context) func(closed bool) {
	n, _ := ctx.Value(notifierKey{}).(*Notifier)
	if n == nil || !n.claimed.CompareAndSwap(false, true) {
		return nil
	}
	return n.fn
}

// Unclaim gives ctx's notifier back: a producer that claimed it and then failed calls it, so that
// the consumer, seeing it unclaimed, runs the operation the ordinary way (and gets the failure).
func Unclaim(ctx context.Context) {
	if n, _ := ctx.Value(notifierKey{}).(*Notifier); n != nil {
		n.claimed.Store(false)
		n.admit.Store(nil)
	}
}

// Claimed reports whether a producer took the notifier: if not, nothing will call it, and the
// consumer must wait on its channel the ordinary way.
func (n *Notifier) Claimed() bool { return n.claimed.Load() }
