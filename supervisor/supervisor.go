// Package supervisor is the -supervise parent: it holds the listening sockets and runs the server
// as a child process on them, replacing it when it asks for a restart (the next child serves
// before the old one drains) or crashes (at once, then with backoff), and passes a stop on to it.
package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
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
	// EnvListenFDs names the listening sockets the child inherits, "name:fd" comma-separated
	// (such as "http:3,metrics:4"), in the order of Options.Listeners.
	EnvListenFDs = "EVENTIDE_LISTEN_FDS"
	// EnvControlFD is the descriptor of the pipe on which the child tells the parent it is
	// serving ("ready") or asks to be replaced ("restart"), one word a line.
	EnvControlFD = "EVENTIDE_CONTROL_FD"
)

// What a child writes on its control pipe.
const (
	msgReady   = "ready"
	msgRestart = "restart"
)

// ExitConfig is the server's exit status for a configuration it cannot use: restarting would not
// help, so Run returns it.
const ExitConfig = 2

// ExitGaveUp is Run's exit status after too many crashes.
const ExitGaveUp = 1

// Listener is a listening socket the parent holds and every child inherits, so that it outlives
// each child: connections wait in its backlog while no child accepts.
type Listener struct {
	Name string   // what the child asks for it by (Inherited.Listener)
	File *os.File // the socket, such as (*net.TCPListener).File(); Run does not close it
}

