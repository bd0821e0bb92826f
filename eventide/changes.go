package eventide

import (
	"context"
	"sync"
)

// RegistrationChanges collects the registrations that the writes of one request changed — the
// viewer's own, and others' promoted from the waitlist or cancelled with their event — so that
// they can be told to their users (Subscription.myRegistrations) once the writes are durable.
// It lives as long as its request; a write adds at most the registrations of one event.
type RegistrationChanges struct {
	mu   sync.Mutex
	regs []*Registration
}

type changesKey struct{}

// WithRegistrationChanges returns ctx under which stores report the registrations they change to
// the returned collector.
func WithRegistrationChanges(ctx context.Context) (context.Context, *RegistrationChanges) {
	c := &RegistrationChanges{}
	return context.WithValue(ctx, changesKey{}, c), c
}

// NoteRegistrations reports registrations a write changed, after it committed; without a
// collector in ctx it does nothing. Stores call it; the registrations must not change after.
func NoteRegistrations(ctx context.Context, regs ...*Registration) {
	c, _ := ctx.Value(changesKey{}).(*RegistrationChanges)
	if c == nil || len(regs) == 0 {
		return
	}
	c.mu.Lock()
	c.regs = append(c.regs, regs...)
	c.mu.Unlock()
}

// Take returns what was collected since the last Take, in the order it was reported.
func (c *RegistrationChanges) Take() []*Registration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.regs
	c.regs = nil
	return out
}
