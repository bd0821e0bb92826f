// Package pubsub fans messages out to subscribers in-process without ever blocking the
// publisher: each subscriber has a small buffer, and one that falls behind is dropped and counted.
package pubsub

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrTooManySubscribers is returned by Subscribe when the broker holds its maximum.
var ErrTooManySubscribers = errors.New("pubsub: too many subscribers")

// ErrOwnerShare is returned by Subscribe when the subscriber's owner holds its share of the
// broker (PerOwner); it is also an ErrTooManySubscribers.
var ErrOwnerShare = fmt.Errorf("%w: this client holds its share", ErrTooManySubscribers)

// Option configures New and NewFanout.
type Option func(*options)

type options struct {
	perOwner   int
	owner      func(context.Context) string
	noNotifier bool
}

// PerOwner gives each owner (what owner names a subscriber's context by: its client address, say)
// at most max of the fan-out's subscribers, so that a few owners cannot take all of them. A
// context owner names "" is not limited.
func PerOwner(max int, owner func(context.Context) string) Option {
	return func(o *options) { o.perOwner, o.owner = max, owner }
}

// Broker delivers values published on a topic to that topic's current subscribers: a Fanout keyed
// by topic.
type Broker[T any] struct {
	f *Fanout[string, T]
}

// New returns a broker giving each subscriber a buffer of buffer values and holding at most
// maxSubs subscribers in all.
func New[T any](buffer, maxSubs int, opts ...Option) *Broker[T] {
	return &Broker[T]{f: NewFanout[string, T](buffer, maxSubs, opts...)}
}

// Subscribe returns a channel of the values published on topic from now on. The channel is
// closed when ctx ends or when the subscriber falls behind by more than its buffer. Errors:
// ErrTooManySubscribers when the broker is full, ErrOwnerShare when ctx's owner holds its share.
func (b *Broker[T]) Subscribe(ctx context.Context, topic string) (<-chan T, error) {
	return b.f.Subscribe(ctx, topic, nil)
}

// Reserve is Fanout.Reserve: a place in the broker's bounds for a consumer sharing another
// subscription's values.
func (b *Broker[T]) Reserve(ctx context.Context) (release func(), err error) {
	return b.f.Reserve(ctx)
}

// Publish offers v to every subscriber of topic without waiting; a subscriber whose buffer is
// full is dropped.
func (b *Broker[T]) Publish(topic string, v T) { b.f.Publish(topic, v) }

// owned is how many owners hold a subscriber (the size of the owners map).
func (b *Broker[T]) owned() int { return b.f.owned() }

// Stats reports the current subscribers, values delivered and subscribers dropped for being slow.
func (b *Broker[T]) Stats() (subscribers int, delivered, dropped uint64) { return b.f.Stats() }

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
