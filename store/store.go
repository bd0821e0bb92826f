// Package store keeps Eventide's data in MongoDB (or the embedded FerretDB, through the same
// driver). It is the only package that imports the driver: documents are private structs with
// converters, and driver errors leave it as *eventide.Error.
//
// Multi-document registration writes (register, cancel, a capacity raise) mark their event and
// are repaired by a recount when stopped halfway; DESIGN.md says which writes are single atomic
// updates, which are repaired, and why that holds across replicas.
package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/telemetry"
)

// Options configures Open.
type Options struct {
	URI                    string
	Database               string
	PoolSize               uint64
	MinPoolSize            uint64
	ConnectTimeout         time.Duration
	ServerSelectionTimeout time.Duration
	MaxConnIdleTime        time.Duration
	Logger                 *slog.Logger
	// Registerer receives eventide_mongo_commands_total; nil registers nothing.
	Registerer prometheus.Registerer
	// Outbox says for which webhook receivers writes add messages to the outbox (none: none).
	Outbox eventide.OutboxOptions
	// Commands, when set, times every command (eventide_store_command_seconds) and traces it
	// under a traced request.
	Commands *telemetry.Commands
}

// eventLockStripes bounds the in-process locks that serialise writes to one event's
// registration state. See Store.lockEvent.
const eventLockStripes = 256

// The store's collections.
const (
	collUsers         = "users"
	collVenues        = "venues"
	collEvents        = "events"
	collRegistrations = "registrations"
)

// Store implements eventide.Store on MongoDB.
type Store struct {
	client *mongo.Client
	db     *mongo.Database
	users  *mongo.Collection
	venues *mongo.Collection
	events *mongo.Collection
	regs   *mongo.Collection
	hooks  *mongo.Collection // webhook_outbox (webhooks.go)
	outbox eventide.OutboxOptions
	log    *slog.Logger
	mon    *monitor

	// DESIGN: capacity must be exact on both stores. The registration code uses only operations
	// that are atomic on a real MongoDB, across replicas: the seat is claimed by a conditional
	// findOneAndUpdate ({_id, capacity, confirmed < capacity} + $inc), the oldest waitlisted
	// registration is promoted by one findOneAndUpdate sorted by arrival, and the unique index on
	// (eventId, userId) settles a user registering twice (the loser gives its seat back).
	//
	// On FerretDB v1.24 those operations are not atomic on their own: findAndModify and update are
	// a read, a change in Go and a write back (FerretDB issue 2168), so racing conditional $incs
	// all succeed and increments are lost. The embedded store is one process by definition, and
	// two things make it exact there, each sufficient alone (the capacity tests fail only when
	// both are removed):
	//   - store/embedded forwards write commands to FerretDB one at a time, so each is atomic as
	//     it is on MongoDB (and so are all other single-document writes);
	//   - every change to one event's registration state takes that event's stripe of this fixed
	//     lock array, so within a process those changes are serialised, and seats go in the order
	//     the requests took the lock (their arrival order).
	// The locks are bounded (a fixed array) and cost nothing across replicas, where the atomic
	// operations alone keep the counts exact.
	eventLocks [eventLockStripes]sync.Mutex

	// broken and the sweeps repair counters after a multi-step write stopped halfway (DESIGN.md).
	broken brokenMarks
	// afterRegistration, set only by tests, runs in Register between the registration's write
	// and its check of the event's status (where another replica's cancellation may land).
	afterRegistration func()
	stopSweeps        context.CancelFunc
	sweepDone         chan struct{}
}

var _ eventide.Store = (*Store)(nil)

