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

	// The upstream answer of an input travels in the context, so an A
	// lookup abandoned by the handler (parallel_a on) never sees the next
	// input's.
	type upstreamKey struct{}
	next := handlerFunc(func(ctx context.Context, w dns.ResponseWriter, req *dns.Msg) (int, error) {
		upstream, _ := ctx.Value(upstreamKey{}).(*dns.Msg)
		if upstream == nil {
			return dns.RcodeServerFailure, nil
		}
		m := upstream.Copy()
		m.Id = req.Id
		w.WriteMsg(m)
		return m.Rcode, nil
	})
	const opts = "dns64 2001:db8:64::/96 64:ff9b::/96 {\nallow_ipv4\nbalance all\nignore_aaaa example.org\nmapped !10.0.0.0/8 0.0.0.0/0\n"
	var plugins []*DNS64
	for _, parallel := range []string{"parallel_a off", "parallel_a on", "parallel_a on 0"} {
		d := newPlugin(f, opts+parallel+"\n}", nil)
		d.Next = next
		plugins = append(plugins, d)
	}
	f.Fuzz(func(t *testing.T, query, answer []byte, v4 bool) {
		r := new(dns.Msg)
		if err := r.Unpack(query); err != nil {
			return
		}
		upstream := new(dns.Msg)
		if upstream.Unpack(answer) != nil {
			upstream = nil
		}
		ctx := context.WithValue(context.Background(), upstreamKey{}, upstream)
		client := client6
		if v4 {
			client = client4
		}
		for _, d := range plugins {
			d.ServeDNS(ctx, newWriter(client), r.Copy())
		}
	})
}

type handlerFunc func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error)

func (h handlerFunc) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return h(ctx, w, r)
}
func (h handlerFunc) Name() string { return "func" }
