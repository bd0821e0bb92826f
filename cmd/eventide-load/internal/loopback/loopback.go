// Package loopback keeps eventide-load on this machine: it refuses target URLs whose host is not
// a loopback address, and its dialer refuses to connect anywhere else, whatever a name resolves
// to or a redirect points at.
package loopback

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// ErrNotLoopback is wrapped by every refusal.
var ErrNotLoopback = errors.New("not a loopback address (only 127.0.0.0/8, ::1 and localhost may be load-tested)")

// CheckURL parses raw and returns it when its scheme is http, https, ws or wss and its host is
// localhost or a loopback IP (127.0.0.0/8, ::1, or either as an IPv4-mapped IPv6 address).
// Other host names are refused without being resolved.
func CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("-url %q: %w", raw, err)
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return nil, fmt.Errorf("-url %q: scheme must be http or https", raw)
	}
	if !IsLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("-url %q: host %q is %w", raw, u.Hostname(), ErrNotLoopback)
	}
	return u, nil
}

// IsLoopbackHost reports whether host (no port, no brackets) is "localhost" or a loopback IP.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return a.Unmap().WithZone("").IsLoopback()
}

// Dialer returns a dialer that connects only to loopback addresses: the check runs on the
// address actually dialled, after name resolution.
func Dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: control}
}

func control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	a, err := netip.ParseAddr(host)
	if err != nil || !a.Unmap().WithZone("").IsLoopback() {
		return fmt.Errorf("dial %s: %w", address, ErrNotLoopback)
	}
	return nil
}
