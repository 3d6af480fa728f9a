// Command nat64ctl is the NAT64 half of nat64kit: a userspace stateful
// NAT64 translator (RFC 6146, RFC 7915) on a TUN device, and the tools to
// inspect it and check it against the DNS64 configuration. Its commands
// live in internal/cli.
package main

import (
	"os"

	"github.com/nat64kit/nat64kit/internal/cli"
)

func main() {
	os.Exit(cli.Execute(os.Args[1:], os.Stdout, os.Stderr))
}
