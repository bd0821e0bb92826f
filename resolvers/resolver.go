// Package resolvers implements the schema: the resolver root holds the services, built in
// internal/server/server.go; the generated interfaces are in graph/.
package resolvers

import (
	"context"
	"log/slog"

	"github.com/eventide/server/app"
	"github.com/eventide/server/cache"
	"github.com/eventide/server/calendar"
	"github.com/eventide/server/dataloader"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/graph/model"
	"github.com/eventide/server/memstats"
	"github.com/eventide/server/security"
)

// EventBus carries eventUpdated messages; the topic is the event id. A *pubsub.Broker serves
// in one process, a *storecache.EventRelay across replicas.
type EventBus interface {
	Publish(topic string, e *eventide.Event)
	Subscribe(ctx context.Context, topic string) (<-chan *eventide.Event, error)
}

// Store is what the resolvers read and write: the domain store (the cached one, in the server)
// plus the batched registration look-up the loaders use.
type Store interface {
	eventide.Store
	dataloader.Source
}

// CacheAdmin is the shared cache as admins see it.
type CacheAdmin interface {
	Stats(ctx context.Context) cache.Stats
	Purge(ctx context.Context) (int, error)
}

// Resolver is the resolver root: the injection point for every service the resolvers use.
type Resolver struct {
	// App holds the rules: every write goes through it.
	App *app.App
	// Store is what the reads go to (through the request's loaders where they batch).
	Store Store
	// Events carries eventUpdated to subscribers (the App publishes on it).
	Events EventBus
	// Registrations carries myRegistrations (optional).
	Registrations RegistrationBus
	Cache         CacheAdmin
	Log           *slog.Logger
	// Security is the security event log (optional).
	Security *security.Log
	// Memory samples the process for memoryStats and memoryHistory.
	Memory *memstats.Sampler
	// Pool reports the store's connection pool for databaseStats.
	Pool func() eventide.StoreStats
	// Webhooks is the store's webhook outbox for webhookDeliveries (nil: an empty list).
	Webhooks eventide.WebhookOutbox
	// Server describes this process for serverInfo.
	Server model.ServerInfo
	// Calendar makes the tokens of calendar feed URLs; PublicURL, when set, is the base those
	// URLs start with (PUBLIC_URL), else the request's own (calendar.BaseFrom).
	Calendar  *calendar.Keys
	PublicURL string
	// Loaders configures the loaders made when a resolver runs outside dataloader.Middleware
	// (tests that call the executor directly).
	Loaders dataloader.Options
}
