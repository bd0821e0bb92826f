package store

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/eventide/server/eventide"
)

// The repair of an event's counters after a multi-step write that stopped halfway. See DESIGN.md.

const (
	// writeBudget bounds every multi-step registration write: past it the write's context ends,
	// so a writer whose mark is older than repairLease (budget plus clock skew between replicas)
	// is dead, and its mark may be repaired.
	writeBudget = 10 * time.Second
	repairLease = 30 * time.Second
	// repairTimeout bounds a repair run on behalf of a write that failed halfway.
	repairTimeout = 5 * time.Second
	// maxBroken bounds the in-process record of marks whose writers failed here.
	maxBroken = 4096
)

// mark identifies one multi-step write on an event's document: its begin sets
// pending.<token> to the instant it began (and bumps rev); its end unsets it (and bumps rev).
type mark struct {
	token string
	at    time.Time
}

func newMark() *mark { return &mark{token: bson.NewObjectID().Hex(), at: now()} }

// withBegin adds a mark's begin to an update document made of $inc and $set parts.
func withBegin(inc, set bson.D, m *mark) bson.D {
	if m != nil {
		inc = append(inc, bson.E{Key: "rev", Value: 1})
		set = append(set, bson.E{Key: "pending." + m.token, Value: m.at})
	}
	u := bson.D{}
	if len(inc) > 0 {
		u = append(u, bson.E{Key: "$inc", Value: inc})
	}
	if len(set) > 0 {
		u = append(u, bson.E{Key: "$set", Value: set})
	}
	return u
}

// begin marks an event before a multi-step write whose first step is not an update of the
// event itself (a cancellation). It reports false when the event does not exist.
func (s *Store) begin(ctx context.Context, eid bson.ObjectID, m *mark) (bool, error) {
	res, err := s.events.UpdateOne(ctx, bson.D{{Key: "_id", Value: eid}}, withBegin(nil, nil, m))
	if err != nil {
		return false, mapErr(err)
	}
	return res.MatchedCount > 0, nil
}

// end removes a finished write's mark. A failure to remove it is not the write's failure: the
// data agree, and the mark is handed to the repair, which clears it.
func (s *Store) end(ctx context.Context, eid bson.ObjectID, m *mark) {
	_, err := s.events.UpdateOne(ctx, bson.D{{Key: "_id", Value: eid}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "pending." + m.token, Value: ""}}}, {Key: "$inc", Value: bson.D{{Key: "rev", Value: 1}}}})
	if err != nil {
		s.halfway(ctx, eid, m, err)
	}
}

// halfway is called, with the event's lock held, when a multi-step write stopped after its
// begin (or may have: a network error leaves a write's fate unknown). It records the mark as
// dead and repairs the event at once; if the store refuses that too, the next read of the event
// (or the sweep) repairs it.
func (s *Store) halfway(ctx context.Context, eid bson.ObjectID, m *mark, cause error) {
	s.broken.add(eid, m.token)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), repairTimeout)
	defer cancel()
	if err := s.repairLocked(rctx, eid); err != nil {
		s.log.Warn("store: a registration write failed halfway; the event is repaired on its next read",
			"event", eid.Hex(), "cause", cause, "error", err)
	}
}

// needsRepair says whether d carries marks and every one of them is dead: older than the lease,
// or left by a write of this process that failed. A live mark (a write under way, here or on
// another replica) defers the repair: a recount then could miss that write's next step.
func (s *Store) needsRepair(d *eventDoc) bool {
	if len(d.Pending) == 0 {
		return false
	}
	cutoff := time.Now().Add(-repairLease)
	for tok, at := range d.Pending {
		if at.After(cutoff) && !s.broken.has(d.ID, tok) {
			return false
		}
	}
	return true
}

// repairLocked recounts an event from its registrations, promotes the oldest waitlisted into
// free seats, and writes the counters and clears the marks in one update conditional on the
// revision it read, so that it changes nothing if any write began or ended meanwhile. The
// caller holds the event's lock. Running it twice changes nothing the second time.
func (s *Store) repairLocked(ctx context.Context, eid bson.ObjectID) error {
	d, err := s.eventDoc(ctx, eid)
	if err != nil {
		return err
	}
	if !s.needsRepair(d) {
		s.broken.forgetExcept(eid, d.Pending)
		return nil
	}
	if err := s.cascadeLocked(ctx, d); err != nil {
		return err
	}
	confirmed, err := s.countRegs(ctx, eid, eventide.RegistrationConfirmed)
	if err != nil {
		return err
	}
	waitlisted, err := s.countRegs(ctx, eid, eventide.RegistrationWaitlisted)
	if err != nil {
		return err
	}
	for waitlisted > 0 && confirmed < d.Capacity {
		p, err := s.promoteOldest(ctx, eid)
		if err != nil {
			return err
		}
		if p == nil {
			break
		}
		confirmed, waitlisted = confirmed+1, waitlisted-1
	}
	res, err := s.events.UpdateOne(ctx, bson.D{{Key: "_id", Value: eid}, {Key: "rev", Value: d.Rev}},
		bson.D{
			{Key: "$set", Value: bson.D{{Key: "confirmed", Value: confirmed}, {Key: "waitlisted", Value: waitlisted}, {Key: "updatedAt", Value: now()}}},
			{Key: "$unset", Value: bson.D{{Key: "pending", Value: ""}}},
			{Key: "$inc", Value: bson.D{{Key: "rev", Value: 1}}},
		})
	if err != nil {
		return mapErr(err)
	}
	if res.MatchedCount > 0 {
		s.broken.forget(eid)
		if d.Confirmed != confirmed || d.Waitlisted != waitlisted {
			s.log.Warn("store: repaired an event's counts after a write stopped halfway", "event", eid.Hex(),
				"confirmed", confirmed, "was_confirmed", d.Confirmed, "waitlisted", waitlisted, "was_waitlisted", d.Waitlisted)
		}
	}
	// Otherwise a write began or ended since the read: that writer's end, or a later read,
	// sees the dead marks again and repairs then.
	return nil
}

