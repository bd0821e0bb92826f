package embedded

import (
	"context"
	"log/slog"
	"strings"
)

// minLevelHandler drops records below min before they reach the wrapped handler.
type minLevelHandler struct {
	min slog.Level
	h   slog.Handler
}

// NewMinLevelHandler returns a handler that passes to h only records at level
// min or above; Enabled reports false below min regardless of h.
func NewMinLevelHandler(h slog.Handler, min slog.Level) slog.Handler {
	if m, ok := h.(*minLevelHandler); ok {
		if m.min > min {
			min = m.min
		}
		h = m.h
	}

	return &minLevelHandler{min: min, h: h}
}

// Enabled implements [slog.Handler].
func (m *minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

// Handle implements [slog.Handler].
func (m *minLevelHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < m.min {
		return nil
	}

	return m.h.Handle(ctx, r)
}

// WithAttrs implements [slog.Handler].
func (m *minLevelHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &minLevelHandler{min: m.min, h: m.h.WithAttrs(attrs)}
}

// WithGroup implements [slog.Handler].
func (m *minLevelHandler) WithGroup(name string) slog.Handler {
	return &minLevelHandler{min: m.min, h: m.h.WithGroup(name)}
}

// noiseFilter drops FerretDB records that are logged at WARN but are benign:
//
//   - "Response header: …": FerretDB logs every failed (ok: 0) command as two
//     WARN records, the wire header and the response body; the header alone
//     carries nothing useful.
//   - "Response message: …" for endSessions: FerretDB does not implement
//     endSessions, which drivers send on every Disconnect.
//   - "Failed to set deadline: … use of closed network connection": a race in
//     FerretDB's connection teardown, logged for connections that already ended.
type noiseFilter struct {
	h slog.Handler
}

// isNoise reports whether a FerretDB log message is known to be benign.
func isNoise(msg string) bool {
	switch {
	case strings.HasPrefix(msg, "Response header:"):
		return true
	case strings.HasPrefix(msg, "Response message:") && strings.Contains(msg, "no such command: 'endSessions'"):
		return true
	case strings.HasPrefix(msg, "Failed to set deadline") && strings.Contains(msg, "use of closed network connection"):
		return true
	}

	return false
}

// Enabled implements [slog.Handler].
func (n noiseFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return n.h.Enabled(ctx, l)
}

// Handle implements [slog.Handler].
func (n noiseFilter) Handle(ctx context.Context, r slog.Record) error {
	if isNoise(r.Message) {
		return nil
	}

	return n.h.Handle(ctx, r)
}

// WithAttrs implements [slog.Handler].
func (n noiseFilter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return noiseFilter{h: n.h.WithAttrs(attrs)}
}

// WithGroup implements [slog.Handler].
func (n noiseFilter) WithGroup(name string) slog.Handler {
	return noiseFilter{h: n.h.WithGroup(name)}
}
