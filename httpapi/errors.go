// Package httpapi is Eventide's HTTP surface: the middleware chain, the GraphQL handler with its
// transports, health, readiness and metrics endpoints, and a server that shuts down gracefully,
// closing websocket subscriptions properly before it drains.
package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/eventide/server/eventide"
	"github.com/eventide/server/internal/reqmeta"
)

type errorBody struct {
	Errors []errorItem `json:"errors"`
}

type errorItem struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// writeError answers with a GraphQL-shaped error body and an HTTP status, in the media type the
// client prefers (application/graphql-response+json when it asks for it, else application/json).
func writeError(w http.ResponseWriter, r *http.Request, status int, code eventide.Code, msg string) {
	ext := map[string]any{"code": string(code)}
	if id := reqmeta.IDFrom(r.Context()); id != "" {
		ext["requestId"] = id
	}
	body, _ := json.Marshal(errorBody{Errors: []errorItem{{Message: msg, Extensions: ext}}})
	w.Header().Set("Content-Type", responseType(r)+"; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// statusFor maps a domain code to the HTTP status used when an error ends a request before
// GraphQL runs.
func statusFor(code eventide.Code) int {
	switch code {
	case eventide.CodeUnauthenticated:
		return http.StatusUnauthorized
	case eventide.CodeForbidden:
		return http.StatusForbidden
	case eventide.CodeBadRequest, eventide.CodeBadUserInput:
		return http.StatusBadRequest
	case codePayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case eventide.CodeRateLimited:
		return http.StatusTooManyRequests
	case eventide.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