// Open connects to the server at opts.URI and creates the indexes. The driver connects lazily, so
// Open fails when the server cannot be selected within the server-selection timeout.
func Open(ctx context.Context, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mon := newMonitor(log, opts.PoolSize, opts.Registerer, opts.Commands)
	// The heartbeat is how the store is known down and known back (see monitor.Up); a URI's
	// heartbeatFrequencyMS still wins.
	co := options.Client().SetHeartbeatInterval(heartbeatInterval).ApplyURI(opts.URI).
		SetAppName("eventide").
		SetMaxPoolSize(opts.PoolSize).
		SetMinPoolSize(opts.MinPoolSize).
		SetMaxConnIdleTime(opts.MaxConnIdleTime).
		SetConnectTimeout(opts.ConnectTimeout).
		SetServerSelectionTimeout(opts.ServerSelectionTimeout).
		SetMonitor(mon.commandMonitor()).
		SetPoolMonitor(mon.poolMonitor()).
		SetServerMonitor(mon.serverMonitor())
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	db := client.Database(opts.Database)
	s := &Store{
		client: client,
		db:     db,
		users:  db.Collection(collUsers),
		venues: db.Collection(collVenues),
		events: db.Collection(collEvents),
		regs:   db.Collection(collRegistrations),
		hooks:  db.Collection("webhook_outbox"),
		outbox: opts.Outbox,
		log:    log,
		mon:    mon,
	}
	if err := s.ensureIndexes(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	if err := s.backfillEventTimes(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		return nil, fmt.Errorf("store: registrations' event times: %w", err)
	}
	// Repair what a crash left halfway (DESIGN.md): now, and every lease until Close.
	sctx, stop := context.WithCancel(context.Background())
	s.stopSweeps, s.sweepDone = stop, make(chan struct{})
	go s.runSweeps(sctx)
	return s, nil
}

// heartbeatInterval is how often the driver checks the server (its default is 10s): a dead store
// is known down, and a returning one known back, within about this long even with no traffic.
const heartbeatInterval = time.Second

// Close stops the repair sweeps and disconnects from the server, waiting for in-use connections
// until ctx ends. Calls in flight under Up fail at once with UNAVAILABLE, so a hung store does not
// hold the shutdown.
func (s *Store) Close(ctx context.Context) error {
	s.stopSweeps()
	s.mon.close()
	<-s.sweepDone
	return s.client.Disconnect(ctx)
}

// Abort makes every call in flight under Up, and every later one, fail with UNAVAILABLE, as Close
// does, without disconnecting: the shutdown calls it when draining requests runs long, so that
// requests stuck on a hung store are answered before the deadline.
func (s *Store) Abort() { s.mon.close() }

// Up returns a context cancelled the moment the store is known down (the driver's server monitor
// saw it go Unknown) or closing, with the UNAVAILABLE error calls should end in as its cause;
// while the store is down it is already cancelled. See storecache.FailFast.
func (s *Store) Up() context.Context { return s.mon.Up() }

// Ping checks that the primary answers; UNAVAILABLE when it does not, at once when the store is
// known down (the readiness probe must not wait out server selection).
func (s *Store) Ping(ctx context.Context) error {
	if up := s.mon.Up(); up.Err() != nil {
		return context.Cause(up)
	}
	return mapErr(s.client.Ping(ctx, readpref.Primary()))
}

// Stats reports the pool as the monitors saw it.
func (s *Store) Stats() PoolStats { return s.mon.stats() }

func (s *Store) ensureIndexes(ctx context.Context) error {
	type spec struct {
		coll *mongo.Collection
		idx  []mongo.IndexModel
	}
	specs := []spec{
		{s.users, []mongo.IndexModel{
			{Keys: bson.D{{Key: "email", Value: 1}}, Options: options.Index().SetName("email_unique").SetUnique(true)},
		}},
		{s.venues, []mongo.IndexModel{
			{Keys: bson.D{{Key: "cityKey", Value: 1}, {Key: "nameKey", Value: 1}}, Options: options.Index().SetName("city_name")},
		}},
		{s.events, []mongo.IndexModel{
			{Keys: bson.D{{Key: "status", Value: 1}, {Key: "startsAt", Value: 1}}, Options: options.Index().SetName("status_startsAt")},
			{Keys: bson.D{{Key: "organizerId", Value: 1}}, Options: options.Index().SetName("organizer")},
			{Keys: bson.D{{Key: "venueId", Value: 1}}, Options: options.Index().SetName("venue")},
			{Keys: bson.D{{Key: "tags", Value: 1}}, Options: options.Index().SetName("tags")},
			// The repair sweep's: only events with a write under way (or a dead one) carry
			// pending, so the sweep reads those instead of scanning every event each lease.
			{Keys: bson.D{{Key: "pending", Value: 1}}, Options: options.Index().SetName("pending_sparse").SetSparse(true)},
		}},
		{s.regs, []mongo.IndexModel{
			{Keys: bson.D{{Key: "eventId", Value: 1}, {Key: "userId", Value: 1}}, Options: options.Index().SetName("event_user_unique").SetUnique(true)},
			{Keys: bson.D{{Key: "eventId", Value: 1}, {Key: "status", Value: 1}, {Key: "createdAt", Value: 1}}, Options: options.Index().SetName("event_status_arrival")},
			{Keys: bson.D{{Key: "eventId", Value: 1}, {Key: "createdAt", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("event_arrival")},
			{Keys: bson.D{{Key: "userId", Value: 1}, {Key: "eventStartsAt", Value: 1}, {Key: "_id", Value: 1}}, Options: options.Index().SetName("user_event_start")},
		}},
		{s.hooks, []mongo.IndexModel{
			{Keys: bson.D{{Key: "receiver", Value: 1}, {Key: "status", Value: 1}, {Key: "occurredAt", Value: 1}, {Key: "messageId", Value: 1}}, Options: options.Index().SetName("receiver_status_age")},
			{Keys: bson.D{{Key: "status", Value: 1}, {Key: "updatedAt", Value: 1}}, Options: options.Index().SetName("status_updated")},
		}},
	}
	for _, sp := range specs {
		if err := ensureCollIndexes(ctx, sp.coll, sp.idx); err != nil {
			return err
		}
	}
	return nil
}

// ensureCollIndexes creates the indexes of idx that coll lacks, one at a time, so that replicas
// starting together on an empty database can all do it: on MongoDB createIndexes of an existing
// identical index is a no-op, but FerretDB v1.24 panics (and drops the connection) when one
// createIndexes names several indexes of which some exist already — which is what a replica that
// listed them before the other created them would send. A failed creation is retried after
// listing again, a few times.
func ensureCollIndexes(ctx context.Context, coll *mongo.Collection, idx []mongo.IndexModel) error {
	const attempts = 5
	var err error
	for attempt := range attempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("store: create indexes on %s: %w", coll.Name(), ctx.Err())
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		var existing []mongo.IndexSpecification
		existing, err = coll.Indexes().ListSpecifications(ctx)
		if err != nil {
			continue
		}
		have := make(map[string]bool, len(existing))
		for _, e := range existing {
			have[e.Name] = true
		}
		err = nil
		for _, m := range idx {
			if have[*indexName(m)] {
				continue
			}
			if _, err = coll.Indexes().CreateOne(ctx, m); err != nil {
				break
			}
		}
		if err == nil {
			return nil
		}
	}
	return fmt.Errorf("store: create indexes on %s: %w", coll.Name(), mapErr(err))
}

// indexName reads the name set on an index model's options.
func indexName(m mongo.IndexModel) *string {
	var o options.IndexOptions
	for _, set := range m.Options.List() {
		_ = set(&o)
	}
	return o.Name
}

// lockEvent takes the stripe of the in-process lock for one event and returns its unlock.
func (s *Store) lockEvent(eventID string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(eventID))
	m := &s.eventLocks[h.Sum32()%eventLockStripes]
	m.Lock()
	return m.Unlock
}

// mapErr turns a driver error into a domain error. nil stays nil; ErrNoDocuments is returned
// as is so that callers can name what was not found.
func mapErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, mongo.ErrNoDocuments):
		return err
	case mongo.IsDuplicateKeyError(err):
		return &eventide.Error{Code: eventide.CodeBadUserInput, Message: "already exists", Err: err}
	case errors.As(err, &topology.ServerSelectionError{}),
		errors.Is(err, topology.ErrTopologyClosed),
		errors.Is(err, mongo.ErrClientDisconnected), // the driver's name for a closed topology
		errors.Is(err, topology.ErrPoolClosed),      // Close ran while the call waited (a shutdown)
		errors.Is(err, topology.ErrServerClosed),
		mongo.IsNetworkError(err),
		mongo.IsTimeout(err),
		errors.Is(err, context.DeadlineExceeded):
		return &eventide.Error{Code: eventide.CodeUnavailable, Message: "the store is unavailable; try again shortly", Err: err}
	case errors.Is(err, context.Canceled):
		return &eventide.Error{Code: eventide.CodeUnavailable, Message: "request cancelled", Err: err}
	}
	var e *eventide.Error
	if errors.As(err, &e) {
		return err
	}
	return eventide.Internal(err)
}

