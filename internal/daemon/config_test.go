package daemon

import (
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/nat64conf"
)

// Every key of nat64.toml the translator uses reaches xlat.Config.
func TestXlatConfigCarriesInstance(t *testing.T) {
	cfg, err := nat64conf.Parse("x.toml", []byte(`[[instance]]
name = "a"
prefix = "64:ff9b:1::/96"
pool4 = ["203.0.113.1/32"]
mtu = 9000
ipv4_mtu = 1500
lowest_ipv6_mtu = 1400
udp_zero_checksum = "drop"
icmp_error_rate = 1000
icmp_error_burst = 50
[instance.timeouts]
fragment = "7s"
`))
	if err != nil {
		t.Fatal(err)
	}
	in := &cfg.Instances[0]
	c := xlatConfig(in)
	if c.Prefix != in.Prefix || c.MTU != 9000 || c.IPv4MTU != 1500 || c.LowestIPv6MTU != 1400 || !c.DropZeroChecksumUDP ||
		c.ICMPErrorRate != 1000 || c.ICMPErrorBurst != 50 || c.FragmentTimeout != 7*time.Second || c.Fragments == nil || c.ErrorLimit == nil {
		t.Errorf("xlat.Config %+v from instance %+v", c, in)
	}
}
