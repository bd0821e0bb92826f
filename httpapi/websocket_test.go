package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// stuckConn is a websocket whose writes block until it is closed, as with a peer that reads
// nothing once its socket is full.
type stuckConn struct {
	once   sync.Once
	closed chan struct{}
	codes  chan int
	// message makes NextReader return a message at once.
	message bool
}

func newStuckConn() *stuckConn {
	return &stuckConn{closed: make(chan struct{}), codes: make(chan int, 1)}
}

func (c *stuckConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }
func (c *stuckConn) NextReader() (int, io.Reader, error) {
	if c.message {
		return 1, strings.NewReader(`{"type":"connection_init"}`), nil
	}
	<-c.closed
	return 0, nil, errors.New("closed")
}
func (c *stuckConn) WriteJSON(any) error { <-c.closed; return errors.New("closed") }
func (c *stuckConn) WriteClose(code int, _ string) error {
	c.codes <- code
	return c.Close()
}
func (c *stuckConn) Subprotocol() string { return "graphql-transport-ws" }

func TestGuardedConn(t *testing.T) {
	t.Run("WriteTimeoutClosesTheSocket", func(t *testing.T) {
		c := newStuckConn()
		g := &guardedConn{WebsocketConn: c, writeTimeout: 20 * time.Millisecond}
		done := make(chan error, 1)
		go func() { done <- g.WriteJSON(map[string]any{"type": "next"}) }()
		select {
		case err := <-done:
			if err == nil {
				t.Fatal("a write to a peer that reads nothing succeeded")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a write to a peer that reads nothing is still blocked")
		}
	})
	accept := func(c *stuckConn) *guardedConn {
		t.Helper()
		s := socketImplementation{inner: fakeImplementation{c}, initTimeout: 20 * time.Millisecond}
		g, err := s.Accept(nil, nil, transport.WebsocketAcceptOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return g.(*guardedConn)
	}
	t.Run("InitTimeoutClosesWith4408", func(t *testing.T) {
		c := newStuckConn()
		accept(c)
		select {
		case code := <-c.codes:
			if code != 4408 {
				t.Fatalf("closed with %d", code)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no close")
		}
	})
	t.Run("ShutdownClosesWith1001", func(t *testing.T) {
		for _, tc := range []struct {
			cause error
			want  int
		}{{errServerShutdown, 1001}, {context.Canceled, 1000}} {
			c := newStuckConn()
			ctx, cancel := context.WithCancelCause(context.Background())
			cancel(tc.cause)
			g := &guardedConn{WebsocketConn: c, req: ctx}
			_ = g.WriteClose(transport.WebsocketCloseNormalClosure, "terminated")
			if code := <-c.codes; code != tc.want {
				t.Fatalf("request ended by %v: closed with %d, want %d", tc.cause, code, tc.want)
			}
		}
	})
	t.Run("AFirstMessageStopsTheInitTimer", func(t *testing.T) {
		c := newStuckConn()
		c.message = true
		g := accept(c)
		if _, _, err := g.NextReader(); err != nil {
			t.Fatal(err)
		}
		select {
		case code := <-c.codes:
			t.Fatalf("closed with %d after a message came", code)
		case <-time.After(100 * time.Millisecond):
		}
	})
}

type fakeImplementation struct{ c *stuckConn }

func (f fakeImplementation) Accept(http.ResponseWriter, *http.Request, transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	return f.c, nil
}
