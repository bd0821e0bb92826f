package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/eventide/server/eventide"
)

func scanEvent(r scanner) (*eventide.Event, error) {
	var e eventide.Event
	var starts, ends, created, updated int64
	var status, tags string
	if err := r.Scan(&e.ID, &e.Title, &e.Description, &starts, &ends, &status, &e.Capacity, &tags,
		&e.VenueID, &e.City, &e.OrganizerID, &e.ConfirmedCount, &e.WaitlistCount, &e.CancelReason, &created, &updated,
		&e.TimeZone, &e.Online, &e.OnlineURL, &e.Revision); err != nil {
		return nil, err
	}
	e.StartsAt, e.EndsAt, e.CreatedAt, e.UpdatedAt = fromMS(starts), fromMS(ends), fromMS(created), fromMS(updated)
	e.Status = eventide.EventStatus(status)
	if err := json.Unmarshal([]byte(tags), &e.Tags); err != nil || e.Tags == nil {
		e.Tags = []string{}
	}
	return &e, nil
}

func tagsJSON(tags []string) string {
	if tags == nil {
		tags = []string{}
	}
	b, _ := json.Marshal(tags)
	return string(b)
}

// checkRefs validates the ids an event refers to as the MongoDB store does.
func checkRefs(e *eventide.Event) error {
	if !validID(normID(e.OrganizerID)) {
		return eventide.InvalidField("organizerId", "not a valid id")
	}
	if e.VenueID != "" && !validID(normID(e.VenueID)) {
		return eventide.InvalidField("venueId", "not a valid id")
	}
	return nil
}

// writeTags replaces the event's rows in event_tags.
func (s *Store) writeTags(w *wtx, e *eventide.Event) error {
	if _, err := w.exec(s.stmts.wDeleteTags, e.ID); err != nil {
		return err
	}
	for _, t := range e.Tags {
		if _, err := w.exec(s.stmts.wInsertTag, t, string(e.Status), ms(e.StartsAt), e.ID, ms(e.EndsAt)); err != nil {
			return err
		}
	}
	return nil
}

// CreateEvent implements eventide.EventStore. It sets ID, CreatedAt and UpdatedAt.
func (s *Store) CreateEvent(ctx context.Context, e *eventide.Event) error {
	if err := checkRefs(e); err != nil {
		return err
	}
	t := now()
	ne := *e
	ne.ID, ne.CreatedAt, ne.UpdatedAt, ne.TimeZone, ne.Revision = newID(), t, t, eventide.ZoneOr(ne.TimeZone), 0
	ne.OrganizerID, ne.VenueID = normID(ne.OrganizerID), normID(ne.VenueID)
	ne.StartsAt, ne.EndsAt = fromMS(ms(e.StartsAt)), fromMS(ms(e.EndsAt))
	if ne.Tags == nil {
		ne.Tags = []string{}
	}
	err := s.write(ctx, func(w *wtx) error {
		if _, err := w.exec(s.stmts.wInsertEvent, ne.ID, ne.Title, ne.Description, ms(ne.StartsAt), ms(ne.EndsAt),
			string(ne.Status), ne.Capacity, tagsJSON(ne.Tags), ne.VenueID, ne.City, eventide.FoldCity(ne.City), ne.OrganizerID,
			ne.ConfirmedCount, ne.WaitlistCount, ne.CancelReason, ms(t), ms(t), ne.TimeZone, ne.Online, ne.OnlineURL); err != nil {
			return err
		}
		return s.writeTags(w, &ne)
	})
	if err != nil {
		return err
	}
	*e = ne
	return nil
}

// EventByID implements eventide.EventStore.
func (s *Store) EventByID(ctx context.Context, id string) (*eventide.Event, error) {
	if !validID(normID(id)) {
		return nil, eventide.NotFound("event", id)
	}
	return one(s.stmts.rEventByID.QueryRowContext(ctx, normID(id)), scanEvent, "event", id)
}

