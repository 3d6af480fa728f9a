// Command nat64ctl is the NAT64 half of nat64kit: a userspace stateful
// NAT64 translator (RFC 6146, RFC 7915) on a TUN device, and the tools to
// inspect it and check it against the DNS64 configuration.
package main

import (
	"os"
)

// defaultConfig is where nat64ctl looks for nat64.toml without -c.
const defaultConfig = "/etc/nat64kit/nat64.toml"

func newRoot() *command {
	return (&command{
		name:  "nat64ctl",
		usage: "nat64ctl COMMAND [flags]",
		short: "NAT64 translator and tools",
		long: `nat64ctl runs and inspects nat64kit's stateful NAT64 translator. Its
prefixes come from the same nat64.toml that the CoreDNS dns64 plugin reads
(see "nat64ctl check").`,
		sub: []*command{
			runCmd(),
			checkCmd(),
			routeCmd(),
			sessionCmd(),
			bibCmd(),
			statsCmd(),
			reloadCmd(),
			addrCmd(),
		},
	}).link()
}

func main() {
	os.Exit(run(newRoot(), os.Args[1:], os.Stdout, os.Stderr))
}
