package config

import (
	"math"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true},
		{"  ", 0, true},
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"512MiB", 512 << 20, true},
		{"512mib", 512 << 20, true},
		{"1GiB", 1 << 30, true},
		{"1 GiB", 1 << 30, true},
		{"64MB", 64e6, true},
		{"10kb", 10e3, true},
		{"2Ki", 2048, true},
		{"1.5GiB", 3 << 29, true},
		{".5KiB", 512, true},
		{"1.5B", 1, true},
		{"7EiB", 7 << 60, true},
		{"9223372036854775807", math.MaxInt64, true},
		{"9223372036854775808", 0, false},
		{"8EiB", 0, false},
		{"-1", 0, false},
		{"-1MiB", 0, false},
		{"abc", 0, false},
		{"MiB", 0, false},
		{"1XB", 0, false},
		{"1e3", 0, false},
		{"0x10", 0, false},
		{"1.", 1, true},
		{".", 0, false},
		{"1,5MB", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestFormatSize(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0"}, {1, "1"}, {1000, "1000"}, {1024, "1KiB"}, {1 << 20, "1MiB"}, {3 << 29, "1536MiB"},
		{512 << 20, "512MiB"}, {1 << 30, "1GiB"}, {1<<20 + 1, "1048577"}, {math.MaxInt64, "9223372036854775807"},
	}
	for _, tt := range tests {
		if got := FormatSize(tt.in); got != tt.want {
			t.Errorf("FormatSize(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParseSeconds(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"60", time.Minute, true},
		{" 300 ", 5 * time.Minute, true},
		{"0", 0, true},
		{"-5", -5 * time.Second, true},
		{"60s", time.Minute, true},
		{"1m30s", 90 * time.Second, true},
		{"1500ms", 1500 * time.Millisecond, true},
		{"9223372036", 9223372036 * time.Second, true},
		{"9223372037", 0, false},
		{"99999999999999999999", 0, false},
		{"1.5", 0, false},
		{"", 0, false},
		{"abc", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSeconds(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseSeconds(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"}, {30 * time.Second, "30s"}, {15 * time.Minute, "15m"}, {24 * time.Hour, "24h"},
		{90 * time.Minute, "1h30m"}, {time.Hour + time.Second, "1h0m1s"}, {-time.Hour, "-1h"},
		{1500 * time.Millisecond, "1.5s"}, {10 * time.Millisecond, "10ms"},
	}
	for _, tt := range tests {
		if got := FormatDuration(tt.in); got != tt.want {
			t.Errorf("FormatDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
		if back, err := ParseDuration(FormatDuration(tt.in)); err != nil || back != tt.in {
			t.Errorf("ParseDuration(FormatDuration(%v)) = %v, %v", tt.in, back, err)
		}
	}
}

func TestParseBool(t *testing.T) {
	for _, s := range []string{"true", "TRUE", "1", "yes", "Yes", "on", " true "} {
		if b, err := ParseBool(s); err != nil || !b {
			t.Errorf("ParseBool(%q) = %v, %v; want true", s, b, err)
		}
	}
	for _, s := range []string{"false", "False", "0", "no", "NO", "off"} {
		if b, err := ParseBool(s); err != nil || b {
			t.Errorf("ParseBool(%q) = %v, %v; want false", s, b, err)
		}
	}
	for _, s := range []string{"", "t", "2", "maybe", "yess"} {
		if _, err := ParseBool(s); err == nil {
			t.Errorf("ParseBool(%q) succeeded", s)
		}
	}
}

func TestParseList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil}, {" , ,", nil}, {"a", []string{"a"}}, {" a , b ,, c ", []string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		if got := ParseList(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseList(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		in   string
		want []netip.Prefix
		ok   bool
	}{
		{"", nil, true},
		{"10.0.0.0/8", []netip.Prefix{p("10.0.0.0/8")}, true},
		{"10.1.2.3/8", []netip.Prefix{p("10.0.0.0/8")}, true},
		{"192.168.1.1, ::1", []netip.Prefix{p("192.168.1.1/32"), p("::1/128")}, true},
		{"fd00::/8,127.0.0.1/32", []netip.Prefix{p("fd00::/8"), p("127.0.0.1/32")}, true},
		{"10.0.0.0/33", nil, false},
		{"proxy.local", nil, false},
		{"10.0.0.0/8,", []netip.Prefix{p("10.0.0.0/8")}, true},
		{"1.2.3.4/x", nil, false},
	}
	for _, tt := range tests {
		got, err := ParsePrefixes(tt.in)
		if (err == nil) != tt.ok || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParsePrefixes(%q) = %v, %v; want %v, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
