package dns64

import (
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// needsSynthesis decides from the AAAA response. It returns synth false and
// possibly a copy of aaaa with the excluded AAAA records removed.
func (d *DNS64) needsSynthesis(r, aaaa *dns.Msg, server string) (synth bool, filtered *dns.Msg) {
	if aaaa == nil {
		return true, nil // SERVFAIL, timeout: empty (§5.1.2-5.1.3)
	}
	if aaaa.Rcode == dns.RcodeNameError {
		return false, nil // §5.1.2
	}
	if d.translateAll || d.ignored(r.Question[0].Name) {
		return true, nil
	}
	total, excluded := 0, 0
	for _, rr := range aaaa.Answer {
		if v6, ok := rr.(*dns.AAAA); ok {
			total++
			if d.excluded(v6.AAAA) {
				excluded++
			}
		}
	}
	if total == excluded {
		excludedAAAA.WithLabelValues(server).Add(float64(excluded))
		return true, nil
	}
	if excluded == 0 {
		return false, nil
	}
	excludedAAAA.WithLabelValues(server).Add(float64(excluded))
	// Some remain: answer with those only (§5.1.4).
	m := new(dns.Msg)
	*m = *aaaa
	m.Answer = make([]dns.RR, 0, len(aaaa.Answer)-excluded)
	for _, rr := range aaaa.Answer {
		if v6, ok := rr.(*dns.AAAA); ok && d.excluded(v6.AAAA) {
			continue
		}
		if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == dns.TypeAAAA {
			continue // it signs a set we changed
		}
		m.Answer = append(m.Answer, rr)
	}
	m.AuthenticatedData = false
	return false, m
}

func (d *DNS64) excluded(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	for _, p := range d.exclude {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ignored reports whether name is at or below an ignore_aaaa domain.
func (d *DNS64) ignored(name string) bool {
	for _, dom := range d.ignoreAAAA {
		if dns.IsSubDomain(dom, name) {
			return true
		}
	}
	return false
}
