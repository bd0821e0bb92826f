package embedded

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

const (
	// msgHeaderLen is the MongoDB wire protocol message header length.
	msgHeaderLen = 16

	// maxMsgLen is FerretDB's maximum message length (wire.MaxMsgLen,
	// announced to clients as maxMessageSizeBytes).
	maxMsgLen = 48_000_000

	// keepBufLen is the largest message buffer kept for reuse per connection.
	keepBufLen = 1 << 20
)

// acceptLoop accepts client connections until the listener is closed.
func (s *Server) acceptLoop() {
	defer s.wg.Done()

	var backoff time.Duration

	for {
		conn, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closing:
				return
			default:
			}

			if errors.Is(err, net.ErrClosed) {
				return
			}

			// Temporary failure such as EMFILE: back off like net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("embedded: accept failed", slog.Any("error", err), slog.Duration("retry_in", backoff))

			select {
			case <-s.closing:
				return
			case <-time.After(backoff):
			}

			continue
		}

		backoff = 0

		s.wg.Add(1)
		go s.serveConn(conn)
	}
}

// track registers c so that Close closes it; it reports false (and closes c)
// if the server is already closing.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	if s.conns == nil {
		_ = c.Close()
		return false
	}

	s.conns[c] = struct{}{}

	return true
}

// untrack closes c and forgets it.
func (s *Server) untrack(c net.Conn) {
	_ = c.Close()

	s.mu.Lock()
	defer s.mu.Unlock()

	if s.conns != nil {
		delete(s.conns, c)
	}
}

// serveConn forwards messages between one client connection and a new
// connection to FerretDB, admitting one writing request at a time server-wide.
func (s *Server) serveConn(client net.Conn) {
	defer s.wg.Done()

	if !s.track(client) {
		return
	}
	defer s.untrack(client)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()

	var d net.Dialer
	backend, err := d.DialContext(ctx, "tcp", s.backendAddr)
	cancel()

	if err != nil {
		select {
		case <-s.closing:
		default:
			s.log.Warn("embedded: cannot connect to FerretDB", slog.String("backend", s.backendAddr), slog.Any("error", err))
		}

		return
	}

	if !s.track(backend) {
		return
	}
	defer s.untrack(backend)

	// pending has one entry per request forwarded to FerretDB and not yet
	// answered, in order; true means the request holds s.sem. FerretDB answers
	// every request on a connection exactly once and in order, so the response
	// goroutine can match responses to requests by position.
	pending := make(chan bool, 64)

	responsesDone := make(chan struct{})

	// FerretDB → client.
	go func() {
		defer close(responsesDone)
		defer client.Close()
		defer backend.Close()

		r := bufio.NewReader(backend)

		var buf []byte
		for {
			msg, err := readMsg(r, buf)
			if err != nil {
				return
			}

			select {
			case held := <-pending:
				if held {
					<-s.sem
				}
			default:
				// A response to no request: impossible with FerretDB 1.x.
				s.log.Warn("embedded: unexpected response from FerretDB; dropping connection")
				return
			}

			if _, err = client.Write(msg); err != nil {
				return
			}

			buf = reuse(msg)
		}
	}()

	// client → FerretDB.
	func() {
		defer client.Close()
		defer backend.Close()

		r := bufio.NewReader(client)

		var buf []byte
		for {
			msg, err := readMsg(r, buf)
			if err != nil {
				return
			}

			serialize := mustSerialize(msg)
			if serialize {
				select {
				case s.sem <- struct{}{}:
				case <-s.closing:
					return
				case <-responsesDone:
					return
				}
			}

			// Record the request before forwarding it, so that its response
			// always finds it.
			select {
			case pending <- serialize:
			case <-responsesDone:
				if serialize {
					<-s.sem
				}
				return
			}

			if _, err = backend.Write(msg); err != nil {
				return
			}

			buf = reuse(msg)
		}
	}()

	<-responsesDone

	// Both directions have stopped: release what unanswered requests still hold.
	for {
		select {
		case held := <-pending:
			if held {
				<-s.sem
			}
		default:
			return
		}
	}
}

// opMsg is the OP_MSG wire protocol opcode.
const opMsg = 2013

// readCommands are commands that only read data. Everything else, including
// unknown commands and non-OP_MSG messages, is serialized. (FerretDB 1.x does
// not support the writing aggregation stages $out and $merge.)
var readCommands = map[string]struct{}{
	"aggregate": {}, "buildInfo": {}, "buildinfo": {}, "collStats": {}, "collstats": {},
	"connectionStatus": {}, "count": {}, "currentOp": {}, "dataSize": {}, "dbStats": {},
	"dbstats": {}, "distinct": {}, "endSessions": {}, "explain": {}, "find": {},
	"getCmdLineOpts": {}, "getFreeMonitoringStatus": {}, "getLog": {}, "getMore": {},
	"getParameter": {}, "hello": {}, "hostInfo": {}, "isMaster": {}, "ismaster": {},
	"killCursors": {}, "listCollections": {}, "listCommands": {}, "listDatabases": {},
	"listIndexes": {}, "ping": {}, "saslContinue": {}, "saslStart": {},
	"serverStatus": {}, "usersInfo": {}, "validate": {}, "whatsmyuri": {},
}

// mustSerialize reports whether the request msg may modify data and must
// therefore wait for other such requests; see the package documentation.
func mustSerialize(msg []byte) bool {
	name, ok := commandName(msg)
	if !ok {
		return true
	}

	_, read := readCommands[name]

	return !read
}

// commandName returns the command name of an OP_MSG request: the first key of
// its body (kind 0) section.
func commandName(msg []byte) (string, bool) {
	if len(msg) < msgHeaderLen+5 || int32(binary.LittleEndian.Uint32(msg[12:])) != opMsg {
		return "", false
	}

	end := len(msg)
	if binary.LittleEndian.Uint32(msg[16:])&1 != 0 { // checksumPresent
		end -= 4
	}

	for p := msgHeaderLen + 4; p < end; {
		kind := msg[p]
		p++

		if p+4 > end {
			return "", false
		}

		size := int(int32(binary.LittleEndian.Uint32(msg[p:])))
		if size < 5 || p+size > end {
			return "", false
		}

		switch kind {
		case 0:
			// BSON document: int32 length, then elements (type byte, cstring name, value).
			doc := msg[p : p+size]
			if doc[4] == 0 {
				return "", false // empty document
			}

			n := bytes.IndexByte(doc[5:], 0)
			if n <= 0 {
				return "", false
			}

			return string(doc[5 : 5+n]), true

		case 1:
			// Document sequence: int32 size (including itself), identifier, documents.
			p += size

		default:
			return "", false
		}
	}

	return "", false
}

// readMsg reads one complete wire protocol message from r into buf (grown as needed).
func readMsg(r io.Reader, buf []byte) ([]byte, error) {
	if cap(buf) < msgHeaderLen {
		buf = make([]byte, 0, 4096)
	}

	buf = buf[:4]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}

	n := int(int32(binary.LittleEndian.Uint32(buf)))
	if n < msgHeaderLen || n > maxMsgLen {
		return nil, fmt.Errorf("embedded: invalid message length %d", n)
	}

	if cap(buf) < n {
		nb := make([]byte, n)
		copy(nb, buf[:4])
		buf = nb
	}

	buf = buf[:n]
	if _, err := io.ReadFull(r, buf[4:]); err != nil {
		return nil, err
	}

	return buf, nil
}

// reuse returns msg's buffer for the next message unless it is large.
func reuse(msg []byte) []byte {
	if cap(msg) > keepBufLen {
		return nil
	}

	return msg[:0]
}
