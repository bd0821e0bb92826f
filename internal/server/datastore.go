package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eventide/server/config"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/httpapi"
	"github.com/eventide/server/store"
	"github.com/eventide/server/store/ferretfile"
	"github.com/eventide/server/store/sqlite"
	"github.com/eventide/server/storecache"
	"github.com/eventide/server/telemetry"
)

// appStore is what the server needs of a store, whichever it is: the data (read through the
// shared cache), a ping for /readyz, the pool figures for databaseStats, and Close.
type appStore interface {
	storecache.Backing
	Ping(ctx context.Context) error
	Close(ctx context.Context) error
	Stats() eventide.StoreStats
}

// diskFuller is a store that can tell the readiness probe the disk is full (the SQLite store).
type diskFuller interface {
	DiskFull(ctx context.Context) error
}

var (
	_ appStore   = (*store.Store)(nil)
	_ appStore   = (*sqlite.Store)(nil)
	_ diskFuller = (*sqlite.Store)(nil)
)

// The stores, as /readyz names them.
const (
	storeSQLite  = "sqlite"
	storeMongoDB = "mongodb"
)

// sqlitePath is the embedded store's file under DATA_DIR.
func sqlitePath(dataDir string) string { return filepath.Join(dataDir, "eventide.db") }

// legacyDir is where earlier versions kept their embedded store (FerretDB's SQLite files).
func legacyDir(dataDir string) string { return filepath.Join(dataDir, "embedded") }

// openStore opens MongoDB when MONGO_URI is set, else the SQLite file under DATA_DIR, into
// which an earlier version's embedded store is imported first (see importLegacy).
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger, reg prometheus.Registerer, cmds *telemetry.Commands, outbox eventide.OutboxOptions) (appStore, string, error) {
	if cfg.MongoURI != "" {
		o := mongoOptions(cfg, cfg.MongoURI, log.With("component", "store"), reg)
		o.Commands = cmds
		o.Outbox = outbox
		s, err := store.Open(ctx, o)
		if err != nil {
			return nil, "", err
		}
		return s, storeMongoDB, nil
	}
	path := sqlitePath(cfg.DataDir)
	s, err := sqlite.Open(ctx, sqlite.Options{Path: path, Commands: cmds, Outbox: outbox})
	if err != nil {
		return nil, "", fmt.Errorf("embedded store: %w", err)
	}
	if err := importLegacy(ctx, cfg, s, log); err != nil {
		_ = s.Close(ctx)
		return nil, "", err
	}
	log.Info("embedded store opened", "store", storeSQLite, "path", path)
	return s, storeSQLite, nil
}

func mongoOptions(cfg *config.Config, uri string, log *slog.Logger, reg prometheus.Registerer) store.Options {
	return store.Options{
		URI: uri, Database: cfg.MongoDatabase, PoolSize: cfg.MongoPoolSize, MinPoolSize: cfg.MongoMinPoolSize,
		ConnectTimeout: cfg.MongoConnectTimeout, ServerSelectionTimeout: cfg.MongoServerSelectionTimeout,
		MaxConnIdleTime: cfg.MongoMaxConnIdleTime, Logger: log, Registerer: reg,
	}
}

// importLegacy imports DATA_DIR/embedded, the FerretDB store of earlier versions, into s once:
// when that directory exists and s is empty, it reads FerretDB's files there (read-only, without
// FerretDB), copies every user, venue, event and registration in one transaction (so a failure
// leaves s empty, and start-up stops with the error: nothing is silently left behind), and renames the
// directory to DATA_DIR/embedded.imported-<UTC time>, never deleting it. A directory left
// beside an import that committed (a crash before the rename) is renamed then; one beside data
// that was not imported from it stops start-up.
func importLegacy(ctx context.Context, cfg *config.Config, s *sqlite.Store, log *slog.Logger) error {
	dir := legacyDir(cfg.DataDir)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("earlier version's store %s: %w", dir, err)
	}
	aside := func() (string, error) {
		to := dir + ".imported-" + time.Now().UTC().Format("20060102T150405Z")
		if err := os.Rename(dir, to); err != nil {
			return "", fmt.Errorf("moving the imported store aside: %w", err)
		}
		return to, nil
	}
	if src, err := s.Imported(ctx); err != nil {
		return err
	} else if src != "" {
		to, err := aside()
		if err != nil {
			return err
		}
		log.Warn("earlier version's store was already imported; moved it aside now", "dir", dir, "moved_to", to)
		return nil
	}
	if empty, err := s.Empty(ctx); err != nil {
		return err
	} else if !empty {
		return fmt.Errorf("DATA_DIR holds an earlier version's store (%s) and data in %s that was not imported from it: "+
			"move one of them out of DATA_DIR (nothing was changed)", dir, sqlitePath(cfg.DataDir))
	}

	began := time.Now()
	n, err := importFerret(ctx, cfg, dir, s)
	if err != nil {
		return fmt.Errorf("importing the earlier version's store in %s (nothing was imported; its files are untouched): %w", dir, err)
	}
	to, err := aside()
	if err != nil {
		return err
	}
	log.Info("imported the earlier version's embedded store (FerretDB) into SQLite",
		"users", n.Users, "venues", n.Venues, "events", n.Events, "registrations", n.Registrations,
		"counts_corrected", n.Recounted, "waitlisted_promoted", n.Promoted,
		"from", dir, "moved_to", to, "took_ms", time.Since(began).Milliseconds())
	return nil
}

// importFerret copies the data of dir, FerretDB's SQLite files, into s: read-only and without
// FerretDB (store/ferretfile), through the MongoDB store's own document types.
func importFerret(ctx context.Context, cfg *config.Config, dir string, s *sqlite.Store) (sqlite.ImportCounts, error) {
	return s.Import(ctx, "ferretdb:"+dir, func(im *sqlite.Importer) error {
		return ferretfile.Export(ctx, dir, cfg.MongoDatabase,
			store.Exporter{User: im.User, Venue: im.Venue, Event: im.Event, Registration: im.Registration})
	})
}

// storeCheck is the store's /readyz check: required, it fails while the store does not answer a
// ping or (SQLite) its disk is full.
func (a *app) storeCheck() httpapi.Check {
	return httpapi.Check{Name: "store", Required: true, Probe: func(ctx context.Context) (string, error) {
		if err := a.store.Ping(ctx); err != nil {
			return a.storeIs, err
		}
		if f, ok := a.store.(diskFuller); ok {
			return a.storeIs, f.DiskFull(ctx)
		}
		return a.storeIs, nil
	}}
}
