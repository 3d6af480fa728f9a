package dns64

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/nat64kit/nat64kit/internal/dns64conf"
)

// zoneRecords is the fake upstream's data for most tests.
var zoneRecords = []string{
	"v4.example.org. 3600 IN A 198.51.100.2",
	"v4.example.org. 3600 IN A 198.51.100.3",
	"short.example.org. 30 IN A 198.51.100.4",
	"both.example.org. 3600 IN A 198.51.100.5",
	"both.example.org. 3600 IN AAAA 2001:db8:5::1",
	"mapped.example.org. 3600 IN A 198.51.100.6",
	"mapped.example.org. 3600 IN AAAA ::ffff:198.51.100.6",
	"mixed.example.org. 3600 IN A 198.51.100.7",
	"mixed.example.org. 3600 IN AAAA ::ffff:198.51.100.7",
	"mixed.example.org. 3600 IN AAAA 2001:db8:7::1",
	"www.example.org. 3600 IN CNAME mid.example.org.",
	"mid.example.org. 3600 IN CNAME v4.example.org.",
	"txt.example.org. 3600 IN TXT \"no address\"",
	"private.example.org. 3600 IN A 10.1.2.3",
	"global.example.org. 3600 IN A 8.8.8.8",
	"broken.v6.example.org. 3600 IN A 198.51.100.8",
	"broken.v6.example.org. 3600 IN AAAA 2001:db8:8::1",
	"signed.example.org. 3600 IN A 198.51.100.9",
	"signed.example.org. 3600 IN RRSIG A 13 3 3600 20300101000000 20200101000000 12345 example.org. c2lnbmF0dXJl",
	"2.100.51.198.in-addr.arpa. 3600 IN PTR v4.example.org.",
}

func TestSynthesizeBasic(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96", z)
	m := ask(t, d, client6, "v4.example.org", dns.TypeAAAA)
	if m.Rcode != dns.RcodeSuccess {
		t.Fatalf("rcode %s", dns.RcodeToString[m.Rcode])
	}
	got := aaaaStrings(m)
	want := []string{"2001:db8:64::c633:6402", "2001:db8:64::c633:6403"}
	if !slices.Equal(got, want) {
		t.Fatalf("AAAA %v, want %v", got, want)
	}
	for _, rr := range m.Answer {
		// min(A 3600, SOA TTL 3600, SOA MINIMUM 300)
		if rr.Header().Ttl != 300 {
			t.Errorf("TTL %d, want 300 (SOA MINIMUM)", rr.Header().Ttl)
		}
	}
	if m.AuthenticatedData {
		t.Error("AD set on a synthesized answer")
	}
}

func TestIPv4ClientNeedsAllowIPv4(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96", z)
	if m := ask(t, d, client4, "v4.example.org", dns.TypeAAAA); len(aaaaStrings(m)) != 0 {
		t.Fatalf("IPv4 client got synthesis without allow_ipv4: %v", m.Answer)
	}
	d = newPlugin(t, "dns64 2001:db8:64::/96 {\nallow_ipv4\n}", z)
	if m := ask(t, d, client4, "v4.example.org", dns.TypeAAAA); len(aaaaStrings(m)) != 2 {
		t.Fatalf("IPv4 client with allow_ipv4: %v", m.Answer)
	}
}

func TestPassThrough(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nallow_ipv4\n}", z)
	for _, client := range []string{client6, client4} {
		m := ask(t, d, client, "both.example.org", dns.TypeAAAA)
		if got := aaaaStrings(m); !slices.Equal(got, []string{"2001:db8:5::1"}) {
			t.Errorf("%s: real AAAA: got %v", client, got)
		}
		m = ask(t, d, client, "nope.example.org", dns.TypeAAAA)
		if m.Rcode != dns.RcodeNameError || len(m.Answer) != 0 {
			t.Errorf("%s: NXDOMAIN: got %s %v", client, dns.RcodeToString[m.Rcode], m.Answer)
		}
		m = ask(t, d, client, "v4.example.org", dns.TypeA)
		if len(m.Answer) != 2 || m.Answer[0].Header().Rrtype != dns.TypeA {
			t.Errorf("%s: A query changed: %v", client, m.Answer)
		}
		m = ask(t, d, client, "v4.example.org", dns.TypeAAAA, func(r *dns.Msg) { r.Question[0].Qclass = dns.ClassCHAOS })
		if len(aaaaStrings(m)) != 0 {
			t.Errorf("%s: class CH synthesized", client)
		}
	}
	// Only NXDOMAIN passes: the A lookup must not even be needed.
	z2 := newFakeZone(t, zoneRecords...)
	d = newPlugin(t, "dns64 2001:db8:64::/96 {\nparallel_a off\n}", z2)
	ask(t, d, client6, "nope.example.org", dns.TypeAAAA)
	if q := z2.queries(); !slices.Equal(q, []string{"nope.example.org./AAAA"}) {
		t.Errorf("queries for NXDOMAIN: %v", q)
	}
}

