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
	c.cache = nil // the lookups and the synthesis are measured, every time
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

// parallelModes are the parallel_a settings the benchmarks compare: the
// default (auto: at once for names seen without AAAA, else in turn), the
// hedge (on, 250µs), the goroutine at once (on 0), and sequential (off).
var parallelModes = []struct{ name, opt string }{
	{"parallel_a=auto", "parallel_a auto"},
	{"parallel_a=on", "parallel_a on"},
	{"parallel_a=on_0", "parallel_a on 0"},
	{"parallel_a=off", "parallel_a off"},
}

// BenchmarkServeDNSSynth is one synthesized answer through ServeDNS
// (-benchmem gives the allocations per answer).
func BenchmarkServeDNSSynth(b *testing.B) {
	for _, m := range parallelModes {
		b.Run(m.name, func(b *testing.B) {
			benchServe(b, "dns64 2001:db8:64::/96 {\n"+m.opt+"\n}", newStaticUpstream(b), dns.TypeAAAA)
		})
	}
}

// BenchmarkServeDNSDualStack is the AAAA query of a name that has AAAA
// records: with parallel_a on 0 the A lookup may run for nothing.
func BenchmarkServeDNSDualStack(b *testing.B) {
	for _, m := range parallelModes {
		b.Run(m.name, func(b *testing.B) {
			up := newStaticUpstream(b)
			up.aaaa = up.aaaa.Copy()
			up.aaaa.Ns = nil
			up.aaaa.Answer = []dns.RR{mustRR(b, "v4.example.org. 3600 IN AAAA 2001:db8:5::1")}
			benchServe(b, "dns64 2001:db8:64::/96 {\n"+m.opt+"\n}", up, dns.TypeAAAA)
		})
	}
}

// BenchmarkServeDNSPassThrough is a query the plugin does not touch.
func BenchmarkServeDNSPassThrough(b *testing.B) {
	benchServe(b, "dns64 2001:db8:64::/96", newStaticUpstream(b), dns.TypeA)
}

// BenchmarkSlowUpstream shows what the parallel A lookup buys with an
// upstream that takes 50 ms per query: about one delay instead of two.
func BenchmarkSlowUpstream(b *testing.B) {
	for _, m := range parallelModes {
		b.Run(m.name, func(b *testing.B) {
			up := newStaticUpstream(b)
			up.delay = 50 * time.Millisecond
			benchServe(b, "dns64 2001:db8:64::/96 {\n"+m.opt+"\n}", up, dns.TypeAAAA)
		})
	}
}

// TestSynthAllocs keeps the allocation count of a synthesized answer from
// creeping up unnoticed, sequential and hedged (the default: the timer is
// made once per pooled lookup, not per query).
func TestSynthAllocs(t *testing.T) {
	for _, m := range parallelModes {
		if m.opt == "parallel_a on 0" || m.opt == "parallel_a auto" {
			continue // a goroutine per query: measured by the benchmark only
		}
		t.Run(m.name, func(t *testing.T) {
			d := newPlugin(t, "dns64 2001:db8:64::/96 {\n"+m.opt+"\nanswer_cache off\n}", nil)
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
		})
	}
}

// packingWriter does what the server's writer does with an answer: a
// message is packed, bytes are sent as they are (here: copied to buf).
type packingWriter struct {
	writer
	buf []byte
}

func (w *packingWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.PackBuffer(w.buf[:cap(w.buf)])
	w.buf = b
	w.n++
	return err
}

func (w *packingWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf[:0], b...)
	w.n++
	return len(b), nil
}

// BenchmarkServeDNSCacheHit is a repeated synthesized answer: from the
// cache in wire form (patched copy, the default), from the cache as a
// *dns.Msg (deep copy, packed by the writer), and without the cache (both
// lookups and the synthesis each time). The writer packs messages as the
// server's does, so the three pay for the same bytes on the wire.
func BenchmarkServeDNSCacheHit(b *testing.B) {
	for _, tc := range []struct {
		name, opt string
		wire      bool
	}{
		{"cache=wire", "answer_cache", true},
		{"cache=msg", "answer_cache", false},
		{"cache=off", "answer_cache off", false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := newPlugin(b, "dns64 2001:db8:64::/96 {\nparallel_a off\n"+tc.opt+"\n}", nil)
			d.Next = newStaticUpstream(b)
			if d.cache != nil {
				d.cache.wire = tc.wire
			}
			r := new(dns.Msg)
			r.SetQuestion("v4.example.org.", dns.TypeAAAA)
			r.SetEdns0(1232, false)
			w := &packingWriter{writer: *newWriter(client6), buf: make([]byte, 0, 512)}
			ctx := context.Background()
			d.ServeDNS(ctx, w, r)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d.ServeDNS(ctx, w, r)
			}
			b.StopTimer()
			if len(w.buf) == 0 {
				b.Fatal("no answer")
			}
		})
	}
}
