package config

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// Seeds shared by the fuzz targets beside the corpus in testdata/fuzz.
var fuzzSeeds = []string{
	"", "0", "1048576", "512MiB", "1GiB", "64MB", "1.5GiB", " 10 kb ", "-1", "8EiB", "7EiB",
	"9223372036854775807", "9223372036854775808", "1e3", "0x10", ".", "1.", ".5", "abc",
	"30s", "15m", "24h", "1h30m", "-5m", "60", "1.5", "9223372036", "9223372037",
	"-2562047h47m16.854775808s", "2562047h47m16.854775807s", "1µs", "+5s",
}

func FuzzParseSize(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("ParseSize(%q) = %d with error %v", s, n, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		formatted := FormatSize(n)
		if back, err := ParseSize(formatted); err != nil || back != n {
			t.Fatalf("ParseSize(FormatSize(%d)=%q) = %d, %v", n, formatted, back, err)
		}
		if back, err := ParseSize(strconv.FormatInt(n, 10)); err != nil || back != n {
			t.Fatalf("ParseSize(%d as digits) = %d, %v", n, back, err)
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		formatted := FormatDuration(d)
		if back, err := ParseDuration(formatted); err != nil || back != d {
			t.Fatalf("ParseDuration(FormatDuration(%d)=%q) = %d, %v", d, formatted, back, err)
		}
	})
}

func FuzzParseSeconds(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseSeconds(s)
		if err != nil {
			return
		}
		if isInteger(strings.TrimSpace(s)) && d%time.Second != 0 {
			t.Fatalf("ParseSeconds(%q) = %v, not whole seconds", s, d)
		}
		formatted := FormatSeconds(d)
		if back, err := ParseSeconds(formatted); err != nil || back != d {
			t.Fatalf("ParseSeconds(FormatSeconds(%d)=%q) = %d, %v", d, formatted, back, err)
		}
	})
}

func FuzzParsePrefixes(f *testing.F) {
	for _, s := range []string{"", "10.0.0.0/8", "192.168.1.1, ::1", "fe80::1%eth0", "10.0.0.0/33", "1.2.3.4/x", ",,", "::ffff:1.2.3.4/96"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePrefixes(s)
		if err != nil {
			return
		}
		parts := make([]string, len(ps))
		for i, p := range ps {
			if !p.IsValid() || p != p.Masked() {
				t.Fatalf("ParsePrefixes(%q) gave %v, invalid or unmasked", s, p)
			}
			parts[i] = p.String()
		}
		back, err := ParsePrefixes(strings.Join(parts, ","))
		if err != nil || len(back) != len(ps) {
			t.Fatalf("ParsePrefixes of its own output %q: %v, %v", parts, back, err)
		}
		for i := range ps {
			if back[i] != ps[i] {
				t.Fatalf("round trip of %v gave %v", ps[i], back[i])
			}
		}
	})
}

func FuzzMaskURI(f *testing.F) {
	for _, s := range []string{"", "mongodb://u:p@h", "mongodb://h/?password=x", "u:p@h", "mongodb+srv://a:b@c:d@e/f?g=h&PassWord=i", "://", "@:", "?&=", "mongodb://u:***@h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := MaskURI(s)
		if MaskURI(m) != m {
			t.Fatalf("MaskURI not idempotent: %q -> %q -> %q", s, m, MaskURI(m))
		}
		// A user:password@ part before the hosts is always hidden. (Without query options, so
		// that option masking cannot reshape the string.)
		if i := strings.Index(s, "://"); i >= 0 && !strings.Contains(s, "?") {
			rest := s[i+3:]
			if at := strings.LastIndex(rest, "@"); at >= 0 {
				_, pw, ok := strings.Cut(rest[:at], ":")
				if !strings.HasPrefix(m, s[:i+3]) || ok && pw != "***" && strings.Contains(m[i+3:], ":"+pw+"@") {
					t.Fatalf("MaskURI(%q) = %q shows the password", s, m)
				}
			}
		}
	})
}
