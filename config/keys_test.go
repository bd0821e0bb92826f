package config

import "testing"

func TestKeys(t *testing.T) {
	keys := Keys()
	if len(keys) != len(fields) {
		t.Fatalf("%d keys for %d fields", len(keys), len(fields))
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if k == "" || seen[k] {
			t.Fatalf("key %q empty or listed twice", k)
		}
		seen[k] = true
	}
	for _, k := range []string{"APP_ENV", "PORT", "JWT_SECRET", "MEMORY_RESTART_THRESHOLD", "METRICS_ADDR"} {
		if !seen[k] {
			t.Errorf("Keys() misses %s", k)
		}
	}
}
