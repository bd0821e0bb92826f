package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/eventide/server/telemetry"
)

// openDB opens dsn with the registered "sqlite" driver, each statement's execution (a query or an
// exec, prepared or not) timed into cmds and, under a traced request, made a span. With cmds nil
// it is sql.Open.
//
// The driver is wrapped, not each call site: every statement of the store goes through it, those
// of transactions and migrations too, and a new query cannot be forgotten.
func openDB(dsn string, cmds *telemetry.Commands) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn)
	if err != nil || cmds == nil {
		return db, err
	}
	drv := db.Driver() // the registered driver: it carries what was registered on it
	_ = db.Close()
	return sql.OpenDB(observedConnector{drv: drv, dsn: dsn, cmds: cmds}), nil
}

type observedConnector struct {
	drv  driver.Driver
	dsn  string
	cmds *telemetry.Commands
}

func (c observedConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(innerConn)
	if !ok {
		_ = conn.Close()
		return nil, errors.New("sqlite: the driver's connection lacks the context methods")
	}
	return &observedConn{innerConn: inner, cmds: c.cmds}, nil
}

func (c observedConnector) Driver() driver.Driver { return c.drv }

// innerConn is what modernc.org/sqlite's connection implements, all of which database/sql uses.
type innerConn interface {
	driver.Conn
	driver.ConnPrepareContext
	driver.ConnBeginTx
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

type innerStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

type observedConn struct {
	innerConn
	cmds *telemetry.Commands
}

func (c *observedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.innerConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	inner, ok := st.(innerStmt)
	if !ok {
		return st, nil
	}
	return &observedStmt{innerStmt: inner, query: query, cmds: c.cmds}, nil
}

func (c *observedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	done := observe(ctx, c.cmds, query)
	r, err := c.innerConn.ExecContext(ctx, query, args)
	done(err)
	return r, err
}

func (c *observedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	done := observe(ctx, c.cmds, query)
	r, err := c.innerConn.QueryContext(ctx, query, args)
	done(err)
	return r, err
}

type observedStmt struct {
	innerStmt
	query string
	cmds  *telemetry.Commands
}

func (s *observedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	done := observe(ctx, s.cmds, s.query)
	r, err := s.innerStmt.ExecContext(ctx, args)
	done(err)
	return r, err
}

func (s *observedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	done := observe(ctx, s.cmds, s.query)
	r, err := s.innerStmt.QueryContext(ctx, args)
	done(err)
	return r, err
}

// maxStatementAttr bounds the statement text a span carries (the store's longest is ~1 KiB).
const maxStatementAttr = 2048

// observe starts timing one statement; the function it returns records it. A query's time is
// until its first row is ready (SQLite steps the rest as they are read).
func observe(ctx context.Context, cmds *telemetry.Commands, query string) func(error) {
	began := time.Now()
	verb := statementVerb(query)
	ctx, span := telemetry.Child(ctx, cmds.Tracer(), "sqlite "+verb, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system.name", "sqlite"), attribute.String("db.operation.name", verb),
			attribute.String("db.query.text", truncate(query, maxStatementAttr))))
	_ = ctx
	return func(err error) {
		cmds.Observe("sqlite", verb, time.Since(began))
		telemetry.End(span, err)
	}
}

// statementVerbs bounds the command label: a statement starting with anything else is "other".
var statementVerbs = map[string]bool{"select": true, "insert": true, "update": true, "delete": true,
	"with": true, "pragma": true, "create": true, "drop": true, "alter": true, "vacuum": true, "replace": true}

// statementVerb is the first word of query, lower-cased, when it is one of statementVerbs.
func statementVerb(query string) string {
	q := strings.TrimLeft(query, " \t\r\n(")
	end := strings.IndexAny(q, " \t\r\n(")
	if end < 0 {
		end = len(q)
	}
	v := strings.ToLower(q[:end])
	if !statementVerbs[v] {
		return "other"
	}
	return v
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
