package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order, each in its own transaction with the row that records it in
// schema_migrations; a migration once released is never edited, only followed by another.
//
// Times are INTEGER milliseconds since the epoch (UTC), ids 24 hex digits, tags a JSON array on
// the event plus one event_tags row per tag for the tag filter.
var migrations = []string{
	// 1: the schema.
	`
CREATE TABLE users (
	id            TEXT PRIMARY KEY,
	name          TEXT NOT NULL,
	email         TEXT NOT NULL COLLATE NOCASE, -- stored lower-cased as well
	role          TEXT NOT NULL,
	password_hash BLOB,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email COLLATE NOCASE);
CREATE INDEX users_created ON users (created_at, id);
CREATE INDEX users_role_created ON users (role, created_at, id);

CREATE TABLE venues (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	name_key   TEXT NOT NULL,
	address    TEXT NOT NULL,
	city       TEXT NOT NULL,
	city_key   TEXT NOT NULL,
	capacity   INTEGER,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX venues_name ON venues (name_key, id);
CREATE INDEX venues_city_name ON venues (city_key, name_key, id);

CREATE TABLE events (
	id            TEXT PRIMARY KEY,
	title         TEXT NOT NULL,
	description   TEXT NOT NULL,
	starts_at     INTEGER NOT NULL,
	ends_at       INTEGER NOT NULL,
	status        TEXT NOT NULL,
	capacity      INTEGER NOT NULL,
	tags          TEXT NOT NULL DEFAULT '[]',
	venue_id      TEXT,
	city          TEXT NOT NULL DEFAULT '',
	city_key      TEXT NOT NULL DEFAULT '',
	organizer_id  TEXT NOT NULL,
	confirmed     INTEGER NOT NULL DEFAULT 0 CHECK (confirmed >= 0),
	waitlisted    INTEGER NOT NULL DEFAULT 0 CHECK (waitlisted >= 0),
	cancel_reason TEXT NOT NULL DEFAULT '',
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
);
-- The events page: one status, ordered by start then id, ends_at in the index so that "not
-- ended" is checked without reading the row.
CREATE INDEX events_status_start ON events (status, starts_at, id, ends_at);
-- Counting upcoming events of a status: a covering range.
CREATE INDEX events_status_end ON events (status, ends_at);
CREATE INDEX events_city_start ON events (city_key, status, starts_at, id, ends_at);
CREATE INDEX events_organizer_start ON events (organizer_id, starts_at, id);
CREATE INDEX events_venue_start ON events (venue_id, status, starts_at, id);

-- One row per tag of an event, with copies of the event's status and times (rewritten by every
-- update of the event) so that a tag's events come in page order and are counted without
-- reading the events.
CREATE TABLE event_tags (
	tag       TEXT NOT NULL,
	status    TEXT NOT NULL,
	starts_at INTEGER NOT NULL,
	event_id  TEXT NOT NULL,
	ends_at   INTEGER NOT NULL,
	PRIMARY KEY (tag, status, starts_at, event_id)
) WITHOUT ROWID;
CREATE INDEX event_tags_event ON event_tags (event_id);

-- Search: trigram FTS5 over title and description, kept in step by triggers. Trigrams match
-- any substring of three characters or more, case-insensitively; see searchClause.
CREATE VIRTUAL TABLE events_fts USING fts5 (
	title, description, content = 'events', content_rowid = 'rowid',
	tokenize = 'trigram case_sensitive 0'
);
CREATE TRIGGER events_fts_insert AFTER INSERT ON events BEGIN
	INSERT INTO events_fts (rowid, title, description) VALUES (new.rowid, new.title, new.description);
END;
CREATE TRIGGER events_fts_delete AFTER DELETE ON events BEGIN
	INSERT INTO events_fts (events_fts, rowid, title, description) VALUES ('delete', old.rowid, old.title, old.description);
END;
CREATE TRIGGER events_fts_update AFTER UPDATE OF title, description ON events BEGIN
	INSERT INTO events_fts (events_fts, rowid, title, description) VALUES ('delete', old.rowid, old.title, old.description);
	INSERT INTO events_fts (rowid, title, description) VALUES (new.rowid, new.title, new.description);
END;

CREATE TABLE registrations (
	id         TEXT PRIMARY KEY,
	event_id   TEXT NOT NULL,
	user_id    TEXT NOT NULL,
	status     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX registrations_event_user ON registrations (event_id, user_id);
-- Attendee pages (CONFIRMED) and the waitlist order (WAITLISTED), by arrival.
CREATE INDEX registrations_event_status_created ON registrations (event_id, status, created_at, id);
-- A user's registrations.
CREATE INDEX registrations_user_status ON registrations (user_id, status);
`,
	// 2: what was imported from an earlier version's store (see Import), and one row that the
	// readiness probe rewrites to learn whether a write fits on the disk again (see DiskFull).
	`
CREATE TABLE imports (
	source        TEXT NOT NULL,
	imported_at   INTEGER NOT NULL,
	users         INTEGER NOT NULL,
	venues        INTEGER NOT NULL,
	events        INTEGER NOT NULL,
	registrations INTEGER NOT NULL
);
CREATE TABLE write_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL);
`,
	// 3: the attendee's and the organizer's journeys. A registration carries why it was cancelled
	// and copies of its event's times (kept in step by the insert and a trigger), so that a
	// user's list comes in order (upcoming by start, then past) from one index; an event's list
	// of every status comes in arrival order from another.
	`
ALTER TABLE registrations ADD COLUMN cancel_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE registrations ADD COLUMN event_starts_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE registrations ADD COLUMN event_ends_at INTEGER NOT NULL DEFAULT 0;
UPDATE registrations SET
	event_starts_at = coalesce((SELECT starts_at FROM events e WHERE e.id = registrations.event_id), 0),
	event_ends_at = coalesce((SELECT ends_at FROM events e WHERE e.id = registrations.event_id), 0);
CREATE INDEX registrations_user_start ON registrations (user_id, event_starts_at, id, event_ends_at, status);
CREATE INDEX registrations_event_created ON registrations (event_id, created_at, id);
CREATE TRIGGER registrations_event_times AFTER UPDATE OF starts_at, ends_at ON events
WHEN old.starts_at != new.starts_at OR old.ends_at != new.ends_at BEGIN
	UPDATE registrations SET event_starts_at = new.starts_at, event_ends_at = new.ends_at WHERE event_id = new.id;
END;
`,
	// 4 (issue 14: time zones, online events, calendars). Only adds columns and a table to what
	// migration 2 left, so it applies in any order with its siblings. Venues of the cities the
	// demo data and the synthetic seed use get their zones, every other venue UTC; an event
	// takes its venue's zone.
	`
ALTER TABLE venues ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
UPDATE venues SET time_zone = CASE city_key
	WHEN 'lisbon' THEN 'Europe/Lisbon' WHEN 'porto' THEN 'Europe/Lisbon' WHEN 'faro' THEN 'Europe/Lisbon'
	WHEN 'braga' THEN 'Europe/Lisbon' WHEN 'coimbra' THEN 'Europe/Lisbon'
	WHEN 'madrid' THEN 'Europe/Madrid' WHEN 'barcelona' THEN 'Europe/Madrid' WHEN 'seville' THEN 'Europe/Madrid'
	WHEN 'valencia' THEN 'Europe/Madrid' WHEN 'bilbao' THEN 'Europe/Madrid' WHEN 'granada' THEN 'Europe/Madrid'
	WHEN 'berlin' THEN 'Europe/Berlin' WHEN 'amsterdam' THEN 'Europe/Amsterdam'
	WHEN 'copenhagen' THEN 'Europe/Copenhagen' WHEN 'vienna' THEN 'Europe/Vienna'
	ELSE 'UTC' END;
ALTER TABLE events ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC';
ALTER TABLE events ADD COLUMN online INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN online_url TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
UPDATE events SET time_zone = (SELECT v.time_zone FROM venues v WHERE v.id = events.venue_id)
	WHERE venue_id IS NOT NULL AND EXISTS (SELECT 1 FROM venues v WHERE v.id = events.venue_id);
-- A user's registrations newest first (the calendar feed), walked backwards.
CREATE INDEX IF NOT EXISTS registrations_user_created ON registrations (user_id, created_at, id);
CREATE TABLE calendar_secrets (
	user_id    TEXT PRIMARY KEY,
	secret     TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
`,
	// 5 (issue 14: webhooks): the outbox, one row per message and receiver, written in the transaction of the
	// change it reports (see webhooks.go). Tables and indexes only, so that it applies in any
	// order beside other migrations.
	`
CREATE TABLE IF NOT EXISTS webhook_outbox (
	seq             INTEGER PRIMARY KEY AUTOINCREMENT, -- a receiver's order
	key             TEXT NOT NULL UNIQUE,              -- message id + receiver
	message_id      TEXT NOT NULL,                     -- Eventide-Delivery
	receiver        TEXT NOT NULL,
	type            TEXT NOT NULL,
	body            BLOB NOT NULL,                     -- the exact bytes POSTed and signed
	occurred_at     INTEGER NOT NULL,
	status          TEXT NOT NULL,                     -- PENDING, DELIVERED, FAILED
	attempts        INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	next_attempt_at INTEGER NOT NULL,
	lease_owner     TEXT NOT NULL DEFAULT '',
	lease_until     INTEGER NOT NULL DEFAULT 0,
	updated_at      INTEGER NOT NULL
);
-- A receiver's oldest pending message (the worker's claim).
CREATE INDEX IF NOT EXISTS webhook_outbox_receiver ON webhook_outbox (receiver, status, seq);
-- webhookDeliveries by status, newest first; the backlog count.
CREATE INDEX IF NOT EXISTS webhook_outbox_status ON webhook_outbox (status, seq);
-- Retention: finished rows by age.
CREATE INDEX IF NOT EXISTS webhook_outbox_done ON webhook_outbox (status, updated_at);
`,
}

