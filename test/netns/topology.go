package netns

import (
	"net/netip"
	"testing"
)

// Topology is the project's common four-namespace shape:
//
//	client (IPv6 only)  c0 ---- tc   translator   ts ---- s0  server (IPv4 only)
//	                                   td
//	                                   |
//	                                   d0  dns (IPv6 only)
//
// The translator forwards IPv6 natively between client and dns, so the
// client reaches its DNS64 server without the NAT64; everything else the
// client sends (a NAT64 prefix) goes to its default route, the translator,
// where a test installs a TUN and its routes. The server routes Pool4 back
// to the translator.
type Topology struct {
	Client, DNS, Translator, Server *NS

	ClientAddr       netip.Addr // on c0, 2001:db8:1::2/64
	TranslatorClient netip.Addr // on tc, 2001:db8:1::1/64
	DNSAddr          netip.Addr // on d0, 2001:db8:53::2/64
	TranslatorDNS    netip.Addr // on td, 2001:db8:53::1/64
	TranslatorServer netip.Addr // on ts, 198.51.100.1/24
	ServerAddr       netip.Addr // on s0, 198.51.100.2/24

	// Pool4 is routed by the server to the translator: the addresses a
	// NAT64 on the translator may use as IPv4 sources.
	Pool4 netip.Prefix // 203.0.113.0/24

	// Interface names, in the namespace they belong to.
	ClientLink, DNSLink, ServerLink                           string // c0, d0, s0
	TranslatorClientLink, TranslatorDNSLink, TranslatorV4Link string // tc, td, ts
}

// NewTopology builds the four namespaces, their veths, addresses, routes and
// forwarding sysctls. The client has no IPv4 address and the server has
// IPv6 disabled, so a test that passes through them really crossed a
// translator. Everything is torn down at cleanup.
func NewTopology(t testing.TB) *Topology {
	t.Helper()
	RequireRoot(t)
	tp := &Topology{
		Client:     New(t, "client"),
		DNS:        New(t, "dns"),
		Translator: New(t, "xlat"),
		Server:     New(t, "server"),

		ClientAddr:       netip.MustParseAddr("2001:db8:1::2"),
		TranslatorClient: netip.MustParseAddr("2001:db8:1::1"),
		DNSAddr:          netip.MustParseAddr("2001:db8:53::2"),
		TranslatorDNS:    netip.MustParseAddr("2001:db8:53::1"),
		TranslatorServer: netip.MustParseAddr("198.51.100.1"),
		ServerAddr:       netip.MustParseAddr("198.51.100.2"),
		Pool4:            netip.MustParsePrefix("203.0.113.0/24"),

		ClientLink: "c0", DNSLink: "d0", ServerLink: "s0",
		TranslatorClientLink: "tc", TranslatorDNSLink: "td", TranslatorV4Link: "ts",
	}
	tp.Server.Sysctl("net.ipv6.conf.all.disable_ipv6", "1")
	tp.Server.Sysctl("net.ipv6.conf.default.disable_ipv6", "1")
	tp.Translator.Sysctl("net.ipv4.ip_forward", "1")
	tp.Translator.Sysctl("net.ipv6.conf.all.forwarding", "1")

	Veth(t, tp.Client, tp.ClientLink, tp.Translator, tp.TranslatorClientLink)
	Veth(t, tp.DNS, tp.DNSLink, tp.Translator, tp.TranslatorDNSLink)
	Veth(t, tp.Server, tp.ServerLink, tp.Translator, tp.TranslatorV4Link)

	tp.Client.AddAddr(tp.ClientLink, "2001:db8:1::2/64")
	tp.Translator.AddAddr(tp.TranslatorClientLink, "2001:db8:1::1/64")
	tp.DNS.AddAddr(tp.DNSLink, "2001:db8:53::2/64")
	tp.Translator.AddAddr(tp.TranslatorDNSLink, "2001:db8:53::1/64")
	tp.Translator.AddAddr(tp.TranslatorV4Link, "198.51.100.1/24")
	tp.Server.AddAddr(tp.ServerLink, "198.51.100.2/24")

	tp.Client.AddRoute("default", tp.TranslatorClient.String(), tp.ClientLink)
	tp.DNS.AddRoute("default", tp.TranslatorDNS.String(), tp.DNSLink)
	tp.Server.AddRoute(tp.Pool4.String(), tp.TranslatorServer.String(), tp.ServerLink)
	return tp
}
