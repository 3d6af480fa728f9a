package dns64

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// FuzzServeDNS feeds arbitrary wire messages, as queries and as upstream
// answers, through the plugin: it must never panic.
func FuzzServeDNS(f *testing.F) {
	seed := func(name string, qtype uint16, tweak func(*dns.Msg)) {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		if tweak != nil {
			tweak(m)
		}
		b, _ := m.Pack()
		f.Add(b, b, false)
	}
	seed("v4.example.org.", dns.TypeAAAA, nil)
	seed("www.example.org.", dns.TypeAAAA, func(m *dns.Msg) { m.SetEdns0(4096, true) })
	seed("ipv4only.arpa.", dns.TypeAAAA, nil)
	rev, _ := dns.ReverseAddr("2001:db8:64::c633:6402")
	seed(rev, dns.TypePTR, nil)
	ans := new(dns.Msg)
	ans.SetQuestion("v4.example.org.", dns.TypeA)
	ans.Answer = []dns.RR{mustRR(f, "v4.example.org. 60 IN A 198.51.100.2"), mustRR(f, "v4.example.org. 60 IN AAAA ::ffff:1.2.3.4")}
	ans.Ns = []dns.RR{mustRR(f, "example.org. 60 IN SOA a. b. 1 2 3 4 5")}
	ab, _ := ans.Pack()
	q := new(dns.Msg)
	q.SetQuestion("v4.example.org.", dns.TypeAAAA)
	qb, _ := q.Pack()
	f.Add(qb, ab, true)

	var upstream *dns.Msg // the answer of the current input; nil: SERVFAIL
	d := newPlugin(f, "dns64 2001:db8:64::/96 64:ff9b::/96 {\nallow_ipv4\nbalance all\nignore_aaaa example.org\nmapped !10.0.0.0/8 0.0.0.0/0\nparallel_a off\n}", nil)
	d.Next = handlerFunc(func(ctx context.Context, w dns.ResponseWriter, req *dns.Msg) (int, error) {
		if upstream == nil {
			return dns.RcodeServerFailure, nil
		}
		m := upstream.Copy()
		m.Id = req.Id
		w.WriteMsg(m)
		return m.Rcode, nil
	})
	f.Fuzz(func(t *testing.T, query, answer []byte, v4 bool) {
		r := new(dns.Msg)
		if err := r.Unpack(query); err != nil {
			return
		}
		upstream = new(dns.Msg)
		if upstream.Unpack(answer) != nil {
			upstream = nil
		}
		client := client6
		if v4 {
			client = client4
		}
		d.ServeDNS(context.Background(), newWriter(client), r)
	})
}

type handlerFunc func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error)

func (h handlerFunc) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return h(ctx, w, r)
}
func (h handlerFunc) Name() string { return "func" }