func TestTranslateAll(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 {\nprefix 2001:db8:64::/96\ntranslate_all\n}", z)
	m := ask(t, d, client6, "both.example.org", dns.TypeAAAA)
	if got := aaaaStrings(m); !slices.Equal(got, []string{"2001:db8:64::c633:6405"}) {
		t.Fatalf("translate_all: %v", got)
	}
}

func TestErrorsCountAsEmpty(t *testing.T) {
	for _, tc := range []struct {
		name   string
		silent bool
		rcode  int
	}{
		{"servfail written", false, dns.RcodeServerFailure},
		{"refused written", false, dns.RcodeRefused},
		{"timeout (servfail, nothing written)", true, dns.RcodeServerFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := newFakeZone(t, zoneRecords...)
			if tc.silent {
				z.silent[key("v4.example.org.", dns.TypeAAAA)] = tc.rcode
			} else {
				z.rcode[key("v4.example.org.", dns.TypeAAAA)] = tc.rcode
			}
			d := newPlugin(t, "dns64 2001:db8:64::/96", z)
			m := ask(t, d, client6, "v4.example.org", dns.TypeAAAA)
			if m.Rcode != dns.RcodeSuccess || len(aaaaStrings(m)) != 2 {
				t.Fatalf("got %s %v", dns.RcodeToString[m.Rcode], m.Answer)
			}
			for _, rr := range m.Answer {
				if rr.Header().Ttl != noSOATTL { // no SOA came with the AAAA failure
					t.Errorf("TTL %d, want %d", rr.Header().Ttl, noSOATTL)
				}
			}
		})
	}
}

func TestCNAMEChain(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96", z)
	m := ask(t, d, client6, "www.example.org", dns.TypeAAAA)
	var types []string
	for _, rr := range m.Answer {
		types = append(types, dns.TypeToString[rr.Header().Rrtype]+" "+rr.Header().Name)
	}
	want := []string{"CNAME www.example.org.", "CNAME mid.example.org.", "AAAA v4.example.org.", "AAAA v4.example.org."}
	if !slices.Equal(types, want) {
		t.Fatalf("answer %v, want %v", types, want)
	}
}

func TestTTL(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96", z)
	if m := ask(t, d, client6, "short.example.org", dns.TypeAAAA); m.Answer[0].Header().Ttl != 30 {
		t.Errorf("A TTL 30 smallest: got %d", m.Answer[0].Header().Ttl)
	}
	z.soa.Hdr.Ttl = 100 // now the SOA TTL is below MINIMUM 300
	if m := ask(t, d, client6, "v4.example.org", dns.TypeAAAA); m.Answer[0].Header().Ttl != 100 {
		t.Errorf("SOA TTL 100 smallest: got %d", m.Answer[0].Header().Ttl)
	}
}

