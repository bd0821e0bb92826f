package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// maxSizeInput bounds what ParseSize reads, so a hostile value costs nothing.
const maxSizeInput = 64

// sizeUnits follows go-humanize's ParseBytes: K, KB and kB are powers of 1000, Ki and KiB powers
// of 1024. Units are case-insensitive.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1e6, "mb": 1e6, "mi": 1 << 20, "mib": 1 << 20,
	"g": 1e9, "gb": 1e9, "gi": 1 << 30, "gib": 1 << 30,
	"t": 1e12, "tb": 1e12, "ti": 1 << 40, "tib": 1 << 40,
	"p": 1e15, "pb": 1e15, "pi": 1 << 50, "pib": 1 << 50,
	"e": 1e18, "eb": 1e18, "ei": 1 << 60, "eib": 1 << 60,
}

// ParseSize reads a byte size: a plain count ("1048576") or a number with a unit ("64MB", "512MiB",
// "1.5GiB", "10 kb"). Surrounding space is ignored and "" means 0. A fraction of a byte is
// truncated. It returns an error for a negative, malformed or out-of-range (above MaxInt64) size.
func ParseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if len(s) > maxSizeInput {
		return 0, errors.New("size too long")
	}
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	whole := s[:i]
	var frac string
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		frac, i = s[i+1:j], j
	}
	if whole == "" && frac == "" {
		return 0, fmt.Errorf("size %q does not start with a number", s)
	}
	unit := strings.ToLower(strings.TrimSpace(s[i:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q has an unknown unit", s)
	}
	if frac == "" {
		n, err := strconv.ParseInt(whole, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return n * mult, nil
	}
	// (whole.frac) * mult, exactly: digits * mult / 10^len(frac).
	digits, _ := new(big.Int).SetString(whole+frac, 10)
	digits.Mul(digits, big.NewInt(mult))
	digits.Quo(digits, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil))
	if !digits.IsInt64() {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return digits.Int64(), nil
}

// FormatSize writes n in the largest binary unit that holds it exactly ("512MiB", "1GiB"), or as
// a plain byte count; ParseSize reads it back to n.
func FormatSize(n int64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range [...]struct {
		name string
		size int64
	}{{"EiB", 1 << 60}, {"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// ParseDuration reads a Go duration ("30s", "15m", "24h", "1h30m"), ignoring surrounding space.
func ParseDuration(s string) (time.Duration, error) {
	return time.ParseDuration(strings.TrimSpace(s))
}

// FormatDuration writes d as time.Duration.String does, without the zero tails ("24h" rather
// than "24h0m0s"); ParseDuration reads it back to d.
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// ParseSeconds reads a duration given as a whole number of seconds ("60"), or as a Go duration
// ("60s", "5m"). It returns an error for anything else or a value beyond time.Duration's range.
func ParseSeconds(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if isInteger(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n > math.MaxInt64/int64(time.Second) || n < math.MinInt64/int64(time.Second) {
			return 0, fmt.Errorf("%q seconds is out of range", s)
		}
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// FormatSeconds writes d as a number of seconds when it is whole, else as a Go duration;
// ParseSeconds reads it back to d.
func FormatSeconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10)
	}
	return FormatDuration(d)
}

// isInteger reports whether s is an optionally signed run of decimal digits.
func isInteger(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseBool reads true/false, 1/0, yes/no or on/off, case-insensitively.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1", "yes", "on":
		return true, nil
	case "false", "0", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}

// ParseList splits a comma-separated list, trimming each item and dropping empty ones; it
// returns nil when nothing is left.
func ParseList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// ParsePrefixes reads a comma-separated list of CIDRs ("10.0.0.0/8") and bare addresses (a /32
// or /128). Prefixes are returned masked ("10.1.2.3/8" is 10.0.0.0/8). It returns an error naming
// the first item that is neither.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range ParseList(s) {
		var p netip.Prefix
		if strings.Contains(item, "/") {
			var err error
			if p, err = netip.ParsePrefix(item); err != nil {
				return nil, fmt.Errorf("%q is not a CIDR", item)
			}
		} else {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is not an IP address", item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if !p.IsValid() {
			return nil, fmt.Errorf("%q is not a CIDR", item)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// MaskURI hides the password in a connection string ("mongodb://user:***@host/db") and the
// value of any query option whose name mentions a password. Strings without either come back
// unchanged; masking a masked string changes nothing.
func MaskURI(s string) string {
	prefix, rest := "", s
	if i := strings.Index(s, "://"); i >= 0 {
		prefix, rest = s[:i+3], s[i+3:]
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if colon := strings.IndexByte(rest[:at], ':'); colon >= 0 {
			rest = rest[:colon] + ":***" + rest[at:]
		}
	}
	if q := strings.IndexByte(rest, '?'); q >= 0 {
		opts := strings.Split(rest[q+1:], "&")
		for i, o := range opts {
			name, _, ok := strings.Cut(o, "=")
			if ok && strings.Contains(strings.ToLower(name), "password") {
				opts[i] = name + "=***"
			}
		}
		rest = rest[:q+1] + strings.Join(opts, "&")
	}
	return prefix + rest
}

// ParseRatio reads OTEL_TRACES_SAMPLER_ARG: a number from 0 to 1; empty is 1.
func ParseRatio(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 1, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return 0, fmt.Errorf("config: %q is not a ratio from 0 to 1", s)
	}
	return f, nil
}

// ParseOtelHeaders reads OTEL_EXPORTER_OTLP_HEADERS: comma-separated key=value pairs whose
// values are URL-encoded (the OpenTelemetry specification's format).
func ParseOtelHeaders(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(s, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\"(),/:;<=>?@[\\]{}") {
			return nil, fmt.Errorf("config: %q is not key=value", pair)
		}
		val, err := url.QueryUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("config: header %s: %w", k, err)
		}
		out[k] = val
	}
	return out, nil
}
