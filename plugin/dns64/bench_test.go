package dns64

import (
	"context"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// staticUpstream answers from prebuilt messages, so a benchmark measures the
// plugin, not the fake zone.
type staticUpstream struct {
	aaaa, a *dns.Msg
	delay   time.Duration
}

func (s *staticUpstream) Name() string { return "static" }

func (s *staticUpstream) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	m := s.aaaa
	if r.Question[0].Qtype == dns.TypeA {
		m = s.a
	}
	w.WriteMsg(m)
	return m.Rcode, nil
}

func newStaticUpstream(tb testing.TB) *staticUpstream {
	aaaa := new(dns.Msg)
	aaaa.SetQuestion("v4.example.org.", dns.TypeAAAA)
	aaaa.Response = true
	aaaa.Ns = []dns.RR{mustRR(tb, "example.org. 3600 IN SOA ns.example.org. host.example.org. 1 7200 3600 1209600 300")}
	a := new(dns.Msg)
	a.SetQuestion("v4.example.org.", dns.TypeA)
	a.Response = true
	a.Answer = []dns.RR{mustRR(tb, "v4.example.org. 3600 IN A 198.51.100.2")}
	return &staticUpstream{aaaa: aaaa, a: a}
}

func benchServe(b *testing.B, corefile string, up *staticUpstream, qtype uint16) {
	c := newPlugin(b, corefile, nil)
	c.Next = up
	r := new(dns.Msg)
	r.SetQuestion("v4.example.org.", qtype)
	w := newWriter(client6)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		c.ServeDNS(ctx, w, r)
	}
	if w.msg == nil {
		b.Fatal("no answer")
	}
}

// BenchmarkServeDNSSynth is one synthesized answer through ServeDNS
// (-benchmem gives the allocations per answer).
func BenchmarkServeDNSSynth(b *testing.B) {
	b.Run("parallel_a=on", func(b *testing.B) {
		benchServe(b, "dns64 2001:db8:64::/96", newStaticUpstream(b), dns.TypeAAAA)
	})
	b.Run("parallel_a=auto", func(b *testing.B) {
		benchServe(b, "dns64 2001:db8:64::/96 {\nparallel_a auto\n}", newStaticUpstream(b), dns.TypeAAAA)
	})
	b.Run("parallel_a=off", func(b *testing.B) {
		benchServe(b, "dns64 2001:db8:64::/96 {\nparallel_a off\n}", newStaticUpstream(b), dns.TypeAAAA)
	})
}

// BenchmarkServeDNSPassThrough is a query the plugin does not touch.
func BenchmarkServeDNSPassThrough(b *testing.B) {
	benchServe(b, "dns64 2001:db8:64::/96", newStaticUpstream(b), dns.TypeA)
}

// BenchmarkSlowUpstream shows what the parallel A lookup buys with an
// upstream that takes 50 ms per query: about one delay instead of two.
func BenchmarkSlowUpstream(b *testing.B) {
	for _, mode := range []string{"auto", "on", "off"} {
		b.Run("parallel_a="+mode, func(b *testing.B) {
			up := newStaticUpstream(b)
			up.delay = 50 * time.Millisecond
			benchServe(b, "dns64 2001:db8:64::/96 {\nparallel_a "+mode+"\n}", up, dns.TypeAAAA)
		})
	}
}

// TestSynthAllocs keeps the allocation count of a synthesized answer from
// creeping up unnoticed.
func TestSynthAllocs(t *testing.T) {
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nparallel_a off\n}", nil)
	d.Next = newStaticUpstream(t)
	r := new(dns.Msg)
	r.SetQuestion("v4.example.org.", dns.TypeAAAA)
	w := newWriter(client6)
	allocs := testing.AllocsPerRun(200, func() { d.ServeDNS(context.Background(), w, r) })
	if len(aaaaStrings(w.msg)) != 1 {
		t.Fatal("no synthesis")
	}
	const budget = 12
	if allocs > budget {
		t.Errorf("%.0f allocations per synthesized answer, budget %d", allocs, budget)
	}
	t.Logf("%.0f allocations per synthesized answer", allocs)
}
