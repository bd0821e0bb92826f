package sqlite

import (
	"context"
	"errors"
	"time"

	"github.com/eventide/server/eventide"
)

func scanReg(r scanner) (*eventide.Registration, error) {
	var g eventide.Registration
	var status string
	var created, updated int64
	if err := r.Scan(&g.ID, &g.EventID, &g.UserID, &status, &created, &updated); err != nil {
		return nil, err
	}
	g.Status, g.CreatedAt, g.UpdatedAt = eventide.RegistrationStatus(status), fromMS(created), fromMS(updated)
	return &g, nil
}

// registrable says why an event takes no registrations at instant at, or nil.
func registrable(ev *eventide.Event, at time.Time) error {
	switch ev.Status {
	case eventide.EventDraft:
		return eventide.NotFound("event", ev.ID)
	case eventide.EventCancelled:
		return eventide.InvalidField("eventId", "the event is cancelled and takes no registrations")
	}
	if !ev.EndsAt.After(at) {
		return eventide.InvalidField("eventId", "the event has ended and takes no registrations")
	}
	return nil
}

// errUnchanged ends a write transaction that found nothing to do; it is rolled back and the
// caller returns what it read.
var errUnchanged = errors.New("unchanged")

// Register implements eventide.RegistrationStore in one transaction: the registration and the
// counter it changes are written together or not at all.
func (s *Store) Register(ctx context.Context, eventID, userID string, at time.Time) (*eventide.Registration, *eventide.Event, error) {
	eid, uid := normID(eventID), normID(userID)
	if !validID(eid) {
		return nil, nil, eventide.NotFound("event", eventID)
	}
	if !validID(uid) {
		return nil, nil, eventide.NotFound("user", userID)
	}
	var reg *eventide.Registration
	var ev *eventide.Event
	err := s.write(ctx, func(w *wtx) error {
		cur, err := one(w.row(s.stmts.wEventByID, eid), scanEvent, "event", eventID)
		if err != nil {
			return err
		}
		if err := registrable(cur, at); err != nil {
			return err
		}
		existing, err := one(w.row(s.stmts.wRegFor, eid, uid), scanReg, "registration", eventID)
		switch {
		case err == nil && existing.Status != eventide.RegistrationCancelled:
			reg, ev = existing, cur
			return errUnchanged
		case err != nil && !eventide.IsCode(err, eventide.CodeNotFound):
			return err
		}
		status, dc, dw := eventide.RegistrationConfirmed, 1, 0
		if cur.ConfirmedCount >= cur.Capacity {
			status, dc, dw = eventide.RegistrationWaitlisted, 0, 1
		}
		t := fromMS(ms(at))
		if existing == nil {
			reg = &eventide.Registration{ID: newID(), EventID: eid, UserID: uid, Status: status, CreatedAt: t, UpdatedAt: t}
			_, err = w.exec(s.stmts.wInsertReg, reg.ID, eid, uid, string(status), ms(t), ms(t))
		} else {
			// Re-registering after a cancellation is a new arrival.
			reg = existing
			reg.Status, reg.CreatedAt, reg.UpdatedAt = status, t, t
			_, err = w.exec(s.stmts.wRenewReg, string(status), ms(t), ms(t), reg.ID)
		}
		if err != nil {
			return err
		}
		if _, err := w.exec(s.stmts.wAddCounts, dc, dw, ms(now()), eid); err != nil {
			return err
		}
		typ := eventide.WebhookRegistrationConfirmed
		if status == eventide.RegistrationWaitlisted {
			typ = eventide.WebhookRegistrationWaitlisted
		}
		if err := s.emit(w, regMessage(typ, reg)); err != nil {
			return err
		}
		ev, err = one(w.row(s.stmts.wEventByID, eid), scanEvent, "event", eventID)
		return err
	})
	if errors.Is(err, errUnchanged) {
		return reg, ev, nil
	}
	if err != nil {
		return nil, nil, err
	}
	return reg, ev, nil
}

