package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// slowUpstream is a loopback DNS server that waits delay before answering:
// names starting with "n" have only an A record, names starting with "d"
// have A and AAAA. It counts the queries it gets.
type slowUpstream struct {
	addr    string
	delay   time.Duration
	queries atomic.Int64
	srv     *dns.Server
}

func newSlowUpstream(tb testing.TB, delay time.Duration) *slowUpstream {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &slowUpstream{addr: pc.LocalAddr().String(), delay: delay}
	soa, _ := dns.NewRR("test. 3600 IN SOA ns.test. host.test. 1 7200 3600 1209600 300")
	u.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		u.queries.Add(1)
		time.Sleep(u.delay)
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		q := r.Question[0]
		switch {
		case q.Qtype == dns.TypeA:
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600}, A: net.IPv4(198, 51, 100, 2)}}
		case q.Qtype == dns.TypeAAAA && strings.HasPrefix(q.Name, "d"):
			m.Answer = []dns.RR{&dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 3600}, AAAA: net.ParseIP("2001:db8:5::1")}}
		default:
			m.Ns = []dns.RR{soa}
		}
		w.WriteMsg(m)
	})}
	var started sync.WaitGroup
	started.Add(1)
	u.srv.NotifyStartedFunc = started.Done
	go u.srv.ActivateAndServe()
	started.Wait()
	tb.Cleanup(func() { u.srv.Shutdown() })
	return u
}

// stockBinary is CoreDNS as released, with its built-in dns64: from
// $COREDNS_STOCK, or built from the module cache.
func stockBinary(tb testing.TB) string {
	if p := os.Getenv("COREDNS_STOCK"); p != "" {
		return p
	}
	p := filepath.Join(tb.TempDir(), "coredns-stock")
	if out, err := exec.Command(goTool(tb), "build", "-o", p, "github.com/coredns/coredns").CombinedOutput(); err != nil {
		tb.Fatalf("building stock coredns: %v\n%s", err, out)
	}
	return p
}

func oursBinary(tb testing.TB) string {
	if p := os.Getenv("COREDNS_OURS"); p != "" {
		return p
	}
	return binary(tb)
}

// BenchmarkUpstreamDelay measures one synthesized answer when every
// upstream query takes 50 ms: the built-in asks AAAA then A (two delays);
// this plugin asks both at once (one delay) with parallel_a on, and with
// its default (auto) for a name it has seen without AAAA. It also reports the upstream
// queries per AAAA query for a dual-stack name: the price of the parallel
// A lookup. (The built-in ignores a block after a PREFIX argument, so the
// prefix goes inside the block.)
func BenchmarkUpstreamDelay(b *testing.B) {
	builds := []struct{ name, bin, opts string }{
		{"ours", oursBinary(b), ""},
		{"ours-parallel_a_on", oursBinary(b), "parallel_a on"},
		{"ours-parallel_a_off", oursBinary(b), "parallel_a off"},
		// Without the answer cache every repeated name is what a name is
		// once its cache entry has expired.
		{"ours-answer_cache_off", oursBinary(b), "answer_cache off"},
		{"builtin", stockBinary(b), ""},
	}
	for _, build := range builds {
		b.Run(build.name, func(b *testing.B) {
			up := newSlowUpstream(b, 50*time.Millisecond)
			port := freePort(b)
			addr := startCoreDNS(b, build.bin, b.TempDir(), fmt.Sprintf(`.:%d {
    bind 127.0.0.1
    dns64 {
        prefix 2001:db8:64::/96
        allow_ipv4
        %s
    }
    forward . %s
}
`, port, build.opts, up.addr), port)
			c := &dns.Client{Timeout: 2 * time.Second}
			ask := func(name string) *dns.Msg {
				m := new(dns.Msg)
				m.SetQuestion(name, dns.TypeAAAA)
				r, _, err := c.Exchange(m, addr)
				if err != nil {
					b.Fatal(err)
				}
				return r
			}
			// startCoreDNS's readiness query went upstream too.
			up.queries.Store(0)
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if r := ask(fmt.Sprintf("n%d-%d.test.", i, time.Now().UnixNano())); len(r.Answer) != 1 {
					b.Fatalf("no synthesis: %v", r)
				}
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(elapsed.Microseconds())/1000/float64(b.N), "ms/answer")

			// An A-only name asked again once its answer is no longer
			// cached: ours remembers that it had no AAAA and starts the A
			// lookup at once.
			const repeats = 10
			var again time.Duration
			for i := 0; i < repeats; i++ {
				name := fmt.Sprintf("r%d-%d.test.", i, time.Now().UnixNano())
				ask(name)
				t0 := time.Now()
				if r := ask(name); len(r.Answer) != 1 {
					b.Fatalf("no synthesis: %v", r)
				}
				again += time.Since(t0)
			}
			b.ReportMetric(float64(again.Microseconds())/1000/repeats, "ms/repeat-answer")

			// Dual-stack names: how many upstream queries per client query.
			up.queries.Store(0)
			const dual = 10
			for i := 0; i < dual; i++ {
				ask(fmt.Sprintf("d%d-%d.test.", i, time.Now().UnixNano()))
			}
			// An abandoned parallel A may still be on its way upstream.
			time.Sleep(2 * up.delay)
			b.ReportMetric(float64(up.queries.Load())/dual, "upstream-queries/dual-stack-AAAA")
		})
	}
}
