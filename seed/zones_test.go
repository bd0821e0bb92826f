package seed

import (
	"strings"
	"testing"
	"time"
)

// TestPlanZonesAndOnline: every venue is in its city's IANA zone, every event has a zone, and a
// couple of events without a venue are online with a link.
func TestPlanZonesAndOnline(t *testing.T) {
	p := newPlan(testNow)
	want := map[string]string{}
	for _, c := range cities {
		want[c.name] = c.zone
	}
	for _, v := range p.venues {
		if v.zone != want[v.city] || v.zone == "" {
			t.Errorf("venue %q in %s: zone %q, want %q", v.name, v.city, v.zone, want[v.city])
		}
		if _, err := time.LoadLocation(v.zone); err != nil {
			t.Errorf("venue %q: %v", v.name, err)
		}
	}
	online := 0
	for _, e := range p.events {
		if e.zone == "" {
			t.Errorf("event %q has no zone", e.title)
		}
		if e.venue >= 0 && e.zone != p.venues[e.venue].zone {
			t.Errorf("event %q: zone %q, its venue's %q", e.title, e.zone, p.venues[e.venue].zone)
		}
		if e.onlineURL != "" {
			online++
			if e.venue >= 0 || !strings.HasPrefix(e.onlineURL, "https://") {
				t.Errorf("online event %q: venue %d, link %q", e.title, e.venue, e.onlineURL)
			}
		}
	}
	if online < 2 {
		t.Errorf("online events = %d, want at least 2", online)
	}
}
