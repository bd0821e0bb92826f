package config

import (
	"reflect"
	"testing"
)

// TestTracesEndpoint: the traces URL the OTEL_* keys select, and "" (off) whenever one of them
// switches tracing off.
func TestTracesEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		want    string
	}{
		{"OffWhenUnset", nil, ""},
		{"BaseGetsPath", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318/"}, "http://collector:4318/v1/traces"},
		{"TracesEndpointAsGiven", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://b/otlp/traces"}, "https://b/otlp/traces"},
		{"SDKDisabled", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:4318", "OTEL_SDK_DISABLED=true"}, ""},
		{"ExporterNone", []string{"OTEL_EXPORTER_OTLP_ENDPOINT=http://a:4318", "OTEL_TRACES_EXPORTER=none"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(Sources{Environ: append([]string{"APP_ENV=test"}, tc.environ...), Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.TracesEndpoint(); got != tc.want {
				t.Fatalf("TracesEndpoint() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseOtelHeaders(t *testing.T) {
	got, err := ParseOtelHeaders("api-key=a%20b, x-tenant=t1,")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"api-key": "a b", "x-tenant": "t1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"novalue", "=v", "k=%zz", "a b=c"} {
		if _, err := ParseOtelHeaders(bad); err == nil {
			t.Errorf("ParseOtelHeaders(%q) accepted", bad)
		}
	}
}