// EventsByIDs implements eventide.EventStore with one query.
func (s *Store) EventsByIDs(ctx context.Context, ids []string) ([]*eventide.Event, error) {
	j, ok := idsJSON(ids)
	if !ok {
		return nil, nil
	}
	return queryAll(ctx, s.stmts.rEventsByIDs, scanEvent, j)
}

// UpdateEvent implements eventide.EventStore: the edit and the promotions a raised capacity
// allows are one transaction. change runs inside it, holding the writer: it may read the store
// (reads use the other pool) but must not write to it.
func (s *Store) UpdateEvent(ctx context.Context, id string, change func(*eventide.Event) error) (*eventide.Event, error) {
	if !validID(normID(id)) {
		return nil, eventide.NotFound("event", id)
	}
	id = normID(id)
	var out *eventide.Event
	var changed []*eventide.Registration
	err := s.write(ctx, func(w *wtx) error {
		changed = nil
		cur, err := one(w.row(s.stmts.wEventByID, id), scanEvent, "event", id)
		if err != nil {
			return err
		}
		e := *cur
		e.Tags = slices.Clone(cur.Tags)
		if err := change(&e); err != nil {
			return err
		}
		if e.Capacity < cur.ConfirmedCount {
			return eventide.InvalidField("capacity", "%d registrations are confirmed; capacity cannot be lower", cur.ConfirmedCount)
		}
		if err := checkRefs(&e); err != nil {
			return err
		}
		t := now()
		e.ID, e.VenueID, e.TimeZone = id, normID(e.VenueID), eventide.ZoneOr(e.TimeZone)
		e.StartsAt, e.EndsAt = fromMS(ms(e.StartsAt)), fromMS(ms(e.EndsAt))
		if _, err := w.exec(s.stmts.wUpdateEvent, e.Title, e.Description, ms(e.StartsAt), ms(e.EndsAt), string(e.Status),
			e.Capacity, tagsJSON(e.Tags), e.VenueID, e.City, eventide.FoldCity(e.City), e.CancelReason, ms(t),
			e.TimeZone, e.Online, e.OnlineURL, id); err != nil {
			return err
		}
		if err := s.writeTags(w, &e); err != nil {
			return err
		}
		var msgs []eventide.WebhookMessage
		// Cancelling the event cancels its registrations with it, and the counters with them.
		if e.Status == eventide.EventCancelled && cur.Status != eventide.EventCancelled {
			if changed, err = w.query(s.stmts.wCancelAllRegs, e.CancelReason, ms(t), id); err != nil {
				return err
			}
			if _, err := w.exec(s.stmts.wAddCounts, -cur.ConfirmedCount, -cur.WaitlistCount, ms(t), id); err != nil {
				return err
			}
			// Each registration the cascade cancels is reported like one cancelled on its own,
			// in this same transaction (after the event.cancelled message).
			if s.emitting() {
				for _, r := range changed {
					msgs = append(msgs, regMessage(eventide.WebhookRegistrationCancelled, r))
				}
			}
		} else if free := min(e.Capacity-cur.ConfirmedCount, cur.WaitlistCount); free > 0 {
			// Seats freed by a raised capacity go to the waitlist, oldest first.
			if changed, err = w.query(s.stmts.wPromoteReturning, ms(t), id, free); err != nil {
				return err
			}
			n := len(changed)
			if _, err := w.exec(s.stmts.wAddCounts, n, -n, ms(t), id); err != nil {
				return err
			}
			if s.emitting() {
				for _, r := range changed {
					msgs = append(msgs, regMessage(eventide.WebhookRegistrationPromoted, r))
				}
			}
		}
		out, err = one(w.row(s.stmts.wEventByID, id), scanEvent, "event", id)
		if err != nil {
			return err
		}
		if typ := eventide.EventChangeType(cur.Status, out.Status); typ != "" && s.emitting() {
			msgs = append([]eventide.WebhookMessage{eventide.EventMessage(newID(), typ, t, out)}, msgs...)
		}
		return s.emit(w, msgs...)
	})
	if err == nil {
		eventide.NoteRegistrations(ctx, changed...)
	}
	return out, err
}

