package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

// failingWriter fails every write, as a connection past its write deadline does.
type failingWriter struct{ http.ResponseWriter }

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("i/o timeout") }

func TestSSEWriter(t *testing.T) {
	t.Run("Boundaries", func(t *testing.T) {
		w := newStreamWriter(httptest.NewRecorder(), 0, func() {})
		for _, tc := range []struct {
			write    string
			boundary bool
		}{
			{":\n\n", true},
			{"event: next\ndata: {", false},
			{"}\n", false},
			{"\n", true}, // a blank line split over two writes still ends the event
			{"event: complete\n\n", true},
		} {
			if _, err := w.Write([]byte(tc.write)); err != nil {
				t.Fatal(err)
			}
			if w.boundary != tc.boundary {
				t.Fatalf("after %q: boundary = %v, want %v", tc.write, w.boundary, tc.boundary)
			}
		}
	})
	t.Run("NothingAfterClose", func(t *testing.T) {
		rec := httptest.NewRecorder()
		w := newStreamWriter(rec, 0, func() {})
		_, _ = w.Write([]byte(":\n\n"))
		w.close()
		if _, err := w.Write([]byte(": ping\n\n")); !errors.Is(err, errStreamClosed) {
			t.Fatalf("a write after close: %v", err)
		}
		if got := rec.Body.String(); got != ":\n\n" {
			t.Fatalf("body = %q", got)
		}
		w.close() // twice is fine
	})
	t.Run("ErrWriteEndsTheStream", func(t *testing.T) {
		failed := 0
		w := newStreamWriter(failingWriter{httptest.NewRecorder()}, 0, func() { failed++ })
		if _, err := w.Write([]byte("event: next\n\n")); err == nil {
			t.Fatal("the failed write reported no error")
		}
		if _, err := w.Write([]byte("event: next\n\n")); !errors.Is(err, errStreamClosed) {
			t.Fatalf("a write after a failed one: %v", err)
		}
		if failed != 1 {
			t.Fatalf("the request was ended %d times, want 1", failed)
		}
	})
}
