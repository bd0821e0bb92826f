package redistest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventide/server/internal/testutil"
)

// Sentinel is a real Sentinel set for tests: a master, one replica of it, and one
// `redis-server --sentinel` (quorum 1) watching them with short timeouts, so that killing the
// master promotes the replica within a few seconds. Everything listens on free loopback ports and
// is killed at cleanup.
type Sentinel struct {
	tb               testing.TB
	cli              string
	password         string
	sentinelPassword string
	MasterName       string
	Master           *Server // the master at start
	Replica          *Server // its replica, the master after Failover
	Sentinel         *Server // the sentinel process
}

// HAOptions configures StartSentinel and StartCluster.
type HAOptions struct {
	// Password, when set, is required by every data node (requirepass, and masterauth between
	// them), as REDIS_PASSWORD is in production.
	Password string
	// SentinelPassword, when set, is required by the sentinel (requirepass in its configuration),
	// as REDIS_SENTINEL_PASSWORD is in production; without it the sentinel asks none.
	SentinelPassword string
}

// StartSentinel starts the set and waits until the replica is in sync and known to the sentinel.
// Without redis-server or redis-cli it skips (fails under EVENTIDE_REQUIRE_REDIS=1), as Start does.
func StartSentinel(tb testing.TB, o HAOptions) *Sentinel {
	tb.Helper()
	bin := lookPath(tb, "redis-server")
	cli := lookPath(tb, "redis-cli")
	// No 5 s wait before a full sync (the default diskless delay): replicas sync at once.
	auth := append(authArgs(o.Password), "--repl-diskless-sync-delay", "0")
	master := startWith(tb, bin, freePort(tb), auth...)
	replica := startWith(tb, bin, freePort(tb), append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.port)}, auth...)...)
	const name = "eventide-test"
	dir := tb.TempDir()
	conf := filepath.Join(dir, "sentinel.conf")
	sp := freePort(tb)
	// Sentinel rewrites its configuration file, so it gets a writable file of its own.
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nloglevel warning\n"+
		"sentinel monitor %s 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds %s 1000\n"+
		"sentinel failover-timeout %s 5000\n"+
		"sentinel parallel-syncs %s 1\n", sp, dir, name, master.port, name, name, name)
	if o.Password != "" {
		body += fmt.Sprintf("sentinel auth-pass %s %s\n", name, o.Password)
	}
	if o.SentinelPassword != "" {
		body += fmt.Sprintf("requirepass %s\n", o.SentinelPassword)
	}
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	sentinel := &Server{tb: tb, port: sp, dir: dir, bin: bin, argv: []string{conf, "--sentinel"}}
	sentinel.start()
	tb.Cleanup(sentinel.Stop)
	s := &Sentinel{tb: tb, cli: cli, password: o.Password, sentinelPassword: o.SentinelPassword, MasterName: name, Master: master, Replica: replica, Sentinel: sentinel}
	waitFor(tb, 15*time.Second, "the replica to be in sync with the master", func() bool {
		out, err := s.redisCLI(replica.Addr(), "INFO", "replication")
		return err == nil && strings.Contains(out, "master_link_status:up")
	})
	waitFor(tb, 15*time.Second, "the sentinel to know the replica", func() bool {
		out, err := s.redisCLI(sentinel.Addr(), "SENTINEL", "REPLICAS", name)
		return err == nil && strings.Contains(out, strconv.Itoa(replica.port))
	})
	return s
}

// Addrs are the sentinel seeds (REDIS_ADDRS with REDIS_MASTER_NAME).
func (s *Sentinel) Addrs() []string { return []string{s.Sentinel.Addr()} }

