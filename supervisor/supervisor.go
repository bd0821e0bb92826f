// Package supervisor is the -supervise parent: it runs the server as a child process and restarts
// it, with backoff, when it crashes or asks for a restart (memstats.ExitRestart), and passes a
// stop on to it.
package supervisor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eventide/server/memstats"
)

// The environment a child is started with, on top of the parent's.
const (
	// EnvSupervise is set to "false" so that the child serves instead of supervising in turn.
	EnvSupervise = "SUPERVISE"
	// EnvRestarts holds how many times the child was restarted before this start: 0 for the first.
	EnvRestarts = "EVENTIDE_RESTARTS"
)

// ExitConfig is the server's exit status for a configuration it cannot use: restarting would not
// help, so Run returns it.
const ExitConfig = 2

// Options configures Run; zero values select the defaults.
type Options struct {
	Path string   // the program to run; default os.Executable()
	Args []string // the parent's arguments, without the program name; Run drops -supervise from them
	Env  []string // the parent's environment; Run sets SUPERVISE=false and EVENTIDE_RESTARTS on top

	Stdout, Stderr io.Writer    // the child's; default os.Stdout, os.Stderr
	Logger         *slog.Logger // nil discards

	InitialBackoff time.Duration // wait before the first restart after a crash; default 500ms, doubling
	MaxBackoff     time.Duration // cap of the doubling; default 30s
	HealthyAfter   time.Duration // a child that ran this long resets the backoff; default 60s
	RestartDelay   time.Duration // wait before restarting a child that exited with ExitRestart; default 100ms
	// ConfigErrorWithin bounds when exit status 2 means a configuration error, which is not
	// restarted: a Go program that panics also exits with 2, and a server that ran longer than
	// this crashed rather than rejected its configuration. Default 10s.
	ConfigErrorWithin time.Duration
	MaxRestarts       int           // restarts before giving up; 0 = unlimited
	StopTimeout       time.Duration // after ctx ends: SIGTERM, then SIGKILL after this long; default 20s

	// Sleep waits d or until ctx ends, returning ctx's error then; tests replace it to record the
	// backoff instead of waiting. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now tells how long a child ran; tests replace it. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() (Options, error) {
	if o.Path == "" {
		p, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("supervisor: finding the program to run: %w", err)
		}
		o.Path = p
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&o.InitialBackoff, 500*time.Millisecond)
	setDefault(&o.MaxBackoff, 30*time.Second)
	setDefault(&o.HealthyAfter, 60*time.Second)
	setDefault(&o.RestartDelay, 100*time.Millisecond)
	setDefault(&o.ConfigErrorWithin, 10*time.Second)
	setDefault(&o.StopTimeout, 20*time.Second)
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ExitError is returned by Run when the child exited in a way that restarting cannot fix, or
// after MaxRestarts; Code is the exit status the parent should end with.
type ExitError struct {
	Code     int
	Restarts int    // restarts done before giving up
	Reason   string // what happened, for the log
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("supervisor: %s (exit status %d after %d restarts)", e.Reason, e.Code, e.Restarts)
}

// ExitCode returns Code.
func (e *ExitError) ExitCode() int { return e.Code }

// Run runs the child until it is done, restarting it:
//   - at once (after RestartDelay) when it exits with memstats.ExitRestart;
//   - after a backoff (InitialBackoff, doubling up to MaxBackoff, back to InitialBackoff once a
//     child ran HealthyAfter) when it crashes: any other non-zero status, or a signal the
//     supervisor did not send.
//
// When ctx ends (the parent got SIGINT or SIGTERM), Run sends SIGTERM to the child, waits up to
// StopTimeout, then kills it; it returns nil if the child then exits with status 0, of the
// SIGTERM, or with memstats.ExitRestart (it was already draining for a restart), and an
// *ExitError otherwise. Run also returns nil when the child exits 0 on its own,
// and an *ExitError with Code 2 when it exits with ExitConfig within ConfigErrorWithin of starting,
// or with the last status after MaxRestarts restarts. Any other error means a child could not be
// started.
func Run(ctx context.Context, opts Options) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	args := ChildArgs(o.Args)
	log := o.Logger
	backoff := o.InitialBackoff
	for restarts := 0; ; restarts++ {
		if ctx.Err() != nil {
			return nil // stopped between two children
		}
		started := o.Now()
		ex, err := runOnce(ctx, o, args, restarts)
		if err != nil {
			return err
		}
		ran := o.Now().Sub(started)
		if ex.stopped {
			return stopResult(ex, restarts, log)
		}
		var delay time.Duration
		switch {
		case ex.code == 0:
			log.Info("child exited", "pid", ex.pid, "status", 0)
			return nil
		case ex.code == ExitConfig && ran < o.ConfigErrorWithin:
			log.Error("child rejected its configuration: not restarting", "pid", ex.pid, "status", ex.code)
			return &ExitError{Code: ExitConfig, Restarts: restarts, Reason: "configuration error"}
		case ex.code == memstats.ExitRestart:
			delay = o.RestartDelay
			log.Warn("child asked for a restart", "pid", ex.pid, "status", ex.code, "ran", ran, "restart_in", delay)
		default:
			if ran >= o.HealthyAfter {
				backoff = o.InitialBackoff
			}
			delay = backoff
			backoff = min(2*backoff, o.MaxBackoff)
			log.Error("child crashed", "pid", ex.pid, "status", ex.code, "signal", ex.signal,
				"ran", ran, "restart_in", delay)
		}
		if o.MaxRestarts > 0 && restarts >= o.MaxRestarts {
			log.Error("giving up: too many restarts", "restarts", restarts, "status", ex.code)
			return &ExitError{Code: ex.code, Restarts: restarts, Reason: "too many restarts"}
		}
		if err := o.Sleep(ctx, delay); err != nil {
			return nil // stopped while waiting: no child runs
		}
	}
}

