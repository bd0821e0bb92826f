package cache

import (
	"context"

	"github.com/eventide/server/eventide"
)

// channelRegistrations carries myRegistrations messages between replicas.
const channelRegistrations = "bus:registrations"

// regsPerMessage bounds one bus message: an event's cancellation that changes thousands of
// registrations is sent in several.
const regsPerMessage = 256

// LocalRegistrations delivers myRegistrations messages within one process (a *pubsub.Broker),
// by user id.
type LocalRegistrations interface {
	Publish(topic string, r *eventide.Registration)
	Subscribe(ctx context.Context, topic string) (<-chan *eventide.Registration, error)
}

// RegistrationRelay carries the registrations writes changed to their users' subscribers on every
// replica: Publish delivers to this replica's subscribers at once (topic: the user id) and sends
// the registrations over the bus; those of other replicas are delivered here as they arrive.
type RegistrationRelay struct {
	bus   *Bus
	local LocalRegistrations
}

// NewRegistrationRelay registers the relay's channel on bus; call it before bus.Start.
func NewRegistrationRelay(bus *Bus, local LocalRegistrations) *RegistrationRelay {
	r := &RegistrationRelay{bus: bus, local: local}
	bus.handle(channelRegistrations, r.remote)
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
		r.bus.publish(context.Background(), channelRegistrations, enc.b)
	}
}

// Subscribe implements resolvers.RegistrationBus.
func (r *RegistrationRelay) Subscribe(ctx context.Context, userID string) (<-chan *eventide.Registration, error) {
	return r.local.Subscribe(ctx, userID)
}

func (r *RegistrationRelay) remote(payload []byte) {
	_, d := openValue(payload, kindMessage)
	n := d.intN()
	if n < 0 || n > regsPerMessage {
		r.bus.log.Warn("bus: malformed myRegistrations message dropped")
		return
	}
	regs := make([]*eventide.Registration, 0, n)
	for range n {
		regs = append(regs, decodeRegistration(d))
	}
	if !d.done() {
		r.bus.log.Warn("bus: malformed myRegistrations message dropped")
		return
	}
	for _, g := range regs {
		r.local.Publish(g.UserID, g)
	}
}
