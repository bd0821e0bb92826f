package resolvers

import (
	"testing"
	"time"

	"github.com/eventide/server/graph/model"
	"github.com/eventide/server/memstats"
	"github.com/eventide/server/security"
)

// TestAdminTypesAtTheEdge: the conversions keep what the bound adapter structs showed, nulls
// included (no memory limit, an event without a client or user).
func TestAdminTypesAtTheEdge(t *testing.T) {
	t.Run("MemoryWithoutLimitIsNull", func(t *testing.T) {
		m := memoryStats(memstats.Sample{RSSBytes: 5, GCCycles: 3, LastGCPauseNs: 7, UsagePercent: 12})
		if m.MemoryLimitBytes != nil || m.UsagePercent != nil || m.RssBytes != 5 || m.GcCycles != 3 || m.LastGcPauseNs != 7 {
			t.Fatalf("%+v", m)
		}
	})
	t.Run("MemoryWithLimit", func(t *testing.T) {
		m := memoryStats(memstats.Sample{RSSBytes: 50, MemoryLimitBytes: 100, UsagePercent: 50})
		if m.MemoryLimitBytes == nil || *m.MemoryLimitBytes != 100 || m.UsagePercent == nil || *m.UsagePercent != 50 {
			t.Fatalf("%+v", m)
		}
	})
	t.Run("SecurityEventEmptyIsNull", func(t *testing.T) {
		at := time.Unix(1, 0)
		e := securityEvent(security.Event{ID: "1", Type: security.RateLimited, Severity: security.SeverityLow, At: at, IP: "192.0.2.1", Message: "m", Count: 2})
		if e.Type != model.SecurityEventTypeRateLimited || e.Severity != model.SeverityLow || !e.At.Equal(at) ||
			e.IP == nil || *e.IP != "192.0.2.1" || e.UserID != nil || e.Email != nil || e.UserAgent != nil || e.Operation != nil || e.Count != 2 {
			t.Fatalf("%+v", e)
		}
	})
	t.Run("FilterKeepsEveryField", func(t *testing.T) {
		sev, ip := model.SeverityHigh, "192.0.2.9"
		f := securityFilter(&model.SecurityEventFilter{Types: []model.SecurityEventType{model.SecurityEventTypeLoginFailed}, MinSeverity: &sev, IP: &ip})
		if len(f.Types) != 1 || f.Types[0] != security.LoginFailed || f.MinSeverity != security.SeverityHigh || f.IP != ip || f.UserID != "" {
			t.Fatalf("%+v", f)
		}
		if f := securityFilter(nil); f.Types != nil || f.MinSeverity != "" {
			t.Fatalf("nil filter = %+v", f)
		}
	})
}