// migrate applies the migrations the database lacks, recording each in schema_migrations and in
// PRAGMA user_version.
func migrate(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrations table: %w", err)
	}
	var have int
	if err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("sqlite: read schema version: %w", err)
	}
	if have > len(migrations) {
		return fmt.Errorf("sqlite: the database has schema version %d; this build knows %d", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, ms(now())); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: migration %d: %w", v, err)
		}
	}
	return nil
}

// SchemaVersion is the number of migrations applied.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, mapErr(err)
}

const eventCols = `e.id, e.title, e.description, e.starts_at, e.ends_at, e.status, e.capacity, e.tags,
	coalesce(e.venue_id, ''), e.city, e.organizer_id, e.confirmed, e.waitlisted, e.cancel_reason, e.created_at, e.updated_at,
	e.time_zone, e.online, e.online_url, e.revision`

const regCols = `id, event_id, user_id, status, created_at, updated_at, cancel_reason`

const userCols = `id, name, email, role, password_hash, created_at, updated_at`

const venueCols = `id, name, address, city, capacity, created_by, created_at, name_key, time_zone`

// statements are prepared once at Open: r* on the reader pool, w* on the writer (used inside
// transactions through Tx.StmtContext).
type statements struct {
	all   []*sql.Stmt
	texts []string // the SQL of each, for TestQueryPlans

	ping *sql.Stmt

	rUserByID, rUserByEmail, rUsersByIDs, rCountUsers *sql.Stmt
	wInsertUser, wSetRole, wSetCreds, wUserByID       *sql.Stmt

	rVenueByID, rVenuesByIDs               *sql.Stmt
	wInsertVenue, wVenueByID, wUpdateVenue *sql.Stmt
	wVenueEvents, rCalendarRegs            *sql.Stmt
	rCalendarSecret, wSetCalendarSecret    *sql.Stmt

	rEventByID, rEventsByIDs, rFTSMatches         *sql.Stmt
	wEventByID, wInsertEvent, wUpdateEvent        *sql.Stmt
	wDeleteTags, wInsertTag, wAddCounts           *sql.Stmt
	rRegFor, rRegsOf, rAttendees, rAttendeesAfter *sql.Stmt
	wRegFor, wInsertReg, wRenewReg, wSetRegStatus *sql.Stmt
	wOldestWaiting, wPromoteOldest                *sql.Stmt
	wInsertOutbox                                 *sql.Stmt

	rRegByID, rWaitlistPositions, rEventRegs, rEventRegsOf  *sql.Stmt
	wRegByID, wCancelReg, wCancelAllRegs, wPromoteReturning *sql.Stmt
}

