package supervisor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eventide/server/internal/syncbuf"
	"github.com/eventide/server/internal/testutil"
	"github.com/eventide/server/memstats"
)

// childBin is testdata/child, built once for all tests.
var childBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "supervisor-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	childBin = filepath.Join(dir, "child")
	build := exec.Command("go", "build", "-o", childBin, "./testdata/child")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building the test child: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct{ syncbuf.Buffer }

// start is one "child ..." line a child printed.
type start struct {
	pid, restarts int
	supervise     string
	args          string
}

var startLine = regexp.MustCompile(`child pid=(\d+) restarts=(\d+) supervise=(\S*) args=(.*)`)

func (b *syncBuffer) starts() []start {
	var out []start
	for _, m := range startLine.FindAllStringSubmatch(b.String(), -1) {
		pid, _ := strconv.Atoi(m[1])
		restarts, _ := strconv.Atoi(m[2])
		out = append(out, start{pid: pid, restarts: restarts, supervise: m[3], args: m[4]})
	}
	return out
}

// harness runs Run on the test child with a plan, recording the waits instead of waiting.
type harness struct {
	opts   Options
	stdout *syncBuffer
	mu     sync.Mutex
	sleeps []time.Duration
}

func newHarness(plan string) *harness {
	h := &harness{stdout: &syncBuffer{}}
	h.opts = Options{
		Path:   childBin,
		Args:   []string{"-supervise", "-port", "0", "--supervise=true"},
		Env:    []string{"CHILD_PLAN=" + plan, "SUPERVISE=true", "EVENTIDE_RESTARTS=7"},
		Stdout: h.stdout,
		Stderr: h.stdout,
		Sleep: func(ctx context.Context, d time.Duration) error {
			h.mu.Lock()
			h.sleeps = append(h.sleeps, d)
			h.mu.Unlock()
			return ctx.Err()
		},
	}
	return h
}

func (h *harness) waits() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sleeps)
}

// fakeNow returns a clock that moves step forward on every reading: each child seems to run step.
func fakeNow(step time.Duration) func() time.Time {
	var mu sync.Mutex
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(step)
		return t
	}
}

func assertGone(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("child %d still there: kill(0) = %v", pid, err)
	}
}

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, n := range v {
		out[i] = time.Duration(n) * time.Millisecond
	}
	return out
}

