package embedded

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
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
// connection to FerretDB, admitting one request at a time server-wide.
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

	// held is true while this connection holds s.sem, i.e. between forwarding
	// a request and receiving its response.
	var held atomic.Bool

	release := func() {
		if held.CompareAndSwap(true, false) {
			<-s.sem
		}
	}
	defer release()

	responsesDone := make(chan struct{})

	// FerretDB → client: every received response releases the semaphore.
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

			release()

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

			select {
			case s.sem <- struct{}{}:
				held.Store(true)
			case <-s.closing:
				return
			case <-responsesDone:
				return
			}

			if _, err = backend.Write(msg); err != nil {
				return
			}

			buf = reuse(msg)
		}
	}()

	<-responsesDone
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
