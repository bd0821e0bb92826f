package security

import (
	"net/http"
	"net/netip"
	"strings"
)

// maxForwardedHops bounds the X-Forwarded-For entries ClientIP looks at: a real chain of proxies
// is a handful long, and a hostile header may be anything.
const maxForwardedHops = 32

// ClientIP returns the address of the client that made r. X-Forwarded-For is believed only when
// the direct peer (r.RemoteAddr) is in trusted (TRUSTED_PROXIES): the list is then walked from
// the right, skipping trusted hops, and the first untrusted address is the client. An entry that
// does not parse ends the walk at the nearest hop known good, so a malformed or forged header can
// never put an address the trusted chain did not write in front of it. IPv4-mapped IPv6
// addresses are unmapped and zones dropped. The result is invalid (netip.Addr{}) only when
// RemoteAddr itself does not parse. ClientIP never panics, whatever the header holds.
func ClientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer := parseHost(r.RemoteAddr)
	if !peer.IsValid() || !isTrusted(peer, trusted) {
		return peer
	}
	client := peer
	values := r.Header.Values("X-Forwarded-For") // several header lines are one list, in order
	hops := 0
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for {
			j := strings.LastIndexByte(v, ',')
			item := strings.TrimSpace(v[j+1:])
			hops++
			if hops > maxForwardedHops {
				return client
			}
			a := parseHost(item)
			if !a.IsValid() {
				return client
			}
			client = a
			if !isTrusted(a, trusted) {
				return a
			}
			if j < 0 {
				break
			}
			v = v[:j]
		}
	}
	return client
}

// parseHost parses an address as a peer or a proxy writes it: "1.2.3.4", "1.2.3.4:5678", "::1",
// "[::1]" or "[::1]:80".
func parseHost(s string) netip.Addr {
	if len(s) > 64 { // longer than any address with a port and a zone
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
				return netip.Addr{}
			}
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil {
				return netip.Addr{}
			}
		} else {
			a = ap.Addr()
		}
	}
	return a.Unmap().WithZone("")
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientKey names who a request counts against for throttling: "user:<id>" when signed in, else
// "ip:<address>". An IPv6 client is keyed by its /64, the block one subscriber gets, so that
// walking through its addresses does not walk around the limit. An unknown address is
// "ip:unknown".
func ClientKey(userID string, ip netip.Addr) string {
	if userID != "" {
		return "user:" + userID
	}
	if !ip.IsValid() {
		return "ip:unknown"
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		return "ip:" + netip.PrefixFrom(ip, 64).Masked().String()
	}
	return "ip:" + ip.String()
}
