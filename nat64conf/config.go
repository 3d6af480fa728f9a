// Package nat64conf is the prefix config that the dns64 plugin and nat64ctl
// both read (nat64.toml), so the prefixes DNS64 synthesizes with and the
// prefixes NAT64 routes can never disagree. It also holds the RFC 6052
// address arithmetic both sides share.
package nat64conf

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// Config is one loaded nat64.toml.
type Config struct {
	File      string // where it was read from, for messages
	Instances []Instance
}

// Instance is one NAT64 translator: one TUN device, one prefix, one pool4.
type Instance struct {
	Name    string       // also the TUN device name
	Prefix  nat64.Prefix // pool6
	Pool4   []Pool4Range
	Weight  int    // share of clients dns64 sends here; >= 1
	Control string // host:port of nat64ctl's HTTP API; "" means none

	// MTU of the TUN device, which is the IPv6-side MTU the translator
	// assumes when deciding to fragment or send Packet Too Big.
	MTU int
	// IPv4MTU is the IPv4-side next-hop MTU used for RFC 7915 MTU
	// arithmetic.
	IPv4MTU int

	Timeouts Timeouts

	// Filtering is address-dependent by default (RFC 6146 §3.5.2.2 allows
	// endpoint-independent as an operator choice).
	EndpointIndependentFiltering bool
	// DropZeroChecksumUDP drops IPv4 UDP with checksum 0 instead of
	// computing a checksum for it (RFC 7915 §4.5 lets the operator choose).
	DropZeroChecksumUDP bool

	MaxSessions          int // across all protocols
	MaxSessionsPerSource int // per IPv6 source address

	Static []StaticBIB

	// Line is where the instance's [[instance]] header stands; fieldLines
	// where each of its keys does, for messages that point at the file.
	Line       int
	fieldLines map[string]int
}

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
	Proto nat64.Transport
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

	DefaultMTU                  = 1500
	DefaultFirstPort            = 1024
	DefaultLastPort             = 65535
	DefaultMaxSessions          = 1 << 20
	DefaultMaxSessionsPerSource = 4096

	// MinIPv6MTU is the IPv6 minimum link MTU (RFC 8200 §5).
	MinIPv6MTU = 1280
)

// RFC 6146 floors: a session may not be given a shorter life than these.
const (
	MinUDPTimeout            = 2 * time.Minute
	MinTCPEstablishedTimeout = 2*time.Hour + 4*time.Minute
	MinTCPTransitoryTimeout  = 4 * time.Minute
	MinICMPTimeout           = 60 * time.Second
)

// Instance returns the instance with that name.
func (c *Config) Instance(name string) (*Instance, bool) {
	for i := range c.Instances {
		if c.Instances[i].Name == name {
			return &c.Instances[i], true
		}
	}
	return nil, false
}

// Pick returns the instance named name or, when name is empty, the only
// one: the rule of every command that acts on one instance.
func (c *Config) Pick(name string) (*Instance, error) {
	if name == "" {
		if len(c.Instances) != 1 {
			return nil, fmt.Errorf("%s has %d instances: say which with --instance", c.File, len(c.Instances))
		}
		return &c.Instances[0], nil
	}
	in, ok := c.Instance(name)
	if !ok {
		return nil, fmt.Errorf("no instance %q in %s", name, c.File)
	}
	return in, nil
}

// ByPrefix returns the instance whose prefix is p.
func (c *Config) ByPrefix(p netip.Prefix) (*Instance, bool) {
	for i := range c.Instances {
		if c.Instances[i].Prefix.Netip() == p {
			return &c.Instances[i], true
		}
	}
	return nil, false
}

// LineOf returns the line of the instance's key (e.g. "prefix"), or the
// instance header's line when the key was not written.
func (in *Instance) LineOf(key string) int {
	for {
		if l, ok := in.fieldLines[key]; ok {
			return l
		}
		// "timeouts.udp" written as an inline table is only known as "timeouts".
		i := strings.LastIndexByte(key, '.')
		if i < 0 {
			return in.Line
		}
		key = key[:i]
	}
}

// Pool4Contains reports whether the pool4 holds this IPv4 transport address.
func (in *Instance) Pool4Contains(ap netip.AddrPort) bool {
	for _, r := range in.Pool4 {
		if r.Prefix.Contains(ap.Addr()) && ap.Port() >= r.FirstPort && ap.Port() <= r.LastPort {
			return true
		}
	}
	return false
}

// Addresses returns how many IPv4 addresses the range holds.
func (r Pool4Range) Addresses() int { return 1 << (32 - r.Prefix.Bits()) }

// Ports returns how many ports each address of the range offers.
func (r Pool4Range) Ports() int { return int(r.LastPort) - int(r.FirstPort) + 1 }

func (r Pool4Range) String() string {
	if r.FirstPort == DefaultFirstPort && r.LastPort == DefaultLastPort {
		return r.Prefix.String()
	}
	return r.Prefix.String() + " " + itoa(int(r.FirstPort)) + "-" + itoa(int(r.LastPort))
}
