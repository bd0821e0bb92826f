package main

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/eventide/server/internal/server"
	"github.com/eventide/server/store/embedded"
)

// TestReplicasStartTogether: two replicas starting at the same moment on one empty MongoDB both
// come up (issue 15, finding 3: the index creation and the admin account raced, and one replica
// failed with "already exists"), and the one admin account they ensure signs in on both.
func TestReplicasStartTogether(t *testing.T) {
	for round := range 3 {
		db, err := embedded.Start(context.Background(), embedded.Options{Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close(context.Background()) })
		var wg sync.WaitGroup
		apps := make([]*server.App, 2)
		errs := make([]error, 2)
		logs := make([]*syncBuffer, 2)
		for i := range apps {
			cfg := testConfig(t)
			cfg.MongoURI = db.URI()
			logs[i] = &syncBuffer{}
			log := slog.New(slog.NewTextHandler(logs[i], &slog.HandlerOptions{Level: slog.LevelInfo}))
			wg.Go(func() { apps[i], errs[i] = server.Start(context.Background(), cfg, log) })
		}
		wg.Wait()
		for i, a := range apps {
			if errs[i] != nil {
				t.Fatalf("round %d: replica %d did not start: %v\n%s", round, i, errs[i], logs[i].String())
			}
			ts := &testServer{t: t, app: a, base: "http://" + a.Addr(), logs: logs[i]}
			t.Cleanup(ts.stop)
			if s := ts.admin(); s.Token == "" {
				t.Fatalf("round %d: no admin session on replica %d", round, i)
			}
		}
	}
}
