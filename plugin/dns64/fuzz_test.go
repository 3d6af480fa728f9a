package dns64

import (
	"context"
	"testing"

	"github.com/miekg/dns"
)

// FuzzServeDNS feeds arbitrary wire messages, as queries and as upstream
// answers, through the plugin, with the answer cache (kept across inputs)
// and without: it must never panic.
func FuzzServeDNS(f *testing.F) {
	addFuzzSeeds(f)
	const opts = "dns64 2001:db8:64::/96 64:ff9b::/96 {\nallow_ipv4\nbalance all\nignore_aaaa example.org\nmapped !10.0.0.0/8 0.0.0.0/0\n"
	var plugins []*DNS64
	for _, parallel := range []string{"parallel_a off", "parallel_a on", "parallel_a on 0"} {
		for _, cache := range []string{"answer_cache 64", "answer_cache off"} {
			d := newPlugin(f, opts+parallel+"\n"+cache+"\n}", nil)
			d.Next = fuzzUpstream
			plugins = append(plugins, d)
		}
	}
	f.Fuzz(func(t *testing.T, query, answer []byte, v4 bool) {
		r := new(dns.Msg)
		if err := r.Unpack(query); err != nil {
			return
		}
		ctx := fuzzContext(answer)
		client := client6
		if v4 {
			client = client4
		}
		for _, d := range plugins {
			d.ServeDNS(ctx, newWriter(client), r.Copy())
		}
	})
}

// FuzzServeDNSCache asks each input twice, the cache emptied first: when
// the second answer comes from the cache, the client must read the same
// message as the first time (the OPT record aside, which the server
// rewrites per client anyway).
func FuzzServeDNSCache(f *testing.F) {
	addFuzzSeeds(f)
	var plugins []*DNS64
	for _, balance := range []string{"all", "client", "destination"} {
		d := newPlugin(f, "dns64 2001:db8:64::/96 64:ff9b::/96 {\nallow_ipv4\nparallel_a off\nanswer_cache 16\nbalance "+balance+"\n}", nil)
		d.Next = fuzzUpstream
		withFakeClock(d)
		plugins = append(plugins, d)
	}
	f.Fuzz(func(t *testing.T, query, answer []byte, v4 bool) {
		r := new(dns.Msg)
		if err := r.Unpack(query); err != nil {
			return
		}
		ctx := fuzzContext(answer)
		client := client6
		if v4 {
			client = client4
		}
		for _, d := range plugins {
			d.cache.purge(func(*cacheEntry) bool { return true })
			w1 := newWriter(client)
			d.ServeDNS(ctx, w1, r.Copy())
			if d.cache.entries() == 0 || w1.msg == nil {
				continue
			}
			first, ok := comparableOK(w1.msg)
			if !ok {
				t.Fatal("an answer that does not pack was cached")
			}
			w2 := &rawWriter{writer: *newWriter(client)}
			d.ServeDNS(ctx, w2, r.Copy())
			if !w2.raw {
				continue // not from the cache (too big for the buffer)
			}
			if second, _ := comparableOK(w2.msg); second != first {
				t.Fatalf("from the cache:\n%s\nfirst:\n%s", second, first)
			}
		}
	})
}

// rawWriter tells whether the answer came packed, from the cache.
type rawWriter struct {
	writer
	raw bool
}

func (w *rawWriter) Write(b []byte) (int, error) {
	w.raw = true
	return w.writer.Write(b)
}

// The upstream answer of an input travels in the context, so an A lookup
// abandoned by the handler (parallel_a on) never sees the next input's.
type upstreamKey struct{}

func fuzzContext(answer []byte) context.Context {
	upstream := new(dns.Msg)
	if upstream.Unpack(answer) != nil {
		upstream = nil
	}
	return context.WithValue(context.Background(), upstreamKey{}, upstream)
}

var fuzzUpstream = handlerFunc(func(ctx context.Context, w dns.ResponseWriter, req *dns.Msg) (int, error) {
	upstream, _ := ctx.Value(upstreamKey{}).(*dns.Msg)
	if upstream == nil {
		return dns.RcodeServerFailure, nil
	}
	m := upstream.Copy()
	m.Id = req.Id
	w.WriteMsg(m)
	return m.Rcode, nil
})

func addFuzzSeeds(f *testing.F) {
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

}

type handlerFunc func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error)

func (h handlerFunc) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	return h(ctx, w, r)
}
func (h handlerFunc) Name() string { return "func" }
