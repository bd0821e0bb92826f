// Package sqlite keeps Eventide's data in one SQLite file through modernc.org/sqlite (pure Go, no C
// compiler). It implements eventide.Store and storecache.Backing like store (MongoDB) does, with the
// same id shape (24 hex digits, an ObjectID's layout) and the same cursor encoding, so that a
// server can swap one for the other.
//
// DESIGN: one writer, many readers, one transaction per write.
//   - The file is in WAL mode: readers never block the writer nor each other.
//   - Writes go through one *sql.DB holding ONE connection, and every multi-step write (a
//     registration, a cancellation with its promotion, an edit with its promotions) is one
//     BEGIN IMMEDIATE transaction on it. The counters (events.confirmed, events.waitlisted) are
//     columns changed in the same transaction as the registrations they count, so a crash, a full
//     disk or an error between the steps rolls all of them back together: they cannot drift.
//     No in-process lock is needed: SQLite serialises writers, and busy_timeout makes a second
//     process (a backup, the sqlite3 shell) wait instead of failing.
//   - Reads go through a second *sql.DB, a bounded pool of query_only connections.
//
// Search: EventQuery.Search is a case-insensitive substring of the title or the description,
// ordered like every events page (by start, then id; not ranked). A search of three characters or
// more is one phrase against events_fts, an FTS5 table with the trigram tokenizer, which matches
// exactly the substrings (case folded by FTS5's Unicode folding, without removing diacritics, as
// the MongoDB store's case-insensitive regex). Shorter searches have no trigram to look up: they
// test instr(lower(title), lower(search)) on the rows the other conditions select, folding ASCII
// case only (SQLite's lower()). Both are literal: no pattern characters.
//
// Counts are columns, not COUNT(*) at read time: every event on a page shows attendeeCount and
// waitlistCount, and a column is free to read with the row, while an indexed COUNT is a range
// walk of up to capacity index entries per event per page (BenchmarkCountColumnVsIndexedCount).
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/telemetry"
)

// Options configures Open.
type Options struct {
	// Path is the database file; its directory is created (0o750) when missing.
	Path string
	// Readers bounds the pool of read connections (default 4).
	Readers int
	// BusyTimeout is how long a statement waits for a lock held by another connection or
	// process (default 5s).
	BusyTimeout time.Duration
	// Outbox says for which webhook receivers writes add messages to the outbox (none: no rows).
	Outbox eventide.OutboxOptions
	// Commands, when set, times every statement (eventide_store_command_seconds) and traces it
	// under a traced request.
	Commands *telemetry.Commands
}

// Store implements eventide.Store on SQLite.
type Store struct {
	w, r    *sql.DB
	readers int
	stmts   statements
	outbox  eventide.OutboxOptions

	// fault, when set (tests only), is called before every write statement inside a write
	// transaction; an error it returns fails the transaction there, as a crash or a full disk
	// between two steps would.
	fault atomic.Pointer[func() error]

	// full is set when a write failed for lack of space (SQLITE_FULL) and cleared by the next
	// write that commits; DiskFull reports it.
	full atomic.Bool
	// last is the latest thing that happened to the store (opened, disk full, space back), for
	// databaseStats.
	last atomic.Pointer[storeEvent]

	closeOnce sync.Once
	closeErr  error
}

var _ eventide.Store = (*Store)(nil)

// Open opens (creating when missing) the database at opts.Path and applies the migrations it
// lacks.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("sqlite: Options.Path is empty")
	}
	if opts.Readers <= 0 {
		opts.Readers = 4
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 5 * time.Second
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	base := "file:" + (&url.URL{Path: opts.Path}).EscapedPath()
	common := fmt.Sprintf("_busy_timeout=%d&_journal_mode=WAL&_synchronous=NORMAL&_pragma=temp_store(memory)",
		opts.BusyTimeout.Milliseconds())
	w, err := openDB(base+"?"+common+"&_txlock=immediate", opts.Commands)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, readers: opts.Readers, outbox: opts.Outbox}
	s.note("opened")
	if err := migrate(ctx, w); err != nil {
		_ = w.Close()
		return nil, err
	}
	r, err := openDB(base+"?"+common+"&_query_only=1", opts.Commands)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	r.SetMaxOpenConns(opts.Readers)
	r.SetMaxIdleConns(opts.Readers)
	r.SetConnMaxIdleTime(5 * time.Minute)
	s.r = r
	if err := s.prepare(ctx); err != nil {
		_ = s.Close(ctx)
		return nil, err
	}
	return s, nil
}

