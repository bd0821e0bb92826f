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

func TestSentinelFailover(t *testing.T) {
	s := StartSentinel(t, HAOptions{Password: "pw"})
	s.ManualFailover()
	s.Demote()
	if got := s.MasterAddr(); got != s.Master.Addr() {
		t.Fatalf("after a manual failover the sentinel reports master %s, want %s", got, s.Master.Addr())
	}
	if got := s.MasterAddr(); got != s.Master.Addr() {
		t.Fatalf("sentinel reports master %s, want %s", got, s.Master.Addr())
	}
	s.Failover()
	if got := s.MasterAddr(); got != s.Replica.Addr() {
		t.Fatalf("after failover the sentinel reports master %s, want the replica %s", got, s.Replica.Addr())
	}
	if ping(s.Master.Addr()) == nil {
		t.Fatal("the old master still answers after Failover")
	}
}

func TestCluster(t *testing.T) {
	c := StartCluster(t, 3, HAOptions{Password: "pw"})
	if len(c.Addrs()) != 3 {
		t.Fatalf("%d seeds", len(c.Addrs()))
	}
	// Every master owns a share of the slots: a plain SET of keys in different slots through one
	// node is refused with MOVED for some of them.
	moved := 0
	for _, k := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		out, _ := c.redisCLI(c.Nodes[0].Addr(), "SET", k, "1")
		if len(out) >= 5 && out[:5] == "MOVED" {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("node 0 serves every key: the slots are not spread over the cluster")
	}
}
