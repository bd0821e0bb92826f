package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/eventide/server/eventide"
)

// ImportCounts is what Import wrote. Recounted is how many events arrived with counters that
// disagreed with their registrations (corrected); Promoted how many waitlisted registrations
// were confirmed because a seat was free beside them.
type ImportCounts struct {
	Users, Venues, Events, Registrations int
	Recounted, Promoted                  int
}

// Importer writes the records of another store, ids, times and password hashes kept, inside
// Import's transaction. Its methods are not safe for concurrent use.
type Importer struct {
	w *wtx
	s *Store
	n ImportCounts
}

// ErrNotEmpty is returned by Import when the database already holds users, venues or events.
var ErrNotEmpty = errors.New("sqlite: import: the database is not empty")

// Empty reports whether the database holds no user, venue, event or registration.
func (s *Store) Empty(ctx context.Context) (bool, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM (SELECT 1 FROM users LIMIT 1))
		+ (SELECT count(*) FROM (SELECT 1 FROM venues LIMIT 1))
		+ (SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1))
		+ (SELECT count(*) FROM (SELECT 1 FROM registrations LIMIT 1))`).Scan(&n)
	return n == 0, mapErr(err)
}

// Imported returns the source of the import this database was filled by ("" when none).
func (s *Store) Imported(ctx context.Context) (string, error) {
	var src string
	err := s.r.QueryRowContext(ctx, `SELECT coalesce(max(source), '') FROM imports`).Scan(&src)
	return src, mapErr(err)
}

// Import fills an empty database in ONE transaction: fill hands every record to the Importer;
// then each event's counters are recomputed from its registrations (so counts that had drifted
// in the old store arrive exact), the oldest waitlisted registrations of an event that is not
// cancelled are confirmed into its free seats, and the import is recorded with source (see
// Imported). Any error, from fill or from a write, rolls everything back: the database stays
// empty. It returns ErrNotEmpty when the database holds data.
func (s *Store) Import(ctx context.Context, source string, fill func(*Importer) error) (ImportCounts, error) {
	var n ImportCounts
	err := s.write(ctx, func(w *wtx) error {
		var have int
		if err := w.tx.QueryRowContext(ctx, `SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM venues)
			+ (SELECT count(*) FROM events) + (SELECT count(*) FROM registrations)`).Scan(&have); err != nil {
			return err
		}
		if have > 0 {
			return ErrNotEmpty
		}
		im := &Importer{w: w, s: s}
		if err := fill(im); err != nil {
			return err
		}
		n = im.n
		if err := w.step(); err != nil {
			return err
		}
		if err := w.tx.QueryRowContext(ctx, `SELECT count(*) FROM events e WHERE
			confirmed != (SELECT count(*) FROM registrations r WHERE r.event_id = e.id AND r.status = 'CONFIRMED')
			OR waitlisted != (SELECT count(*) FROM registrations r WHERE r.event_id = e.id AND r.status = 'WAITLISTED')`).
			Scan(&n.Recounted); err != nil {
			return err
		}
		if err := recount(w); err != nil {
			return err
		}
		promoted, err := fillFreeSeats(w, s)
		if err != nil {
			return err
		}
		n.Promoted = promoted
		if promoted > 0 {
			if err := recount(w); err != nil {
				return err
			}
		}
		_, err = w.tx.ExecContext(ctx, `INSERT INTO imports (source, imported_at, users, venues, events, registrations)
			VALUES (?, ?, ?, ?, ?, ?)`, source, ms(now()), n.Users, n.Venues, n.Events, n.Registrations)
		return err
	})
	if errors.Is(err, ErrNotEmpty) {
		return ImportCounts{}, ErrNotEmpty
	}
	if err != nil {
		return ImportCounts{}, err
	}
	return n, nil
}

// recount sets every event's counters from its registrations.
func recount(w *wtx) error {
	if err := w.step(); err != nil {
		return err
	}
	_, err := w.tx.ExecContext(w.ctx, `UPDATE events SET
		confirmed = (SELECT count(*) FROM registrations r WHERE r.event_id = events.id AND r.status = 'CONFIRMED'),
		waitlisted = (SELECT count(*) FROM registrations r WHERE r.event_id = events.id AND r.status = 'WAITLISTED')`)
	return err
}

// fillFreeSeats confirms, in waitlist order, as many waitlisted registrations as each event that
// is not cancelled has free seats; it returns how many it confirmed.
func fillFreeSeats(w *wtx, s *Store) (int, error) {
	rows, err := w.tx.QueryContext(w.ctx, `SELECT id, capacity - confirmed FROM events
		WHERE status != 'CANCELLED' AND waitlisted > 0 AND confirmed < capacity`)
	if err != nil {
		return 0, err
	}
	type gap struct {
		id   string
		free int
	}
	var gaps []gap
	for rows.Next() {
		var g gap
		if err := rows.Scan(&g.id, &g.free); err != nil {
			_ = rows.Close()
			return 0, err
		}
		gaps = append(gaps, g)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return 0, err
	}
	promoted := 0
	for _, g := range gaps {
		res, err := w.exec(s.stmts.wPromoteOldest, ms(now()), g.id, g.free)
		if err != nil {
			return 0, err
		}
		n, _ := res.RowsAffected()
		promoted += int(n)
	}
	return promoted, nil
}

func importID(kind, id string) (string, error) {
	if n := normID(id); validID(n) {
		return n, nil
	}
	return "", fmt.Errorf("sqlite: import: %s id %q is not 24 hex digits", kind, id)
}

// User writes u as it is (id, email, role, password hash, times).
func (im *Importer) User(u *eventide.User) error {
	id, err := importID("user", u.ID)
	if err != nil {
		return err
	}
	if _, err := im.w.exec(im.s.stmts.wInsertUser, id, u.Name, eventide.NormalizeEmail(u.Email), string(u.Role),
		u.PasswordHash, ms(u.CreatedAt), ms(u.UpdatedAt)); err != nil {
		return fmt.Errorf("user %s: %w", id, err)
	}
	im.n.Users++
	return nil
}

// Venue writes v as it is.
func (im *Importer) Venue(v *eventide.Venue) error {
	id, err := importID("venue", v.ID)
	if err != nil {
		return err
	}
	var capacity any
	if v.Capacity != nil {
		capacity = *v.Capacity
	}
	if _, err := im.w.exec(im.s.stmts.wInsertVenue, id, v.Name, eventide.FoldName(v.Name), v.Address, v.City, eventide.FoldCity(v.City),
		capacity, normID(v.CreatedByID), ms(v.CreatedAt), importZone(v.TimeZone, v.City)); err != nil {
		return fmt.Errorf("venue %s: %w", id, err)
	}
	im.n.Venues++
	return nil
}

// Event writes e as it is; its counters are recomputed when Import's fill returns.
func (im *Importer) Event(e *eventide.Event) error {
	id, err := importID("event", e.ID)
	if err != nil {
		return err
	}
	ne := *e
	ne.ID, ne.OrganizerID, ne.VenueID = id, normID(e.OrganizerID), normID(e.VenueID)
	if err := checkRefs(&ne); err != nil {
		return fmt.Errorf("event %s: %w", id, err)
	}
	if ne.Tags == nil {
		ne.Tags = []string{}
	}
	if _, err := im.w.exec(im.s.stmts.wInsertEvent, ne.ID, ne.Title, ne.Description, ms(ne.StartsAt), ms(ne.EndsAt),
		string(ne.Status), ne.Capacity, tagsJSON(ne.Tags), ne.VenueID, ne.City, eventide.FoldCity(ne.City), ne.OrganizerID,
		max(ne.ConfirmedCount, 0), max(ne.WaitlistCount, 0), ne.CancelReason, ms(ne.CreatedAt), ms(ne.UpdatedAt),
		importZone(ne.TimeZone, ne.City), ne.Online, ne.OnlineURL); err != nil {
		return fmt.Errorf("event %s: %w", id, err)
	}
	if err := im.s.writeTags(im.w, &ne); err != nil {
		return fmt.Errorf("event %s: %w", id, err)
	}
	im.n.Events++
	return nil
}

// Registration writes r as it is, whatever its status; its creation time keeps its place in the
// waitlist.
func (im *Importer) Registration(r *eventide.Registration) error {
	id, err := importID("registration", r.ID)
	if err != nil {
		return err
	}
	if !r.Status.Valid() {
		return fmt.Errorf("sqlite: import: registration %s has status %q", id, r.Status)
	}
	if _, err := im.w.exec(im.s.stmts.wInsertReg, id, normID(r.EventID), normID(r.UserID), string(r.Status),
		ms(r.CreatedAt), ms(r.UpdatedAt)); err != nil {
		return fmt.Errorf("registration %s: %w", id, err)
	}
	im.n.Registrations++
	return nil
}

// importZone is the zone of an imported venue or event: its own, else its city's (an earlier
// version stored none).
func importZone(zone, city string) string {
	if zone != "" {
		return zone
	}
	return eventide.CityTimeZone(city)
}
