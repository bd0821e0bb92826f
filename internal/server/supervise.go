package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/eventide/server/config"
	"github.com/eventide/server/httpapi"
	"github.com/eventide/server/supervisor"
)

// Names of the sockets the -supervise parent hands its children.
const (
	listenerHTTP    = "http"
	listenerMetrics = "metrics"
	listenerPprof   = "pprof"
)

// supervise runs this process as the -supervise parent. It only supervises: it logs to stderr
// (the child owns LOG_FILE's rotation), and holds the sockets, so that connections wait in their
// backlog between two children.
func supervise(ctx context.Context, cfg *config.Config, args, environ []string, stdout, stderr io.Writer) error {
	listeners, closeListeners, err := superviseListeners(cfg)
	if err != nil {
		return err
	}
	defer closeListeners()
	plog := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "supervisor")
	if cfg.MemoryReleaseStartup && ownsProcess.Load() {
		// The parent initialised every package too, and then only waits on its children.
		releaseStartupPages(plog)
	}
	return supervisor.Run(ctx, supervisor.Options{
		Args: args, Env: environ, Stdout: stdout, Stderr: stderr, Logger: plog,
		Listeners: listeners, MaxRestarts: cfg.SuperviseMaxRestarts,
		StopTimeout: cfg.ShutdownDelay + cfg.ShutdownTimeout + 5*time.Second,
	})
}

// superviseListeners binds the sockets the -supervise parent holds for its children, so that
// each outlives every child: the public port, and METRICS_ADDR and PPROF_ADDR when set. closeAll
// closes them all.
func superviseListeners(cfg *config.Config) (_ []supervisor.Listener, closeAll func(), err error) {
	var files []supervisor.Listener
	closeAll = func() {
		for _, l := range files {
			_ = l.File.Close()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	bind := func(name, key, value, addr string) error {
		if addr == "" {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return &config.Error{Key: key, Value: value, Allowed: "must be a free port: " + err.Error()}
		}
		f, err := l.(*net.TCPListener).File()
		_ = l.Close() // f holds the socket
		if err != nil {
			return fmt.Errorf("%s listener: %w", name, err)
		}
		files = append(files, supervisor.Listener{Name: name, File: f})
		return nil
	}
	if err := bind(listenerHTTP, "PORT", strconv.Itoa(cfg.Port), net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))); err != nil {
		return nil, nil, err
	}
	if err := bind(listenerMetrics, "METRICS_ADDR", cfg.MetricsAddr, cfg.MetricsAddr); err != nil {
		return nil, nil, err
	}
	if err := bind(listenerPprof, "PPROF_ADDR", cfg.PprofAddr, cfg.PprofAddr); err != nil {
		return nil, nil, err
	}
	return files, closeAll, nil
}

// listen returns the socket the supervisor handed this process as name, or a new one on addr.
func (a *app) listen(name, addr string) (net.Listener, error) {
	if l := a.inherited.Listener(name); l != nil {
		return l, nil
	}
	return net.Listen("tcp", addr)
}

// checkDataDir makes sure the embedded store can live in dir: it exists (or can be created), is a
// directory, and can be written. Anything else is a configuration error: restarting would not
// help.
func checkDataDir(dir string) error {
	bad := func(why string) error {
		return &config.Error{Key: "DATA_DIR", Value: dir, Allowed: "must be a writable directory: " + why}
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return bad(err.Error())
	}
	if fi, err := os.Stat(dir); err != nil {
		return bad(err.Error())
	} else if !fi.IsDir() {
		return bad("it is not a directory")
	}
	f, err := os.CreateTemp(dir, ".eventide-write-check-*")
	if err != nil {
		return bad(err.Error())
	}
	name := f.Name()
	werr := errors.Join(f.Close(), os.Remove(name))
	if werr != nil {
		return bad(werr.Error())
	}
	return nil
}

