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
	Pool4   []nat64.Pool4Range
	Weight  int    // share of clients dns64 sends here; >= 1
	Control string // host:port of nat64ctl's HTTP API; "" means none

	// MTU of the TUN device, which is the IPv6-side MTU the translator
	// assumes when deciding to fragment or send Packet Too Big.
	MTU int
	// IPv4MTU is the IPv4-side next-hop MTU used for RFC 7915 MTU
	// arithmetic.
	IPv4MTU int
	// LowestIPv6MTU is RFC 7915 §4's lowest-ipv6-mtu: non-DF IPv4 packets
	// whose translation is larger are sent as IPv6 fragments no larger
	// than this (1280 unless the operator knows the IPv6 paths carry
	// more; at most MTU).
	LowestIPv6MTU int

	Timeouts nat64.Timeouts
	// FragmentTimeout is how long fragments wait for the rest of their
	// datagram (timeouts.fragment): reassembly of ICMP, and the later
	// TCP and UDP fragments following their first.
	FragmentTimeout time.Duration

	// Filtering is address-dependent by default (RFC 6146 §3.5.2.2 allows
	// endpoint-independent as an operator choice).
	EndpointIndependentFiltering bool
	// DropZeroChecksumUDP drops IPv4 UDP with checksum 0 instead of
	// computing a checksum for it (RFC 7915 §4.5 lets the operator choose).
	DropZeroChecksumUDP bool

	// ICMPErrorRate and ICMPErrorBurst limit the ICMP errors the
	// translator originates itself, per second and in a burst (RFC 4443
	// §2.4(f), RFC 1812 §4.3.2.8), for the whole instance.
	ICMPErrorRate  int
	ICMPErrorBurst int

	MaxSessions          int // across all protocols
	MaxSessionsPerSource int // per IPv6 source address

	// FastPath says whether the kernel fast path carries established
	// flows (see FastPathMode).
	FastPath FastPathMode

	Static []nat64.StaticBIB

	// Line is where the instance's [[instance]] header stands; fieldLines
	// where each of its keys does, for messages that point at the file.
	Line       int
	fieldLines map[string]int
}

// FastPathMode is the fastpath setting of an instance.
type FastPathMode string

// The fastpath settings: auto loads the kernel fast path when the kernel
// allows it and otherwise runs the user-space translator alone, saying
// why; on refuses to start without it; off never loads it.
const (
	FastPathAuto FastPathMode = "auto"
	FastPathOn   FastPathMode = "on"
	FastPathOff  FastPathMode = "off"
)

// ParseFastPathMode reads a fastpath setting ("" is auto).
func ParseFastPathMode(s string) (FastPathMode, error) {
	switch m := FastPathMode(s); m {
	case "":
		return FastPathAuto, nil
	case FastPathAuto, FastPathOn, FastPathOff:
		return m, nil
	}
	return "", fmt.Errorf("%q: want \"auto\", \"on\" or \"off\"", s)
}

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