func TestALookupResult(t *testing.T) {
	for _, parallel := range []string{"auto", "on", "on 0", "off"} {
		t.Run("parallel_a "+parallel, func(t *testing.T) {
			z := newFakeZone(t, zoneRecords...)
			d := newPlugin(t, "dns64 2001:db8:64::/96 {\nparallel_a "+parallel+"\n}", z)
			// No A either: the real NODATA with its SOA.
			m := ask(t, d, client6, "txt.example.org", dns.TypeAAAA)
			if m.Rcode != dns.RcodeSuccess || len(m.Answer) != 0 || len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
				t.Errorf("NODATA: got %s answer %v ns %v", dns.RcodeToString[m.Rcode], m.Answer, m.Ns)
			}
			// The A lookup fails: its rcode reaches the client.
			z.rcode[key("v4.example.org.", dns.TypeA)] = dns.RcodeServerFailure
			if m := ask(t, d, client6, "v4.example.org", dns.TypeAAAA); m.Rcode != dns.RcodeServerFailure {
				t.Errorf("A SERVFAIL: got %s", dns.RcodeToString[m.Rcode])
			}
			z.rcode[key("v4.example.org.", dns.TypeA)] = dns.RcodeRefused
			if m := ask(t, d, client6, "v4.example.org", dns.TypeAAAA); m.Rcode != dns.RcodeRefused {
				t.Errorf("A REFUSED: got %s", dns.RcodeToString[m.Rcode])
			}
			delete(z.rcode, key("v4.example.org.", dns.TypeA))
			z.silent[key("v4.example.org.", dns.TypeA)] = dns.RcodeServerFailure
			if m := ask(t, d, client6, "v4.example.org", dns.TypeAAAA); m.Rcode != dns.RcodeServerFailure {
				t.Errorf("A timeout: got %s", dns.RcodeToString[m.Rcode])
			}
		})
	}
}

func TestDNSSEC(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96", z)
	do := func(r *dns.Msg) { r.SetEdns0(1232, true) }
	m := ask(t, d, client6, "signed.example.org", dns.TypeAAAA, do)
	if len(aaaaStrings(m)) != 1 {
		t.Fatalf("DO=1 CD=0 must synthesize: %v", m.Answer)
	}
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			if sig, ok := rr.(*dns.RRSIG); ok && sig.TypeCovered == dns.TypeA {
				t.Errorf("RRSIG(A) in synthesized answer: %v", rr)
			}
		}
	}
	if m.AuthenticatedData {
		t.Error("AD set")
	}
	m = ask(t, d, client6, "signed.example.org", dns.TypeAAAA, do, func(r *dns.Msg) { r.CheckingDisabled = true })
	if len(aaaaStrings(m)) != 0 {
		t.Fatalf("DO=1 CD=1 must not synthesize: %v", m.Answer)
	}
	// CD alone (no DO) still synthesizes.
	m = ask(t, d, client6, "signed.example.org", dns.TypeAAAA, func(r *dns.Msg) { r.CheckingDisabled = true })
	if len(aaaaStrings(m)) != 1 {
		t.Fatalf("CD=1 DO=0 must synthesize: %v", m.Answer)
	}
}

func TestExclude(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nallow_ipv4\n}", z)
	for _, client := range []string{client6, client4} {
		// Only ::ffff:0:0/96 AAAA: treated as absent, synthesized.
		m := ask(t, d, client, "mapped.example.org", dns.TypeAAAA)
		if got := aaaaStrings(m); !slices.Equal(got, []string{"2001:db8:64::c633:6406"}) {
			t.Errorf("%s: all excluded: got %v", client, got)
		}
		// A real AAAA remains: only it is returned.
		m = ask(t, d, client, "mixed.example.org", dns.TypeAAAA)
		if got := aaaaStrings(m); !slices.Equal(got, []string{"2001:db8:7::1"}) {
			t.Errorf("%s: partly excluded: got %v", client, got)
		}
	}
	d = newPlugin(t, "dns64 2001:db8:64::/96 {\nexclude 2001:db8:5::/48\n}", z)
	if got := aaaaStrings(ask(t, d, client6, "both.example.org", dns.TypeAAAA)); !slices.Equal(got, []string{"2001:db8:64::c633:6405"}) {
		t.Errorf("custom exclude: got %v", got)
	}
	// The custom list replaces the default.
	if got := aaaaStrings(ask(t, d, client6, "mapped.example.org", dns.TypeAAAA)); !slices.Equal(got, []string{"198.51.100.6"} /* net.IP prints IPv4-mapped as IPv4 */) {
		t.Errorf("custom exclude replaces default: got %v", got)
	}
}

func TestIgnoreAAAA(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nignore_aaaa V6.example.org\n}", z)
	if got := aaaaStrings(ask(t, d, client6, "broken.v6.example.org", dns.TypeAAAA)); !slices.Equal(got, []string{"2001:db8:64::c633:6408"}) {
		t.Errorf("ignored: got %v", got)
	}
	if got := aaaaStrings(ask(t, d, client6, "both.example.org", dns.TypeAAAA)); !slices.Equal(got, []string{"2001:db8:5::1"}) {
		t.Errorf("not ignored: got %v", got)
	}
}