// CancelRegistration implements eventide.RegistrationStore in one transaction: the cancellation,
// the promotion of the oldest waitlisted registration into the freed seat and the counters.
func (s *Store) CancelRegistration(ctx context.Context, eventID, userID string, at time.Time) (*eventide.Registration, *eventide.Event, error) {
	eid, uid := normID(eventID), normID(userID)
	noneErr := eventide.Errorf(eventide.CodeNotFound, "you have no active registration for event %q", eventID)
	if !validID(eid) || !validID(uid) {
		return nil, nil, noneErr
	}
	var reg *eventide.Registration
	var ev *eventide.Event
	err := s.write(ctx, func(w *wtx) error {
		r, err := one(w.row(s.stmts.wRegFor, eid, uid), scanReg, "registration", eventID)
		if eventide.IsCode(err, eventide.CodeNotFound) || (err == nil && r.Status == eventide.RegistrationCancelled) {
			return noneErr
		}
		if err != nil {
			return err
		}
		t := ms(at)
		if _, err := w.exec(s.stmts.wSetRegStatus, string(eventide.RegistrationCancelled), t, r.ID); err != nil {
			return err
		}
		dc, dw := 0, 0
		var promoted *eventide.Registration
		switch r.Status {
		case eventide.RegistrationWaitlisted:
			dw = -1
		case eventide.RegistrationConfirmed:
			// The freed seat goes straight to the oldest waitlisted registration; only when
			// nobody waits does the confirmed count drop.
			next, err := one(w.row(s.stmts.wOldestWaiting, eid), scanReg, "registration", eventID)
			switch {
			case err == nil:
				pt := now()
				if _, err := w.exec(s.stmts.wSetRegStatus, string(eventide.RegistrationConfirmed), ms(pt), next.ID); err != nil {
					return err
				}
				next.Status, next.UpdatedAt = eventide.RegistrationConfirmed, pt
				promoted = next
				dw = -1
			case eventide.IsCode(err, eventide.CodeNotFound):
				dc = -1
			default:
				return err
			}
		}
		if _, err := w.exec(s.stmts.wAddCounts, dc, dw, ms(now()), eid); err != nil {
			return err
		}
		r.Status, r.UpdatedAt = eventide.RegistrationCancelled, fromMS(t)
		reg = r
		msgs := []eventide.WebhookMessage{regMessage(eventide.WebhookRegistrationCancelled, r)}
		if promoted != nil {
			msgs = append(msgs, regMessage(eventide.WebhookRegistrationPromoted, promoted))
		}
		if err := s.emit(w, msgs...); err != nil {
			return err
		}
		ev, err = one(w.row(s.stmts.wEventByID, eid), scanEvent, "event", eventID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return reg, ev, nil
}

// RegistrationFor implements eventide.RegistrationStore.
func (s *Store) RegistrationFor(ctx context.Context, eventID, userID string) (*eventide.Registration, error) {
	eid, uid := normID(eventID), normID(userID)
	if !validID(eid) {
		return nil, eventide.NotFound("event", eventID)
	}
	if !validID(uid) {
		return nil, eventide.NotFound("user", userID)
	}
	return one(s.stmts.rRegFor.QueryRowContext(ctx, eid, uid), scanReg, "registration", eventID)
}

// Attendees implements eventide.RegistrationStore: confirmed registrations in arrival order.
func (s *Store) Attendees(ctx context.Context, eventID string, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	eid := normID(eventID)
	if !validID(eid) {
		return nil, eventide.NotFound("event", eventID)
	}
	n, err := pageSize(page.First)
	if err != nil {
		return nil, err
	}
	var regs []*eventide.Registration
	if page.After != "" {
		c, err := decodeCursor("a", page.After)
		if err != nil {
			return nil, err
		}
		regs, err = queryAll(ctx, s.stmts.rAttendeesAfter, scanReg, eid, c.ms(), c.id, n+1)
		if err != nil {
			return nil, err
		}
	} else if regs, err = queryAll(ctx, s.stmts.rAttendees, scanReg, eid, n+1); err != nil {
		return nil, err
	}
	return pageOf(regs, n, func(r *eventide.Registration) string { return timeCursor("a", ms(r.CreatedAt), r.ID) }), nil
}

// RegistrationsOf returns userID's registrations at the events that have one, in no particular
// order, with one query (the viewerRegistration loader's batch).
func (s *Store) RegistrationsOf(ctx context.Context, userID string, eventIDs []string) ([]*eventide.Registration, error) {
	uid := normID(userID)
	if !validID(uid) {
		return nil, nil
	}
	j, ok := idsJSON(eventIDs)
	if !ok {
		return nil, nil
	}
	return queryAll(ctx, s.stmts.rRegsOf, scanReg, uid, j)
}