// Close closes the statements and both pools.
func (s *Store) Close(context.Context) error {
	s.closeOnce.Do(func() {
		s.stmts.close()
		var errs []error
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		errs = append(errs, s.w.Close())
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// Ping checks that the file can be read.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return mapErr(s.stmts.ping.QueryRowContext(ctx).Scan(&one))
}

// Stats reports the two pools in the shape of the MongoDB store's, for databaseStats.
func (s *Store) Stats() eventide.StoreStats {
	r, w := s.r.Stats(), s.w.Stats()
	last := s.last.Load()
	return eventide.StoreStats{
		Connected:       true,
		MaxPoolSize:     s.readers + 1,
		ConnectionsOpen: r.OpenConnections + w.OpenConnections,
		ConnectionsUsed: r.InUse + w.InUse,
		LastEvent:       last.what,
		LastEventAt:     last.at,
	}
}

type storeEvent struct {
	what string
	at   time.Time
}

func (s *Store) note(what string) { s.last.Store(&storeEvent{what: what, at: time.Now()}) }

// ---- write transactions ----

// wtx is a write transaction; its exec steps are where the fault hook can fail it.
type wtx struct {
	ctx context.Context
	tx  *sql.Tx
	s   *Store
	// outboxed is set when the transaction added webhook messages (emit).
	outboxed bool
}

func (w *wtx) step() error {
	if f := w.s.fault.Load(); f != nil {
		return (*f)()
	}
	return nil
}

// exec runs a prepared write statement inside the transaction.
func (w *wtx) exec(st *sql.Stmt, args ...any) (sql.Result, error) {
	if err := w.step(); err != nil {
		return nil, err
	}
	return w.tx.StmtContext(w.ctx, st).ExecContext(w.ctx, args...)
}

// query runs a prepared write statement that returns rows (RETURNING) and scans them.
func (w *wtx) query(st *sql.Stmt, args ...any) ([]*eventide.Registration, error) {
	if err := w.step(); err != nil {
		return nil, err
	}
	rows, err := w.tx.StmtContext(w.ctx, st).QueryContext(w.ctx, args...)
	if err != nil {
		return nil, err
	}
	return collect(rows, scanReg)
}

func (w *wtx) row(st *sql.Stmt, args ...any) *sql.Row {
	return w.tx.StmtContext(w.ctx, st).QueryRowContext(w.ctx, args...)
}

// write runs fn in one BEGIN IMMEDIATE transaction on the writer and commits when it returns
// nil; anything else rolls every step back.
func (s *Store) write(ctx context.Context, fn func(*wtx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.noteFull(err)
	}
	w := &wtx{ctx: ctx, tx: tx, s: s}
	if err := fn(w); err != nil {
		_ = tx.Rollback()
		return s.noteFull(err)
	}
	if err := tx.Commit(); err != nil {
		return s.noteFull(err)
	}
	if w.outboxed && s.outbox.Notify != nil {
		s.outbox.Notify()
	}
	if s.full.Swap(false) {
		s.note("disk space back: a write committed")
	}
	return nil
}

// noteFull maps err and remembers whether it was a full disk.
func (s *Store) noteFull(err error) error {
	if isFull(err) && !s.full.Swap(true) {
		s.note("disk full: a write failed for lack of space")
	}
	return mapErr(err)
}

func isFull(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_FULL
}

// ErrDiskFull is what DiskFull returns while writes do not fit.
var ErrDiskFull = errors.New("disk full: the last write failed for lack of space")

// DiskFull returns ErrDiskFull while the disk is full, for the readiness probe. It is learnt from
// the writes themselves (a write that failed with SQLITE_FULL sets it, one that commits clears
// it); while it is set, each call rewrites one row to learn whether space came back, so that a
// replica taken out of rotation because of it (and so sent no writes) sees it clear.
func (s *Store) DiskFull(ctx context.Context) error {
	if !s.full.Load() {
		return nil
	}
	_ = s.write(ctx, func(w *wtx) error {
		if err := w.step(); err != nil {
			return err
		}
		_, err := w.tx.ExecContext(ctx, `INSERT INTO write_probe (id, at) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET at = excluded.at`, ms(now()))
		return err
	})
	if s.full.Load() {
		return ErrDiskFull
	}
	return nil
}

// ---- errors ----

// errFull is what a full disk becomes: the request may succeed once space is freed.
var errFull = eventide.Errorf(eventide.CodeUnavailable, "the store is full; try again later")

// mapErr turns a driver error into a domain error; nil stays nil, *eventide.Error passes.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var e *eventide.Error
	if errors.As(err, &e) {
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			return &eventide.Error{Code: eventide.CodeBadUserInput, Message: "already exists", Err: err}
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR:
			return &eventide.Error{Code: eventide.CodeUnavailable, Message: errFull.Message, Err: err}
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return &eventide.Error{Code: eventide.CodeUnavailable, Message: "the store is busy; try again shortly", Err: err}
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, sql.ErrConnDone):
		return &eventide.Error{Code: eventide.CodeUnavailable, Message: "the store is unavailable; try again shortly", Err: err}
	case errors.Is(err, context.Canceled):
		return &eventide.Error{Code: eventide.CodeUnavailable, Message: "request cancelled", Err: err}
	}
	return eventide.Internal(err)
}

// ---- ids, times, cursors ----

var (
	idProcess [5]byte
	idCounter atomic.Uint32
)

func init() {
	var b [4]byte
	_, _ = rand.Read(idProcess[:])
	_, _ = rand.Read(b[:])
	idCounter.Store(binary.BigEndian.Uint32(b[:]))
}

// newID returns a 24-hex-digit id laid out like a MongoDB ObjectID (seconds, a per-process random
// value, a counter), so ids look alike on both stores and sort roughly by creation.
func newID() string {
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:4], uint32(time.Now().Unix()))
	copy(b[4:9], idProcess[:])
	c := idCounter.Add(1)
	b[9], b[10], b[11] = byte(c>>16), byte(c>>8), byte(c)
	return hex.EncodeToString(b[:])
}

// validID reports whether id has the shape of our ids (24 lower-case hex digits).
func validID(id string) bool {
	if len(id) != 24 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// normID lower-cases an id so that the MongoDB store's case-insensitive hex parsing is matched.
func normID(id string) string { return strings.ToLower(id) }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// now is the store's clock at millisecond precision, so what a write returns equals what a later
// read returns.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// pageSize clamps first to 0..MaxPageSize; a negative value is BAD_USER_INPUT.
func pageSize(first int) (int, error) {
	if first < 0 {
		return 0, eventide.InvalidField("first", "must not be negative")
	}
	return min(first, eventide.MaxPageSize), nil
}
