package storecache

import (
	"context"
	"errors"

	"github.com/eventide/server/bus"
	"github.com/eventide/server/eventide"
)

// The bus topics of the relays: eventUpdated and myRegistrations messages.
const (
	topicEvents        = "events"
	topicRegistrations = "registrations"
)

// errMalformed is a relay message that could not be read.
var errMalformed = errors.New("malformed relay message")

// regsPerMessage bounds one bus message: an event's cancellation that changes thousands of
// registrations is sent in several.
const regsPerMessage = 256

// Local delivers a relay's messages within one process, by topic (a *pubsub.Broker[T]).
type Local[T any] interface {
	Publish(topic string, v T)
	Subscribe(ctx context.Context, topic string) (<-chan T, error)
	// Reserve counts one more subscriber without a channel: a consumer that shares another
	// subscription's values (pubsub.Broker's Reserve).
	Reserve(ctx context.Context) (release func(), err error)
}

// RegistrationRelay carries the registrations writes changed to their users' subscribers on every
// replica: Publish delivers to this replica's subscribers at once (topic: the user id) and sends
// the registrations over the bus; those of other replicas are delivered here as they arrive.
type RegistrationRelay struct {
	bus   *bus.Bus
	local Local[*eventide.Registration]
}

// NewRegistrationRelay registers the relay's topic on b; call it before b.Start.
func NewRegistrationRelay(b *bus.Bus, local Local[*eventide.Registration]) *RegistrationRelay {
	r := &RegistrationRelay{bus: b, local: local}
	b.Handle(bus.Topic{Name: topicRegistrations, Receive: r.remote})
	return r
}

// Publish implements resolvers.RegistrationBus.
func (r *RegistrationRelay) Publish(regs []*eventide.Registration) {
	for _, g := range regs {
		r.local.Publish(g.UserID, g)
	}
	for len(regs) > 0 {
		part := regs[:min(len(regs), regsPerMessage)]
		regs = regs[len(part):]
		enc := newValue(kindMessage, nil, 128*len(part))
		enc.int(int64(len(part)))
		for _, g := range part {
			encodeRegistration(enc, g)
		}
		r.bus.Publish(topicRegistrations, enc.b)
	}
}

// Subscribe implements resolvers.RegistrationBus.
func (r *RegistrationRelay) Subscribe(ctx context.Context, userID string) (<-chan *eventide.Registration, error) {
	return r.local.Subscribe(ctx, userID)
}

func (r *RegistrationRelay) remote(payload []byte) error {
	_, d := openValue(payload, kindMessage)
	n := d.intN()
	if n < 0 || n > regsPerMessage {
		return errMalformed
	}
	regs := make([]*eventide.Registration, 0, n)
	for range n {
		regs = append(regs, decodeRegistration(d))
	}
	if !d.done() {
		return errMalformed
	}
	for _, g := range regs {
		r.local.Publish(g.UserID, g)
	}
	return nil
}

// EventRelay carries eventUpdated messages to every replica's subscribers: Publish delivers to
// this replica's subscribers at once and sends the event over the bus; events from other
// replicas are delivered here as they arrive.
type EventRelay struct {
	bus   *bus.Bus
	local Local[*eventide.Event]
}

// NewEventRelay registers the relay's topic on b; call it before b.Start.
func NewEventRelay(b *bus.Bus, local Local[*eventide.Event]) *EventRelay {
	r := &EventRelay{bus: b, local: local}
	b.Handle(bus.Topic{Name: topicEvents, Receive: r.remote})
	return r
}

// Publish implements resolvers.EventBus.
func (r *EventRelay) Publish(topic string, e *eventide.Event) {
	r.local.Publish(topic, e)
	enc := newValue(kindMessage, nil, 256)
	enc.str(topic)
	encodeEvent(enc, e)
	r.bus.Publish(topicEvents, enc.b)
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

func (r *EventRelay) remote(payload []byte) error {
	_, d := openValue(payload, kindMessage)
	topic := d.str()
	e := decodeEvent(d)
	if !d.done() {
		return errMalformed
	}
	r.local.Publish(topic, e)
	return nil
}
