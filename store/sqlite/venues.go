package sqlite

import (
	"context"
	"database/sql"

	"github.com/eventide/server/eventide"
)

type venueRow struct {
	v       *eventide.Venue
	nameKey string
}

func scanVenue(r scanner) (*eventide.Venue, error) {
	vr, err := scanVenueRow(r)
	return vr.v, err
}

func scanVenueRow(r scanner) (venueRow, error) {
	var v eventide.Venue
	var capacity sql.NullInt64
	var created int64
	var key string
	if err := r.Scan(&v.ID, &v.Name, &v.Address, &v.City, &capacity, &v.CreatedByID, &created, &key, &v.TimeZone); err != nil {
		return venueRow{}, err
	}
	if capacity.Valid {
		c := int(capacity.Int64)
		v.Capacity = &c
	}
	v.CreatedAt = fromMS(created)
	return venueRow{v: &v, nameKey: key}, nil
}

// CreateVenue implements eventide.VenueStore.
func (s *Store) CreateVenue(ctx context.Context, v *eventide.Venue) error {
	nv := *v
	nv.ID, nv.CreatedAt, nv.TimeZone = newID(), now(), eventide.ZoneOr(v.TimeZone)
	err := s.write(ctx, func(w *wtx) error {
		_, err := w.exec(s.stmts.wInsertVenue, nv.ID, nv.Name, eventide.FoldName(nv.Name), nv.Address, nv.City, eventide.FoldCity(nv.City),
			optInt(nv.Capacity), nv.CreatedByID, ms(nv.CreatedAt), nv.TimeZone)
		return err
	})
	if err != nil {
		return err
	}
	*v = nv
	return nil
}

// VenueByID implements eventide.VenueStore.
func (s *Store) VenueByID(ctx context.Context, id string) (*eventide.Venue, error) {
	if !validID(normID(id)) {
		return nil, eventide.NotFound("venue", id)
	}
	return one(s.stmts.rVenueByID.QueryRowContext(ctx, normID(id)), scanVenue, "venue", id)
}

// VenuesByIDs implements eventide.VenueStore with one query.
func (s *Store) VenuesByIDs(ctx context.Context, ids []string) ([]*eventide.Venue, error) {
	j, ok := idsJSON(ids)
	if !ok {
		return nil, nil
	}
	return queryAll(ctx, s.stmts.rVenuesByIDs, scanVenue, j)
}

// Venues implements eventide.VenueStore: by name (case-insensitive), then id.
func (s *Store) Venues(ctx context.Context, city string, page eventide.Page) (*eventide.Conn[*eventide.Venue], error) {
	n, err := pageSize(page.First)
	if err != nil {
		return nil, err
	}
	q := `SELECT ` + venueCols + ` FROM venues WHERE `
	var args []any
	if city != "" {
		q += `city_key = ? AND `
		args = append(args, eventide.FoldCity(city))
	}
	if page.After != "" {
		c, err := decodeCursor("v", page.After)
		if err != nil {
			return nil, err
		}
		q += `(name_key, id) > (?, ?) AND `
		args = append(args, c.key, c.id)
	}
	q += `1 ORDER BY name_key, id LIMIT ?`
	args = append(args, n+1)
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	vs, err := collect(rows, scanVenueRow)
	if err != nil {
		return nil, err
	}
	c := pageOf(vs, n, func(v venueRow) string { return cursor{kind: "v", key: v.nameKey, id: v.v.ID}.encode() })
	out := &eventide.Conn[*eventide.Venue]{Items: make([]*eventide.Venue, len(c.Items)), Cursors: c.Cursors, HasNextPage: c.HasNextPage}
	for i, v := range c.Items {
		out.Items[i] = v.v
	}
	return out, nil
}

// CountVenues implements eventide.VenueStore.
func (s *Store) CountVenues(ctx context.Context, city string) (int, error) {
	var n int
	var err error
	if city == "" {
		err = s.r.QueryRowContext(ctx, `SELECT count(*) FROM venues`).Scan(&n)
	} else {
		err = s.r.QueryRowContext(ctx, `SELECT count(*) FROM venues WHERE city_key = ?`, eventide.FoldCity(city)).Scan(&n)
	}
	return n, mapErr(err)
}

func optInt(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// UpdateVenue implements eventide.VenueStore: the venue and the copies of its city and zone on
// its events are one transaction. change runs inside it, holding the writer: it may read the
// store (reads use the other pool) but must not write to it.
func (s *Store) UpdateVenue(ctx context.Context, id string, change func(*eventide.Venue) error) (*eventide.Venue, error) {
	if !validID(normID(id)) {
		return nil, eventide.NotFound("venue", id)
	}
	id = normID(id)
	var out *eventide.Venue
	err := s.write(ctx, func(w *wtx) error {
		cur, err := one(w.row(s.stmts.wVenueByID, id), scanVenue, "venue", id)
		if err != nil {
			return err
		}
		v := *cur
		if err := change(&v); err != nil {
			return err
		}
		v.ID, v.TimeZone = id, eventide.ZoneOr(v.TimeZone)
		if _, err := w.exec(s.stmts.wUpdateVenue, v.Name, eventide.FoldName(v.Name), v.Address, v.City, eventide.FoldCity(v.City),
			optInt(v.Capacity), v.TimeZone, id); err != nil {
			return err
		}
		if v.City != cur.City || v.TimeZone != cur.TimeZone {
			if _, err := w.exec(s.stmts.wVenueEvents, v.City, eventide.FoldCity(v.City), v.TimeZone, id); err != nil {
				return err
			}
		}
		out = &v
		return nil
	})
	return out, err
}