// MasterAddr is the master's address as the sentinel reports it now.
func (s *Sentinel) MasterAddr() string {
	s.tb.Helper()
	out, err := s.redisCLI(s.Sentinel.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
	if err != nil {
		s.tb.Fatalf("redistest: sentinel get-master-addr-by-name: %v", err)
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		s.tb.Fatalf("redistest: sentinel answered %q for the master address", out)
	}
	return net.JoinHostPort(f[0], f[1])
}

// Failover kills the master (SIGKILL) and waits until the sentinel has promoted the replica and
// the replica answers as a master.
func (s *Sentinel) Failover() {
	s.tb.Helper()
	s.Master.Stop()
	waitFor(s.tb, 30*time.Second, "the sentinel to promote the replica", func() bool {
		out, err := s.redisCLI(s.Sentinel.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
		if err != nil || !strings.Contains(out, strconv.Itoa(s.Replica.port)) {
			return false
		}
		role, err := s.redisCLI(s.Replica.Addr(), "ROLE")
		return err == nil && strings.HasPrefix(role, "master")
	})
}

// ManualFailover asks the sentinel to fail over while both nodes run (SENTINEL FAILOVER, as for
// maintenance) and waits until the replica is promoted. The old master keeps running, still a
// master, until the sentinel demotes it at its next INFO poll (about 10 s later) or Demote: a
// client that has not followed the sentinel's +switch-master meanwhile writes to it, and those
// writes are lost. Master and Replica are swapped to name the nodes' new roles.
func (s *Sentinel) ManualFailover() {
	s.tb.Helper()
	// A sentinel that has just found the replica answers NOGOODSLAVE until it has its INFO.
	waitFor(s.tb, 30*time.Second, "the sentinel to accept SENTINEL FAILOVER", func() bool {
		out, err := s.redisCLI(s.Sentinel.Addr(), "SENTINEL", "FAILOVER", s.MasterName)
		return err == nil && out == "OK"
	})
	waitFor(s.tb, 30*time.Second, "the sentinel to promote the replica", func() bool {
		out, err := s.redisCLI(s.Sentinel.Addr(), "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
		if err != nil || !strings.Contains(out, strconv.Itoa(s.Replica.port)) {
			return false
		}
		role, err := s.redisCLI(s.Replica.Addr(), "ROLE")
		return err == nil && strings.HasPrefix(role, "master")
	})
	s.Master, s.Replica = s.Replica, s.Master
}

// Demote makes the old master a replica of the new one now, as the sentinel would at its next
// poll, and waits until it is in sync (so that a later Failover can promote it).
func (s *Sentinel) Demote() {
	s.tb.Helper()
	if _, err := s.redisCLI(s.Replica.Addr(), "REPLICAOF", "127.0.0.1", strconv.Itoa(s.Master.port)); err != nil {
		s.tb.Fatalf("redistest: REPLICAOF on the old master: %v", err)
	}
	waitFor(s.tb, 30*time.Second, "the old master to be an in-sync replica", func() bool {
		out, err := s.redisCLI(s.Replica.Addr(), "INFO", "replication")
		return err == nil && strings.Contains(out, "role:slave") && strings.Contains(out, "master_link_status:up")
	})
	waitFor(s.tb, 30*time.Second, "the sentinel to see the old master as a replica", func() bool {
		out, err := s.redisCLI(s.Sentinel.Addr(), "SENTINEL", "REPLICAS", s.MasterName)
		return err == nil && strings.Contains(out, strconv.Itoa(s.Replica.port)) && !strings.Contains(out, "s_down")
	})
}

// Cluster is a real Redis Cluster for tests: masters started with --cluster-enabled yes and joined
// by `redis-cli --cluster create`, without replicas. Each node needs its port and port+10000 (the
// cluster bus) free on loopback. Everything is killed at cleanup.
type Cluster struct {
	tb       testing.TB
	cli      string
	password string
	Nodes    []*Server
}

// StartCluster starts n masters (at least 3) and waits until every node reports cluster_state:ok.
func StartCluster(tb testing.TB, n int, o HAOptions) *Cluster {
	tb.Helper()
	if n < 3 {
		tb.Fatalf("redistest: a cluster needs at least 3 masters, not %d", n)
	}
	bin := lookPath(tb, "redis-server")
	cli := lookPath(tb, "redis-cli")
	c := &Cluster{tb: tb, cli: cli, password: o.Password}
	args := []string{"create"}
	for range n {
		port := freeClusterPort(tb)
		node := startWith(tb, bin, port, append([]string{"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"}, authArgs(o.Password)...)...)
		c.Nodes = append(c.Nodes, node)
		args = append(args, node.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if o.Password != "" {
		args = append(args, "-a", o.Password, "--no-auth-warning")
	}
	out, err := exec.Command(cli, append([]string{"--cluster"}, args...)...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, node := range c.Nodes {
		waitFor(tb, 20*time.Second, "cluster_state:ok on "+node.Addr(), func() bool {
			out, err := c.redisCLI(node.Addr(), "CLUSTER", "INFO")
			return err == nil && strings.Contains(out, "cluster_state:ok")
		})
	}
	return c
}

// Addrs are the cluster seeds (REDIS_ADDRS without REDIS_MASTER_NAME).
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// authArgs are a data node's options for password.
func authArgs(password string) []string {
	if password == "" {
		return nil
	}
	return []string{"--requirepass", password, "--masterauth", password}
}

// redisCLI runs one command with redis-cli against addr (with password, when not empty) and
// returns its raw output.
func redisCLI(cli, addr, password string, args ...string) (string, error) {
	host, port, _ := net.SplitHostPort(addr)
	base := []string{"-h", host, "-p", port, "--raw"}
	if password != "" {
		base = append(base, "--no-auth-warning", "-a", password)
	}
	out, err := exec.Command(cli, append(base, args...)...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err == nil && strings.HasPrefix(s, "ERR") {
		err = fmt.Errorf("%s", s)
	}
	return s, err
}

// redisCLI talks to a data node with the password, to the sentinel with its own.
func (s *Sentinel) redisCLI(addr string, args ...string) (string, error) {
	pw := s.password
	if addr == s.Sentinel.Addr() {
		pw = s.sentinelPassword
	}
	return redisCLI(s.cli, addr, pw, args...)
}

func (c *Cluster) redisCLI(addr string, args ...string) (string, error) {
	return redisCLI(c.cli, addr, c.password, args...)
}

func waitFor(tb testing.TB, d time.Duration, what string, ok func() bool) {
	tb.Helper()
	began := time.Now()
	defer func() { tb.Logf("redistest: %v waiting for %s", time.Since(began).Round(time.Millisecond), what) }()
	testutil.Eventually(tb, d, "redistest: "+what, ok)
}

// freeClusterPort is a free loopback port whose cluster bus port (+10000) is free too.
func freeClusterPort(tb testing.TB) int {
	tb.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		l.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port
	}
	tb.Fatal("redistest: no free port pair for a cluster node")
	return 0
}
