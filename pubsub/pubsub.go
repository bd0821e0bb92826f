// Package pubsub fans messages out to subscribers in-process without ever blocking the
// publisher: each subscriber has a small buffer, and one that falls behind is dropped and counted.
package pubsub

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrTooManySubscribers is returned by Subscribe when the broker holds its maximum.
var ErrTooManySubscribers = errors.New("pubsub: too many subscribers")

// Broker delivers values published on a topic to that topic's current subscribers.
type Broker[T any] struct {
	buffer  int
	maxSubs int

	mu     sync.Mutex
	topics map[string]map[*sub[T]]struct{}
	n      int

	dropped   atomic.Uint64
	delivered atomic.Uint64
}

type sub[T any] struct {
	ch chan T
}

// New returns a broker giving each subscriber a buffer of buffer values and holding at most
// maxSubs subscribers in all.
func New[T any](buffer, maxSubs int) *Broker[T] {
	return &Broker[T]{buffer: buffer, maxSubs: maxSubs, topics: make(map[string]map[*sub[T]]struct{})}
}

// Subscribe returns a channel of the values published on topic from now on. The channel is
// closed when ctx ends or when the subscriber falls behind by more than its buffer.
func (b *Broker[T]) Subscribe(ctx context.Context, topic string) (<-chan T, error) {
	s := &sub[T]{ch: make(chan T, b.buffer)}
	b.mu.Lock()
	if b.n >= b.maxSubs {
		b.mu.Unlock()
		return nil, ErrTooManySubscribers
	}
	subs := b.topics[topic]
	if subs == nil {
		subs = make(map[*sub[T]]struct{})
		b.topics[topic] = subs
	}
	subs[s] = struct{}{}
	b.n++
	b.mu.Unlock()
	context.AfterFunc(ctx, func() { b.remove(topic, s) })
	return s.ch, nil
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
	b.n--
	close(s.ch)
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
		default:
			b.removeLocked(topic, s)
			b.dropped.Add(1)
		}
	}
}

// Stats reports the current subscribers, values delivered and subscribers dropped for being slow.
func (b *Broker[T]) Stats() (subscribers int, delivered, dropped uint64) {
	b.mu.Lock()
	n := b.n
	b.mu.Unlock()
	return n, b.delivered.Load(), b.dropped.Load()
}