func (s *Store) prepare(ctx context.Context) error {
	st := &s.stmts
	var err error
	p := func(db *sql.DB, dst **sql.Stmt, q string) {
		if err != nil {
			return
		}
		var x *sql.Stmt
		if x, err = db.PrepareContext(ctx, q); err != nil {
			err = fmt.Errorf("sqlite: prepare %q: %w", q, err)
			return
		}
		*dst = x
		st.all = append(st.all, x)
		st.texts = append(st.texts, q)
	}
	p(s.r, &st.ping, `SELECT 1`)

	p(s.r, &st.rUserByID, `SELECT `+userCols+` FROM users WHERE id = ?`)
	p(s.r, &st.rUserByEmail, `SELECT `+userCols+` FROM users WHERE email = ?`)
	p(s.r, &st.rUsersByIDs, `SELECT `+userCols+` FROM users WHERE id IN (SELECT value FROM json_each(?))`)
	p(s.r, &st.rCountUsers, `SELECT count(*) FROM users`)
	p(s.w, &st.wInsertUser, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)`)
	p(s.w, &st.wSetRole, `UPDATE users SET role = ?, updated_at = ? WHERE id = ?`)
	p(s.w, &st.wSetCreds, `UPDATE users SET password_hash = ?, role = ?, updated_at = ? WHERE id = ?`)
	p(s.w, &st.wUserByID, `SELECT `+userCols+` FROM users WHERE id = ?`)

	p(s.r, &st.rVenueByID, `SELECT `+venueCols+` FROM venues WHERE id = ?`)
	p(s.r, &st.rVenuesByIDs, `SELECT `+venueCols+` FROM venues WHERE id IN (SELECT value FROM json_each(?))`)
	p(s.w, &st.wInsertVenue, `INSERT INTO venues (id, name, name_key, address, city, city_key, capacity, created_by, created_at, time_zone)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	p(s.w, &st.wVenueByID, `SELECT `+venueCols+` FROM venues WHERE id = ?`)
	p(s.w, &st.wUpdateVenue, `UPDATE venues SET name = ?, name_key = ?, address = ?, city = ?, city_key = ?, capacity = ?,
		time_zone = ? WHERE id = ?`)
	p(s.w, &st.wVenueEvents, `UPDATE events SET city = ?, city_key = ?, time_zone = ? WHERE venue_id = ?`)
	p(s.r, &st.rCalendarRegs, `SELECT `+regCols+` FROM registrations INDEXED BY registrations_user_created
		WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`)
	p(s.r, &st.rCalendarSecret, `SELECT secret FROM calendar_secrets WHERE user_id = ?`)
	p(s.w, &st.wSetCalendarSecret, `INSERT INTO calendar_secrets (user_id, secret, created_at) VALUES (?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at`)

	p(s.r, &st.rEventByID, `SELECT `+eventCols+` FROM events e WHERE e.id = ?`)
	p(s.r, &st.rEventsByIDs, `SELECT `+eventCols+` FROM events e WHERE e.id IN (SELECT value FROM json_each(?))`)
	p(s.r, &st.rFTSMatches, `SELECT rowid FROM events_fts WHERE events_fts MATCH ? LIMIT ?`)
	p(s.w, &st.wEventByID, `SELECT `+eventCols+` FROM events e WHERE e.id = ?`)
	p(s.w, &st.wInsertEvent, `INSERT INTO events (id, title, description, starts_at, ends_at, status, capacity, tags,
		venue_id, city, city_key, organizer_id, confirmed, waitlisted, cancel_reason, created_at, updated_at,
		time_zone, online, online_url)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, nullif(?, ''), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	p(s.w, &st.wUpdateEvent, `UPDATE events SET title = ?, description = ?, starts_at = ?, ends_at = ?, status = ?,
		capacity = ?, tags = ?, venue_id = nullif(?, ''), city = ?, city_key = ?, cancel_reason = ?, updated_at = ?,
		time_zone = ?, online = ?, online_url = ?, revision = revision + 1
		WHERE id = ?`)
	p(s.w, &st.wDeleteTags, `DELETE FROM event_tags WHERE event_id = ?`)
	p(s.w, &st.wInsertTag, `INSERT OR IGNORE INTO event_tags (tag, status, starts_at, event_id, ends_at) VALUES (?, ?, ?, ?, ?)`)
	p(s.w, &st.wAddCounts, `UPDATE events SET confirmed = confirmed + ?, waitlisted = waitlisted + ?, updated_at = ?
		WHERE id = ?`)

	p(s.r, &st.rRegFor, `SELECT `+regCols+` FROM registrations WHERE event_id = ? AND user_id = ?`)
	p(s.r, &st.rRegsOf, `SELECT `+regCols+` FROM registrations
		WHERE user_id = ? AND event_id IN (SELECT value FROM json_each(?))`)
	p(s.r, &st.rAttendees, `SELECT `+regCols+` FROM registrations
		WHERE event_id = ? AND status = 'CONFIRMED' ORDER BY created_at, id LIMIT ?`)
	p(s.r, &st.rAttendeesAfter, `SELECT `+regCols+` FROM registrations
		WHERE event_id = ? AND status = 'CONFIRMED' AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?`)
	p(s.w, &st.wRegFor, `SELECT `+regCols+` FROM registrations WHERE event_id = ? AND user_id = ?`)
	// The event's times are copied onto the registration as it is written (an orphan, which only
	// an import can bring, gets zeros).
	p(s.w, &st.wInsertReg, `INSERT INTO registrations (id, event_id, user_id, status, created_at, updated_at,
		event_starts_at, event_ends_at)
		SELECT v.c1, v.c2, v.c3, v.c4, v.c5, v.c6, coalesce(ev.starts_at, 0), coalesce(ev.ends_at, 0)
		FROM (SELECT ? AS c1, ? AS c2, ? AS c3, ? AS c4, ? AS c5, ? AS c6) v LEFT JOIN events ev ON ev.id = v.c2`)
	p(s.w, &st.wRenewReg, `UPDATE registrations SET status = ?, created_at = ?, updated_at = ?, cancel_reason = ''
		WHERE id = ? AND status = 'CANCELLED'`)
	p(s.w, &st.wSetRegStatus, `UPDATE registrations SET status = ?, updated_at = ? WHERE id = ?`)
	p(s.w, &st.wOldestWaiting, `SELECT `+regCols+` FROM registrations
		WHERE event_id = ? AND status = 'WAITLISTED' ORDER BY created_at, id LIMIT 1`)
	p(s.w, &st.wPromoteOldest, `UPDATE registrations SET status = 'CONFIRMED', updated_at = ?
		WHERE id IN (SELECT id FROM registrations WHERE event_id = ? AND status = 'WAITLISTED'
			ORDER BY created_at, id LIMIT ?)`)
	p(s.w, &st.wInsertOutbox, `INSERT INTO webhook_outbox (key, message_id, receiver, type, body, occurred_at, status,
		next_attempt_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	p(s.w, &st.wPromoteReturning, `UPDATE registrations SET status = 'CONFIRMED', updated_at = ?
		WHERE id IN (SELECT id FROM registrations WHERE event_id = ? AND status = 'WAITLISTED'
			ORDER BY created_at, id LIMIT ?)
		RETURNING `+regCols)

	p(s.r, &st.rRegByID, `SELECT `+regCols+` FROM registrations WHERE id = ?`)
	// A waitlisted registration's place: one more than those of its event waiting since before it.
	p(s.r, &st.rWaitlistPositions, `SELECT r.id, 1 + (SELECT count(*) FROM registrations w
			WHERE w.event_id = r.event_id AND w.status = 'WAITLISTED' AND (w.created_at, w.id) < (r.created_at, r.id))
		FROM registrations r WHERE r.id IN (SELECT value FROM json_each(?)) AND r.status = 'WAITLISTED'`)
	p(s.r, &st.rEventRegs, `SELECT `+regCols+` FROM registrations
		WHERE event_id = ? AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?`)
	p(s.r, &st.rEventRegsOf, `SELECT `+regCols+` FROM registrations
		WHERE event_id = ? AND status = ? AND (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?`)
	p(s.w, &st.wRegByID, `SELECT `+regCols+` FROM registrations WHERE id = ?`)
	p(s.w, &st.wCancelReg, `UPDATE registrations SET status = 'CANCELLED', cancel_reason = ?, updated_at = ? WHERE id = ?`)
	p(s.w, &st.wCancelAllRegs, `UPDATE registrations SET status = 'CANCELLED', cancel_reason = ?, updated_at = ?
		WHERE event_id = ? AND status != 'CANCELLED' RETURNING `+regCols)
	return err
}

func (st *statements) close() {
	for _, x := range st.all {
		_ = x.Close()
	}
	st.all = nil
}
