package httpapi

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// The frame opcodes (RFC 6455 5.2), as the client frames below are written by hand: what the
// framer reads is not written by the library that reads it.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// fakeFrameConn runs jobs at once and keeps what is written.
type fakeFrameConn struct{ written [][]byte }

func (f *fakeFrameConn) Execute(job func()) bool { job(); return true }
func (f *fakeFrameConn) Write(b []byte) (int, error) {
	f.written = append(f.written, bytes.Clone(b))
	return len(b), nil
}

// clientFrame is one masked frame as a client sends it.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, 0x80|byte(n))
	case n <= 0xFFFF:
		f = append(f, 0x80|126, byte(n>>8), byte(n))
	default:
		f = append(f, 0x80|127)
		f = binary.BigEndian.AppendUint64(f, uint64(n))
	}
	mask := []byte{0x37, 0xfa, 0x21, 0x3d}
	f = append(f, mask...)
	for i, c := range payload {
		f = append(f, c^mask[i&3])
	}
	return f
}

type framerRun struct {
	conn     *fakeFrameConn
	f        *wsFramer
	messages []string
	closes   []int
}

func newFramerRun(limit int) *framerRun {
	r := &framerRun{conn: &fakeFrameConn{}}
	r.f = newWSFramer(r.conn, r.conn.Execute, limit,
		func(b []byte) { r.messages = append(r.messages, string(b)) },
		func(code int, _ string) { r.closes = append(r.closes, code) })
	return r
}

// closeSent is the code of the close frame the framer wrote last, or 0.
func (r *framerRun) closeSent() int {
	for i := len(r.conn.written) - 1; i >= 0; i-- {
		if w := r.conn.written[i]; len(w) >= 4 && w[0] == 0x80|opClose {
			return int(binary.BigEndian.Uint16(w[2:4]))
		}
	}
	return 0
}

