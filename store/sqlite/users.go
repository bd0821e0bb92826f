package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"

	"github.com/eventide/server/eventide"
)

type scanner interface{ Scan(...any) error }

func scanUser(r scanner) (*eventide.User, error) {
	var u eventide.User
	var role string
	var created, updated int64
	if err := r.Scan(&u.ID, &u.Name, &u.Email, &role, &u.PasswordHash, &created, &updated); err != nil {
		return nil, err
	}
	u.Role, u.CreatedAt, u.UpdatedAt = eventide.Role(role), fromMS(created), fromMS(updated)
	return &u, nil
}

// idsJSON encodes the well-formed ids of a batch as the JSON array json_each reads; malformed
// ones cannot match anything.
func idsJSON(ids []string) (string, bool) {
	keep := make([]string, 0, len(ids))
	for _, id := range ids {
		if id = normID(id); validID(id) {
			keep = append(keep, id)
		}
	}
	if len(keep) == 0 {
		return "", false
	}
	b, _ := json.Marshal(keep)
	return string(b), true
}

// queryAll runs a prepared query and scans every row with scan.
func queryAll[T any](ctx context.Context, st *sql.Stmt, scan func(scanner) (T, error), args ...any) ([]T, error) {
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	return collect(rows, scan)
}

func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, mapErr(err)
		}
		out = append(out, v)
	}
	return out, mapErr(rows.Err())
}

// one scans a single row, mapping "no row" to NOT_FOUND for kind/id.
func one[T any](row *sql.Row, scan func(scanner) (T, error), kind, id string) (T, error) {
	v, err := scan(row)
	if errors.Is(err, sql.ErrNoRows) {
		var zero T
		return zero, eventide.NotFound(kind, id)
	}
	return v, mapErr(err)
}

// CreateUser implements eventide.UserStore.
func (s *Store) CreateUser(ctx context.Context, u *eventide.User) error {
	t := now()
	nu := eventide.User{ID: newID(), Name: u.Name, Email: eventide.NormalizeEmail(u.Email), Role: u.Role,
		PasswordHash: u.PasswordHash, CreatedAt: t, UpdatedAt: t}
	err := s.write(ctx, func(w *wtx) error {
		_, err := w.exec(s.stmts.wInsertUser, nu.ID, nu.Name, nu.Email, string(nu.Role), nu.PasswordHash, ms(t), ms(t))
		return err
	})
	if eventide.IsCode(err, eventide.CodeBadUserInput) {
		return eventide.InvalidField("email", "an account with this email already exists")
	}
	if err != nil {
		return err
	}
	*u = nu
	return nil
}

// UserByID implements eventide.UserStore.
func (s *Store) UserByID(ctx context.Context, id string) (*eventide.User, error) {
	if !validID(normID(id)) {
		return nil, eventide.NotFound("user", id)
	}
	return one(s.stmts.rUserByID.QueryRowContext(ctx, normID(id)), scanUser, "user", id)
}

// UserByEmail implements eventide.UserStore.
func (s *Store) UserByEmail(ctx context.Context, email string) (*eventide.User, error) {
	e := eventide.NormalizeEmail(email)
	return one(s.stmts.rUserByEmail.QueryRowContext(ctx, e), scanUser, "user", e)
}

// UsersByIDs implements eventide.UserStore with one query.
func (s *Store) UsersByIDs(ctx context.Context, ids []string) ([]*eventide.User, error) {
	j, ok := idsJSON(ids)
	if !ok {
		return nil, nil
	}
	return queryAll(ctx, s.stmts.rUsersByIDs, scanUser, j)
}

// SetUserRole implements eventide.UserStore.
func (s *Store) SetUserRole(ctx context.Context, id string, role eventide.Role) (*eventide.User, error) {
	if !validID(normID(id)) {
		return nil, eventide.NotFound("user", id)
	}
	var u *eventide.User
	err := s.write(ctx, func(w *wtx) error {
		res, err := w.exec(s.stmts.wSetRole, string(role), ms(now()), normID(id))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return eventide.NotFound("user", id)
		}
		u, err = one(w.row(s.stmts.wUserByID, normID(id)), scanUser, "user", id)
		return err
	})
	return u, err
}

// SetUserCredentials implements eventide.UserStore.
func (s *Store) SetUserCredentials(ctx context.Context, id string, hash []byte, role eventide.Role) error {
	if !validID(normID(id)) {
		return eventide.NotFound("user", id)
	}
	return s.write(ctx, func(w *wtx) error {
		res, err := w.exec(s.stmts.wSetCreds, hash, string(role), ms(now()), normID(id))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return eventide.NotFound("user", id)
		}
		return nil
	})
}

// CountUsers implements eventide.UserStore.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	return n, mapErr(s.stmts.rCountUsers.QueryRowContext(ctx).Scan(&n))
}

// userWhere translates a UserQuery. Search folds ASCII case (SQLite's lower()) and is matched
// literally: instr, not LIKE, so % and _ are plain characters.
func userWhere(q eventide.UserQuery) (string, []any) {
	var where []string
	var args []any
	if q.Role != "" {
		where = append(where, "role = ?")
		args = append(args, string(q.Role))
	}
	if q.Search != "" {
		where = append(where, "(instr(lower(name), lower(?)) > 0 OR instr(lower(email), lower(?)) > 0)")
		args = append(args, q.Search, q.Search)
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

// Users lists the users q selects, oldest account first, without their password hashes.
func (s *Store) Users(ctx context.Context, q eventide.UserQuery, page eventide.Page) (*eventide.Conn[*eventide.User], error) {
	n, err := pageSize(page.First)
	if err != nil {
		return nil, err
	}
	where, args := userWhere(q)
	if page.After != "" {
		c, err := decodeCursor("u", page.After)
		if err != nil {
			return nil, err
		}
		if where == "" {
			where = " WHERE "
		} else {
			where += " AND "
		}
		where += "(created_at, id) > (?, ?)"
		args = append(args, c.ms(), c.id)
	}
	args = append(args, n+1)
	rows, err := s.r.QueryContext(ctx, `SELECT `+userCols+` FROM users`+where+` ORDER BY created_at, id LIMIT ?`, args...)
	if err != nil {
		return nil, mapErr(err)
	}
	users, err := collect(rows, scanUser)
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		u.PasswordHash = nil
	}
	return pageOf(users, n, func(u *eventide.User) string { return timeCursor("u", ms(u.CreatedAt), u.ID) }), nil
}

// CountUsersMatching counts the users q selects.
func (s *Store) CountUsersMatching(ctx context.Context, q eventide.UserQuery) (int, error) {
	where, args := userWhere(q)
	var n int
	return n, mapErr(s.r.QueryRowContext(ctx, `SELECT count(*) FROM users`+where, args...).Scan(&n))
}

// pageOf turns up to n+1 items into a page of n with cursors; the extra one only says that a
// next page exists.
func pageOf[T any](items []T, n int, cur func(T) string) *eventide.Conn[T] {
	c := &eventide.Conn[T]{HasNextPage: len(items) > n}
	if len(items) > n {
		items = items[:n]
	}
	if items == nil {
		items = []T{}
	}
	c.Items = items
	c.Cursors = make([]string, len(items))
	for i, it := range items {
		c.Cursors[i] = cur(it)
	}
	return c
}
