package httpapi

import "net/http"

// Drain makes every response from now on close its connection (Connection: close), so that a
// keep-alive client opens its next connection elsewhere (to the next process, under
// -supervise) instead of sending it on an idle connection just as Shutdown closes it, which
// fails a request that is not retried (a POST).
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) closeWhenDraining(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.draining.Load() && r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		next.ServeHTTP(w, r)
	})
}