// eventSQL is an EventQuery in SQL: the FROM clause, the conditions and their arguments, and the
// sort columns (the tag table's copy when a tag drives the query, so its index gives the order).
type eventSQL struct {
	from   string
	where  []string
	args   []any
	sortAt string
	sortID string
	none   bool // nothing can match
	// endsAt is the position of the "not ended" condition in where, or -1.
	endsAt int
	// fts is the position of the full-text condition in where, or -1; ftsArg the position of
	// its phrase in args.
	fts, ftsArg int
	phrase      string
	// tag is set when event_tags drives the query.
	tag bool
	// selective is set when an equality filter (city, tag, organizer, venue) has an index of
	// its own in page order.
	selective bool
}

func (q *eventSQL) and(cond string, args ...any) {
	q.where = append(q.where, cond)
	q.args = append(q.args, args...)
}

func (q *eventSQL) whereClause() string {
	if len(q.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.where, " AND ")
}

// minTrigram is the shortest search FTS5's trigram tokenizer can look up.
const minTrigram = 3

// buildEvents translates q as the MongoDB store's eventFilter does.
func buildEvents(q eventide.EventQuery) *eventSQL {
	b := &eventSQL{from: "events e", sortAt: "e.starts_at", sortID: "e.id", endsAt: -1, fts: -1}
	statuses := q.Statuses
	if q.NoDrafts {
		statuses = slices.DeleteFunc(slices.Clone(statuses), func(s eventide.EventStatus) bool { return s == eventide.EventDraft })
		if len(q.Statuses) > 0 && len(statuses) == 0 {
			b.none = true
			return b
		}
		if len(statuses) == 0 {
			statuses = []eventide.EventStatus{eventide.EventPublished, eventide.EventCancelled}
		}
	}
	if len(statuses) > 0 {
		var plain []any
		hasDraft := false
		for _, st := range statuses {
			if st == eventide.EventDraft && q.DraftsOf != "" {
				hasDraft = true
				continue
			}
			plain = append(plain, string(st))
		}
		in := "e.status IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(plain)), ", ") + ")"
		switch {
		case hasDraft && len(plain) > 0:
			b.and("((e.status = 'DRAFT' AND e.organizer_id = ?) OR "+in+")", append([]any{normID(q.DraftsOf)}, plain...)...)
		case hasDraft:
			// +: the organizer's index, not every draft's.
			b.and("+e.status = 'DRAFT' AND e.organizer_id = ?", normID(q.DraftsOf))
		case len(plain) == 1:
			b.and("e.status = ?", plain[0])
		default:
			b.and(in, plain...)
		}
	}
	if q.StartsFrom != nil {
		b.and(b.sortAt+" >= ?", ms(*q.StartsFrom))
	}
	if q.StartsTo != nil {
		b.and(b.sortAt+" < ?", ms(*q.StartsTo))
	}
	if q.EndsAfter != nil {
		// The unary + keeps the planner off events_status_end for pages: walking an index in
		// (starts_at, id) order and stopping after n+1 rows beats collecting every event that
		// has not ended and sorting them (TestQueryPlans). countSQL lifts it where that range
		// is the best index.
		b.endsAt = len(b.where)
		b.and("+e.ends_at > ?", ms(*q.EndsAfter))
	}
	if q.City != "" {
		b.selective = true
		b.and("e.city_key = ?", eventide.FoldCity(q.City))
	}
	if q.Tag != "" {
		// The tag's rows carry copies of the status and times: a single status, the times
		// and the tag are conditions on event_tags alone, whose key gives the page order.
		// CROSS JOIN fixes the join order: the tag's rows first, then each event by id.
		b.selective = true
		b.tag = true
		b.from = "event_tags t CROSS JOIN events e ON e.id = t.event_id"
		b.sortAt, b.sortID = "t.starts_at", "t.event_id"
		for i, w := range b.where {
			switch w {
			case "e.status = ?":
				b.where[i] = "t.status = ?"
			case "e.starts_at >= ?", "e.starts_at < ?":
				b.where[i] = strings.Replace(w, "e.", "t.", 1)
			case "+e.ends_at > ?":
				b.where[i] = "+t.ends_at > ?"
			}
		}
		b.and("t.tag = ?", q.Tag)
	}
	if q.OrganizerID != "" {
		if !validID(normID(q.OrganizerID)) {
			b.none = true
			return b
		}
		b.selective = true
		b.and("e.organizer_id = ?", normID(q.OrganizerID))
	}
	if q.VenueID != "" {
		if !validID(normID(q.VenueID)) {
			b.none = true
			return b
		}
		b.selective = true
		b.and("e.venue_id = ?", normID(q.VenueID))
	}
	if q.Search != "" {
		if utf8.RuneCountInString(q.Search) >= minTrigram {
			// One FTS5 phrase: every trigram of the search in order, i.e. a substring.
			phrase := `"` + strings.ReplaceAll(q.Search, `"`, `""`) + `"`
			b.fts, b.ftsArg, b.phrase = len(b.where), len(b.args), phrase
			b.and("e.rowid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)", phrase)
		} else {
			// Too short for a trigram: a literal substring test on the rows the other
			// conditions selected (ASCII case folding, as SQLite's lower()).
			b.and("(instr(lower(e.title), lower(?)) > 0 OR instr(lower(e.description), lower(?)) > 0)", q.Search, q.Search)
		}
	}
	return b
}

