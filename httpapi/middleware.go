package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"time"

	"github.com/eventide/server/auth"
	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
	"github.com/eventide/server/security"
)

// requestID gives every request an id: a sane incoming X-Request-ID is kept, else a random one.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !saneID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(reqmeta.WithID(r.Context(), id)))
	})
}

func saneID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// recoverer turns a panic outside the resolvers into a masked 500, logged with its stack.
func recoverer(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				if v := recover(); v != nil {
					if v == http.ErrAbortHandler {
						panic(v)
					}
					rid := reqmeta.IDFrom(r.Context())
					log.ErrorContext(r.Context(), "panic", "request_id", rid, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
					writeError(w, r, http.StatusInternalServerError, eventide.CodeInternal, "internal server error (request id "+rid+")")
				}
			}()
			next.ServeHTTP(w, r)
		})
	}
}

// statusRecorder remembers the status a handler wrote, for the access log and metrics.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController and the websocket upgrade reach the real writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush keeps Server-Sent Events streaming through the recorder.
func (s *statusRecorder) Flush() { _ = s.FlushError() }

// FlushError is Flush with its error, which http.ResponseController passes on (a write deadline
// that expired).
func (s *statusRecorder) FlushError() error {
	return http.NewResponseController(s.ResponseWriter).Flush()
}

// Hijack keeps websocket upgrades working through the recorder.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !hijackable(s.ResponseWriter) {
		return nil, nil, errors.New("httpapi: response writer cannot hijack")
	}
	if s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	// Through the writers it wraps (an HTTP stream's streamWriter among them).
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

// accessLog writes one line per request, at debug for health checks and metrics scrapes. The
// client is the one security events and the throttle name: X-Forwarded-For is believed from
// trusted proxies only.
func accessLog(log *slog.Logger, m *metrics, trusted []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &statusRecorder{ResponseWriter: w}
			r = r.WithContext(context.WithValue(r.Context(), opNameKey{}, &opName{}))
			next.ServeHTTP(rec, r)
			d := time.Since(start)
			if rec.status == 0 {
				rec.status = http.StatusOK
			}
			route := routeOf(r.URL.Path)
			m.observe(route, r.Method, rec.status, d)
			level := slog.LevelInfo
			if route == "/healthz" || route == "/readyz" || route == "/metrics" {
				level = slog.LevelDebug
			}
			log.Log(r.Context(), level, "request",
				"method", r.Method, "path", redactPath(r.URL.Path), "operation", opNameFrom(r.Context()), "status", rec.status,
				"duration_ms", float64(d.Microseconds())/1000, "request_id", reqmeta.IDFrom(r.Context()),
				"client", clientAddr(r, trusted))
		})
	}
}

// routeOf bounds the path label of the metrics to the routes we serve.
func routeOf(path string) string {
	switch {
	case path == "/graphql", path == "/healthz", path == "/readyz", path == "/metrics", path == "/":
		return path
	case strings.HasPrefix(path, "/playground"):
		return "/playground"
	case strings.HasPrefix(path, "/monitor"):
		return "/monitor"
	case strings.HasPrefix(path, eventFilePrefix):
		return eventFilePrefix + "{id}" + icsSuffix
	case strings.HasPrefix(path, feedPrefix):
		return feedPrefix + "{token}" + icsSuffix
	}
	return "other"
}