func TestRun(t *testing.T) {
	t.Run("MemoryRestartAtOnce", func(t *testing.T) {
		h := newHarness(fmt.Sprintf("exit:%d,exit:%d,exit:0", memstats.ExitRestart, memstats.ExitRestart))
		if err := Run(context.Background(), h.opts); err != nil {
			t.Fatal(err)
		}
		starts := h.stdout.starts()
		if len(starts) != 3 {
			t.Fatalf("%d starts, want 3:\n%s", len(starts), h.stdout)
		}
		for i, s := range starts {
			if s.restarts != i || s.supervise != "false" || s.args != `["-port" "0"]` {
				t.Errorf("start %d: %+v; want restarts=%d, supervise=false, args without -supervise", i, s, i)
			}
		}
		if got := h.waits(); !slices.Equal(got, ms(100, 100)) {
			t.Fatalf("waits %v, want the minimal restart delay, not a backoff", got)
		}
	})
	t.Run("CrashBackoffDoubles", func(t *testing.T) {
		h := newHarness("exit:1,exit:1,exit:1,exit:1,exit:1,exit:0")
		h.opts.MaxBackoff = 2 * time.Second
		if err := Run(context.Background(), h.opts); err != nil {
			t.Fatal(err)
		}
		if got := h.waits(); !slices.Equal(got, ms(0, 500, 1000, 2000, 2000)) {
			t.Fatalf("waits %v, want at once, then 500ms doubling, capped at 2s", got)
		}
	})
	t.Run("BackoffResetsAfterHealthyRun", func(t *testing.T) {
		h := newHarness("exit:1,exit:1,exit:1,exit:0")
		h.opts.Now = fakeNow(61 * time.Second) // each child ran longer than HealthyAfter
		if err := Run(context.Background(), h.opts); err != nil {
			t.Fatal(err)
		}
		if got := h.waits(); !slices.Equal(got, ms(0, 0, 0)) {
			t.Fatalf("waits %v, want a restart at once each time", got)
		}
	})
	t.Run("KilledBySignalRestarted", func(t *testing.T) {
		h := newHarness("kill,exit:0")
		if err := Run(context.Background(), h.opts); err != nil {
			t.Fatal(err)
		}
		if n := len(h.stdout.starts()); n != 2 {
			t.Fatalf("%d starts, want 2", n)
		}
		if got := h.waits(); !slices.Equal(got, ms(0)) {
			t.Fatalf("waits %v", got)
		}
	})
	t.Run("ErrConfigNotRestarted", func(t *testing.T) {
		h := newHarness("exit:2,exit:0")
		err := Run(context.Background(), h.opts)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != ExitConfig || ee.ExitCode() != 2 || ee.Restarts != 0 {
			t.Fatalf("err = %v, want an *ExitError with code 2", err)
		}
		if n := len(h.stdout.starts()); n != 1 || len(h.waits()) != 0 {
			t.Fatalf("%d starts, waits %v; want 1 and none", n, h.waits())
		}
	})
	t.Run("ExitTwoAfterReadyIsACrash", func(t *testing.T) {
		h := newHarness("ready-exit:2,exit:0") // a Go panic exits with 2 too
		if err := Run(context.Background(), h.opts); err != nil {
			t.Fatal(err)
		}
		if n := len(h.stdout.starts()); n != 2 {
			t.Fatalf("%d starts, want 2", n)
		}
	})
	t.Run("ErrTooManyRestarts", func(t *testing.T) {
		h := newHarness("exit:1")
		h.opts.MaxRestarts = 3
		err := Run(context.Background(), h.opts)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != ExitGaveUp || ee.Restarts != 3 {
			t.Fatalf("err = %v, want code 1 after 3 restarts", err)
		}
		if n := len(h.stdout.starts()); n != 4 {
			t.Fatalf("%d starts, want 4", n)
		}
	})
	t.Run("CrashesOutsideTheWindowForgotten", func(t *testing.T) {
		h := newHarness("exit:1,exit:1,exit:1,exit:1,exit:1,exit:0")
		h.opts.MaxRestarts = 2
		h.opts.Now = fakeNow(6 * time.Minute) // two readings a child: crashes 12 minutes apart
		if err := Run(context.Background(), h.opts); err != nil {
			t.Fatalf("err = %v, want nil: no two crashes within 10 minutes", err)
		}
		if n := len(h.stdout.starts()); n != 6 {
			t.Fatalf("%d starts, want 6", n)
		}
	})
	// A memory restart: the next child starts on the same sockets, and only once it is ready is
	// the one it replaces told to drain; no backoff, no gap.
	t.Run("RestartStartsNextBeforeDraining", func(t *testing.T) {
		h := newHarness("restart,restart,ready")
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		f, err := l.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h.opts.Listeners = []Listener{{Name: "http", File: f}}
		logs := &syncBuffer{}
		h.opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- Run(ctx, h.opts) }()
		waitFor(t, "the third child ready", func() bool { return len(readyLines(h.stdout.String())) == 3 })
		waitFor(t, "the second child stopped", func() bool {
			return strings.Count(h.stdout.String(), "child stopping on a signal") == 2
		})
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		out := h.stdout.String()
		starts := h.stdout.starts()
		if len(starts) != 3 || len(h.waits()) != 0 {
			t.Fatalf("%d starts, waits %v; want 3 and none:\n%s", len(starts), h.waits(), out)
		}
		// The supervisor's own log is in the order it acted.
		for k := range 2 {
			ready := strings.Index(logs.String(), fmt.Sprintf(`msg="child ready" pid=%d`, starts[k+1].pid))
			stopping := strings.Index(logs.String(), fmt.Sprintf(`msg="stopping child" pid=%d`, starts[k].pid))
			if ready < 0 || stopping < 0 || stopping < ready {
				t.Fatalf("child %d stopped before child %d was ready:\n%s", k, k+1, logs)
			}
		}
		if n := strings.Count(out, "listener http "+l.Addr().String()); n != 3 {
			t.Fatalf("%d children inherited the listener %s, want 3:\n%s", n, l.Addr(), out)
		}
		for _, s := range starts {
			assertGone(t, s.pid)
		}
	})
	// A replacement that crashes before it is ready leaves the old child serving; the next
	// replacement takes over.
	t.Run("FailedReplacementKeepsServing", func(t *testing.T) {
		h := newHarness("restart,exit:1,ready")
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- Run(ctx, h.opts) }()
		waitFor(t, "the third child ready", func() bool { return len(readyLines(h.stdout.String())) == 2 })
		waitFor(t, "the first child stopped", func() bool {
			return strings.Contains(h.stdout.String(), "child stopping on a signal")
		})
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := len(h.stdout.starts()); n != 3 || !slices.Equal(h.waits(), ms(0)) {
			t.Fatalf("%d starts, waits %v; want 3 and one at once", n, h.waits())
		}
	})
	// A replacement that never reports ready is killed after ReadyTimeout, as a crash; the old
	// child serves on until the next replacement is ready.
	t.Run("ReplacementNotReadyKilled", func(t *testing.T) {
		h := newHarness("restart,hang,ready")
		h.opts.ReadyTimeout = 300 * time.Millisecond
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- Run(ctx, h.opts) }()
		waitFor(t, "the third child ready", func() bool { return len(readyLines(h.stdout.String())) == 2 })
		waitFor(t, "the first child stopped", func() bool {
			return strings.Contains(h.stdout.String(), "child stopping on a signal")
		})
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		starts := h.stdout.starts()
		if len(starts) != 3 || !slices.Equal(h.waits(), ms(0)) {
			t.Fatalf("%d starts, waits %v; want 3 and one at once", len(starts), h.waits())
		}
		for _, s := range starts {
			assertGone(t, s.pid)
		}
	})
	t.Run("ErrConfigInReplacement", func(t *testing.T) {
		h := newHarness("restart,exit:2")
		err := Run(context.Background(), h.opts)
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != ExitConfig {
			t.Fatalf("err = %v, want an *ExitError with code 2", err)
		}
		for _, s := range h.stdout.starts() {
			assertGone(t, s.pid)
		}
	})
	t.Run("SignalForwarded", func(t *testing.T) {
		h := newHarness("sleep")
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- Run(ctx, h.opts) }()
		waitFor(t, "the child", func() bool { return len(h.stdout.starts()) == 1 })
		stop() // as the parent's signal.NotifyContext does on SIGTERM
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains([]byte(h.stdout.String()), []byte("child stopping on a signal")) {
			t.Fatalf("the child did not see the signal:\n%s", h.stdout)
		}
		if n := len(h.stdout.starts()); n != 1 {
			t.Fatalf("%d starts after a stop, want 1", n)
		}
		assertGone(t, h.stdout.starts()[0].pid)
	})
	// A stop that finds the child draining for the restart it asked for: it exits with
	// ExitRestart as planned, which is a clean end now, not a failure nor a reason to restart.
	t.Run("StoppedWhileRestartingIsClean", func(t *testing.T) {
		h := newHarness(fmt.Sprintf("stop:%d", memstats.ExitRestart))
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- Run(ctx, h.opts) }()
		waitFor(t, "the child", func() bool { return len(h.stdout.starts()) == 1 })
		stop()
		if err := <-done; err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if n := len(h.stdout.starts()); n != 1 {
			t.Fatalf("%d starts after a stop, want 1", n)
		}
	})
	t.Run("ErrChildFailsAfterStop", func(t *testing.T) {
		h := newHarness("stop:1")
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- Run(ctx, h.opts) }()
		waitFor(t, "the child", func() bool { return len(h.stdout.starts()) == 1 })
		stop()
		var ee *ExitError
		if err := <-done; !errors.As(err, &ee) || ee.Code != 1 {
			t.Fatalf("err = %v, want an *ExitError with code 1", err)
		}
	})
	t.Run("KilledAfterStopTimeout", func(t *testing.T) {
		h := newHarness("hang")
		h.opts.StopTimeout = 200 * time.Millisecond
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- Run(ctx, h.opts) }()
		waitFor(t, "the child", func() bool { return len(h.stdout.starts()) == 1 })
		stop()
		err := <-done
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Code != 128+int(syscall.SIGKILL) {
			t.Fatalf("err = %v, want an *ExitError for SIGKILL", err)
		}
		assertGone(t, h.stdout.starts()[0].pid)
	})
	t.Run("StoppedDuringBackoff", func(t *testing.T) {
		h := newHarness("exit:1")
		waiting := make(chan time.Duration, 2)
		h.opts.Sleep = func(ctx context.Context, d time.Duration) error {
			waiting <- d
			return sleep(ctx, d) // the real wait
		}
		h.opts.InitialBackoff = time.Hour
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- Run(ctx, h.opts) }()
		if d := <-waiting; d != 0 {
			t.Fatalf("first crash: waiting %v, want a restart at once", d)
		}
		if d := <-waiting; d != time.Hour {
			t.Fatalf("second crash: waiting %v", d)
		}
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run kept waiting out its backoff after ctx ended")
		}
	})
	t.Run("ErrStart", func(t *testing.T) {
		h := newHarness("exit:0")
		h.opts.Path = filepath.Join(t.TempDir(), "missing")
		err := Run(context.Background(), h.opts)
		var ee *ExitError
		if err == nil || errors.As(err, &ee) {
			t.Fatalf("err = %v, want a start error", err)
		}
	})
}