func TestClientsACL(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nallow_ipv4\nclients 2001:db8:1::/48 !192.0.2.128/25 192.0.2.0/24\n}", z)
	for client, want := range map[string]int{
		client6:          2,
		"2001:db8:2::1":  0,
		client4:          2,
		"192.0.2.200":    0,
		"198.51.100.200": 0,
	} {
		if got := len(aaaaStrings(ask(t, d, client, "v4.example.org", dns.TypeAAAA))); got != want {
			t.Errorf("client %s: %d AAAA, want %d", client, got, want)
		}
	}
}

func TestMapped(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nmapped !198.51.100.3 198.51.100.0/24\n}", z)
	if got := aaaaStrings(ask(t, d, client6, "v4.example.org", dns.TypeAAAA)); !slices.Equal(got, []string{"2001:db8:64::c633:6402"}) {
		t.Errorf("mapped: got %v", got)
	}
	// Nothing mappable: the NODATA for AAAA.
	m := ask(t, d, client6, "global.example.org", dns.TypeAAAA)
	if len(m.Answer) != 0 || m.Rcode != dns.RcodeSuccess {
		t.Errorf("unmapped A: got %v", m.Answer)
	}
}

func TestWellKnownPrefixGlobalOnly(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64", z) // 64:ff9b::/96
	if got := aaaaStrings(ask(t, d, client6, "global.example.org", dns.TypeAAAA)); !slices.Equal(got, []string{"64:ff9b::808:808"}) {
		t.Errorf("global IPv4: got %v", got)
	}
	for _, name := range []string{"private.example.org", "v4.example.org"} {
		if got := aaaaStrings(ask(t, d, client6, name, dns.TypeAAAA)); len(got) != 0 {
			t.Errorf("%s: non-global IPv4 mapped into 64:ff9b::/96: %v", name, got)
		}
	}
	// mapped cannot override §3.1.
	d = newPlugin(t, "dns64 {\nmapped 10.0.0.0/8\n}", z)
	if got := aaaaStrings(ask(t, d, client6, "private.example.org", dns.TypeAAAA)); len(got) != 0 {
		t.Errorf("mapped overrode RFC 6052 3.1: %v", got)
	}
}

// TestParallelAStartsEarly: with parallel_a on, the A query reaches the
// upstream while the AAAA query is still unanswered (the fake upstream
// holds the AAAA answer until it has seen the A query), whatever the delay.
func TestParallelAStartsEarly(t *testing.T) {
	for _, opt := range []string{"parallel_a on", "parallel_a on 0", "parallel_a on 1ms"} {
		t.Run(opt, func(t *testing.T) {
			z := newFakeZone(t, zoneRecords...)
			aSeen := make(chan struct{})
			var once sync.Once
			z.hook = func(q dns.Question) {
				switch q.Qtype {
				case dns.TypeA:
					once.Do(func() { close(aSeen) })
				case dns.TypeAAAA:
					select {
					case <-aSeen:
					case <-time.After(5 * time.Second):
						t.Error("the A query did not start before the AAAA answer")
					}
				}
			}
			d := newPlugin(t, "dns64 2001:db8:64::/96 {\n"+opt+"\n}", z)
			if got := aaaaStrings(ask(t, d, client6, "v4.example.org", dns.TypeAAAA)); len(got) != 2 {
				t.Fatalf("got %v", got)
			}
		})
	}

	// parallel_a off: A only after the AAAA came back empty, and none at
	// all when the AAAA exists.
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nparallel_a off\n}", z)
	ask(t, d, client6, "v4.example.org", dns.TypeAAAA)
	ask(t, d, client6, "both.example.org", dns.TypeAAAA)
	want := []string{"v4.example.org./AAAA", "v4.example.org./A", "both.example.org./AAAA"}
	if q := z.queries(); !slices.Equal(q, want) {
		t.Errorf("queries %v, want %v", q, want)
	}
}

