package security

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

var testTrusted = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("2001:db8::/32"),
}

func request(remote string, xff ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/graphql", nil)
	r.RemoteAddr = remote
	for _, v := range xff {
		r.Header.Add("X-Forwarded-For", v)
	}
	return r
}

func TestClientIP(t *testing.T) {
	deep := strings.TrimSuffix(strings.Repeat("10.0.0.9, ", 40), ", ")
	for _, tc := range []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string // "" for the invalid address
	}{
		{"PeerWithoutProxies", "203.0.113.7:5555", nil, nil, "203.0.113.7"},
		{"XFFIgnoredFromUntrustedPeer", "203.0.113.7:5555", []string{"198.51.100.1"}, testTrusted, "203.0.113.7"},
		{"XFFIgnoredWithoutTrustedProxies", "10.0.0.1:80", []string{"198.51.100.1"}, nil, "10.0.0.1"},
		{"ClientFromTrustedProxy", "10.0.0.1:80", []string{"198.51.100.1"}, testTrusted, "198.51.100.1"},
		{"TrustedHopsSkippedRightToLeft", "10.0.0.1:80", []string{"6.6.6.6, 198.51.100.1, 10.0.0.2"}, testTrusted, "198.51.100.1"},
		{"SpoofedLeftEntryIgnored", "10.0.0.1:80", []string{"127.0.0.1, 198.51.100.1"}, testTrusted, "198.51.100.1"},
		{"SeveralHeaderLinesAreOneList", "10.0.0.1:80", []string{"6.6.6.6", "198.51.100.1, 10.0.0.2"}, testTrusted, "198.51.100.1"},
		{"AllTrustedGivesLeftmost", "10.0.0.1:80", []string{"10.0.0.3, 10.0.0.2"}, testTrusted, "10.0.0.3"},
		{"NoXFFGivesPeer", "10.0.0.1:80", nil, testTrusted, "10.0.0.1"},
		{"EmptyXFFGivesPeer", "10.0.0.1:80", []string{""}, testTrusted, "10.0.0.1"},
		{"MalformedRightmostStopsAtPeer", "10.0.0.1:80", []string{"198.51.100.1, garbage"}, testTrusted, "10.0.0.1"},
		{"MalformedAfterTrustedHopStopsThere", "10.0.0.1:80", []string{"garbage, 10.0.0.2"}, testTrusted, "10.0.0.2"},
		{"MalformedLeftOfClientIgnored", "10.0.0.1:80", []string{"garbage, 198.51.100.1"}, testTrusted, "198.51.100.1"},
		{"EmptyEntryStops", "10.0.0.1:80", []string{"198.51.100.1,,10.0.0.2"}, testTrusted, "10.0.0.2"},
		{"EntriesWithPorts", "10.0.0.1:80", []string{"198.51.100.1:4711, 10.0.0.2:80"}, testTrusted, "198.51.100.1"},
		{"IPv6Entries", "[2001:db8::1]:443", []string{"[2001:db8:ffff::1]:80, 2001:db8::2"}, []netip.Prefix{netip.MustParsePrefix("2001:db8::/48")}, "2001:db8:ffff::1"},
		{"BracketedIPv6WithoutPort", "[2001:db8::1]:443", []string{"[2600::1]"}, testTrusted, "2600::1"},
		{"MappedPeerUnmapped", "[::ffff:10.0.0.1]:80", []string{"198.51.100.1"}, testTrusted, "198.51.100.1"},
		{"MappedClientUnmapped", "10.0.0.1:80", []string{"::ffff:198.51.100.1"}, testTrusted, "198.51.100.1"},
		{"ZoneDropped", "[fe80::1%eth0]:80", nil, nil, "fe80::1"},
		{"PeerWithoutPort", "203.0.113.7", nil, nil, "203.0.113.7"},
		{"BadRemoteAddrInvalid", "not-an-address", []string{"198.51.100.1"}, testTrusted, ""},
		{"EmptyRemoteAddrInvalid", "", nil, testTrusted, ""},
		{"TooManyHopsStopsAtLastTrusted", "10.0.0.1:80", []string{"198.51.100.1, " + deep}, testTrusted, "10.0.0.9"},
		{"HugeEntryRefused", "10.0.0.1:80", []string{strings.Repeat("1", 100000)}, testTrusted, "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ClientIP(request(tc.remote, tc.xff...), tc.trusted)
			if tc.want == "" {
				if got.IsValid() {
					t.Fatalf("got %s, want the invalid address", got)
				}
				return
			}
			if got != netip.MustParseAddr(tc.want) {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct {
		name, user, ip, want string
	}{
		{"SignedInByUser", "u42", "203.0.113.7", "user:u42"},
		{"AnonymousByIPv4", "", "203.0.113.7", "ip:203.0.113.7"},
		{"AnonymousIPv6ByPrefix64", "", "2001:db8:1:2:3:4:5:6", "ip:2001:db8:1:2::/64"},
		{"MappedIPv4Unmapped", "", "::ffff:203.0.113.7", "ip:203.0.113.7"},
		{"UnknownAddress", "", "", "ip:unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ip netip.Addr
			if tc.ip != "" {
				ip = netip.MustParseAddr(tc.ip)
			}
			if got := ClientKey(tc.user, ip); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("IPv6NeighboursShareAKey", func(t *testing.T) {
		a := ClientKey("", netip.MustParseAddr("2001:db8:1:2::1"))
		b := ClientKey("", netip.MustParseAddr("2001:db8:1:2:ffff::9"))
		if a != b {
			t.Fatalf("%q != %q", a, b)
		}
	})
}

// FuzzClientIP feeds arbitrary peers and X-Forwarded-For headers: ClientIP must not panic, and its
// answer must be the peer or an address the header holds, never anything else.
func FuzzClientIP(f *testing.F) {
	f.Add("10.0.0.1:80", "198.51.100.1, 10.0.0.2")
	f.Add("203.0.113.7:5555", "198.51.100.1")
	f.Add("[2001:db8::1]:443", "[2600::1]:80, 2001:db8::2")
	f.Add("10.0.0.1:80", ",,, ,")
	f.Add("[::ffff:10.0.0.1]:80", "::ffff:198.51.100.1%eth0")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		r := &http.Request{RemoteAddr: remote, Header: http.Header{"X-Forwarded-For": {xff}}}
		got := ClientIP(r, testTrusted)
		peer := parseHost(remote)
		switch {
		case !peer.IsValid():
			if got.IsValid() {
				t.Fatalf("invalid peer %q, got %s", remote, got)
			}
			return
		case !isTrusted(peer, testTrusted):
			if got != peer {
				t.Fatalf("untrusted peer %s, got %s", peer, got)
			}
			return
		}
		if got.Zone() != "" || got.Is4In6() {
			t.Fatalf("got %s: zone or mapped address kept", got)
		}
		if got == peer {
			return
		}
		for item := range strings.SplitSeq(xff, ",") {
			if parseHost(strings.TrimSpace(item)) == got {
				return
			}
		}
		t.Fatalf("got %s, which is neither the peer %s nor in %q", got, peer, xff)
	})
}