func clientAddr(r *http.Request, trusted []netip.Prefix) string {
	if ip := security.ClientIP(r, trusted); ip.IsValid() {
		return ip.String()
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// graphQLBody guards the body of a POST: over limit bytes is 413; a body that is not a GraphQL
// request object ({query, variables, operationName, extensions}) is 400 BAD_REQUEST; one that does
// not arrive within the server's ReadTimeout is 408 BAD_REQUEST and its connection closed. The
// body is read once here and handed on from memory. Once it is in, net/http lifts the read
// deadline itself (its background read starts with none), so the deadline bounds the request's
// arrival, not its answer, and a stream (SSE) stays open past it.
//
// A client has at most perClient bytes of bodies in flight (each reserved at its declared length,
// or limit when it declares none, before it is read, and held until its request ends): one more
// is 429 RATE_LIMITED, unread, reported through t when set. So slow bodies pin at most that much
// memory per address, however many connections it holds.
func graphQLBody(limit, perClient int64, t *security.Throttle) func(http.Handler) http.Handler {
	budget := newBodyBudget(perClient)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				next.ServeHTTP(w, r)
				return
			}
			if r.ContentLength > limit {
				writeError(w, r, http.StatusRequestEntityTooLarge, codePayloadTooLarge,
					fmt.Sprintf("request body is larger than %d bytes", limit))
				return
			}
			if n := reserveFor(r, limit); n > 0 && perClient > 0 {
				key := reqmeta.ClientFrom(r.Context()).AddrKey
				if !budget.reserve(key, n) {
					if t != nil {
						t.Refused(security.ScopeBodies, key, int(perClient))
					}
					w.Header().Set("Retry-After", "1")
					w.Header().Set("Connection", "close")
					writeError(w, r, http.StatusTooManyRequests, eventide.CodeRateLimited,
						fmt.Sprintf("too many request bodies in flight from this client (at most %d bytes)", perClient))
					return
				}
				defer budget.release(key, n)
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
			if err != nil {
				var ne net.Error
				switch {
				case errors.As(err, new(*http.MaxBytesError)):
					writeError(w, r, http.StatusRequestEntityTooLarge, codePayloadTooLarge,
						fmt.Sprintf("request body is larger than %d bytes", limit))
				case errors.As(err, &ne) && ne.Timeout():
					w.Header().Set("Connection", "close")
					writeError(w, r, http.StatusRequestTimeout, eventide.CodeBadRequest,
						"the request body did not arrive in time (HTTP_READ_TIMEOUT)")
				default:
					writeError(w, r, http.StatusBadRequest, eventide.CodeBadRequest, "could not read the request body")
				}
				return
			}
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/json" || mt == "application/graphql-response+json" {
				if msg := checkRequestJSON(body); msg != "" {
					writeError(w, r, http.StatusBadRequest, eventide.CodeBadRequest, msg)
					return
				}
			}
			r.Body = memBody{Reader: bytes.NewReader(body), b: body}
			next.ServeHTTP(w, r)
		})
	}
}

// reserveFor is what a body is reserved at: its declared length, or limit when it declares none.
func reserveFor(r *http.Request, limit int64) int64 {
	if r.ContentLength >= 0 {
		return min(r.ContentLength, limit)
	}
	return limit
}

// checkRequestJSON says what is wrong with a JSON GraphQL request body, or "".
func checkRequestJSON(body []byte) string {
	var req struct {
		Query         *string         `json:"query"`
		OperationName *string         `json:"operationName"`
		Variables     json.RawMessage `json:"variables"`
		Extensions    json.RawMessage `json:"extensions"`
	}
	if !json.Valid(body) {
		return "malformed JSON in the request body"
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return "the request body must be a JSON object {query, variables, operationName, extensions}"
	}
	for name, raw := range map[string]json.RawMessage{"variables": req.Variables, "extensions": req.Extensions} {
		if len(raw) > 0 && raw[0] != '{' && string(raw) != "null" {
			return name + " must be a JSON object"
		}
	}
	return ""
}

// authenticate puts the viewer named by the Authorization header in the context. A present but
// invalid token fails the request with 401 UNAUTHENTICATED, after counting it against its
// address's budget (t, when set): such a request never reaches the throttle behind, and unlimited
// ones would flood the security log with TOKEN_INVALID.
func authenticate(a *auth.Authenticator, t *security.Throttle, events *security.Log, log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := r.Header.Get("Authorization")
			if h == "" {
				next.ServeHTTP(w, r)
				return
			}
			u, exp, err := a.Session(r.Context(), h)
			if err != nil {
				code := eventide.ErrorCode(err)
				msg := "invalid or expired token"
				if code == eventide.CodeUnauthenticated {
					if t != nil {
						d := t.Request(r.Context(), reqmeta.ClientFrom(r.Context()).AddrKey)
						d.SetHeaders(w.Header())
						if !d.Allowed {
							writeError(w, r, http.StatusTooManyRequests, eventide.CodeRateLimited,
								fmt.Sprintf("too many requests; retry in %s", d.RetryAfter.Round(1e9)))
							return
						}
					}
					logTokenInvalid(r.Context(), events, "the Authorization header")
				}
				if code != eventide.CodeUnauthenticated {
					log.WarnContext(r.Context(), "authentication failed", "request_id", reqmeta.IDFrom(r.Context()), "error", err)
					msg = "could not check the token; try again shortly"
				}
				writeError(w, r, statusFor(code), code, msg)
				return
			}
			ctx := context.WithValue(eventide.WithViewer(r.Context(), u), tokenExpiryKey{}, exp)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// tokenExpiryKey carries the instant the Authorization header's token expires, from authenticate
// to the session of a stream (Sessions.track), which ends at that instant.
type tokenExpiryKey struct{}
