package httpapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"sync"
	"time"
)

// HTTP streams: Server-Sent Events, where gqlgen's transport.SSE speaks the protocol
// (graphql-sse's distinct connections mode: ":" first, then "event: next" / "event: complete"),
// and multipart subscriptions (multipart.go). streamWriter, between the transport and the
// connection, adds what gqlgen's SSE lacks (the multipart transport writes its own heartbeats,
// and takes the rest). Over plain HTTP/1.1 with the lean transport, a subscription leaves it once
// accepted (leanstream.go: detach) and the event loop does all this; it serves what stays on the
// request's goroutine: TLS, HTTP/2, WS_TRANSPORT=gqlgen, and SSE queries and mutations.
//
//   - a write deadline: each write and flush may wait writeTimeout for the reader, then the
//     stream fails and its request context ends, so a reader that stalls frees its goroutine,
//     subscription and connection instead of holding them for ever;
//   - for SSE, keep-alive comments (": ping") after keepAlive without a write, at event boundaries only
//     (what was written so far ends with a blank line), so proxies and clients keep an idle stream;
//   - no write after the handler returned (gqlgen's own keep-alive goroutine could race with the
//     end of the request).

var errStreamClosed = errors.New("httpapi: stream closed")

type streamWriter struct {
	http.ResponseWriter
	rc           *http.ResponseController
	writeTimeout time.Duration
	fail         func() // ends the request's context

	mu       sync.Mutex
	closed   bool
	started  bool // the header went out
	boundary bool // what was written ends an event (or nothing was written after the header)
	tail     [2]byte
	last     time.Time     // last write, for the keep-alive
	interval time.Duration // of the keep-alive; 0: none
	timer    *time.Timer   // the keep-alive's: a runtime timer, no goroutine waits
}

func newStreamWriter(w http.ResponseWriter, writeTimeout time.Duration, fail func()) *streamWriter {
	return &streamWriter{ResponseWriter: w, rc: http.NewResponseController(w), writeTimeout: writeTimeout, fail: fail}
}

type streamWriterKey struct{}

// withStreamWriter puts the stream writer of an HTTP stream in its request's context: the lean
// streams (leanstream.go) read its write timeout and keep-alive, and detach it.
func withStreamWriter(ctx context.Context, s *streamWriter) context.Context {
	return context.WithValue(ctx, streamWriterKey{}, s)
}

func streamWriterFrom(ctx context.Context) *streamWriter {
	s, _ := ctx.Value(streamWriterKey{}).(*streamWriter)
	return s
}

func (s *streamWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *streamWriter) WriteHeader(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *streamWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeLocked(b)
}

func (s *streamWriter) writeLocked(b []byte) (int, error) {
	if s.closed {
		return 0, errStreamClosed
	}
	s.deadlineLocked()
	n, err := s.ResponseWriter.Write(b)
	if n > 0 {
		s.started = true
		if n >= 2 {
			copy(s.tail[:], b[n-2:n])
		} else {
			s.tail[0], s.tail[1] = s.tail[1], b[0]
		}
		s.boundary = bytes.Equal(s.tail[:], []byte("\n\n"))
		s.last = time.Now()
	}
	if err != nil {
		s.failLocked()
	}
	return n, err
}

// Flush sends what is buffered, within the write deadline.
func (s *streamWriter) Flush() { _ = s.FlushError() }

func (s *streamWriter) FlushError() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushLocked()
}

func (s *streamWriter) flushLocked() error {
	if s.closed {
		return errStreamClosed
	}
	s.deadlineLocked()
	err := s.rc.Flush()
	if err != nil {
		s.failLocked()
	}
	return err
}

func (s *streamWriter) deadlineLocked() {
	if s.writeTimeout > 0 {
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	}
}

// failLocked gives the stream up: nothing more is written, and the request's context ends.
func (s *streamWriter) failLocked() {
	s.closed = true
	s.fail()
}

// keepAlive writes a comment whenever the stream has been idle for interval, until close: a
// runtime timer, re-armed, not a goroutine.
func (s *streamWriter) keepAlive(interval time.Duration) {
	if interval <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.interval = interval
	if !s.closed {
		s.timer = time.AfterFunc(interval, s.tick)
	}
}

// keepAliveInterval is the interval keepAlive was given (0: none).
func (s *streamWriter) keepAliveInterval() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interval
}

func (s *streamWriter) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	next := s.interval
	if s.started && s.boundary {
		if idle := time.Since(s.last); idle < s.interval {
			next = s.interval - idle // written meanwhile: wait out the rest
		} else if _, err := s.writeLocked([]byte(": ping\n\n")); err == nil {
			_ = s.flushLocked()
		}
	}
	if !s.closed {
		s.timer.Reset(next)
	}
}

// close ends the writer when the handler returns: later writes are dropped. The end of the
// response (the last chunk) gets a fresh write deadline; the connection's ConnState hook clears it
// once the connection is idle again.
func (s *streamWriter) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.deadlineLocked()
		s.closed = true
	}
	if s.timer != nil {
		s.timer.Stop()
	}
}

// detach ends the writer when the stream moves to the event loop (its connection hijacked):
// nothing more is written through it, and no deadline is set on the connection nbio now owns.
func (s *streamWriter) detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
}
