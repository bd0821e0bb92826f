// Package ferretfile reads the files FerretDB v1.24's SQLite backend wrote (the embedded store of
// earlier Eventide versions) without FerretDB: read-only, with the SQLite driver the embedded
// store already uses, decoding FerretDB's "sjson" documents to BSON.
//
// FerretDB keeps each database in <dir>/<database>.sqlite. Its table _ferretdb_collections maps
// each collection's name to a table (name, table_name, settings); each of those tables holds one
// document per row in its column _ferretdb_sjson (see sjson.go for that format).
package ferretfile

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/eventide/server/store"
)

const (
	metadataTable = "_ferretdb_collections"
	docColumn     = "_ferretdb_sjson"
	fileExt       = ".sqlite"
)

// DB is one FerretDB database file opened read-only.
type DB struct {
	db     *sql.DB
	path   string
	tables map[string]string // collection → table
}

// Open opens the FerretDB database file at path read-only (the file is never written) and reads
// its collection list. The caller makes sure no FerretDB runs on it meanwhile.
func Open(ctx context.Context, path string) (*DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	// FerretDB ran SQLite in WAL mode. After a clean stop the database file holds everything
	// and no write-ahead log is left: open it immutable, so SQLite creates no -wal or -shm file
	// beside it (a read-only connection to a WAL database otherwise does). A log left by a
	// crash holds the last writes: then read it too (read-only; SQLite may use the -shm index).
	query := "mode=ro&immutable=1"
	if _, err := os.Stat(path + "-wal"); err == nil {
		query = "mode=ro&_pragma=busy_timeout(10000)"
	}
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(path), RawQuery: query}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	d := &DB{db: db, path: path, tables: map[string]string{}}
	if err := d.readCollections(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

func (d *DB) readCollections(ctx context.Context) error {
	rows, err := d.db.QueryContext(ctx, fmt.Sprintf("SELECT name, table_name FROM %q", metadataTable))
	if err != nil {
		return fmt.Errorf("not a FerretDB database (reading %s): %w", metadataTable, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, table string
		if err := rows.Scan(&name, &table); err != nil {
			return err
		}
		d.tables[name] = table
	}
	return rows.Err()
}

// Close closes the file.
func (d *DB) Close() error { return d.db.Close() }

// Collections returns the names of the database's collections.
func (d *DB) Collections() []string {
	names := make([]string, 0, len(d.tables))
	for n := range d.tables {
		names = append(names, n)
	}
	return names
}

// Each hands fn every document of collection, one row at a time (memory stays bounded by one
// document whatever the size of the collection), in the table's row order, as FerretDB returned
// them to a find without a sort. A collection the database does not hold has no documents. A
// row that does not decode stops Each with an error naming the collection and the row.
func (d *DB) Each(ctx context.Context, collection string, fn func(bson.Raw) error) error {
	table, ok := d.tables[collection]
	if !ok {
		return nil
	}
	rows, err := d.db.QueryContext(ctx, fmt.Sprintf("SELECT rowid, %s FROM %q ORDER BY rowid", docColumn, table))
	if err != nil {
		return fmt.Errorf("collection %q (table %q): %w", collection, table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			rowid int64
			data  []byte
		)
		if err := rows.Scan(&rowid, &data); err != nil {
			return fmt.Errorf("collection %q (table %q): %w", collection, table, err)
		}
		raw, err := decodeSJSON(data)
		if err != nil {
			return fmt.Errorf("collection %q (table %q in %s), row %d: %w", collection, table, filepath.Base(d.path), rowid, err)
		}
		if err := fn(raw); err != nil {
			return fmt.Errorf("collection %q, row %d: %w", collection, rowid, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("collection %q (table %q): %w", collection, table, err)
	}
	return nil
}

// Export reads database from dir, the files of FerretDB's SQLite backend that an earlier
// version's MongoDB store (database = its MONGO_DATABASE) wrote, and hands x every user, venue,
// event and registration, in that order, exactly as that store's Export would have through
// FerretDB. Collections of the store's that the files lack are empty; other collections are
// ignored. A dir without that database file but with others is an error naming them; a dir with
// no database at all exports nothing.
func Export(ctx context.Context, dir, database string, x store.Exporter) error {
	path := filepath.Join(dir, database+fileExt)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		others, _ := filepath.Glob(filepath.Join(dir, "*"+fileExt))
		if len(others) == 0 {
			return nil
		}
		for i, o := range others {
			others[i] = strings.TrimSuffix(filepath.Base(o), fileExt)
		}
		return fmt.Errorf("no database %q (MONGO_DATABASE) in %s, only %s", database, dir, strings.Join(others, ", "))
	}
	d, err := Open(ctx, path)
	if err != nil {
		return err
	}
	defer d.Close()
	for _, c := range store.ExportCollections() {
		if err := d.Each(ctx, c, func(raw bson.Raw) error { return store.DecodeExport(c, raw, x) }); err != nil {
			return err
		}
	}
	return nil
}