// TestEndToEnd runs the test child as a real -supervise parent and signals it, as an operator would.
func TestEndToEnd(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			out := &syncBuffer{}
			cmd := exec.Command(childBin, "-supervise", "-x")
			cmd.Env = []string{fmt.Sprintf("CHILD_PLAN=exit:%d,sleep", memstats.ExitRestart)}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the restarted child", func() bool { return len(out.starts()) == 2 })
			cmd.Process.Signal(sig)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("parent: %v\n%s", err, out)
			}
			starts := out.starts()
			if starts[1].restarts != 1 || starts[1].args != `["-x"]` {
				t.Fatalf("restarted child: %+v", starts[1])
			}
			for _, s := range starts {
				assertGone(t, s.pid)
			}
			for _, want := range []string{"child stopping on a signal", "parent done"} {
				if !bytes.Contains([]byte(out.String()), []byte(want)) {
					t.Fatalf("missing %q:\n%s", want, out)
				}
			}
		})
	}
}

func readyLines(out string) []string {
	return regexp.MustCompile(`child ready pid=\d+`).FindAllString(out, -1)
}

// TestCrashWindowBound: the window keeps at most max+1 crash times, however many crashes come.
func TestCrashWindowBound(t *testing.T) {
	w := crashWindow{max: 3, within: 10 * time.Minute}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 1000 {
		w.add(t0.Add(time.Duration(i) * time.Second))
		if w.len() > 4 {
			t.Fatalf("after %d crashes the window holds %d times, want at most 4", i+1, w.len())
		}
	}
	w = crashWindow{max: 3, within: time.Minute}
	for i := range 100 {
		if w.add(t0.Add(time.Duration(i) * 30 * time.Second)) {
			t.Fatalf("crash %d: gave up with at most 2 crashes a minute and a limit of 3", i+1)
		}
	}
	if w := (crashWindow{}); w.add(t0) || w.len() != 0 {
		t.Fatal("no limit: nothing is kept, nothing gives up")
	}
}