// Events implements eventide.EventStore: by startsAt, then id, with keyset cursors.
func (s *Store) Events(ctx context.Context, q eventide.EventQuery, page eventide.Page) (*eventide.Conn[*eventide.Event], error) {
	n, err := pageSize(page.First)
	if err != nil {
		return nil, err
	}
	var after *cursor
	if page.After != "" {
		c, err := decodeCursor("e", page.After)
		if err != nil {
			return nil, err
		}
		after = &c
	}
	b := buildEvents(q)
	if b.none {
		return pageOf([]*eventide.Event(nil), n, nil), nil
	}
	if b.fts >= 0 && !b.tag {
		// A search that matches few events is answered from its matches: walking the events in
		// page order would read every one that has not ended to find them.
		if ids, ok, err := s.fewMatches(ctx, b.phrase); err != nil {
			return nil, err
		} else if ok {
			b.fromMatches(ids)
		}
	}
	sqlText, args := b.pageSQL(after, n)
	rows, err := s.r.QueryContext(ctx, sqlText, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	evs, err := collect(rows, scanEvent)
	if err != nil {
		return nil, err
	}
	return pageOf(evs, n, func(e *eventide.Event) string { return timeCursor("e", ms(e.StartsAt), e.ID) }), nil
}

// fromMatches makes the matches (a JSON array of rowids) drive the query in place of the
// full-text condition.
func (b *eventSQL) fromMatches(ids string) {
	b.from = "json_each(?) m CROSS JOIN events e ON e.rowid = m.value"
	b.where = slices.Delete(slices.Clone(b.where), b.fts, b.fts+1)
	b.args = append([]any{ids}, slices.Delete(slices.Clone(b.args), b.ftsArg, b.ftsArg+1)...)
	b.fts = -1
}

// fewMatchesLimit is the most full-text matches a page is built from directly (sorting them); a
// search with more walks events_status_start, where its matches are at least this dense.
var fewMatchesLimit = 500 // a variable for TestContractSearchWalk

// fewMatches returns the rowids (a JSON array) of the events whose title or description contains
// phrase, and true, when there are fewer than fewMatchesLimit of them.
func (s *Store) fewMatches(ctx context.Context, phrase string) (string, bool, error) {
	rows, err := s.stmts.rFTSMatches.QueryContext(ctx, phrase, fewMatchesLimit)
	if err != nil {
		return "", false, mapErr(err)
	}
	ids, err := collect(rows, func(r scanner) (int64, error) {
		var id int64
		return id, r.Scan(&id)
	})
	if err != nil || len(ids) >= fewMatchesLimit {
		return "", false, err
	}
	b, _ := json.Marshal(ids)
	if ids == nil {
		b = []byte("[]")
	}
	return string(b), true, nil
}

// pageSQL is the page query: the conditions, the keyset position, the order and n+1 rows.
func (b *eventSQL) pageSQL(after *cursor, n int) (string, []any) {
	where := slices.Clone(b.where)
	args := slices.Clone(b.args)
	if after != nil {
		where = append(where, "("+b.sortAt+", "+b.sortID+") > (?, ?)")
		args = append(args, after.ms(), after.id)
	}
	w := ""
	if len(where) > 0 {
		w = " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, n+1)
	return `SELECT ` + eventCols + ` FROM ` + b.from + w + ` ORDER BY ` + b.sortAt + `, ` + b.sortID + ` LIMIT ?`, args
}

// countSQL is the count query.
func (b *eventSQL) countSQL() (string, []any) {
	where := b.where
	if b.endsAt >= 0 && !b.selective {
		// Counting every event of a status that has not ended: a covering range of
		// events_status_end.
		where = slices.Clone(where)
		where[b.endsAt] = strings.TrimPrefix(where[b.endsAt], "+")
	}
	from := b.from
	if b.fts >= 0 && !b.tag {
		// Count the matches from the full-text index, each joined to its event by rowid: the
		// cost follows the matches, not the events that have not ended (33 ms -> 1.3 ms for a
		// rare string at 100 000 events). Pages keep walking events_status_start, which stops
		// after n+1 matches.
		where = slices.Clone(where)
		where[b.fts] = "events_fts MATCH ?"
		from = "events_fts CROSS JOIN events e ON e.rowid = events_fts.rowid"
	}
	w := ""
	if len(where) > 0 {
		w = " WHERE " + strings.Join(where, " AND ")
	}
	if b.tag && !strings.Contains(w, "e.") {
		// Every condition is on the tag's rows: count them without reading the events.
		from = "event_tags t"
	}
	return `SELECT count(*) FROM ` + from + w, b.args
}

// nextEndSQL is the earliest end among the events the count reads: the same rows, min(ends_at).
// For events of a status that have not ended SQLite reads the first entry of the
// events_status_end range after EndsAfter and stops. Under a selective condition (a city, a tag, a
// venue, an organizer) a lone min() would have the planner walk events_status_end in ends_at
// order from the first event that ever ended; counting alongside keeps the count's plan, which
// reads the condition's own rows (TestQueryPlans).
func (b *eventSQL) nextEndSQL() (string, []any) {
	sqlText, args := b.countSQL()
	col := "e.ends_at"
	if b.tag {
		col = "t.ends_at"
	}
	sel := "SELECT min(" + col + ")"
	if b.selective || b.fts >= 0 || b.endsAt < 0 {
		sel += ", count(*)"
	} else {
		sel += ", 0"
	}
	return sel + strings.TrimPrefix(sqlText, "SELECT count(*)"), args
}

// NextEventEnd implements eventide.EventStore.
func (s *Store) NextEventEnd(ctx context.Context, q eventide.EventQuery) (time.Time, error) {
	b := buildEvents(q)
	if b.none {
		return time.Time{}, nil
	}
	sqlText, args := b.nextEndSQL()
	var v sql.NullInt64
	var n int
	if err := s.r.QueryRowContext(ctx, sqlText, args...).Scan(&v, &n); err != nil {
		return time.Time{}, mapErr(err)
	}
	if !v.Valid {
		return time.Time{}, nil
	}
	return fromMS(v.Int64), nil
}

// CountEvents implements eventide.EventStore.
func (s *Store) CountEvents(ctx context.Context, q eventide.EventQuery) (int, error) {
	b := buildEvents(q)
	if b.none {
		return 0, nil
	}
	sqlText, args := b.countSQL()
	var n int
	return n, mapErr(s.r.QueryRowContext(ctx, sqlText, args...).Scan(&n))
}
