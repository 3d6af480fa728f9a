package tunio

import (
	"strings"
	"testing"

	"github.com/nat64kit/nat64kit/test/netns"
)

// TestOffloadsReported checks, with ethtool, that the offloads Read and
// Write rely on are on for a device Open made: TSO (TCP super-packets),
// checksum offload, and UDP segmentation where the kernel has it.
func TestOffloadsReported(t *testing.T) {
	netns.RequireCommand(t, "ethtool", "ethtool")
	ns, _ := openTUN(t, 2)
	out := ns.MustExec("ethtool", "-k", tunName)
	t.Logf("ethtool -k %s:\n%s", tunName, out)
	for _, want := range []string{
		"tx-checksumming: on",
		"scatter-gather: on",
		"tcp-segmentation-offload: on",
		"generic-receive-offload: on",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("ethtool -k lacks %q", want)
		}
	}
}
