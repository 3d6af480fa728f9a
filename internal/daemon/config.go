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

// xlatConfig is the translators' half. The instance's Translators (one per
// worker, and the expiry's) share one ICMP error bucket, so nat64.toml's
// rate is the instance's whichever queue a flood lands on, as the kernel's
// own limit is one per host; and one fragment store, since the fragments
// of a datagram may reach different TUN queues (see xlat.Fragments).
func xlatConfig(in *nat64conf.Instance) *xlat.Config {
	c := limitsConfig(in)
	c.FragmentTimeout = in.FragmentTimeout
	c.ErrorLimit = xlat.NewErrorLimit(in.ICMPErrorRate, in.ICMPErrorBurst)
	c.Fragments = xlat.NewFragments(in.FragmentTimeout)
	return c
}

// limitsConfig is the part of the translators' half the kernel fast path
// shares: prefix, MTUs and the zero-checksum rule, nothing with state.
func limitsConfig(in *nat64conf.Instance) *xlat.Config {
	return &xlat.Config{
		Prefix:              in.Prefix,
		MTU:                 in.MTU,
		IPv4MTU:             in.IPv4MTU,
		LowestIPv6MTU:       in.LowestIPv6MTU,
		DropZeroChecksumUDP: in.DropZeroChecksumUDP,
		ICMPErrorRate:       in.ICMPErrorRate,
		ICMPErrorBurst:      in.ICMPErrorBurst,
	}
}