// Options configures Run; zero values select the defaults.
type Options struct {
	Path string   // the program to run; default os.Executable()
	Args []string // the parent's arguments, without the program name; Run drops -supervise from them
	Env  []string // the parent's environment; Run sets SUPERVISE=false and EVENTIDE_RESTARTS on top

	// Listeners are handed to every child, from descriptor 3 on (EnvListenFDs).
	Listeners []Listener

	Stdout, Stderr io.Writer    // the child's; default os.Stdout, os.Stderr
	Logger         *slog.Logger // nil discards

	// InitialBackoff is the wait before the second restart after crashes in a row (the first is at
	// once), doubling up to MaxBackoff; default 500ms, 30s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	HealthyAfter   time.Duration // a child that ran this long before crashing is restarted at once again; default 60s
	RestartDelay   time.Duration // wait before replacing a child that exited with ExitRestart; default 100ms
	// MaxRestarts is how many crashes (not restarts asked for) within CrashWindow are restarted:
	// the next one makes Run give up with ExitGaveUp. 0: no limit.
	MaxRestarts int
	CrashWindow time.Duration // default 10m
	StopTimeout time.Duration // after SIGTERM, SIGKILL after this long; default 20s
	// ReadyTimeout bounds how long a replacement may take to report ready while the old child
	// serves on: then it is killed, which counts as a crash. Default 2m.
	ReadyTimeout time.Duration

	// Sleep waits d or until ctx ends, returning ctx's error then; tests replace it to record the
	// backoff instead of waiting. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now tells how long a child ran and when it crashed; tests replace it. Default time.Now.
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
	setDefault(&o.CrashWindow, 10*time.Minute)
	setDefault(&o.StopTimeout, 20*time.Second)
	setDefault(&o.ReadyTimeout, 2*time.Minute)
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

// Run runs the child until it is done, replacing it:
//   - when it asks for a restart on its control pipe: the next child starts on the same sockets,
//     and only once it reports ready is the old one sent SIGTERM to drain, so no connection is
//     refused (both accept during the overlap); a replacement not ready within ReadyTimeout
//     is killed, which counts as a crash;
//   - after RestartDelay when it exits with memstats.ExitRestart (a child that could not ask);
//   - when it crashes (any other non-zero status, or a signal the supervisor did not send): at
//     once, then after InitialBackoff doubling up to MaxBackoff while crashes follow each other
//     (a child that ran HealthyAfter starts the count again). The sockets stay open meanwhile, so
//     clients wait rather than being refused. The crash after MaxRestarts within CrashWindow makes
//     Run give up: *ExitError with ExitGaveUp.
//
// A child that exits with ExitConfig before it reported ready rejected its configuration: Run
// stops and returns an *ExitError with ExitConfig (a Go panic also exits 2, but after ready it
// counts as a crash). A child that exits 0 on its own ends Run with nil.
//
// Every child gets SIGTERM when the parent dies, even by SIGKILL (Linux: PR_SET_PDEATHSIG).
// When ctx ends (the parent got SIGINT or SIGTERM), Run sends SIGTERM to every child, waits up to
// StopTimeout, then kills; it returns nil if the serving child then exits with status 0, of the
// SIGTERM, or with memstats.ExitRestart, and an *ExitError otherwise. Run returns only once every
// child it started is gone. Any other error means a child could not be started.
func Run(ctx context.Context, opts Options) error {
	o, err := opts.withDefaults()
	if err != nil {
		return err
	}
	l := newLauncher()
	defer l.close()
	r := &runner{o: o, args: ChildArgs(o.Args), launch: l, events: make(chan event),
		live: map[*child]bool{}, crashes: crashWindow{max: o.MaxRestarts, within: o.CrashWindow}}
	return r.run(ctx)
}

// child is one process Run started.
type child struct {
	cmd      *exec.Cmd
	pid      int
	restarts int
	started  time.Time
	ready    bool
	stopping bool        // sent SIGTERM by the supervisor: its exit is expected
	kill     *time.Timer // SIGKILL after StopTimeout once stopping
	killed   atomic.Bool
}

type eventKind int

const (
	evReady eventKind = iota
	evRestart
	evExit // always a child's last event
)

type event struct {
	c    *child
	kind eventKind
}

type runner struct {
	o        Options
	args     []string
	launch   *launcher
	events   chan event
	live     map[*child]bool
	crashes  crashWindow
	restarts int
	backoff  time.Duration // the next crash's delay
}

func (r *runner) run(ctx context.Context) error {
	log := r.o.Logger
	cur, err := r.start()
	if err != nil {
		return err
	}
	var next *child // the child replacing cur, until it is ready
	readyTimer := time.NewTimer(time.Hour)
	readyTimer.Stop()
	defer readyTimer.Stop()
	for {
		var ev event
		select {
		case <-ctx.Done():
			return r.stopAll(cur)
		case <-readyTimer.C:
			if next != nil && !next.ready {
				log.Error("next child not ready in time: killing it", "pid", next.pid, "timeout", r.o.ReadyTimeout)
				_ = next.cmd.Process.Kill() // its exit is a crash of the replacement
			}
			continue
		case ev = <-r.events:
		}
		c := ev.c
		switch ev.kind {
		case evReady:
			c.ready = true
			log.Info("child ready", "pid", c.pid)
			if c == next {
				log.Info("draining the replaced child", "pid", cur.pid, "next", c.pid)
				r.stop(cur)
				cur, next = next, nil
			}
			continue
		case evRestart:
			if c != cur || next != nil || c.stopping {
				continue
			}
			r.restarts++
			log.Warn("child asked for a restart: starting the next one first", "pid", c.pid)
			if next, err = r.start(); err != nil {
				return r.giveUp(cur, err)
			}
			readyTimer.Reset(r.o.ReadyTimeout)
			continue
		}

		// evExit
		delete(r.live, c)
		if c.kill != nil {
			c.kill.Stop()
		}
		ex := exitOf(c)
		if c.stopping {
			if ex.code != 0 {
				log.Error("drained child exited with an error", "pid", ex.pid, "status", ex.code, "signal", ex.signal)
			} else {
				log.Info("drained child exited", "pid", ex.pid)
			}
			continue
		}
		ran := r.o.Now().Sub(c.started)
		switch {
		case ex.code == 0:
			log.Info("child exited", "pid", ex.pid, "status", 0)
			return r.giveUp(nil, nil)
		case ex.code == ExitConfig && !c.ready:
			log.Error("child rejected its configuration: not restarting", "pid", ex.pid, "status", ex.code)
			return r.giveUp(nil, &ExitError{Code: ExitConfig, Restarts: r.restarts, Reason: "configuration error"})
		}
		var delay time.Duration
		if ex.code == memstats.ExitRestart {
			delay = r.o.RestartDelay
			log.Warn("child asked for a restart", "pid", ex.pid, "status", ex.code, "ran", ran, "restart_in", delay)
		} else {
			if r.crashes.add(r.o.Now()) {
				log.Error("giving up: too many crashes", "pid", ex.pid, "status", ex.code, "signal", ex.signal,
					"crashes", r.crashes.len(), "within", r.o.CrashWindow)
				return r.giveUp(nil, &ExitError{Code: ExitGaveUp, Restarts: r.restarts, Reason: "too many crashes"})
			}
			if ran >= r.o.HealthyAfter {
				r.backoff = 0
			}
			delay = r.backoff
			if r.backoff == 0 {
				r.backoff = r.o.InitialBackoff
			} else {
				r.backoff = min(2*r.backoff, r.o.MaxBackoff)
			}
			log.Error("child crashed", "pid", ex.pid, "status", ex.code, "signal", ex.signal,
				"ran", ran, "restart_in", delay)
		}
		switch c {
		case next: // the replacement failed: cur serves on until another one, after the delay, is ready
			next = nil
		case cur:
			cur = nil
			if next != nil { // the replacement is on its way, on the same socket
				cur, next = next, nil
				continue
			}
		default:
			continue
		}
		if err := r.o.Sleep(ctx, delay); err != nil {
			return r.stopAll(cur) // stopped while waiting
		}
		r.restarts++
		started, err := r.start()
		if err != nil {
			return r.giveUp(cur, err)
		}
		if cur == nil {
			cur = started
		} else {
			next = started
			readyTimer.Reset(r.o.ReadyTimeout)
		}
	}
}

// start starts the next child on the listeners, with its control pipe.
func (r *runner) start() (*child, error) {
	o := r.o
	cr, cw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("supervisor: control pipe: %w", err)
	}
	cmd := exec.Command(o.Path, r.args...)
	env := ChildEnv(o.Env, r.restarts)
	fds := make([]string, 0, len(o.Listeners))
	for i, l := range o.Listeners {
		cmd.ExtraFiles = append(cmd.ExtraFiles, l.File)
		fds = append(fds, l.Name+":"+strconv.Itoa(3+i))
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, cw)
	if len(fds) > 0 {
		env = append(env, EnvListenFDs+"="+strings.Join(fds, ","))
	}
	cmd.Env = append(env, EnvControlFD+"="+strconv.Itoa(3+len(o.Listeners)))
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	cmd.SysProcAttr = childAttr()
	// Bounds the copying of output (when Stdout is not a file) once the child is gone, should a
	// grandchild hold the pipe open.
	cmd.WaitDelay = time.Second
	err = r.launch.start(cmd)
	cw.Close() // the child has its copy; EOF on cr once it is gone
	if err != nil {
		cr.Close()
		return nil, fmt.Errorf("supervisor: starting %s: %w", o.Path, err)
	}
	c := &child{cmd: cmd, pid: cmd.Process.Pid, restarts: r.restarts, started: o.Now()}
	r.live[c] = true
	o.Logger.Info("child started", "pid", c.pid, "restarts", c.restarts)
	controlDone := make(chan struct{})
	go func() {
		defer close(controlDone)
		defer cr.Close()
		sc := bufio.NewScanner(io.LimitReader(cr, 1<<20))
		for sc.Scan() {
			switch sc.Text() {
			case msgReady:
				r.events <- event{c: c, kind: evReady}
			case msgRestart:
				r.events <- event{c: c, kind: evRestart}
			}
		}
	}()
	go func() {
		_ = cmd.Wait() // the status is read from ProcessState; an I/O error changes nothing here
		cr.Close()     // a grandchild holding the pipe must not keep the exit from being seen
		<-controlDone
		r.events <- event{c: c, kind: evExit}
	}()
	return c, nil
}