func TestWSFramer(t *testing.T) {
	t.Run("MessagesSplitAnywhereAcrossReads", func(t *testing.T) {
		r := newFramerRun(1 << 20)
		long := strings.Repeat("é", 40_000) // a 16-bit length, and a rune cut between reads
		stream := append(clientFrame(true, opText, []byte(`{"type":"ping"}`)), clientFrame(true, opText, []byte(long))...)
		for i := 0; i < len(stream); i += 1000 {
			if err := r.f.Parse(stream[i:min(i+1000, len(stream))]); err != nil {
				t.Fatal(err)
			}
		}
		if len(r.messages) != 2 || r.messages[0] != `{"type":"ping"}` || r.messages[1] != long {
			t.Fatalf("got %d messages (%.40q…)", len(r.messages), r.messages)
		}
		if r.f.rs != nil {
			t.Fatalf("holds %d + %d bytes between messages, want no read state", cap(r.f.rs.in.b), r.f.rs.msg.Cap())
		}
	})
	t.Run("ByteByByte", func(t *testing.T) {
		// Every header, payload and control frame cut at every byte: the reader reads only whole
		// headers and whole control frames, and goes on with a payload where it stopped.
		r := newFramerRun(1 << 20)
		var s []byte
		s = append(s, clientFrame(true, opText, []byte(`{"type":"connection_init"}`))...)
		s = append(s, clientFrame(false, opText, []byte(strings.Repeat("a", 300)))...) // a 16-bit length
		s = append(s, clientFrame(true, opPing, []byte("p1"))...)
		s = append(s, clientFrame(true, opPong, nil)...)
		s = append(s, clientFrame(false, opContinuation, nil)...)
		s = append(s, clientFrame(true, opContinuation, []byte("é"))...)
		s = append(s, clientFrame(true, opPing, nil)...)
		s = append(s, clientFrame(true, opBinary, []byte{0xff})...) // no UTF-8 check: binary
		for i := range s {
			if err := r.f.Parse(s[i : i+1]); err != nil {
				t.Fatalf("byte %d: %v", i, err)
			}
		}
		want := []string{`{"type":"connection_init"}`, strings.Repeat("a", 300) + "é", "\xff"}
		if len(r.messages) != 3 || r.messages[0] != want[0] || r.messages[1] != want[1] || r.messages[2] != want[2] {
			t.Fatalf("messages %.60q, want %.60q", r.messages, want)
		}
		if len(r.conn.written) != 2 || !bytes.Equal(r.conn.written[0], []byte{0x80 | opPong, 2, 'p', '1'}) ||
			!bytes.Equal(r.conn.written[1], []byte{0x80 | opPong, 0}) {
			t.Fatalf("wrote % x, want two pongs with the pings' payloads", r.conn.written)
		}
		if r.f.rs != nil {
			t.Fatalf("holds %d + %d bytes between messages, want no read state", cap(r.f.rs.in.b), r.f.rs.msg.Cap())
		}
	})
	t.Run("AFrameHeaderHeldUntilWhole", func(t *testing.T) {
		r := newFramerRun(1 << 20)
		f := clientFrame(true, opText, []byte(strings.Repeat("b", 70_000))) // a 64-bit length
		if err := r.f.Parse(f[:9]); err != nil {
			t.Fatal(err)
		}
		if r.f.rs == nil || len(r.f.rs.in.b) != 9 {
			t.Fatalf("keeps %v of a 14-byte header, want the 9 bytes that came", r.f.rs)
		}
		if err := r.f.Parse(f[9:]); err != nil {
			t.Fatal(err)
		}
		if len(r.messages) != 1 || len(r.messages[0]) != 70_000 {
			t.Fatalf("got %d messages", len(r.messages))
		}
	})
	t.Run("FragmentsWithAPingBetween", func(t *testing.T) {
		r := newFramerRun(1 << 20)
		var s []byte
		s = append(s, clientFrame(false, opText, []byte("hel"))...)
		s = append(s, clientFrame(true, opPing, []byte("p"))...)
		s = append(s, clientFrame(false, opContinuation, []byte("lo "))...)
		s = append(s, clientFrame(true, opContinuation, []byte("world"))...)
		if err := r.f.Parse(s); err != nil {
			t.Fatal(err)
		}
		if len(r.messages) != 1 || r.messages[0] != "hello world" {
			t.Fatalf("messages %q", r.messages)
		}
		if len(r.conn.written) != 1 || !bytes.Equal(r.conn.written[0], []byte{0x80 | opPong, 1, 'p'}) {
			t.Fatalf("answered the ping with %v, want a pong with its payload", r.conn.written)
		}
	})
	t.Run("PeerClose", func(t *testing.T) {
		r := newFramerRun(1 << 20)
		if err := r.f.Parse(clientFrame(true, opClose, []byte{0x03, 0xe8, 'b', 'y', 'e'})); err != nil {
			t.Fatal(err)
		}
		// Nothing is read after the close frame.
		if err := r.f.Parse(clientFrame(true, opText, []byte("late"))); err != nil {
			t.Fatal(err)
		}
		r2 := newFramerRun(1 << 20)
		if err := r2.f.Parse(clientFrame(true, opClose, nil)); err != nil {
			t.Fatal(err)
		}
		if len(r.closes) != 1 || r.closes[0] != 1000 || len(r2.closes) != 1 || r2.closes[0] != 1005 || len(r.messages) != 0 {
			t.Fatalf("close codes %v and %v, messages %q: want [1000] and [1005] (no code), no message", r.closes, r2.closes, r.messages)
		}
		if len(r.conn.written) != 0 {
			t.Fatalf("wrote % x: the close is answered by onClose (leanConn.peerClosed), not the framer", r.conn.written)
		}
	})
	t.Run("ACloseBetweenFragments", func(t *testing.T) {
		r := newFramerRun(1 << 20)
		s := append(clientFrame(false, opText, []byte("hal")), clientFrame(true, opClose, []byte{0x03, 0xe9})...)
		s = append(s, clientFrame(true, opContinuation, []byte("f"))...)
		if err := r.f.Parse(s); err != nil {
			t.Fatal(err)
		}
		if len(r.closes) != 1 || r.closes[0] != 1001 || len(r.messages) != 0 {
			t.Fatalf("closes %v, messages %q: want [1001] and no message", r.closes, r.messages)
		}
	})
	for _, tc := range []struct {
		name  string
		input []byte
		code  int
	}{
		{"OversizeIs1009", clientFrame(true, opText, make([]byte, 101)), 1009},
		{"OversizeAcrossFragmentsIs1009", append(clientFrame(false, opText, make([]byte, 60)), clientFrame(true, opContinuation, make([]byte, 60))...), 1009},
		{"OversizeKnownFromTheHeaderAlone", clientFrame(true, opBinary, make([]byte, 70_000))[:14], 1009},
		{"UnmaskedIs1002", []byte{0x81, 0x01, 'x'}, 1002},
		{"ReservedBitsAre1002", func() []byte { f := clientFrame(true, opText, []byte("x")); f[0] |= 0x40; return f }(), 1002},
		{"UnknownOpcodeIs1002", clientFrame(true, 0x3, []byte("x")), 1002},
		{"LoneContinuationIs1002", clientFrame(true, opContinuation, []byte("x")), 1002},
		{"NewMessageInsideAFragmentedOneIs1002", append(clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))...), 1002},
		{"FragmentedPingIs1002", clientFrame(false, opPing, nil), 1002},
		{"LongPingIs1002", clientFrame(true, opPing, make([]byte, 126)), 1002},
		{"InvalidUTF8Is1007", clientFrame(true, opText, []byte{0xff, 0xfe}), 1007},
		{"InvalidCloseCodeIs1002", clientFrame(true, opClose, []byte{0x03, 0xed}), 1002}, // 1005 is never sent
		{"OneByteCloseIs1002", clientFrame(true, opClose, []byte{0x03}), 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newFramerRun(100)
			err := r.f.Parse(tc.input)
			if err == nil || int(violationCode(err)) != tc.code {
				t.Fatalf("Parse = %v, want a %d violation", err, tc.code)
			}
			if got := r.closeSent(); got != tc.code {
				t.Fatalf("sent close %d, want %d", got, tc.code)
			}
			if len(r.messages) != 0 {
				t.Fatalf("delivered %q", r.messages)
			}
		})
	}
	t.Run("ServerFrames", func(t *testing.T) {
		r := newFramerRun(1 << 20)
		for _, n := range []int{0, 125, 126, 65535, 65536} {
			if err := r.f.WriteText(bytes.Repeat([]byte("x"), n)); err != nil {
				t.Fatal(err)
			}
		}
		wantHeads := [][]byte{{0x81, 0}, {0x81, 125}, {0x81, 126, 0, 126}, {0x81, 126, 0xff, 0xff}, {0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}}
		for i, w := range r.conn.written {
			h := wantHeads[i]
			if !bytes.HasPrefix(w, h) || len(w) != len(h)+[]int{0, 125, 126, 65535, 65536}[i] {
				t.Fatalf("frame %d starts % x (len %d), want % x", i, w[:min(10, len(w))], len(w), h)
			}
		}
	})
}
