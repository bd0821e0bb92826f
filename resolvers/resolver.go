// Package resolvers implements the schema: the resolver root holds the services, built in
// server.go; the generated interfaces are in graph/.
package resolvers

import (
	"context"
	"log/slog"
	"time"

	"github.com/eventide/server/auth"
	"github.com/eventide/server/eventide"
)

// EventBus carries eventUpdated messages; the topic is the event id. A *pubsub.Broker serves
// in one process.
type EventBus interface {
	Publish(topic string, e *eventide.Event)
	Subscribe(ctx context.Context, topic string) (<-chan *eventide.Event, error)
}

// Resolver is the resolver root: the injection point for every service the resolvers use.
type Resolver struct {
	Store  eventide.Store
	Auth   *auth.Auth
	Events EventBus
	Log    *slog.Logger
	Now    func() time.Time
}
