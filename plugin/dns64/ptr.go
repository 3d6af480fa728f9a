package dns64

import (
	"context"
	"strconv"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/miekg/dns"
)

const ip6ArpaSuffix = "ip6.arpa."

// parseIP6Arpa reads a full 32-nibble ip6.arpa name (RFC 3596 §2.5).
// Shorter names are not addresses and are left alone.
func parseIP6Arpa(name string) (addr [16]byte, ok bool) {
	if len(name) != 64+len(ip6ArpaSuffix) || !equalFoldASCII(name[64:], ip6ArpaSuffix) {
		return addr, false
	}
	for i := 0; i < 32; i++ {
		if name[2*i+1] != '.' {
			return addr, false
		}
		v, ok := hexNibble(name[2*i])
		if !ok {
			return addr, false
		}
		// Label i is nibble 31-i, lowest first.
		pos := 31 - i
		if pos%2 == 0 {
			addr[pos/2] |= v << 4
		} else {
			addr[pos/2] |= v
		}
	}
	return addr, true
}

func hexNibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// inAddrArpa is the reverse name of an IPv4 address.
func inAddrArpa(v4 [4]byte) string {
	b := make([]byte, 0, 29)
	for i := 3; i >= 0; i-- {
		b = strconv.AppendUint(b, uint64(v4[i]), 10)
		b = append(b, '.')
	}
	return string(append(b, "in-addr.arpa."...))
}

// servePTR answers a reverse query for an address inside a NAT64 prefix
// with a CNAME to the embedded IPv4 address's in-addr.arpa name, followed
// (RFC 6147 §5.3.1). Other names pass through.
func (d *DNS64) servePTR(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	addr, ok := parseIP6Arpa(r.Question[0].Name)
	if !ok {
		return plugin.NextOrFailure(pluginName, d.Next, ctx, w, r)
	}
	var v4 [4]byte
	found := false
	for _, in := range d.set.Load().all {
		if v4, found = in.prefix.Extract(addr); found {
			break
		}
	}
	if !found {
		return plugin.NextOrFailure(pluginName, d.Next, ctx, w, r)
	}

	target := inAddrArpa(v4)
	req := new(dns.Msg)
	req.MsgHdr = r.MsgHdr
	req.Question = []dns.Question{{Name: target, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}
	req.Extra = r.Extra
	cw := getCapture(w)
	rc := dns.RcodeSuccess
	// Follow through the whole server, as the built-in's upstream does, so
	// an in-addr.arpa zone in another server block is found too.
	if srv, ok := ctx.Value(dnsserver.Key{}).(*dnsserver.Server); ok {
		srv.ServeDNS(ctx, cw, req)
	} else {
		rc, _ = plugin.NextOrFailure(pluginName, d.Next, ctx, cw, req)
	}
	resp := cw.msg
	putCapture(cw)

	ttl := uint32(noSOATTL)
	out := new(dns.Msg)
	out.Id = r.Id
	out.Response = true
	out.Opcode = r.Opcode
	out.RecursionDesired = r.RecursionDesired
	out.CheckingDisabled = r.CheckingDisabled
	out.Question = r.Question
	if resp != nil {
		out.Rcode = resp.Rcode
		out.RecursionAvailable = resp.RecursionAvailable
		out.Ns = resp.Ns
		out.Extra = resp.Extra
		for _, rr := range resp.Answer {
			ttl = min(ttl, rr.Header().Ttl)
		}
	} else {
		if plugin.ClientWrite(rc) {
			rc = dns.RcodeServerFailure
		}
		out.Rcode = rc
	}
	nAns := 0
	if resp != nil {
		nAns = len(resp.Answer)
	}
	out.Answer = make([]dns.RR, 0, 1+nAns)
	out.Answer = append(out.Answer, &dns.CNAME{
		Hdr:    dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl},
		Target: target,
	})
	if resp != nil {
		out.Answer = append(out.Answer, resp.Answer...)
	}
	ptrAnswered.WithLabelValues(metrics.WithServer(ctx)).Inc()
	w.WriteMsg(out)
	return dns.RcodeSuccess, nil
}
