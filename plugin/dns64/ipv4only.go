package dns64

import (
	"context"
	"net"

	"github.com/miekg/dns"
)

const ipv4OnlyArpa = "ipv4only.arpa."

// ipv4OnlyAddrs are the well-known A records of ipv4only.arpa (RFC 7050
// §2.2, RFC 8880 §7.2).
var ipv4OnlyAddrs = [...][4]byte{{192, 0, 0, 170}, {192, 0, 0, 171}}

func isIPv4OnlyArpa(name string) bool { return equalFoldASCII(name, ipv4OnlyArpa) }

// serveIPv4OnlyArpa answers the NAT64 prefix discovery query (RFC 7050)
// without asking anyone: both well-known addresses under every active
// prefix, so a client learns all prefixes it may be given. RFC 7050 expects
// these even under 64:ff9b::/96, so the §3.1 rule does not apply here.
func (d *DNS64) serveIPv4OnlyArpa(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	set := d.set.Load()
	fallback := !set.anyHealthy()
	out := new(dns.Msg)
	out.SetReply(r)
	out.RecursionAvailable = true
	for _, in := range set.all {
		if !usable(in, fallback) {
			continue
		}
		for _, v4 := range ipv4OnlyAddrs {
			v6 := in.prefix.Embed(v4)
			out.Answer = append(out.Answer, &dns.AAAA{
				Hdr:  dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: noSOATTL},
				AAAA: net.IP(v6[:]),
			})
		}
	}
	if opt := r.IsEdns0(); opt != nil {
		out.SetEdns0(opt.UDPSize(), false)
	}
	w.WriteMsg(out)
	return dns.RcodeSuccess, nil
}
