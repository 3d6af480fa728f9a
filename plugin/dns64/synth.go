package dns64

import (
	"net"
	"net/netip"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nat64kit/nat64kit/internal/dns64conf"
)

// noSOATTL caps a synthesized TTL when the negative AAAA answer carried no
// SOA (RFC 6147 §5.1.7).
const noSOATTL = 600

// negativeTTL is the TTL limit a negative AAAA answer sets: the SOA's own
// TTL and its MINIMUM field (RFC 2308 §5), or noSOATTL without a SOA.
func negativeTTL(aaaa *dns.Msg) uint32 {
	if aaaa != nil {
		for _, rr := range aaaa.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				return min(soa.Hdr.Ttl, soa.Minttl)
			}
		}
	}
	return noSOATTL
}

// synthesize builds the answer to r from the A response: the CNAME/DNAME
// chain as the A lookup found it, each A record replaced by AAAA records
// (RFC 6147 §5.1.7, §5.3), RRSIGs over A removed and AD cleared (§5.5), with
// the instances ch chose from set. It returns the message, how many AAAA
// records it holds, and which instances they embed (bit i: set.all[i]).
func (d *DNS64) synthesize(r, aaaa, aResp *dns.Msg, ch choice, set *instanceSet, server string) (*dns.Msg, int, uint64) {
	ttlCap := negativeTTL(aaaa)
	fallback := ch.fallback
	if fallback {
		fallbacks.WithLabelValues(server).Inc()
	}

	chosen := ch.chosen
	perA := 1
	if d.balance == dns64conf.BalanceAll {
		perA = 0
		for _, in := range set.all {
			if usable(in, fallback) {
				perA++
			}
		}
	}

	nA := 0
	for _, rr := range aResp.Answer {
		if rr.Header().Rrtype == dns.TypeA {
			nA++
		}
	}
	// One allocation each for the records and their addresses.
	records := make([]dns.AAAA, nA*perA)
	addrs := make([]byte, 16*nA*perA)
	n := 0
	emit := func(a *dns.A, in *instance, v4 [4]byte) dns.RR {
		if !in.prefix.CanCarry(v4) {
			return nil // RFC 6052 §3.1
		}
		v6 := in.prefix.Embed(v4)
		ip := net.IP(addrs[16*n : 16*n+16 : 16*n+16])
		copy(ip, v6[:])
		rec := &records[n]
		n++
		rec.Hdr = dns.RR_Header{Name: a.Hdr.Name, Rrtype: dns.TypeAAAA, Class: a.Hdr.Class, Ttl: min(a.Hdr.Ttl, ttlCap)}
		rec.AAAA = ip
		return rec
	}

	out := new(dns.Msg)
	out.Id = r.Id
	out.Response = true
	out.Opcode = r.Opcode
	out.RecursionDesired = r.RecursionDesired
	out.CheckingDisabled = r.CheckingDisabled
	out.RecursionAvailable = aResp.RecursionAvailable
	out.Truncated = aResp.Truncated
	out.Rcode = aResp.Rcode
	out.Question = r.Question
	out.Ns = withoutRRSIGOverA(aResp.Ns)
	out.Extra = withoutRRSIGOverA(aResp.Extra) // §5.3.2: otherwise unchanged
	out.Answer = make([]dns.RR, 0, len(aResp.Answer)-nA+nA*perA)

	var used uint64 // bit i: set.all[i] synthesized at least once
	for _, rr := range aResp.Answer {
		switch v := rr.(type) {
		case *dns.A:
			ip, ok := netip.AddrFromSlice(v.A)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if !ip.Is4() || !d.mapped.Allows(ip) {
				continue
			}
			v4 := ip.As4()
			switch d.balance {
			case dns64conf.BalanceAll:
				for i, in := range set.all {
					if usable(in, fallback) {
						if rec := emit(v, in, v4); rec != nil {
							out.Answer = append(out.Answer, rec)
							used |= 1 << (uint(i) & 63)
						}
					}
				}
			case dns64conf.BalanceDestination:
				in := set.rendezvous(v4Key(v4), fallback)
				if rec := emit(v, in, v4); rec != nil {
					out.Answer = append(out.Answer, rec)
					used |= 1 << (uint(set.index(in)) & 63)
				}
			default:
				if rec := emit(v, chosen, v4); rec != nil {
					out.Answer = append(out.Answer, rec)
					used |= 1 << (uint(ch.idx) & 63)
				}
			}
		case *dns.RRSIG:
			if v.TypeCovered != dns.TypeA {
				out.Answer = append(out.Answer, rr)
			}
		default:
			out.Answer = append(out.Answer, rr) // §5.3.3: the chain, unchanged
		}
	}
	if n > 0 {
		d.countSynthesized(set, used, server)
	}
	return out, n, used
}

// countSynthesized counts an answer in synthesized_total of each instance
// it embeds.
func (d *DNS64) countSynthesized(set *instanceSet, used uint64, server string) {
	for i, in := range set.all {
		if i < 64 && used&(1<<uint(i)) != 0 {
			in.synthC.get(server, func() prometheus.Counter {
				return synthesized.WithLabelValues(server, in.name, in.prefixS)
			}).Inc()
		}
	}
}

func (s *instanceSet) index(in *instance) int {
	for i, x := range s.all {
		if x == in {
			return i
		}
	}
	return 0
}

// withoutRRSIGOverA drops RRSIGs covering A; it copies only when there is
// one to drop.
func withoutRRSIGOverA(rrs []dns.RR) []dns.RR {
	for i, rr := range rrs {
		if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == dns.TypeA {
			out := make([]dns.RR, i, len(rrs)-1)
			copy(out, rrs[:i])
			for _, rr := range rrs[i+1:] {
				if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == dns.TypeA {
					continue
				}
				out = append(out, rr)
			}
			return out
		}
	}
	return rrs
}