// parseID turns an API id into an ObjectID; a malformed one is NOT_FOUND for kind, since no
// such object can exist.
func parseID(kind, id string) (bson.ObjectID, error) {
	oid, err := bson.ObjectIDFromHex(id)
	if err != nil {
		return bson.NilObjectID, eventide.NotFound(kind, id)
	}
	return oid, nil
}

// parseIDs keeps the well-formed ids of a batch; malformed ones cannot match anything.
func parseIDs(ids []string) []bson.ObjectID {
	out := make([]bson.ObjectID, 0, len(ids))
	for _, id := range ids {
		if oid, err := bson.ObjectIDFromHex(id); err == nil {
			out = append(out, oid)
		}
	}
	return out
}

// now is the store's clock at BSON's millisecond precision, so what a write returns equals what
// a later read returns.
func now() time.Time { return msTime(time.Now()) }

func msTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// findOne decodes one document into dst, mapping "no document" to NOT_FOUND for kind/id.
func findOne(ctx context.Context, c *mongo.Collection, filter any, dst any, kind, id string, opts ...options.Lister[options.FindOneOptions]) error {
	return decodeResult(c.FindOne(ctx, filter, opts...), dst, kind, id)
}

// decodeResult decodes a single result into dst, mapping "no document" to NOT_FOUND for kind/id.
func decodeResult(r *mongo.SingleResult, dst any, kind, id string) error {
	err := r.Decode(dst)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return eventide.NotFound(kind, id)
	}
	return mapErr(err)
}

// findAll runs a find and decodes every document with conv.
func findAll[D any, T any](ctx context.Context, c *mongo.Collection, filter any, conv func(*D) T, opts ...options.Lister[options.FindOptions]) ([]T, error) {
	cur, err := c.Find(ctx, filter, opts...)
	if err != nil {
		return nil, mapErr(err)
	}
	defer cur.Close(ctx)
	var out []T
	for cur.Next(ctx) {
		var d D
		if err := cur.Decode(&d); err != nil {
			return nil, mapErr(err)
		}
		out = append(out, conv(&d))
	}
	return out, mapErr(cur.Err())
}
