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

func xlatConfig(in *nat64conf.Instance) *xlat.Config {
	return &xlat.Config{
		Prefix:              in.Prefix,
		MTU:                 in.MTU,
		IPv4MTU:             in.IPv4MTU,
		LowestIPv6MTU:       in.LowestIPv6MTU,
		DropZeroChecksumUDP: in.DropZeroChecksumUDP,
	}
}