// drainCheck is the /readyz check that fails once shutdown began, so load balancers stop sending
// during SHUTDOWN_DELAY while requests are still served.
func (a *app) drainCheck() httpapi.Check {
	return httpapi.Check{Name: "shutdown", Required: true, Probe: func(context.Context) (string, error) {
		if a.draining.Load() {
			return "draining", errors.New("shutting down: send requests elsewhere")
		}
		return "serving", nil
	}}
}

// drain fails /readyz and makes every response close its connection, waits SHUTDOWN_DELAY while
// requests are still served, then stops accepting and waits (up to drainAcceptedWait) for the
// connections already accepted to be answered and closed, before Shutdown may drop them.
func (a *app) drain() {
	a.draining.Store(true)
	a.http.Drain()
	if d := a.cfg.ShutdownDelay; d > 0 {
		a.log.Info("draining: /readyz answers 503 until the listener closes", "shutdown_delay", d)
		time.Sleep(d)
	}
	if a.listener == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainAcceptedWait)
	defer cancel()
	if n := a.listener.stop(ctx); n > 0 {
		a.log.Info("connections still open at shutdown", "connections", n, "waited", drainAcceptedWait)
	}
}

// drainAcceptedWait bounds how long shutdown waits for accepted connections to close: a client
// sends its request at once and a keep-alive one is told to close with its next answer; one that
// stays idle longer (or a websocket, which Shutdown ends) is not waited for long.
const drainAcceptedWait = time.Second

// drainListener lets shutdown stop accepting before net/http's Shutdown: a connection accepted
// just before Shutdown whose request is read after it began is closed unanswered (net/http drops
// it), which under -supervise would fail a request the next process could have served. So
// shutdown closes this listener first (the parent's socket stays open: new connections go to
// the next process), then waits until the Accept under way has returned and every connection
// accepted here was closed: answered, with Connection: close (httpapi's Drain).
type drainListener struct {
	net.Listener
	closeOnce sync.Once
	closeErr  error

	mu        sync.Mutex
	accepting int                     // Accept calls under way
	waiting   map[*drainConn]struct{} // accepted, not closed yet: the open connections
	idle      chan struct{}           // closed once stopped and nothing is under way or waiting
}

func newDrainListener(l net.Listener) *drainListener {
	return &drainListener{Listener: l, waiting: map[*drainConn]struct{}{}}
}

func (l *drainListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	l.accepting++
	l.mu.Unlock()
	c, err := l.Listener.Accept()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.accepting--
	if err != nil {
		l.checkIdle()
		return nil, err
	}
	dc := &drainConn{Conn: c, l: l}
	l.waiting[dc] = struct{}{}
	return dc, nil
}

// Close closes the listener once; Shutdown closing it again after stop is no error.
func (l *drainListener) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.Listener.Close() })
	return l.closeErr
}

func (l *drainListener) closed(c *drainConn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.waiting, c)
	l.checkIdle()
}

// checkIdle closes idle once stopped and nothing is under way; l.mu is held.
func (l *drainListener) checkIdle() {
	if l.idle == nil || l.accepting > 0 || len(l.waiting) > 0 {
		return
	}
	select {
	case <-l.idle:
	default:
		close(l.idle)
	}
}

// stop closes the listener and waits, up to ctx, until the Accept under way has returned and
// every accepted connection was closed. It returns how many were still open when ctx ended.
func (l *drainListener) stop(ctx context.Context) int {
	_ = l.Close()
	l.mu.Lock()
	if l.idle == nil {
		l.idle = make(chan struct{})
	}
	l.checkIdle()
	idle := l.idle
	l.mu.Unlock()
	select {
	case <-idle:
		return 0
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.waiting)
	}
}

// drainConn tells its listener when it is closed.
type drainConn struct {
	net.Conn
	l    *drainListener
	once sync.Once
}

// NetConn is the connection under the drain's bookkeeping (see countedConn.NetConn).
func (c *drainConn) NetConn() net.Conn { return c.Conn }

func (c *drainConn) Close() error {
	c.once.Do(func() { c.l.closed(c) })
	return c.Conn.Close()
}