// TestParallelASlowUpstream: every upstream answer takes 30 ms. With
// parallel_a on (any delay below 30 ms) a synthesized answer takes about
// one upstream delay, with off two.
func TestParallelASlowUpstream(t *testing.T) {
	const delay = 30 * time.Millisecond
	for _, tc := range []struct {
		opt     string
		oneTrip bool
	}{
		{"parallel_a on", true}, {"parallel_a on 0", true}, {"parallel_a on 5ms", true}, {"parallel_a off", false},
		{"", false}, // auto: a name never seen before is asked in turn
	} {
		t.Run(cmp.Or(tc.opt, "default"), func(t *testing.T) {
			best := time.Hour
			for try := 0; try < 3; try++ { // best of 3: a loaded machine only adds time
				z := newFakeZone(t, zoneRecords...)
				var aStarted, aBeforeAAAA atomic.Bool
				z.hook = func(q dns.Question) {
					if q.Qtype == dns.TypeA {
						aStarted.Store(true)
					}
					time.Sleep(delay)
					if q.Qtype == dns.TypeAAAA {
						aBeforeAAAA.Store(aStarted.Load())
					}
				}
				d := newPlugin(t, "dns64 2001:db8:64::/96 {\n"+tc.opt+"\n}", z)
				start := time.Now()
				if got := aaaaStrings(ask(t, d, client6, "v4.example.org", dns.TypeAAAA)); len(got) != 2 {
					t.Fatalf("got %v", got)
				}
				best = min(best, time.Since(start))
				if aBeforeAAAA.Load() != tc.oneTrip {
					t.Errorf("A query started before the AAAA answer: %v, want %v", aBeforeAAAA.Load(), tc.oneTrip)
				}
			}
			if tc.oneTrip && best >= delay*3/2 {
				t.Errorf("synthesized answer took %v, want < %v (one upstream delay)", best, delay*3/2)
			}
			if !tc.oneTrip && best < 2*delay {
				t.Errorf("synthesized answer took %v, want >= %v (two upstream delays)", best, 2*delay)
			}
			t.Logf("%v per synthesized answer", best)
		})
	}
}

// TestParallelAFastUpstream: with parallel_a on and the default delay, a
// dual-stack name answered faster than the delay costs no A query. The timer cannot fire
// before the delay has passed, so an A query is allowed only for a query
// that took at least that long (a preempted test on a loaded machine).
func TestParallelAFastUpstream(t *testing.T) {
	const n = 50
	records := slices.Clone(zoneRecords)
	for i := 0; i < n; i++ {
		records = append(records,
			fmt.Sprintf("d%d.example.org. 3600 IN A 198.51.100.5", i),
			fmt.Sprintf("d%d.example.org. 3600 IN AAAA 2001:db8:5::%d", i, i+1))
	}
	z := newFakeZone(t, records...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nparallel_a on\n}", z)
	took := map[string]time.Duration{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("d%d.example.org.", i)
		start := time.Now()
		m := ask(t, d, client6, name, dns.TypeAAAA)
		took[name] = time.Since(start)
		if got := aaaaStrings(m); len(got) != 1 || !strings.HasPrefix(got[0], "2001:db8:5::") {
			t.Fatalf("%s: %v", name, got)
		}
	}
	time.Sleep(50 * time.Millisecond) // an A lookup abandoned by the handler may still be on its way
	fast := 0
	for _, dt := range took {
		if dt < dns64conf.DefaultParallelDelay {
			fast++
		}
	}
	for _, q := range z.queries() {
		name, typ, _ := strings.Cut(q, "/")
		if typ == "A" && took[name] < dns64conf.DefaultParallelDelay {
			t.Errorf("%s answered in %v (< %v) but its A was queried", name, took[name], dns64conf.DefaultParallelDelay)
		}
	}
	if fast < n/2 {
		t.Skipf("only %d of %d answers faster than %v (loaded machine)", fast, n, dns64conf.DefaultParallelDelay)
	}
	// And a name that needs synthesis gets its A, in the handler.
	z.mu.Lock()
	z.seen = nil
	z.mu.Unlock()
	if got := aaaaStrings(ask(t, d, client6, "v4.example.org", dns.TypeAAAA)); len(got) != 2 {
		t.Fatalf("v4: %v", got)
	}
	if q := z.queries(); !slices.Equal(q, []string{"v4.example.org./AAAA", "v4.example.org./A"}) {
		t.Errorf("queries %v", q)
	}
}

