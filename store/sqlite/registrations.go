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
	if err := r.Scan(&g.ID, &g.EventID, &g.UserID, &status, &created, &updated, &g.CancelReason); err != nil {
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
	eventide.NoteRegistrations(ctx, reg)
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
	return s.cancel(ctx, at, "", noneErr, func(w *wtx) (*eventide.Registration, error) {
		return one(w.row(s.stmts.wRegFor, eid, uid), scanReg, "registration", eventID)
	})
}

// RemoveRegistration implements eventide.RegistrationJourneys like CancelRegistration, by id.
func (s *Store) RemoveRegistration(ctx context.Context, id, reason string, at time.Time) (*eventide.Registration, *eventide.Event, error) {
	rid := normID(id)
	noneErr := eventide.Errorf(eventide.CodeNotFound, "no active registration %q", id)
	if !validID(rid) {
		return nil, nil, noneErr
	}
	return s.cancel(ctx, at, reason, noneErr, func(w *wtx) (*eventide.Registration, error) {
		return one(w.row(s.stmts.wRegByID, rid), scanReg, "registration", id)
	})
}

// cancel cancels the registration find reads (noneErr when it has none active) with reason, and
// gives a seat it held to the oldest waitlisted registration, in one transaction.
func (s *Store) cancel(ctx context.Context, at time.Time, reason string, noneErr error,
	find func(*wtx) (*eventide.Registration, error)) (*eventide.Registration, *eventide.Event, error) {
	var reg, promoted *eventide.Registration
	var ev *eventide.Event
	err := s.write(ctx, func(w *wtx) error {
		r, err := find(w)
		if eventide.IsCode(err, eventide.CodeNotFound) || (err == nil && r.Status == eventide.RegistrationCancelled) {
			return noneErr
		}
		if err != nil {
			return err
		}
		cur, err := one(w.row(s.stmts.wEventByID, r.EventID), scanEvent, "event", r.EventID)
		if err != nil {
			return err
		}
		if !cur.EndsAt.After(at) {
			return eventide.InvalidField("eventId", "the event has ended; its registrations stay as they were")
		}
		t := ms(at)
		if _, err := w.exec(s.stmts.wCancelReg, reason, t, r.ID); err != nil {
			return err
		}
		dc, dw := 0, 0
		switch r.Status {
		case eventide.RegistrationWaitlisted:
			dw = -1
		case eventide.RegistrationConfirmed:
			// The freed seat goes straight to the oldest waitlisted registration; only when
			// nobody waits does the confirmed count drop.
			next, err := one(w.row(s.stmts.wOldestWaiting, r.EventID), scanReg, "registration", r.EventID)
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
		if _, err := w.exec(s.stmts.wAddCounts, dc, dw, ms(now()), r.EventID); err != nil {
			return err
		}
		r.Status, r.UpdatedAt, r.CancelReason = eventide.RegistrationCancelled, fromMS(t), reason
		reg = r
		msgs := []eventide.WebhookMessage{regMessage(eventide.WebhookRegistrationCancelled, r)}
		if promoted != nil {
			msgs = append(msgs, regMessage(eventide.WebhookRegistrationPromoted, promoted))
		}
		if err := s.emit(w, msgs...); err != nil {
			return err
		}
		ev, err = one(w.row(s.stmts.wEventByID, r.EventID), scanEvent, "event", r.EventID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	eventide.NoteRegistrations(ctx, reg)
	if promoted != nil {
		eventide.NoteRegistrations(ctx, promoted)
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

// RegistrationByID implements eventide.RegistrationJourneys.
func (s *Store) RegistrationByID(ctx context.Context, id string) (*eventide.Registration, error) {
	rid := normID(id)
	if !validID(rid) {
		return nil, eventide.NotFound("registration", id)
	}
	return one(s.stmts.rRegByID.QueryRowContext(ctx, rid), scanReg, "registration", id)
}

// EventRegistrations implements eventide.RegistrationJourneys: in arrival order, from the
// (event, created) index, or the (event, status, created) one for one status.
func (s *Store) EventRegistrations(ctx context.Context, eventID string, status eventide.RegistrationStatus, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	eid := normID(eventID)
	if !validID(eid) {
		return nil, eventide.NotFound("event", eventID)
	}
	n, err := pageSize(page.First)
	if err != nil {
		return nil, err
	}
	after := cursor{key: "-1"}
	if page.After != "" {
		if after, err = decodeCursor("g", page.After); err != nil {
			return nil, err
		}
	}
	var regs []*eventide.Registration
	if status == "" {
		regs, err = queryAll(ctx, s.stmts.rEventRegs, scanReg, eid, after.ms(), after.id, n+1)
	} else {
		regs, err = queryAll(ctx, s.stmts.rEventRegsOf, scanReg, eid, string(status), after.ms(), after.id, n+1)
	}
	if err != nil {
		return nil, err
	}
	return pageOf(regs, n, func(r *eventide.Registration) string { return timeCursor("g", ms(r.CreatedAt), r.ID) }), nil
}

// CountEventRegistrations implements eventide.RegistrationJourneys.
func (s *Store) CountEventRegistrations(ctx context.Context, eventID string, status eventide.RegistrationStatus) (int, error) {
	eid := normID(eventID)
	if !validID(eid) {
		return 0, nil
	}
	q, args := `SELECT count(*) FROM registrations WHERE event_id = ?`, []any{eid}
	if status != "" {
		q, args = q+` AND status = ?`, append(args, string(status))
	}
	var c int
	return c, mapErr(s.r.QueryRowContext(ctx, q, args...).Scan(&c))
}

// userRegsSQL is the condition of a user's registrations under f in one half of the list
// (upcoming: the event has not ended at f.Now; else past), with its arguments.
func userRegsSQL(uid string, f eventide.RegistrationFilter, upcoming bool) (string, []any) {
	q, args := `user_id = ?`, []any{uid}
	if upcoming {
		q += ` AND event_ends_at > ?`
	} else {
		q += ` AND event_ends_at <= ?`
	}
	args = append(args, ms(f.Now))
	if f.Status != "" {
		q, args = q+` AND status = ?`, append(args, string(f.Status))
	}
	return q, args
}

// userRegsPageSQL is the query of one half of a page of a user's registrations after the cursor
// (nil for the first page); ok is false when the cursor is past that half.
func userRegsPageSQL(uid string, f eventide.RegistrationFilter, upcoming bool, after *cursor, limit int) (q string, args []any, ok bool) {
	cond, args := userRegsSQL(uid, f, upcoming)
	order := `event_starts_at, id`
	if after != nil {
		k := after.ms()
		switch {
		case upcoming && k >= pastKey:
			return "", nil, false // the cursor is in the past half already
		case upcoming:
			cond, args = cond+` AND (event_starts_at, id) > (?, ?)`, append(args, k, after.id)
		case k >= pastKey:
			cond, args = cond+` AND (event_starts_at, id) < (?, ?)`, append(args, 2*pastKey-k, after.id)
		}
	}
	if !upcoming {
		order = `event_starts_at DESC, id DESC`
	}
	return `SELECT ` + regCols + `, event_starts_at FROM registrations WHERE ` + cond + ` ORDER BY ` + order + ` LIMIT ?`,
		append(args, limit), true
}

// UserRegistrations implements eventide.RegistrationJourneys on the (user, event start) index:
// the upcoming half walks it forwards, the past half backwards. A cursor's key is the item's
// place in the whole list: the event's start for an upcoming one, 2*pastKey minus it for a past one.
func (s *Store) UserRegistrations(ctx context.Context, userID string, f eventide.RegistrationFilter, page eventide.Page) (*eventide.Conn[*eventide.Registration], error) {
	uid := normID(userID)
	n, err := pageSize(page.First)
	if err != nil {
		return nil, err
	}
	var after *cursor
	if page.After != "" {
		c, err := decodeCursor("m", page.After)
		if err != nil {
			return nil, err
		}
		after = &c
	}
	if !validID(uid) {
		return pageOf([]*eventide.Registration(nil), n, nil), nil
	}
	type item struct {
		r   *eventide.Registration
		key int64
	}
	var items []item
	half := func(upcoming bool) error {
		if f.Upcoming != nil && *f.Upcoming != upcoming {
			return nil
		}
		q, args, ok := userRegsPageSQL(uid, f, upcoming, after, n+1-len(items))
		if !ok {
			return nil
		}
		rows, err := s.r.QueryContext(ctx, q, args...)
		if err != nil {
			return mapErr(err)
		}
		got, err := collect(rows, func(sc scanner) (item, error) {
			var it item
			var g eventide.Registration
			var status string
			var created, updated, start int64
			if err := sc.Scan(&g.ID, &g.EventID, &g.UserID, &status, &created, &updated, &g.CancelReason, &start); err != nil {
				return it, err
			}
			g.Status, g.CreatedAt, g.UpdatedAt = eventide.RegistrationStatus(status), fromMS(created), fromMS(updated)
			it.r, it.key = &g, start
			if !upcoming {
				it.key = 2*pastKey - start
			}
			return it, nil
		})
		items = append(items, got...)
		return err
	}
	if err := half(true); err != nil {
		return nil, err
	}
	if len(items) <= n {
		if err := half(false); err != nil {
			return nil, err
		}
	}
	keys := make(map[*eventide.Registration]int64, len(items))
	regs := make([]*eventide.Registration, len(items))
	for i, it := range items {
		regs[i], keys[it.r] = it.r, it.key
	}
	return pageOf(regs, n, func(r *eventide.Registration) string { return timeCursor("m", keys[r], r.ID) }), nil
}

// pastKey is where the past half of a user's registrations begins in cursor keys: above every
// start in milliseconds. A past one's key is 2*pastKey - start, so that its keys order past
// registrations latest first.
const pastKey = int64(1) << 52

// CountUserRegistrations implements eventide.RegistrationJourneys: one or two covering ranges.
func (s *Store) CountUserRegistrations(ctx context.Context, userID string, f eventide.RegistrationFilter) (int, error) {
	uid := normID(userID)
	if !validID(uid) {
		return 0, nil
	}
	total := 0
	for _, upcoming := range []bool{true, false} {
		if f.Upcoming != nil && *f.Upcoming != upcoming {
			continue
		}
		cond, args := userRegsSQL(uid, f, upcoming)
		var c int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM registrations WHERE `+cond, args...).Scan(&c); err != nil {
			return 0, mapErr(err)
		}
		total += c
	}
	return total, nil
}

// WaitlistPositions implements eventide.RegistrationJourneys with one statement for the batch.
func (s *Store) WaitlistPositions(ctx context.Context, ids []string) (map[string]int, error) {
	j, ok := idsJSON(ids)
	if !ok {
		return map[string]int{}, nil
	}
	rows, err := s.stmts.rWaitlistPositions.QueryContext(ctx, j)
	if err != nil {
		return nil, mapErr(err)
	}
	type pos struct {
		id string
		n  int
	}
	got, err := collect(rows, func(sc scanner) (pos, error) {
		var p pos
		return p, sc.Scan(&p.id, &p.n)
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]int, len(got))
	for _, p := range got {
		out[p.id] = p.n
	}
	return out, nil
}