// exit is how one child ended.
type exit struct {
	pid     int
	code    int    // exit status; 128+n for death by signal n
	signal  string // the signal that killed it, if one did
	stopped bool   // ctx ended and the child was told to stop
	killed  bool   // and it had to be killed after StopTimeout
}

// runOnce starts one child and waits for it, stopping it when ctx ends.
func runOnce(ctx context.Context, o Options, args []string, restarts int) (exit, error) {
	cmd := exec.Command(o.Path, args...)
	cmd.Env = ChildEnv(o.Env, restarts)
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	// Bounds the copying of output (when Stdout is not a file) once the child is gone, should a
	// grandchild hold the pipe open.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return exit{}, fmt.Errorf("supervisor: starting %s: %w", o.Path, err)
	}
	pid := cmd.Process.Pid
	o.Logger.Info("child started", "pid", pid, "restarts", restarts)
	done := make(chan struct{})
	go func() {
		cmd.Wait() // the status is read from ProcessState; an I/O error changes nothing here
		close(done)
	}()

	ex := exit{pid: pid}
	select {
	case <-done:
	case <-ctx.Done():
		ex.stopped = true
		o.Logger.Info("stopping child", "pid", pid, "timeout", o.StopTimeout)
		cmd.Process.Signal(syscall.SIGTERM) // an error means it has just exited: done will say
		t := time.NewTimer(o.StopTimeout)
		select {
		case <-done:
		case <-t.C:
			ex.killed = true
			o.Logger.Error("child did not stop in time: killing it", "pid", pid, "timeout", o.StopTimeout)
			cmd.Process.Kill()
			<-done
		}
		t.Stop()
	}
	ex.code = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ex.signal = ws.Signal().String()
		ex.code = 128 + int(ws.Signal())
		if ex.stopped && !ex.killed && ws.Signal() == syscall.SIGTERM {
			ex.code = 0 // it died of the SIGTERM we sent, without a handler: a clean stop
		}
	}
	return ex, nil
}

func stopResult(ex exit, restarts int, log *slog.Logger) error {
	switch {
	case ex.killed:
		return &ExitError{Code: ex.code, Restarts: restarts, Reason: "child killed: it did not stop in time"}
	case ex.code == memstats.ExitRestart:
		// The stop came while the child was draining for a restart it had asked for: it drained
		// and exited as planned, and no restart is wanted any more.
		log.Info("child stopped while restarting", "pid", ex.pid, "status", ex.code)
		return nil
	case ex.code != 0:
		log.Error("child stopped with an error", "pid", ex.pid, "status", ex.code)
		return &ExitError{Code: ex.code, Restarts: restarts, Reason: "child stopped with an error"}
	default:
		log.Info("child stopped", "pid", ex.pid)
		return nil
	}
}

// ChildArgs returns args without the flag that asked for supervision, in any of its spellings
// (-supervise, --supervise, -supervise=<bool>, --supervise=<bool>); arguments after "--" are kept.
func ChildArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if !isSuperviseFlag(a) {
			out = append(out, a)
		}
	}
	return out
}

func isSuperviseFlag(a string) bool {
	for _, dashes := range []string{"--", "-"} {
		if rest, ok := strings.CutPrefix(a, dashes); ok {
			name, _, _ := strings.Cut(rest, "=")
			return name == "supervise"
		}
	}
	return false
}

// ChildEnv returns environ with SUPERVISE=false and EVENTIDE_RESTARTS=restarts in place of any
// values they had.
func ChildEnv(environ []string, restarts int) []string {
	out := make([]string, 0, len(environ)+2)
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); k == EnvSupervise || k == EnvRestarts {
			continue
		}
		out = append(out, kv)
	}
	return append(out, EnvSupervise+"=false", EnvRestarts+"="+strconv.Itoa(restarts))
}

// RestartsFromEnv returns how many times the supervisor restarted this process, from
// EVENTIDE_RESTARTS in environ (the last one wins): 0 for a first start, an unsupervised process
// or a value that is not a count.
func RestartsFromEnv(environ []string) int {
	n := 0
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, EnvRestarts+"="); ok {
			n, _ = strconv.Atoi(v)
		}
	}
	return max(n, 0)
}
