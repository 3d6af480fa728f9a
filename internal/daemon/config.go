package daemon

import (
	"github.com/nat64kit/nat64kit/internal/state"
	"github.com/nat64kit/nat64kit/internal/xlat"
	"github.com/nat64kit/nat64kit/nat64conf"
)

// The daemon is where nat64.toml meets the data path: the state table and
// the translators get their halves of the instance and never read
// configuration themselves.

func stateConfig(in *nat64conf.Instance) *state.Config {
	return &state.Config{
		Prefix:                       in.Prefix,
		Pool4:                        in.Pool4,
		Timeouts:                     in.Timeouts,
		EndpointIndependentFiltering: in.EndpointIndependentFiltering,
		MaxSessions:                  in.MaxSessions,
		MaxSessionsPerSource:         in.MaxSessionsPerSource,
		Static:                       in.Static,
	}
}

// xlatConfig is the translators' half. shares is how many Translators the
// instance runs (one per worker, and the expiry's): each limits its own
// ICMP errors without locks, so each gets its share of the instance's rate
// and burst, rounded up. The instance as a whole then originates about
// what nat64.toml says, as the kernel's own limit is one per host.
func xlatConfig(in *nat64conf.Instance, shares int) *xlat.Config {
	shares = max(shares, 1)
	return &xlat.Config{
		Prefix:              in.Prefix,
		MTU:                 in.MTU,
		IPv4MTU:             in.IPv4MTU,
		LowestIPv6MTU:       in.LowestIPv6MTU,
		DropZeroChecksumUDP: in.DropZeroChecksumUDP,
		ICMPErrorRate:       (in.ICMPErrorRate + shares - 1) / shares,
		ICMPErrorBurst:      (in.ICMPErrorBurst + shares - 1) / shares,
		FragmentTimeout:     in.FragmentTimeout,
		// One for the instance: the fragments of a datagram may reach
		// different TUN queues (see xlat.Fragments).
		Fragments: xlat.NewFragments(in.FragmentTimeout),
	}
}
