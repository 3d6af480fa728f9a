package nat64

import (
	"net/netip"
	"strconv"
	"time"
)

// Pool4Range is one pool4 entry: an IPv4 prefix and the ports usable on
// each of its addresses.
type Pool4Range struct {
	Prefix    netip.Prefix
	FirstPort uint16
	LastPort  uint16
}

// Timeouts are the session lifetimes of RFC 6146 §3.5 / §4.
type Timeouts struct {
	UDP            time.Duration
	TCPEstablished time.Duration
	TCPTransitory  time.Duration
	ICMP           time.Duration
}

// StaticBIB is a static binding (RFC 6146 §3.5: manually configured BIB
// entries), giving IPv4 hosts a way in to an IPv6 server.
type StaticBIB struct {
	Proto Transport
	IPv6  netip.AddrPort // for ICMP the port is the echo identifier
	IPv4  netip.AddrPort
	Line  int
}

// Defaults, from RFC 6146 §4 and common practice.
const (
	DefaultUDPTimeout            = 5 * time.Minute
	DefaultTCPEstablishedTimeout = 2*time.Hour + 4*time.Minute
	DefaultTCPTransitoryTimeout  = 4 * time.Minute
	DefaultICMPTimeout           = 60 * time.Second
	// DefaultFragmentTimeout is how long fragments wait for the rest of
	// their datagram (timeouts.fragment). RFC 6146 §4 asks for at least
	// 2 s, which is also Jool's default (FRAGMENT_MIN); see
	// xlat.FragmentTimeout for why not RFC 8200's 60 s or Linux's 30 s.
	DefaultFragmentTimeout = 2 * time.Second
	// MaxFragmentTimeout is RFC 8200 §4.5's reassembly time for end
	// hosts: nothing in the path should wait longer than they do.
	MaxFragmentTimeout = 60 * time.Second

	DefaultMTU                  = 1500
	DefaultFirstPort            = 1024
	DefaultLastPort             = 65535
	DefaultMaxSessions          = 1 << 20
	DefaultMaxSessionsPerSource = 4096

	// MinIPv6MTU is the IPv6 minimum link MTU (RFC 8200 §5).
	MinIPv6MTU = 1280
	// DefaultLowestIPv6MTU is RFC 7915 §4's "lowest-ipv6-mtu": the largest
	// IPv6 packet a non-DF IPv4 packet is translated into. The translator
	// cannot know the IPv6 path MTU, so by default it assumes the minimum.
	DefaultLowestIPv6MTU = MinIPv6MTU

	// DefaultICMPErrorRate and DefaultICMPErrorBurst limit the ICMP errors
	// the translator originates (errors per second, and the burst allowed
	// above that rate). RFC 4443 §2.4(f) (ICMPv6: MUST limit; a token
	// bucket allowing bursts is the recommended method; the parameters
	// SHOULD be configurable) and RFC 1812 §4.3.2.8 (ICMPv4: SHOULD limit)
	// leave the figures to the implementation. These are the Linux
	// kernel's own global limit on the errors it originates, shared by
	// ICMPv4 and ICMPv6: net.ipv4.icmp_msgs_per_sec = 1000 and
	// net.ipv4.icmp_msgs_burst = 50. The translator stands where a router
	// would, in front of that same kernel, so it answers no more than the
	// kernel would in its place. (The kernel also limits per destination,
	// net.ipv4.icmp_ratelimit = 1000 ms between tokens; that needs a table
	// per peer and is not done here: the global bucket is what keeps a
	// flood from turning the translator into an amplifier.)
	DefaultICMPErrorRate  = 1000
	DefaultICMPErrorBurst = 50
	// MaxICMPErrorRate bounds icmp_error_rate (and the burst): a token
	// costs 1e9 / rate ns, which stays exact enough up to here.
	MaxICMPErrorRate = 1_000_000
)

// RFC 6146 floors: a session may not be given a shorter life than these.
const (
	MinUDPTimeout            = 2 * time.Minute
	MinTCPEstablishedTimeout = 2*time.Hour + 4*time.Minute
	MinTCPTransitoryTimeout  = 4 * time.Minute
	MinICMPTimeout           = 60 * time.Second
	MinFragmentTimeout       = 2 * time.Second
)

// Addresses returns how many IPv4 addresses the range holds.
func (r Pool4Range) Addresses() int { return 1 << (32 - r.Prefix.Bits()) }

// Ports returns how many ports each address of the range offers.
func (r Pool4Range) Ports() int { return int(r.LastPort) - int(r.FirstPort) + 1 }

func (r Pool4Range) String() string {
	if r.FirstPort == DefaultFirstPort && r.LastPort == DefaultLastPort {
		return r.Prefix.String()
	}
	return r.Prefix.String() + " " + strconv.Itoa(int(r.FirstPort)) + "-" + strconv.Itoa(int(r.LastPort))
}

// Overlaps reports whether the ranges share an address and a port.
func (r Pool4Range) Overlaps(q Pool4Range) bool {
	return r.Prefix.Overlaps(q.Prefix) && r.FirstPort <= q.LastPort && q.FirstPort <= r.LastPort
}
