package telemetry

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestErrorLogOneLinePerPeriod: a collector that is down makes the SDK report every failed
// export; the log gets the first, then nothing for errorEvery, then one line that counts what
// it left out. Errors before SetLogger are dropped.
func TestErrorLogOneLinePerPeriod(t *testing.T) {
	var buf bytes.Buffer
	var el ErrorLog
	el.Handle(errors.New("before the logger"))
	el.SetLogger(slog.New(slog.NewTextHandler(&buf, nil)))
	for range 3 {
		el.Handle(errors.New("export failed"))
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 || !strings.Contains(buf.String(), "similar_errors_left_out=0") {
		t.Fatalf("after 3 errors within %v: %d lines, want 1 that left out nothing:\n%s", errorEvery, n, buf.String())
	}
	el.mu.Lock()
	el.last = el.last.Add(-errorEvery - time.Second) // the period is over
	el.mu.Unlock()
	el.Handle(errors.New("export failed"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "similar_errors_left_out=2") {
		t.Fatalf("after the period: %d lines, want 2, the second leaving out 2:\n%s", len(lines), buf.String())
	}
	if strings.Contains(buf.String(), "before the logger") {
		t.Fatalf("an error from before SetLogger was logged:\n%s", buf.String())
	}
}
