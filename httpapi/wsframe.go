package httpapi

import (
	"bytes"
	"errors"
	"io"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// wsFramer is the server side of one websocket on nbio's event loop, framed by gobwas/ws: its
// wsutil.Reader reads the client's frames (header checks, unmasking, the message limit checked
// from each frame's header, fragments with control frames between them, UTF-8 of text
// messages), and each frame the server sends is composed by ws in one write.
//
// nbio's own websocket package (nbhttp/websocket) framed them before; at its initialisation it
// builds a default engine (two task pools, 1 MiB of heap) and it links nbhttp and llib's fork of
// crypto/tls, which cost every process 1.2 MiB of idle RSS whichever WS_TRANSPORT runs
// (BENCHMARKS.md, "Idle RSS"). gobwas/ws has no init-time work. Between messages a wsFramer holds
// no read state (readState, from a pool while a frame or message is part-read).
type wsFramer struct {
	dst io.Writer // the socket: each frame in one Write, so frames never interleave
	h   wsHandler // one interface value, not three func values: a held socket's objects are few

	limit     int64
	onControl wsutil.FrameHandlerFunc // control, made once

	mu   sync.Mutex // the read state: reads are serial, but the early bytes come from elsewhere
	rs   *readState // nil between messages
	done bool       // a close frame or a violation came: nothing more is read
}

// readState is a socket's reading in progress.
type readState struct {
	in      frameFeed
	r       wsutil.Reader
	msg     bytes.Buffer // the message being read; handed over whole, then a new one
	reading bool         // msg's first frame is read: the reader goes on with the message
}

// readStates holds read states between messages: after a message, the reader is reset (its
// state is clean) and the feed and message buffer are empty.
var readStates = sync.Pool{New: func() any {
	s := &readState{}
	s.r.Source = &s.in
	return s
}}

// wsHandler is what a wsFramer hands messages to.
type wsHandler interface {
	// execute runs a job after the jobs before it, off the event loop (nbio.Conn.Execute).
	execute(job func()) bool
	// Run by execute: a whole text or binary message; the peer's close frame (1005: it gave
	// no code).
	message(data []byte)
	peerClose(code int, reason string)
}

// wsFuncs is a wsHandler of three functions.
type wsFuncs struct {
	exec      func(job func()) bool
	onMessage func(data []byte)
	onClose   func(code int, reason string)
}

func (f *wsFuncs) execute(job func()) bool           { return f.exec(job) }
func (f *wsFuncs) message(data []byte)               { f.onMessage(data) }
func (f *wsFuncs) peerClose(code int, reason string) { f.onClose(code, reason) }

func newWSFramer(dst io.Writer, exec func(func()) bool, limit int, onMessage func([]byte), onClose func(int, string)) *wsFramer {
	w := &wsFramer{}
	w.init(dst, &wsFuncs{exec: exec, onMessage: onMessage, onClose: onClose}, limit)
	return w
}

// init makes w, in place (a leanConn holds its framer in itself), the framer of dst for h.
func (w *wsFramer) init(dst io.Writer, h wsHandler, limit int) {
	w.dst, w.h, w.limit = dst, h, int64(limit)
	w.onControl = w.control
}

// state is the socket's read state, from the pool between messages.
func (w *wsFramer) state() *readState {
	if w.rs == nil {
		rs := readStates.Get().(*readState)
		rs.r.State = ws.StateServerSide
		rs.r.CheckUTF8 = true
		rs.r.MaxMessageSize = w.limit
		rs.r.OnIntermediate = w.onControl // a control frame between a message's fragments
		w.rs = rs
	}
	return w.rs
}

// Parse takes what the socket read (data is not kept: nbio reuses its read buffer). A violation
// is answered with a close frame of its code (1002, 1007 for a text message that is not UTF-8,
// 1009 over the limit) and returned: the caller closes the socket.
func (w *wsFramer) Parse(data []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil
	}
	rs := w.state()
	rs.in.add(data)
	err := w.parse(rs)
	if w.done || err != nil {
		w.rs = nil // not back to the pool: part-read
	}
	if err != nil && !errors.Is(err, errPeerClosed) {
		w.done = true
		_ = w.WriteClose(int(violationCode(err)), violationReason(err))
		return err
	}
	if w.rs != nil {
		rs.in.keep()
		if !rs.reading && rs.in.empty() {
			rs.r.OnIntermediate = nil // nothing of this socket stays in the pool
			rs.in.peek.Reset(nil)
			readStates.Put(rs)
			w.rs = nil
		}
	}
	return nil
}

// errPeerClosed stops the parse after the peer's close frame.
var errPeerClosed = errors.New("websocket: the peer closed")

func (w *wsFramer) parse(rs *readState) error {
	for !w.done {
		if !rs.reading {
			h, err := rs.r.NextFrame()
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil // no whole frame header yet
			}
			if err != nil {
				return err
			}
			if h.OpCode.IsControl() {
				if err := w.control(h, &rs.r); err != nil {
					return err
				}
				continue
			}
			rs.reading = true
		}
		// The payload as far as it came; io.ErrUnexpectedEOF: the rest of the message is on its
		// way (the reader keeps its place).
		if _, err := rs.msg.ReadFrom(&rs.r); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return err
		}
		m := rs.msg.Bytes()
		rs.msg = bytes.Buffer{}
		rs.reading = false
		w.h.execute(func() { w.h.message(m) })
	}
	return nil
}

