package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Backup writes a consistent copy of the database at path to dst while servers may be reading
// and writing it: VACUUM INTO on a connection of its own reads one snapshot (WAL readers do not
// block the writer, nor it them) and writes a compact file. The copy is written beside dst and
// renamed onto it when complete, so dst is never a partial file. A file at dst is refused, as is
// a path holding no database (the copy would be empty). Opening the copy as the store (at
// DATA_DIR/eventide.db) restores it.
func Backup(ctx context.Context, path, dst string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no embedded store to back up: %w", err)
	}
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("%s exists; a backup does not overwrite a file", dst)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".partial-*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	tmpName := tmp.Name()
	_ = tmp.Close()
	_ = os.Remove(tmpName) // VACUUM INTO wants to create the file itself
	defer os.Remove(tmpName)

	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+
		fmt.Sprintf("?_busy_timeout=%d", (30*time.Second).Milliseconds()))
	if err != nil {
		return fmt.Errorf("backup: open: %w", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmpName); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := syncFile(tmpName); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmpName, dst); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

func syncFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
