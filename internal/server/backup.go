package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/eventide/server/config"
	"github.com/eventide/server/store/sqlite"
)

// runBackup is `eventide backup FILE [flags]`: a consistent copy of the embedded store, taken
// while a server may be running on it. With MONGO_URI set there is no embedded store to copy.
func runBackup(ctx context.Context, args, environ []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		return fmt.Errorf("%w: usage: eventide backup FILE [flags]", errBadFlags)
	}
	file := args[0]
	cfg, err := config.Load(config.Sources{Args: args[1:], Environ: environ})
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("%w: %v", errBadFlags, err)
	}
	if cfg.MongoURI != "" {
		return fmt.Errorf("%w: backup copies the embedded store, but MONGO_URI is set: back MongoDB up with its own tools (mongodump)", errBadFlags)
	}
	began := time.Now()
	if err := sqlite.Backup(ctx, sqlitePath(cfg.DataDir), file); err != nil {
		return err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup of %s written to %s (%d bytes, %d ms); restore: put it at DATA_DIR/eventide.db\n",
		sqlitePath(cfg.DataDir), file, fi.Size(), time.Since(began).Milliseconds())
	return nil
}