// control handles a control frame, whole in the feed (frameFeed.next): a pong answers a ping,
// a close frame ends the reading and goes to onClose, a pong is dropped.
func (w *wsFramer) control(h ws.Header, body io.Reader) error {
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(body, p); err != nil {
		return err
	}
	switch h.OpCode {
	case ws.OpPing:
		w.h.execute(func() { _ = w.write(ws.OpPong, p) })
	case ws.OpClose:
		code, reason := ws.StatusNoStatusRcvd, ""
		if len(p) > 0 {
			code, reason = ws.ParseCloseFrameData(p)
			if err := ws.CheckCloseFrameData(code, reason); err != nil {
				return err
			}
		}
		w.done = true
		w.h.execute(func() { w.h.peerClose(int(code), reason) })
		return errPeerClosed
	}
	return nil
}

// violationCode is the close code for what the reader found wrong.
func violationCode(err error) ws.StatusCode {
	switch {
	case errors.Is(err, wsutil.ErrMessageTooLarge), errors.Is(err, wsutil.ErrFrameTooLarge):
		return ws.StatusMessageTooBig
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		return ws.StatusInvalidFramePayloadData
	}
	return ws.StatusProtocolError
}

func violationReason(err error) string {
	if violationCode(err) == ws.StatusMessageTooBig {
		return "message too big"
	}
	return err.Error()
}

// WriteText sends one text message, in one frame.
func (w *wsFramer) WriteText(b []byte) error { return w.write(ws.OpText, b) }

// WriteClose sends a close frame with code and reason (cut to what a control frame holds).
func (w *wsFramer) WriteClose(code int, reason string) error {
	return w.write(ws.OpClose, ws.NewCloseFrameBody(ws.StatusCode(code), reason))
}

// write sends one unmasked, unfragmented frame in one write; what the kernel does not take nbio
// keeps, up to its limit.
func (w *wsFramer) write(op ws.OpCode, payload []byte) error {
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}
	buf := getBuffer()
	defer putBuffer(buf)
	buf.Grow(ws.HeaderSize(h) + len(payload))
	if err := ws.WriteHeader(buf, h); err != nil {
		return err
	}
	buf.Write(payload)
	_, err := w.dst.Write(buf.Bytes())
	return err
}

// frameFeed is what a socket has read and its wsutil.Reader has not, as the reader's source.
// wsutil.Reader is written for a blocking connection: it reads a frame header, and the
// control handler a control frame, in one go. On nbio's event loop the rest of either may come
// with a later read, so the feed hands out a header only when all of it is there, and a control
// frame only whole (at most 125 bytes of payload, or the reader refuses it from its header);
// a data frame's payload goes out as it comes, straight into the message's buffer.
// Out of data, it says io.EOF and the reader keeps its place (wsutil.Reader.Read says
// io.ErrUnexpectedEOF in the middle of a message).
type frameFeed struct {
	b    []byte // unread; the socket's read buffer itself during a Parse (keep copies the rest)
	own  bool   // b is the feed's own copy
	head int    // header bytes of the current frame not handed out yet
	body int64  // payload bytes of the current frame not handed out yet
	peek bytes.Reader
	hdr  [ws.MaxHeaderSize - 2]byte
}

// add appends what the socket read.
func (f *frameFeed) add(data []byte) {
	if len(f.b) == 0 {
		f.b, f.own = data, false
		return
	}
	f.b = append(f.b, data...)
	f.own = true
}

// empty reports whether the feed holds nothing, not even part of a frame.
func (f *frameFeed) empty() bool { return len(f.b) == 0 && f.head == 0 && f.body == 0 }

// keep copies what was not read out of the socket's read buffer, once the Parse is over.
func (f *frameFeed) keep() {
	switch {
	case len(f.b) == 0:
		f.b, f.own = nil, false
	case !f.own:
		f.b, f.own = bytes.Clone(f.b), true
	}
}

func (f *frameFeed) Read(p []byte) (int, error) {
	if f.head == 0 && f.body == 0 && !f.next() {
		return 0, io.EOF
	}
	n := len(p)
	if f.head > 0 {
		n = min(n, f.head)
	} else {
		n = int(min(int64(n), f.body))
	}
	n = copy(p[:n], f.b)
	if n == 0 {
		return 0, io.EOF
	}
	f.b = f.b[n:]
	if f.head > 0 {
		f.head -= n
	} else {
		f.body -= int64(n)
	}
	return n, nil
}

// next starts the frame at the front of b, if its header (and a control frame's payload) is all
// there. A header ws cannot read is handed out as it is: the reader then fails on it.
func (f *frameFeed) next() bool {
	f.peek.Reset(f.b)
	h, err := ws.ReadHeaderBuffer(&f.peek, f.hdr[:])
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return false
	}
	if err == nil && h.OpCode.IsControl() && h.Length <= ws.MaxControlFramePayloadSize && int64(f.peek.Len()) < h.Length {
		return false
	}
	f.head = len(f.b) - f.peek.Len()
	if err == nil {
		f.body = h.Length
	}
	return true
}