// TestParallelAConcurrent runs many queries at once with an upstream whose
// answer times straddle the delay, so every path (timer stopped, timer
// fired and lookup claimed, goroutine started; result used or abandoned)
// runs against the pooled lookups; meant for go test -race.
func TestParallelAConcurrent(t *testing.T) {
	for _, opt := range []string{"parallel_a on 50us", "parallel_a on 0", "parallel_a on", "parallel_a off", "parallel_a auto"} {
		t.Run(opt, func(t *testing.T) {
			z := newFakeZone(t, zoneRecords...)
			var calls atomic.Int64
			z.hook = func(dns.Question) {
				if calls.Add(1)%3 == 0 {
					time.Sleep(100 * time.Microsecond)
				}
			}
			d := newPlugin(t, "dns64 2001:db8:64::/96 {\n"+opt+"\n}", z)
			var wg sync.WaitGroup
			for g := 0; g < 4; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 150; i++ {
						name, want := "v4.example.org.", 2
						if i%2 == 1 {
							name, want = "both.example.org.", 1
						}
						r := new(dns.Msg)
						r.SetQuestion(name, dns.TypeAAAA)
						if i%3 == 0 {
							r.SetEdns0(1232, false)
						}
						w := newWriter(client6)
						d.ServeDNS(context.Background(), w, r)
						if w.msg == nil || len(aaaaStrings(w.msg)) != want {
							t.Errorf("%s: %v", name, w.msg)
							return
						}
					}
				}()
			}
			wg.Wait()
			time.Sleep(20 * time.Millisecond)
			n := 0
			for _, q := range z.queries() {
				if q == "both.example.org./A" {
					n++
				}
			}
			t.Logf("%d A queries for 300 dual-stack AAAA queries", n)
		})
	}
}

func TestPTR(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 2001:db8:65::/64 {\nallow_ipv4\n}", z)
	rev, _ := dns.ReverseAddr("2001:db8:64::c633:6402")
	for _, client := range []string{client6, client4} {
		m := ask(t, d, client, rev, dns.TypePTR)
		if len(m.Answer) != 2 {
			t.Fatalf("%s: answer %v", client, m.Answer)
		}
		cn, ok := m.Answer[0].(*dns.CNAME)
		if !ok || cn.Target != "2.100.51.198.in-addr.arpa." || cn.Hdr.Name != rev {
			t.Errorf("%s: CNAME %v", client, m.Answer[0])
		}
		if ptr, ok := m.Answer[1].(*dns.PTR); !ok || ptr.Ptr != "v4.example.org." {
			t.Errorf("%s: PTR %v", client, m.Answer[1])
		}
	}
	// Second prefix, /64 (u octet skipped).
	rev64, _ := dns.ReverseAddr("2001:db8:65:0:c6:3364:200::")
	if m := ask(t, d, client6, rev64, dns.TypePTR); len(m.Answer) == 0 || m.Answer[0].(*dns.CNAME).Target != "2.100.51.198.in-addr.arpa." {
		t.Errorf("/64 PTR: %v", m.Answer)
	}
	// Outside every prefix: untouched.
	out, _ := dns.ReverseAddr("2001:db8:99::1")
	z.silent[key(out, dns.TypePTR)] = dns.RcodeRefused
	if m := ask(t, d, client6, out, dns.TypePTR); m.Rcode != dns.RcodeRefused || len(m.Answer) != 0 {
		t.Errorf("outside PTR: %s %v", dns.RcodeToString[m.Rcode], m.Answer)
	}
	// Partial ip6.arpa names are not addresses.
	if _, ok := parseIP6Arpa("8.b.d.0.1.0.0.2.ip6.arpa."); ok {
		t.Error("partial name parsed")
	}
	// PTR of an address without a reverse record: CNAME then NXDOMAIN.
	rev2, _ := dns.ReverseAddr("2001:db8:64::c633:6409")
	if m := ask(t, d, client6, rev2, dns.TypePTR); m.Rcode != dns.RcodeNameError || len(m.Answer) != 1 {
		t.Errorf("missing PTR: %s %v", dns.RcodeToString[m.Rcode], m.Answer)
	}
}

