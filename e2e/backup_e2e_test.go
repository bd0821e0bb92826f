package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventide/server/internal/server"
)

// TestBackupWhileServing runs `eventide backup FILE` (through run, as main does) against the
// store of a running server that keeps taking registrations, starts a second server on a
// DATA_DIR holding the copy, and finds there every record acknowledged before the backup began;
// the first server keeps serving and writing afterwards.
func TestBackupWhileServing(t *testing.T) {
	cfg := testConfig(t)
	ts := startServer(t, cfg)
	org := ts.organizer("Backup Org")
	eventIDs := []string{ts.publishedEvent(org, "Backed up A", 3, 24*time.Hour), ts.publishedEvent(org, "Backed up B", 50, 48*time.Hour)}
	fans := make([]session, 6)
	for i := range fans {
		fans[i] = ts.signUp(fmt.Sprintf("Fan %d", i))
		ts.mustData(fans[i].Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": eventIDs[0]}, nil)
	}
	before := ts.eventCounts(fans[0].Token, eventIDs[0]).Event

	// Writes keep going while the copy is taken.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var during atomic.Int64
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f := ts.signUp(fmt.Sprintf("During %d", i))
			if r := ts.do(f.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": eventIDs[1]}); len(r.Errors) > 0 {
				t.Errorf("registration during the backup: %+v", r.Errors)
				return
			}
			during.Add(1)
		}
	})
	file := filepath.Join(t.TempDir(), "eventide-backup.db")
	var out, errOut bytes.Buffer
	time.Sleep(50 * time.Millisecond)
	err := server.Run(context.Background(), []string{"backup", file}, []string{"DATA_DIR=" + cfg.DataDir, "APP_ENV=test"}, &out, &errOut)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup: %v (stderr %s)", err, errOut.String())
	}
	if !strings.Contains(out.String(), file) {
		t.Fatalf("backup said %q", out.String())
	}
	t.Logf("%d registrations during the backup; %s", during.Load(), strings.TrimSpace(out.String()))

	t.Run("FirstServerStillWrites", func(t *testing.T) {
		f := ts.signUp("After")
		ts.mustData(f.Token, `mutation($id: ID!){ registerForEvent(eventId: $id){ status } }`, map[string]any{"id": eventIDs[1]}, nil)
	})

	t.Run("RestoredServerHasEveryRecord", func(t *testing.T) {
		cfg2 := testConfig(t)
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(server.SQLitePath(cfg2.DataDir), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		ts2 := startServer(t, cfg2)
		for i, f := range fans {
			var me struct{ Me struct{ ID, Name string } }
			ts2.mustData(f.Token, `{ me { id name } }`, nil, &me) // same JWT_SECRET: the old tokens name the same users
			if me.Me.ID != f.ID || me.Me.Name != fmt.Sprintf("Fan %d", i) {
				t.Fatalf("fan %d in the copy: %+v", i, me.Me)
			}
		}
		got := ts2.eventCounts(fans[0].Token, eventIDs[0]).Event
		if got.AttendeeCount != before.AttendeeCount || got.WaitlistCount != before.WaitlistCount || got.AttendeeCount != 3 ||
			got.WaitlistCount != 3 || len(got.Attendees.Edges) != 3 || got.Title != "Backed up A" {
			t.Fatalf("event in the copy: %+v, before %+v", got, before)
		}
		b := ts2.eventCounts(fans[0].Token, eventIDs[1]).Event
		if b.AttendeeCount < 0 || b.AttendeeCount != len(b.Attendees.Edges) {
			t.Fatalf("second event in the copy: %d counted, %d listed", b.AttendeeCount, len(b.Attendees.Edges))
		}
		ts2.mustLogin(nil, testAdminEmail, testAdminPassword)
	})

	t.Run("RefusedOnMongoDB", func(t *testing.T) {
		var stderr bytes.Buffer
		err := server.Run(context.Background(), []string{"backup", filepath.Join(t.TempDir(), "x.db")},
			[]string{"MONGO_URI=mongodb://127.0.0.1:1/", "APP_ENV=test"}, &bytes.Buffer{}, &stderr)
		if code := server.ExitCode(err, &stderr); code != server.ExitConfig || !strings.Contains(stderr.String(), "MONGO_URI is set") {
			t.Fatalf("exit %d, stderr %q", code, stderr.String())
		}
	})
	t.Run("RefusesToOverwrite", func(t *testing.T) {
		err := server.Run(context.Background(), []string{"backup", file}, []string{"DATA_DIR=" + cfg.DataDir, "APP_ENV=test"}, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "exists") {
			t.Fatalf("backup over an existing file: %v", err)
		}
	})
}