// stop sends c SIGTERM, and SIGKILL after StopTimeout.
func (r *runner) stop(c *child) {
	if c == nil || c.stopping {
		return
	}
	c.stopping = true
	r.o.Logger.Info("stopping child", "pid", c.pid, "timeout", r.o.StopTimeout)
	_ = c.cmd.Process.Signal(syscall.SIGTERM) // an error means it has just exited: its event will say
	c.kill = time.AfterFunc(r.o.StopTimeout, func() {
		r.o.Logger.Error("child did not stop in time: killing it", "pid", c.pid, "timeout", r.o.StopTimeout)
		c.killed.Store(true)
		_ = c.cmd.Process.Kill()
	})
}

// waitAll waits until every child has exited, and returns cur's exit (zero when cur is nil).
func (r *runner) waitAll(cur *child) exit {
	var last exit
	for len(r.live) > 0 {
		ev := <-r.events
		if ev.kind != evExit {
			continue
		}
		delete(r.live, ev.c)
		if ev.c.kill != nil {
			ev.c.kill.Stop()
		}
		ex := exitOf(ev.c)
		if ev.c == cur {
			last = ex
		} else {
			r.o.Logger.Info("child exited", "pid", ex.pid, "status", ex.code)
		}
	}
	return last
}

// stopAll stops every child because ctx ended and returns Run's result from cur's exit.
func (r *runner) stopAll(cur *child) error {
	for c := range r.live {
		r.stop(c)
	}
	if cur == nil || !r.live[cur] {
		r.waitAll(nil)
		return nil // stopped between two children
	}
	return stopResult(r.waitAll(cur), r.restarts, r.o.Logger)
}

