// Package embedded runs FerretDB in-process on SQLite so Eventide needs no database server.
//
// A [Server] speaks the MongoDB wire protocol on a loopback TCP address and
// stores its data in SQLite files inside [Options.Dir]; any MongoDB driver
// (go.mongodb.org/mongo-driver/v2) can connect to [Server.URI].
//
// # Write serialization
//
// FerretDB 1.x implements every update (update, findAndModify, upserts) as
// read → modify in Go → replace the whole document by _id, without a
// transaction. Concurrent updates of one document therefore lose writes, and a
// conditional update such as
//
//	findAndModify({_id: X, taken: {$lt: N}}, {$inc: {taken: 1}})
//
// can succeed more often than N times. To make single-document writes atomic,
// as they are in MongoDB, the Server accepts client connections itself and
// forwards them to FerretDB (listening on an internal loopback port) through a
// small proxy that lets only one command that may write (anything but a known
// read-only command such as find, getMore, aggregate, count, distinct, hello,
// list*) into FerretDB at a time: such a request is forwarded only after the
// response to the previous one has been received. FerretDB answers every
// request exactly once, so this is exact. Reads are not serialized; SQLite
// serializes writes anyway.
//
// The proxy also lets [Server.Close] drop client connections at once; FerretDB
// alone waits 3 seconds for connected clients before it stops.
//
// # Multiple servers
//
// Several servers may run in one process at the same time as long as each has
// its own directory. A directory must not be used by two running servers.
// A server can be stopped and started again on the same address and directory
// within one process; data survives the restart.
package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// DefaultAddr is the listen address used when [Options.Addr] is empty.
const DefaultAddr = "127.0.0.1:0"

// Options configure [Start].
type Options struct {
	// Dir is the directory for the SQLite files; created (0o750) if missing.
	Dir string

	// Addr is the TCP listen address; default "127.0.0.1:0".
	// Only loopback hosts ("localhost", 127.0.0.0/8, ::1) are accepted.
	// Port 0 picks a free port; see [Server.Addr].
	Addr string

	// Logger receives FerretDB's log records at WARN and above; records below WARN
	// are dropped (Enabled reports false for them), as are a few benign WARN
	// records FerretDB emits routinely (see noiseFilter). nil discards everything.
	Logger *slog.Logger
}

// Server is a running embedded FerretDB instance.
type Server struct {
	addr string
	uri  string
	ln   net.Listener

	backendAddr string       // FerretDB's own (internal) listener
	log         *slog.Logger // WARN+ filtered

	// sem admits one writing command at a time into FerretDB; see the package documentation.
	sem chan struct{}

	closing   chan struct{} // closed when Close starts
	stopped   chan struct{} // closed when the proxy and FerretDB have stopped
	closeOnce sync.Once

	cancelRun context.CancelFunc
	runDone   chan struct{} // closed when (*ferretdb.FerretDB).Run has returned
	runErr    error         // written before runDone is closed

	wg    sync.WaitGroup // accept loop and connection handlers
	mu    sync.Mutex
	conns map[net.Conn]struct{} // open client and backend connections; nil after Close
}

// newMu serializes ferretdb.New: it writes the package-level
// version.Get().Package on every call, which is a data race when two servers
// are started concurrently.
var newMu sync.Mutex

// Start starts FerretDB with the SQLite backend and returns once it accepts
// connections on [Server.Addr]. ctx bounds the start-up only; the server runs
// until [Server.Close].
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("embedded: Options.Dir is empty")
	}

	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("embedded: data dir: %w", err)
	}

	if err = os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded: data dir: %w", err)
	}

	addr := opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}

	host, err := loopbackHost(addr)
	if err != nil {
		return nil, err
	}

	if err = ctx.Err(); err != nil {
		return nil, err
	}

	// Bind the public listener first: a busy port then fails cleanly, before
	// FerretDB opens the SQLite files (it leaks its backend if its own bind fails).
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("embedded: listen %s: %w", addr, err)
	}

	var h slog.Handler = slog.DiscardHandler
	if opts.Logger != nil {
		h = opts.Logger.Handler()
	}
	logger := slog.New(NewMinLevelHandler(noiseFilter{h: h}, slog.LevelWarn))

	u := &url.URL{Scheme: "file", Path: filepath.ToSlash(dir) + "/", OmitHost: true}

	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: net.JoinHostPort(host, "0")},
		Handler:   "sqlite",
		SQLiteURL: u.String(),
		Logger:    logger,
	})
	newMu.Unlock()

	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("embedded: start FerretDB: %w", err)
	}

	// FerretDB binds its listener inside New, so MongoDBURI already reports
	// the real port.
	backendURI, err := url.Parse(f.MongoDBURI())
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("embedded: parse FerretDB URI: %w", err)
	}

	runCtx, cancelRun := context.WithCancel(context.Background())
	s := &Server{
		addr:        ln.Addr().String(),
		ln:          ln,
		backendAddr: backendURI.Host,
		log:         logger,
		sem:         make(chan struct{}, 1),
		closing:     make(chan struct{}),
		stopped:     make(chan struct{}),
		cancelRun:   cancelRun,
		runDone:     make(chan struct{}),
		conns:       make(map[net.Conn]struct{}),
	}
	s.uri = (&url.URL{Scheme: "mongodb", Host: s.addr, Path: "/"}).String()

	go func() {
		defer close(s.runDone)
		s.runErr = f.Run(runCtx)
	}()

	s.wg.Add(1)
	go s.acceptLoop()

	if err = waitAccepting(ctx, s.backendAddr); err == nil {
		err = waitAccepting(ctx, s.addr)
	}

	if err != nil {
		closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		_ = s.Close(closeCtx)

		return nil, fmt.Errorf("embedded: waiting for FerretDB: %w", err)
	}

	return s, nil
}

// URI returns the MongoDB connection string, e.g. "mongodb://127.0.0.1:27017/",
// with the port actually bound.
func (s *Server) URI() string {
	return s.uri
}

// Addr returns the host:port actually bound.
func (s *Server) Addr() string {
	return s.addr
}

// Close stops the listener, drops all client connections, and waits (bounded
// by ctx) until FerretDB has stopped and closed the SQLite backend. Commands
// in flight fail with a network error. Close is safe to call more than once and
// concurrently; every call waits for the shutdown to finish.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		close(s.closing)
		_ = s.ln.Close()

		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.conns = nil
		s.mu.Unlock()

		s.cancelRun()

		go func() {
			s.wg.Wait()
			<-s.runDone
			close(s.stopped)
		}()
	})

	select {
	case <-s.stopped:
		return s.runErr
	case <-ctx.Done():
		return fmt.Errorf("embedded: waiting for FerretDB to stop: %w", ctx.Err())
	}
}

// loopbackHost returns addr's host, or an error unless it is a loopback host.
func loopbackHost(addr string) (string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("embedded: invalid listen address %q: %w", addr, err)
	}

	if host == "localhost" {
		return host, nil
	}

	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("embedded: listen address %q is not loopback; only 127.0.0.0/8, ::1 or localhost are allowed", addr)
	}

	return host, nil
}

// waitAccepting dials addr until a TCP connection succeeds or ctx is done.
func waitAccepting(ctx context.Context, addr string) error {
	var d net.Dialer

	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := d.DialContext(dctx, "tcp", addr)
		cancel()

		if err == nil {
			return conn.Close()
		}

		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