// TestKilledParentTakesChildren: SIGKILL of the parent ends its child (parent-death signal).
func TestKilledParentTakesChildren(t *testing.T) {
	out := &syncBuffer{}
	cmd := exec.Command(childBin, "-supervise")
	cmd.Env = []string{"CHILD_PLAN=ready"}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the child ready", func() bool { return len(readyLines(out.String())) == 1 })
	child := out.starts()[0].pid
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	waitFor(t, "the child gone", func() bool {
		if err := syscall.Kill(child, 0); errors.Is(err, syscall.ESRCH) {
			return true
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		return err != nil || strings.Contains(string(stat), ") Z ")
	})
}

func TestChildArgs(t *testing.T) {
	in := []string{"-supervise", "--supervise", "--supervise=true", "-supervise=false", "-port", "8080",
		"-supervisee", "---supervise", "--", "-supervise"}
	want := []string{"-port", "8080", "-supervisee", "---supervise", "--", "-supervise"}
	if got := ChildArgs(in); !slices.Equal(got, want) {
		t.Fatalf("ChildArgs = %q, want %q", got, want)
	}
}

func TestChildEnv(t *testing.T) {
	got := ChildEnv([]string{"A=1", "SUPERVISE=true", "EVENTIDE_RESTARTS=9", "B=2"}, 3)
	want := []string{"A=1", "B=2", "SUPERVISE=false", "EVENTIDE_RESTARTS=3"}
	if !slices.Equal(got, want) {
		t.Fatalf("ChildEnv = %q, want %q", got, want)
	}
}

func TestRestartsFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		environ []string
		want    int
	}{
		{"Unsupervised", []string{"A=1"}, 0},
		{"OK", []string{"EVENTIDE_RESTARTS=4"}, 4},
		{"LastWins", []string{"EVENTIDE_RESTARTS=1", "EVENTIDE_RESTARTS=2"}, 2},
		{"Garbage", []string{"EVENTIDE_RESTARTS=many"}, 0},
		{"Negative", []string{"EVENTIDE_RESTARTS=-3"}, 0},
		{"PrefixOnly", []string{"EVENTIDE_RESTARTSX=5"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RestartsFromEnv(tt.environ); got != tt.want {
				t.Fatalf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, what, cond)
}