func TestIPv4OnlyArpa(t *testing.T) {
	z := newFakeZone(t)
	d := newPlugin(t, "dns64 {\nprefix 2001:db8:64::/96 64:ff9b:1::/48\n}", z)
	m := ask(t, d, client6, "IPv4only.arpa", dns.TypeAAAA)
	got := aaaaStrings(m)
	want := []string{"2001:db8:64::c000:aa", "2001:db8:64::c000:ab", "64:ff9b:1:c000:0:aa00::", "64:ff9b:1:c000:0:ab00::"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if len(z.queries()) != 0 {
		t.Errorf("ipv4only.arpa went upstream: %v", z.queries())
	}
	// An unhealthy instance is not advertised.
	d.set.Load().all[1].healthy.Store(false)
	if got := aaaaStrings(ask(t, d, client6, "ipv4only.arpa", dns.TypeAAAA)); len(got) != 2 {
		t.Errorf("with one instance down: %v", got)
	}
}

func TestNonQueryPassesThrough(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96", z)
	r := new(dns.Msg)
	r.SetQuestion("v4.example.org.", dns.TypeAAAA)
	r.Question = append(r.Question, r.Question[0])
	w := newWriter(client6)
	d.ServeDNS(t.Context(), w, r)
	if w.msg == nil || len(aaaaStrings(w.msg)) != 0 {
		t.Errorf("two-question message synthesized")
	}
	if !strings.HasPrefix(z.queries()[0], "v4.example.org") {
		t.Errorf("queries %v", z.queries())
	}
}

// TestParallelAAuto: the default starts the A lookup at once only for a
// name last seen without AAAA records. Counted at a fake upstream, no
// clock: a name seen for the first time is asked in turn (AAAA, then A),
// the second time both at once (the upstream holds the AAAA answer until
// the A query has arrived); dual-stack names cost one query each, every
// time; a name that gains an AAAA record costs one A query for nothing,
// once.
func TestParallelAAuto(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	var holdAAAA atomic.Bool
	aSeen := make(chan string, 16)
	z.hook = func(q dns.Question) {
		switch q.Qtype {
		case dns.TypeA:
			aSeen <- q.Name
		case dns.TypeAAAA:
			if holdAAAA.Load() {
				select {
				case n := <-aSeen:
					if !strings.EqualFold(n, q.Name) {
						t.Errorf("A query for %s while asking %s", n, q.Name)
					}
				case <-time.After(5 * time.Second):
					t.Error("the A query did not start before the AAAA answer")
				}
			}
		}
	}
	// Without the answer cache, so every query reaches the upstream.
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nanswer_cache off\n}", z)
	reset := func() {
		z.mu.Lock()
		z.seen = nil
		z.mu.Unlock()
	}

	if got := aaaaStrings(ask(t, d, client6, "v4.example.org", dns.TypeAAAA)); len(got) != 2 {
		t.Fatalf("got %v", got)
	}
	<-aSeen
	if q := z.queries(); !slices.Equal(q, []string{"v4.example.org./AAAA", "v4.example.org./A"}) {
		t.Fatalf("first time: queries %v, want AAAA then A", q)
	}
	reset()
	holdAAAA.Store(true)
	for i := 0; i < 3; i++ {
		if got := aaaaStrings(ask(t, d, client6, "V4.example.org", dns.TypeAAAA)); len(got) != 2 {
			t.Fatalf("got %v", got)
		}
	}
	if n := len(z.queries()); n != 6 {
		t.Fatalf("%d upstream queries for 3 answers, want 6", n)
	}
	holdAAAA.Store(false)

	reset()
	for i := 0; i < 100; i++ {
		if got := aaaaStrings(ask(t, d, client6, "both.example.org", dns.TypeAAAA)); len(got) != 1 {
			t.Fatalf("got %v", got)
		}
	}
	if n := len(z.queries()); n != 100 {
		t.Fatalf("%d upstream queries for 100 dual-stack answers, want 100", n)
	}

	// v4.example.org gains an AAAA record: the next answer may cost the A
	// query started for nothing (held here until it is sent; without the
	// hold the handler often takes the lookup back before it goes out),
	// the following ones only the AAAA query.
	z.mu.Lock()
	z.add(mustRR(t, "v4.example.org. 3600 IN AAAA 2001:db8:4::1"))
	z.mu.Unlock()
	reset()
	for i := 0; i < 3; i++ {
		holdAAAA.Store(i == 0)
		if got := aaaaStrings(ask(t, d, client6, "v4.example.org", dns.TypeAAAA)); !slices.Equal(got, []string{"2001:db8:4::1"}) {
			t.Fatalf("got %v", got)
		}
	}
	if n := len(z.queries()); n != 4 {
		t.Fatalf("%d upstream queries for 3 answers after the name gained AAAA, want 4: %v", n, z.queries())
	}
}
