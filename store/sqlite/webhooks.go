package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/eventide/server/eventide"
)

// The webhook outbox (API.md, "Webhooks"): one row per message and receiver, inserted by emit in
// the transaction of the change the message reports, so that the change and its message commit
// together or not at all. seq orders a receiver's messages; the worker claims the oldest PENDING
// row of a receiver under a lease (one process here, but the same contract as MongoDB's).

var _ eventide.WebhookOutbox = (*Store)(nil)

const outboxCols = `key, message_id, receiver, type, body, occurred_at, status, attempts, last_error, next_attempt_at, updated_at`

func scanDelivery(r scanner) (*eventide.WebhookDelivery, error) {
	var d eventide.WebhookDelivery
	var status string
	var occurred, next, updated int64
	if err := r.Scan(&d.Key, &d.ID, &d.Receiver, &d.Type, &d.Body, &occurred, &status, &d.Attempts, &d.LastError, &next, &updated); err != nil {
		return nil, err
	}
	d.Status, d.OccurredAt, d.NextAttemptAt, d.UpdatedAt = eventide.DeliveryStatus(status), fromMS(occurred), fromMS(next), fromMS(updated)
	return &d, nil
}

// emitting reports whether writes add to the outbox (WEBHOOK_URLS is set).
func (s *Store) emitting() bool { return len(s.outbox.Receivers) > 0 }

// emit adds msgs to the outbox inside w, one row per receiver; nothing when no receiver is set.
func (s *Store) emit(w *wtx, msgs ...eventide.WebhookMessage) error {
	if !s.emitting() {
		return nil
	}
	for _, m := range msgs {
		for _, r := range s.outbox.Receivers {
			if _, err := w.exec(s.stmts.wInsertOutbox, eventide.DeliveryKey(m.ID, r), m.ID, r, m.Type, m.Body,
				ms(m.OccurredAt), string(eventide.DeliveryPending), ms(m.OccurredAt), ms(m.OccurredAt)); err != nil {
				return err
			}
		}
	}
	if len(msgs) > 0 {
		w.outboxed = true
	}
	return nil
}

// regMessage is a registration.* message about r, with a new id.
func regMessage(typ string, r *eventide.Registration) eventide.WebhookMessage {
	return eventide.RegistrationMessage(newID(), typ, now(), r)
}

// ClaimWebhook implements eventide.WebhookOutbox.
func (s *Store) ClaimWebhook(ctx context.Context, receiver, owner string, at time.Time, lease time.Duration) (*eventide.WebhookDelivery, time.Time, error) {
	var out *eventide.WebhookDelivery
	var next time.Time
	err := s.write(ctx, func(w *wtx) error {
		var seq, leaseUntil int64
		var leaseOwner string
		row := w.tx.QueryRowContext(ctx, `SELECT seq, lease_owner, lease_until, `+outboxCols+` FROM webhook_outbox
			WHERE receiver = ? AND status = 'PENDING' ORDER BY seq LIMIT 1`, receiver)
		d, err := scanDelivery(scanFunc(func(dst ...any) error {
			return row.Scan(append([]any{&seq, &leaseOwner, &leaseUntil}, dst...)...)
		}))
		if errors.Is(err, sql.ErrNoRows) {
			return errUnchanged
		}
		if err != nil {
			return err
		}
		switch {
		case d.NextAttemptAt.After(at):
			next = d.NextAttemptAt
			return errUnchanged
		case leaseOwner != "" && leaseUntil > ms(at):
			next = fromMS(leaseUntil)
			return errUnchanged
		}
		if _, err := w.tx.ExecContext(ctx, `UPDATE webhook_outbox SET attempts = attempts + 1, lease_owner = ?, lease_until = ?
			WHERE seq = ?`, owner, ms(at.Add(lease)), seq); err != nil {
			return err
		}
		d.Attempts++
		out = d
		return nil
	})
	if errors.Is(err, errUnchanged) {
		return nil, next, nil
	}
	return out, next, err
}

type scanFunc func(dst ...any) error

func (f scanFunc) Scan(dst ...any) error { return f(dst...) }

// FinishWebhook implements eventide.WebhookOutbox.
func (s *Store) FinishWebhook(ctx context.Context, key, owner string, o eventide.WebhookOutcome) (bool, error) {
	var n int64
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.tx.ExecContext(ctx, `UPDATE webhook_outbox SET status = ?, last_error = ?, next_attempt_at = ?,
			updated_at = ?, lease_owner = '', lease_until = 0 WHERE key = ? AND lease_owner = ? AND status = 'PENDING'`,
			string(o.Status), o.Error, ms(o.NextAttemptAt), ms(o.At), key, owner)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n > 0, err
}

// ReleaseWebhook implements eventide.WebhookOutbox.
func (s *Store) ReleaseWebhook(ctx context.Context, key, owner string) error {
	return s.write(ctx, func(w *wtx) error {
		_, err := w.tx.ExecContext(ctx, `UPDATE webhook_outbox SET attempts = max(attempts - 1, 0), lease_owner = '', lease_until = 0
			WHERE key = ? AND lease_owner = ? AND status = 'PENDING'`, key, owner)
		return err
	})
}

// WebhookDeliveries implements eventide.WebhookOutbox.
func (s *Store) WebhookDeliveries(ctx context.Context, status eventide.DeliveryStatus, last int) ([]*eventide.WebhookDelivery, error) {
	var rows *sql.Rows
	var err error
	if status == "" {
		rows, err = s.r.QueryContext(ctx, `SELECT `+outboxCols+` FROM webhook_outbox ORDER BY seq DESC LIMIT ?`, last)
	} else {
		rows, err = s.r.QueryContext(ctx, `SELECT `+outboxCols+` FROM webhook_outbox WHERE status = ? ORDER BY seq DESC LIMIT ?`, string(status), last)
	}
	if err != nil {
		return nil, mapErr(err)
	}
	return collect(rows, scanDelivery)
}

// PurgeWebhooks implements eventide.WebhookOutbox.
func (s *Store) PurgeWebhooks(ctx context.Context, cutoff time.Time) (int, error) {
	var n int64
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.tx.ExecContext(ctx, `DELETE FROM webhook_outbox WHERE status IN ('DELIVERED', 'FAILED') AND updated_at < ?`, ms(cutoff))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// WebhookBacklog implements eventide.WebhookOutbox.
func (s *Store) WebhookBacklog(ctx context.Context) (int, time.Time, error) {
	var n int
	var oldest sql.NullInt64
	err := s.r.QueryRowContext(ctx, `SELECT count(*), min(occurred_at) FROM webhook_outbox WHERE status = 'PENDING'`).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, mapErr(err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, fromMS(oldest.Int64), nil
}
