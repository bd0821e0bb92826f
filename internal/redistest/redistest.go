// Package redistest starts a real redis-server on a free loopback port for tests, and can stop and
// restart it on the same port to make the "Redis went away" fault for real.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// RequireEnv, when "1", turns a missing redis-server binary into a test failure instead of a skip.
// .ci/run sets it.
const RequireEnv = "EVENTIDE_REQUIRE_REDIS"

// Server is one redis-server process owned by a test.
type Server struct {
	tb   testing.TB
	port int
	dir  string
	bin  string

	// args are added to the command line (a replica's --replicaof, a cluster node's options);
	// argv, when set, is the whole command line instead (a sentinel).
	args []string
	argv []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start runs redis-server on a free port with no persistence; it is killed at cleanup. Without the
// binary the test is skipped with a loud message, or fails when EVENTIDE_REQUIRE_REDIS=1.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return startWith(tb, lookPath(tb, "redis-server"), freePort(tb))
}

// lookPath finds a Redis binary, or skips (fails under EVENTIDE_REQUIRE_REDIS=1) without it.
func lookPath(tb testing.TB, name string) string {
	tb.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			tb.Fatalf("%s not found and %s=1: install it (apt-get install redis-server)", name, RequireEnv)
		}
		tb.Skip("SKIPPED: " + name + " is not installed; these Redis tests did not run (set " + RequireEnv + "=1 to make this a failure)")
	}
	return bin
}

func startWith(tb testing.TB, bin string, port int, args ...string) *Server {
	tb.Helper()
	s := &Server{tb: tb, port: port, dir: tb.TempDir(), bin: bin, args: args}
	s.start()
	tb.Cleanup(s.Stop)
	return s
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

func (s *Server) start() {
	s.tb.Helper()
	args := append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--protected-mode", "yes", "--loglevel", "warning"}, s.args...)
	if s.argv != nil {
		args = s.argv
	}
	cmd := exec.Command(s.bin, args...)
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("redistest: start redis-server: %v", err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := ping(s.Addr()); err == nil || strings.Contains(err.Error(), "NOAUTH") {
			return // a node with a password answers -NOAUTH: it is up
		}
		if time.Now().After(deadline) {
			s.Stop()
			s.tb.Fatalf("redistest: redis-server on %s did not answer PING", s.Addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop kills the server (SIGKILL: the fault of Redis going away) and waits for it to exit.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
}

// Restart starts the server again on the same port (after Stop), empty.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.start()
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("redistest: PING answered %q", line)
	}
	return nil
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// DeadAddr is a loopback address where nothing listens (a port just freed): a Redis that is down.
func DeadAddr(tb testing.TB) string {
	tb.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(tb)))
}
