package redistest

import "testing"

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	if err := ping(s.Addr()); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if ping(s.Addr()) == nil {
		t.Fatal("still answering after Stop")
	}
	s.Restart()
	if err := ping(s.Addr()); err != nil {
		t.Fatalf("not answering after Restart: %v", err)
	}
}
