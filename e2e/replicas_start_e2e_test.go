package e2e

import (
	"sync"
	"testing"
)

// TestReplicasStartTogether: two replicas starting at the same moment on one empty MongoDB both
// come up (issue 15, finding 3: the index creation and the admin account raced, and one replica
// failed with "already exists"), and the one admin account they ensure signs in on both.
func TestReplicasStartTogether(t *testing.T) {
	for round := range 3 {
		db := startStore(t)
		var wg sync.WaitGroup
		servers := make([]*testServer, 2)
		errs := make([]error, 2)
		for i := range servers {
			cfg := testConfig(t)
			cfg.MongoURI = db.URI()
			wg.Go(func() { servers[i], errs[i] = tryStartServer(t, cfg) })
		}
		wg.Wait()
		for i, ts := range servers {
			if errs[i] != nil {
				t.Fatalf("round %d: replica %d did not start: %v", round, i, errs[i])
			}
			if s := ts.admin(); s.Token == "" {
				t.Fatalf("round %d: no admin session on replica %d", round, i)
			}
		}
	}
}