func (s *Store) countRegs(ctx context.Context, eid bson.ObjectID, status eventide.RegistrationStatus) (int, error) {
	n, err := s.regs.CountDocuments(ctx, bson.D{{Key: "eventId", Value: eid}, {Key: "status", Value: string(status)}})
	return int(n), mapErr(err)
}

// healed returns d, or the event after its repair when d needs one (taking the event's lock).
// A failed repair is logged and d served as it is.
func (s *Store) healed(ctx context.Context, d *eventDoc) *eventDoc {
	if !s.needsRepair(d) {
		return d
	}
	unlock := s.lockEvent(d.ID.Hex())
	defer unlock()
	if err := s.repairLocked(ctx, d.ID); err != nil {
		s.log.Warn("store: could not repair an event's counts", "event", d.ID.Hex(), "error", err)
		return d
	}
	d2, err := s.eventDoc(ctx, d.ID)
	if err != nil {
		return d
	}
	return d2
}

// lockedEvent reads an event for a write that holds its lock, repairing it first if needed.
func (s *Store) lockedEvent(ctx context.Context, eid bson.ObjectID) (*eventDoc, error) {
	d, err := s.eventDoc(ctx, eid)
	if err != nil || !s.needsRepair(d) {
		return d, err
	}
	if err := s.repairLocked(ctx, eid); err != nil {
		return nil, err
	}
	return s.eventDoc(ctx, eid)
}

// sweep repairs every event that carries only dead marks: at start-up (a crash of this or
// another replica) and then every repairLease until Close.
//
// A finished write leaves its event with an empty pending document; the sweep removes those
// first (each update re-checks emptiness as it writes, so a mark set meanwhile stays), which keeps
// the sparse pending_sparse index to the events with a write under way, and the sweep's find on
// it from growing with every event ever registered for. The find streams: memory stays one batch
// whatever the number of marked events.
func (s *Store) sweep(ctx context.Context) (repaired int, err error) {
	if _, err := s.events.UpdateMany(ctx, bson.D{{Key: "pending", Value: bson.D{}}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "pending", Value: ""}}}}); err != nil {
		return 0, mapErr(err)
	}
	cur, err := s.events.Find(ctx, bson.D{{Key: "pending", Value: bson.D{{Key: "$exists", Value: true}, {Key: "$ne", Value: bson.D{}}}}},
		options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "pending", Value: 1}}).SetBatchSize(sweepBatch))
	if err != nil {
		return 0, mapErr(err)
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d eventDoc
		if err := cur.Decode(&d); err != nil {
			return repaired, mapErr(err)
		}
		if !s.needsRepair(&d) {
			continue
		}
		unlock := s.lockEvent(d.ID.Hex())
		err := s.repairLocked(ctx, d.ID)
		unlock()
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return repaired, err
		}
		repaired++
	}
	return repaired, mapErr(cur.Err())
}

// sweepBatch is how many marked events one getMore of the sweep brings.
const sweepBatch = 100

// runSweeps sweeps now and every repairLease until ctx ends.
func (s *Store) runSweeps(ctx context.Context) {
	defer close(s.sweepDone)
	t := time.NewTicker(repairLease)
	defer t.Stop()
	for {
		if n, err := s.sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("store: repair sweep failed", "error", err)
		} else if n > 0 {
			s.log.Info("store: repair sweep", "events", n)
		}
		// After the repair, whose promotions left their messages in their documents too.
		if n, err := s.sweepOutbox(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("store: webhook outbox sweep failed", "error", err)
		} else if n > 0 {
			s.log.Info("store: webhook outbox sweep moved messages a write left in their documents", "messages", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// brokenMarks records, per event, the marks of this process's writes that failed halfway, so
// that they count as dead at once rather than after the lease. Bounded by maxBroken events;
// when full an arbitrary event is dropped, whose marks then die by the lease instead.
type brokenMarks struct {
	mu sync.Mutex
	m  map[bson.ObjectID]map[string]bool
}

func (b *brokenMarks) add(eid bson.ObjectID, tok string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[bson.ObjectID]map[string]bool{}
	}
	if _, ok := b.m[eid]; !ok && len(b.m) >= maxBroken {
		for k := range b.m {
			delete(b.m, k)
			break
		}
	}
	if b.m[eid] == nil {
		b.m[eid] = map[string]bool{}
	}
	b.m[eid][tok] = true
}

func (b *brokenMarks) has(eid bson.ObjectID, tok string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[eid][tok]
}

func (b *brokenMarks) forget(eid bson.ObjectID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, eid)
}

// forgetExcept drops the event's recorded marks that the document no longer carries.
func (b *brokenMarks) forgetExcept(eid bson.ObjectID, pending map[string]time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for tok := range b.m[eid] {
		if _, ok := pending[tok]; !ok {
			delete(b.m[eid], tok)
		}
	}
	if len(b.m[eid]) == 0 {
		delete(b.m, eid)
	}
}

func (b *brokenMarks) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}
