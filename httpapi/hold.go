package httpapi

import (
	"context"
	"net/http"
	"sync"
)

// streamHold keeps what the middleware of a websocket upgrade (or an HTTP stream) holds for its connection — the
// client's stream slot and in-flight slot, the session, the shutdown's wait — past the handler's
// return when the connection outlives it: the lean transport hands the connection to the event
// loop and returns, so the deferred releases of the middleware must wait for the socket's close.
// The lean HTTP streams (leanstream.go) do the same with an SSE or multipart subscription. For
// every other request (and for gqlgen's transports, whose handler runs as long as its stream)
// release runs at once, as a plain defer would.
type streamHold struct {
	mu       sync.Mutex
	detached bool
	ended    bool
	later    []func()
}

type holdKey struct{}

// holdStreams gives every websocket upgrade, and every POST that may be answered with a stream
// (its Accept takes Server-Sent Events or multipart/mixed: whether it is one needs the body), a
// streamHold; it is the outermost middleware, so all the others can use it.
func holdStreams(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isUpgrade(r) && !mayStream(r) {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), holdKey{}, &streamHold{})))
	})
}

func holdFrom(ctx context.Context) *streamHold {
	h, _ := ctx.Value(holdKey{}).(*streamHold)
	return h
}

// release runs fn now, or, once the connection is detached, when it ends (last in, first out).
func (h *streamHold) release(fn func()) {
	if h != nil {
		h.mu.Lock()
		if h.detached && !h.ended {
			h.later = append(h.later, fn)
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
	fn()
}

// detach makes the releases of the handlers still on the stack wait for end.
func (h *streamHold) detach() {
	h.mu.Lock()
	h.detached = true
	h.mu.Unlock()
}

// end runs the releases that waited, once; later ones run at once.
func (h *streamHold) end() {
	h.mu.Lock()
	if h.ended {
		h.mu.Unlock()
		return
	}
	h.ended = true
	later := h.later
	h.later = nil
	h.mu.Unlock()
	for i := len(later) - 1; i >= 0; i-- {
		later[i]()
	}
}

// mayStream reports whether the POST r may be answered with an SSE or multipart stream.
func mayStream(r *http.Request) bool {
	if r.Method != http.MethodPost {
		return false
	}
	a := parseAccept(r.Header.Values("Accept"))
	return a.acceptsSSE() || a.acceptsMultipart()
}