// giveUp stops every child and returns err.
func (r *runner) giveUp(_ *child, err error) error {
	for c := range r.live {
		r.stop(c)
	}
	r.waitAll(nil)
	return err
}

// exit is how one child ended.
type exit struct {
	pid     int
	code    int    // exit status; 128+n for death by signal n
	signal  string // the signal that killed it, if one did
	stopped bool   // the supervisor told it to stop
	killed  bool   // and it had to be killed after StopTimeout
}

// exitOf reads how c ended; called by Run's loop once c's exit event arrived.
func exitOf(c *child) exit {
	ps := c.cmd.ProcessState
	ex := exit{pid: c.pid, code: ps.ExitCode(), stopped: c.stopping, killed: c.killed.Load()}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		ex.signal = ws.Signal().String()
		ex.code = 128 + int(ws.Signal())
		if ex.stopped && !ex.killed && ws.Signal() == syscall.SIGTERM {
			ex.code = 0 // it died of the SIGTERM we sent, without a handler: a clean stop
		}
	}
	return ex
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

// crashWindow counts crashes within a sliding window; it keeps at most max+1 times.
type crashWindow struct {
	max    int // 0: no limit, nothing kept
	within time.Duration
	times  []time.Time
}

// add records a crash at now and reports whether it is one more than max within the window.
func (w *crashWindow) add(now time.Time) bool {
	if w.max <= 0 {
		return false
	}
	keep := w.times[:0]
	for _, t := range w.times {
		if now.Sub(t) < w.within {
			keep = append(keep, t)
		}
	}
	w.times = append(keep, now)
	if len(w.times) > w.max+1 {
		w.times = w.times[len(w.times)-(w.max+1):]
	}
	return len(w.times) > w.max
}

func (w *crashWindow) len() int { return len(w.times) }

// launcher starts children from one goroutine locked to its OS thread: the parent-death signal
// is sent when the thread that forked the child exits (golang/go#27505), and a locked thread
// does not exit while its goroutine runs, so children live as long as Run does, not as long as
// some thread of the Go runtime.
type launcher struct{ reqs chan launch }

type launch struct {
	cmd *exec.Cmd
	err chan error
}

func newLauncher() *launcher {
	l := &launcher{reqs: make(chan launch)}
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for q := range l.reqs {
			q.err <- q.cmd.Start()
		}
	}()
	return l
}

func (l *launcher) start(cmd *exec.Cmd) error {
	q := launch{cmd: cmd, err: make(chan error, 1)}
	l.reqs <- q
	return <-q.err
}

func (l *launcher) close() { close(l.reqs) }

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
// values they had, and without descriptors a supervisor handed to this process.
func ChildEnv(environ []string, restarts int) []string {
	out := make([]string, 0, len(environ)+2)
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); k == EnvSupervise || k == EnvRestarts || k == EnvListenFDs || k == EnvControlFD {
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
