package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/eventide/server/eventide"
)

// CalendarRegistrations implements eventide.RegistrationStore (registrations_user_status, then a
// top-n sort of one user's rows).
func (s *Store) CalendarRegistrations(ctx context.Context, userID string, limit int) ([]*eventide.Registration, error) {
	uid := normID(userID)
	if !validID(uid) || limit <= 0 {
		return nil, nil
	}
	return queryAll(ctx, s.stmts.rCalendarRegs, scanReg, uid, limit)
}

// CalendarSecret implements eventide.CalendarStore.
func (s *Store) CalendarSecret(ctx context.Context, userID string) (string, error) {
	uid := normID(userID)
	if !validID(uid) {
		return "", nil
	}
	var secret string
	err := s.stmts.rCalendarSecret.QueryRowContext(ctx, uid).Scan(&secret)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return secret, mapErr(err)
}

// SetCalendarSecret implements eventide.CalendarStore.
func (s *Store) SetCalendarSecret(ctx context.Context, userID, secret string) error {
	uid := normID(userID)
	if !validID(uid) {
		return eventide.NotFound("user", userID)
	}
	return s.write(ctx, func(w *wtx) error {
		_, err := w.exec(s.stmts.wSetCalendarSecret, uid, secret, ms(now()))
		return err
	})
}
