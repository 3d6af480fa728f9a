package dns64

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/miekg/dns"
)

// fakeClock replaces the cache's clock.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() int64              { return c.ns.Load() }
func (c *fakeClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

func withFakeClock(d *DNS64) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(int64(time.Hour)) // not 0: stored times are compared
	d.cache.now = c.now
	return c
}

func upstreamQueries(z *fakeZone) int { return len(z.queries()) }

// TestAnswerCacheHit: a repeated query is answered from the cache, with
// the client's ID, RD and spelling of the name, TTLs counting down, until
// the smallest TTL has passed.
func TestAnswerCacheHit(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nanswer_cache 100\n}", z)
	clock := withFakeClock(d)
	hits := counterValue(cacheHits.WithLabelValues(""))
	misses := counterValue(cacheMisses.WithLabelValues(""))

	first := ask(t, d, client6, "www.example.org", dns.TypeAAAA)
	if n := upstreamQueries(z); n != 2 {
		t.Fatalf("%d upstream queries for the first answer", n)
	}
	clock.advance(100*time.Second + 500*time.Millisecond)
	var id uint16
	second := ask(t, d, client6, "WWW.Example.ORG", dns.TypeAAAA, func(r *dns.Msg) {
		r.RecursionDesired = false
		id = r.Id
	})
	if n := upstreamQueries(z); n != 2 {
		t.Fatalf("the repeated query went upstream (%d queries)", n)
	}
	if second.Id != id || second.RecursionDesired || second.Question[0].Name != "WWW.Example.ORG." {
		t.Errorf("header or question not the client's: id %d (want %d) rd %v name %s", second.Id, id, second.RecursionDesired, second.Question[0].Name)
	}
	if !slices.Equal(aaaaStrings(second), aaaaStrings(first)) || len(second.Answer) != len(first.Answer) {
		t.Fatalf("cached answer %v, first %v", second.Answer, first.Answer)
	}
	for i, rr := range second.Answer {
		if want := first.Answer[i].Header().Ttl - 100; rr.Header().Ttl != want {
			t.Errorf("%s: TTL %d, want %d (100 s later)", rr.Header().Name, rr.Header().Ttl, want)
		}
	}
	if got := counterValue(cacheHits.WithLabelValues("")) - hits; got != 1 {
		t.Errorf("hits grew by %v", got)
	}
	if got := counterValue(cacheMisses.WithLabelValues("")) - misses; got != 1 {
		t.Errorf("misses grew by %v", got)
	}

	// DO and CD select their own entries.
	ask(t, d, client6, "www.example.org", dns.TypeAAAA, func(r *dns.Msg) { r.SetEdns0(1232, true) })
	ask(t, d, client6, "www.example.org", dns.TypeAAAA, func(r *dns.Msg) { r.CheckingDisabled = true })
	if n := upstreamQueries(z); n != 6 {
		t.Fatalf("DO and CD answered from the plain entry (%d upstream queries, want 6)", n)
	}
	// EDNS: the client's buffer size and DO come back, in an OPT of ours.
	m := ask(t, d, client6, "www.example.org", dns.TypeAAAA, func(r *dns.Msg) { r.SetEdns0(4000, false) })
	if opt := m.IsEdns0(); opt == nil || opt.UDPSize() != 4000 || opt.Do() {
		t.Errorf("OPT of a hit: %v", opt)
	}
	m = ask(t, d, client6, "www.example.org", dns.TypeAAAA, func(r *dns.Msg) { r.SetEdns0(1232, true) })
	if opt := m.IsEdns0(); opt == nil || !opt.Do() {
		t.Errorf("OPT of a DO hit: %v", opt)
	}
	if n := upstreamQueries(z); n != 6 {
		t.Fatalf("%d upstream queries, want 6", n)
	}

	// The smallest TTL is 300 (SOA MINIMUM): at 300 s the entry is gone.
	clock.advance(199 * time.Second)
	ask(t, d, client6, "www.example.org", dns.TypeAAAA)
	if n := upstreamQueries(z); n != 6 {
		t.Fatalf("expired early (%d upstream queries)", n)
	}
	clock.advance(time.Second)
	m = ask(t, d, client6, "www.example.org", dns.TypeAAAA)
	if n := upstreamQueries(z); n != 8 {
		t.Fatalf("not expired after its TTL (%d upstream queries)", n)
	}
	if m.Answer[2].Header().Ttl != 300 {
		t.Errorf("fresh answer TTL %d", m.Answer[2].Header().Ttl)
	}
}

// TestAnswerCacheMaxTTL: MAX_TTL bounds an entry's life below its TTL.
func TestAnswerCacheMaxTTL(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nanswer_cache 100 10s\n}", z)
	clock := withFakeClock(d)
	ask(t, d, client6, "v4.example.org", dns.TypeAAAA)
	clock.advance(9 * time.Second)
	ask(t, d, client6, "v4.example.org", dns.TypeAAAA)
	if n := upstreamQueries(z); n != 2 {
		t.Fatalf("%d upstream queries before MAX_TTL", n)
	}
	clock.advance(time.Second)
	ask(t, d, client6, "v4.example.org", dns.TypeAAAA)
	if n := upstreamQueries(z); n != 4 {
		t.Fatalf("%d upstream queries after MAX_TTL", n)
	}
}

// TestAnswerCacheOnlySynthesis: pass-through answers, failures and
// non-synthesized NODATA are not kept (cache, below, keeps those).
func TestAnswerCacheOnlySynthesis(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nanswer_cache\n}", z)
	z.rcode[key("short.example.org.", dns.TypeA)] = dns.RcodeServerFailure
	for _, name := range []string{"both.example.org", "txt.example.org", "nope.example.org", "short.example.org"} {
		ask(t, d, client6, name, dns.TypeAAAA)
	}
	if n := d.cache.entries(); n != 0 {
		t.Fatalf("%d entries", n)
	}
}

// TestAnswerCacheBalanceClient: with two instances, clients get the prefix
// of their own instance from the cache, so the name has one entry per
// instance chosen.
func TestAnswerCacheBalanceClient(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 2001:db8:65::/96 {\nbalance client\nanswer_cache\n}", z)
	withFakeClock(d)
	prefixes := map[string]string{}
	for round := 0; round < 2; round++ {
		for i := 0; i < 32; i++ {
			c := fmt.Sprintf("2001:db8:1::%x", i+1)
			got := aaaaStrings(ask(t, d, c, "v4.example.org", dns.TypeAAAA))
			if round == 0 {
				prefixes[c] = got[0][:12]
			} else if got[0][:12] != prefixes[c] {
				t.Fatalf("client %s: %s from the cache, %s before", c, got[0], prefixes[c])
			}
		}
	}
	seen := map[string]bool{}
	for _, p := range prefixes {
		seen[p] = true
	}
	if len(seen) != 2 || d.cache.entries() != 2 || upstreamQueries(z) != 4 {
		t.Errorf("prefixes %v, %d entries, %d upstream queries; want 2, 2, 4", seen, d.cache.entries(), upstreamQueries(z))
	}
}

// TestAnswerCacheInvalidation: an instance leaving the rotation drops the
// answers with its prefix, and only those; a reload that changes a prefix
// drops that prefix's answers.
func TestAnswerCacheInvalidation(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, dir, "nat64.toml", instancesTOML("192.0.2.1:8080", "192.0.2.2:8080"))
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 {\ninstances "+file+"\nmax_fails 1\nanswer_cache\n}", z)
	withFakeClock(d)
	p := &scriptedProber{up: map[string]bool{"192.0.2.1:8080": true, "192.0.2.2:8080": true}}
	fill := func() {
		for i := 0; i < 32; i++ {
			for _, name := range []string{"v4.example.org", "www.example.org"} {
				ask(t, d, fmt.Sprintf("2001:db8:1::%x", i+1), name, dns.TypeAAAA)
			}
		}
	}
	byInstance := func() (n [2]int) {
		for i := range d.cache.shards {
			for _, e := range d.cache.shards[i].m {
				n[e.used>>1&1]++
			}
		}
		return n
	}
	fill()
	before := byInstance()
	if before[0] != 2 || before[1] != 2 {
		t.Fatalf("entries per instance %v, want 2 each", before)
	}

	p.set("192.0.2.1:8080", false)
	d.healthRound(t.Context(), p.probe)
	if got := byInstance(); got != [2]int{0, 2} {
		t.Fatalf("after nat64-a left: entries per instance %v, want [0 2]", got)
	}
	fill() // every client on nat64-b now: its entries serve them all
	if got := byInstance(); got != [2]int{0, 2} {
		t.Fatalf("entries per instance %v, want [0 2]", got)
	}
	p.set("192.0.2.1:8080", true)
	d.healthRound(t.Context(), p.probe)
	fill()
	if got := byInstance(); got != [2]int{2, 2} {
		t.Fatalf("after nat64-a came back: %v, want [2 2]", got)
	}

	// A reload moving nat64-a to another prefix drops its answers only.
	writeFile(t, dir, "nat64.toml", strings.Replace(instancesTOML("192.0.2.1:8080", "192.0.2.2:8080"), "2001:db8:64::", "2001:db8:99::", 1))
	if !d.reloadIfChanged() {
		t.Fatal("no reload")
	}
	if got := byInstance(); got != [2]int{0, 2} {
		t.Fatalf("after the reload: %v, want [0 2]", got)
	}
	fill()
	for i := 0; i < 32; i++ {
		got := aaaaStrings(ask(t, d, fmt.Sprintf("2001:db8:1::%x", i+1), "v4.example.org", dns.TypeAAAA))
		if strings.HasPrefix(got[0], "2001:db8:64:") {
			t.Fatalf("old prefix after the reload: %v", got)
		}
	}
}

// TestAnswerCacheNoStoreAcrossInvalidation: an answer whose lookup
// overlapped an invalidation is not stored, as it may have been built from
// the state just replaced.
func TestAnswerCacheNoStoreAcrossInvalidation(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nparallel_a off\nanswer_cache\n}", z)
	z.hook = func(q dns.Question) {
		if q.Qtype == dns.TypeA {
			d.invalidateInstance(0)
		}
	}
	ask(t, d, client6, "v4.example.org", dns.TypeAAAA)
	if n := d.cache.entries(); n != 0 {
		t.Fatalf("%d entries stored across an invalidation", n)
	}
	z.hook = nil
	ask(t, d, client6, "v4.example.org", dns.TypeAAAA)
	if n := d.cache.entries(); n != 1 {
		t.Fatalf("%d entries", n)
	}
}

// TestAnswerCacheBigAnswerUDP: an answer bigger than the client's UDP
// buffer is not written from the cache (the server must truncate it); over
// TCP it is.
func TestAnswerCacheBigAnswerUDP(t *testing.T) {
	records := slices.Clone(zoneRecords)
	for i := 0; i < 30; i++ {
		records = append(records, fmt.Sprintf("big.example.org. 3600 IN A 198.51.100.%d", i+10))
	}
	z := newFakeZone(t, records...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 {\nanswer_cache\n}", z)
	withFakeClock(d)
	ask(t, d, client6, "big.example.org", dns.TypeAAAA)
	if n := d.cache.entries(); n != 1 {
		t.Fatalf("%d entries", n)
	}
	ask(t, d, client6, "big.example.org", dns.TypeAAAA) // 512 bytes: too small
	if n := upstreamQueries(z); n != 4 {
		t.Fatalf("%d upstream queries; a hit bigger than 512 bytes was written", n)
	}
	ask(t, d, client6, "big.example.org", dns.TypeAAAA, func(r *dns.Msg) { r.SetEdns0(1232, false) })
	w := newWriter(client6)
	w.remote = &net.TCPAddr{IP: net.ParseIP(client6), Port: 40000}
	r := new(dns.Msg)
	r.SetQuestion("big.example.org.", dns.TypeAAAA)
	d.ServeDNS(context.Background(), w, r)
	if n := upstreamQueries(z); n != 4 || len(aaaaStrings(w.msg)) != 30 {
		t.Fatalf("%d upstream queries, %d AAAA; want 4, 30", n, len(aaaaStrings(w.msg)))
	}
}

// discard is a ResponseWriter that keeps nothing, for allocation counts
// and floods.
type discard struct {
	writer
	bytes int
}

func (w *discard) WriteMsg(m *dns.Msg) error   { w.n++; return nil }
func (w *discard) Write(b []byte) (int, error) { w.n++; w.bytes = len(b); return len(b), nil }

// TestAnswerCacheBound: 100 000 names an attacker chose never grow the
// cache past its size, and so its memory past size × maxCachedAnswer.
func TestAnswerCacheBound(t *testing.T) {
	const size = 1000
	next := handlerFunc(func(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 3600}, A: net.IPv4(198, 51, 100, 1)}}
		}
		w.WriteMsg(m)
		return dns.RcodeSuccess, nil
	})
	d := newPlugin(t, fmt.Sprintf("dns64 2001:db8:64::/96 {\nparallel_a off\nanswer_cache %d\n}", size), nil)
	d.Next = next
	evictions := counterValue(cacheEvictions.WithLabelValues(""))
	rng := rand.New(rand.NewPCG(1, 2))
	label := func() string {
		b := make([]byte, 1+rng.IntN(63))
		for i := range b {
			b[i] = "abcdefghijklmnopqrstuvwxyz0123456789-"[rng.IntN(37)]
		}
		return string(b)
	}
	r := new(dns.Msg)
	w := &discard{writer: *newWriter(client6)}
	for i := 0; i < 100_000; i++ {
		name := label() + "." + label() + "." + label() + ".example."
		r.SetQuestion(name, dns.TypeAAAA)
		d.ServeDNS(context.Background(), w, r)
		if i%10_000 == 0 {
			if n := d.cache.entries(); n > size {
				t.Fatalf("after %d names: %d entries, bound %d", i+1, n, size)
			}
		}
	}
	// What an entry holds: the answer, its name, the TTL offsets and
	// values, the struct and its map slot. The README's bound: 2.3 KiB.
	const entryBound = 2355
	n, bytes := 0, 0
	for i := range d.cache.shards {
		for _, e := range d.cache.shards[i].m {
			n++
			if len(e.wire) > maxCachedAnswer {
				t.Fatalf("entry of %d bytes", len(e.wire))
			}
			held := cap(e.wire) + len(e.name) + 2*cap(e.ttlOff) + 4*cap(e.ttls) + int(unsafe.Sizeof(*e)) + 16
			bytes += held
			// The worst case: a 1232-byte answer of 255-byte names, each
			// record 11 bytes at least (a compressed name, no data).
			if worst := maxCachedAnswer + 255 + 6*(maxCachedAnswer/11) + int(unsafe.Sizeof(*e)) + 16; worst > entryBound || held > worst {
				t.Fatalf("entry holds %d bytes, worst case %d, bound %d", held, worst, entryBound)
			}
		}
	}
	if n > size || int(d.cache.count.Load()) != n {
		t.Fatalf("%d entries (count %d), bound %d", n, d.cache.count.Load(), size)
	}
	if got := counterValue(cacheEvictions.WithLabelValues("")) - evictions; got < 100_000-size {
		t.Errorf("%v evictions for 100000 names into %d entries", got, size)
	}
	t.Logf("%d entries holding %d bytes (%d each), bound %d", n, bytes, bytes/n, size*entryBound)
}

// TestAnswerCacheAllocs: a hit allocates nothing in ServeDNS with the wire
// form: the copy to patch comes from a pool and the key is a hash, not a
// lower-cased string. The *dns.Msg form's count is logged for comparison.
func TestAnswerCacheAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	for _, wire := range []bool{true, false} {
		up := newStaticUpstream(t)
		d := newPlugin(t, "dns64 2001:db8:64::/96 {\nanswer_cache\n}", nil)
		d.Next = up
		d.cache.wire = wire
		r := new(dns.Msg)
		r.SetQuestion("v4.example.org.", dns.TypeAAAA)
		r.SetEdns0(1232, false)
		w := &discard{writer: *newWriter(client6)}
		ctx := context.Background()
		d.ServeDNS(ctx, w, r) // the miss that stores it
		allocs := testing.AllocsPerRun(1000, func() { d.ServeDNS(ctx, w, r) })
		if d.cache.entries() != 1 || counterValue(cacheHits.WithLabelValues("")) < 1000 {
			t.Fatal("not served from the cache")
		}
		t.Logf("wire %v: %.0f allocations per hit", wire, allocs)
		if wire && allocs != 0 {
			t.Errorf("%.0f allocations per hit, want 0", allocs)
		}
	}
}

// TestAnswerCacheConcurrent runs hits, misses, stores, evictions and
// health purges at once, for go test -race: every answer must still be a
// synthesis under one of the prefixes.
func TestAnswerCacheConcurrent(t *testing.T) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 2001:db8:65::/96 {\nanswer_cache 32\n}", z)
	stop := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		in := d.set.Load().all[0]
		for {
			select {
			case <-stop:
				in.healthy.Store(true)
				return
			default:
			}
			in.healthy.Store(!in.healthy.Load())
			d.invalidateInstance(0)
		}
	}()
	names := []string{"v4.example.org.", "www.example.org.", "short.example.org.", "signed.example.org."}
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 300; i++ {
				r := new(dns.Msg)
				r.SetQuestion(names[i%len(names)], dns.TypeAAAA)
				if i%3 == 0 {
					r.SetEdns0(1232, i%2 == 0)
				}
				w := newWriter(fmt.Sprintf("2001:db8:1::%x", g*1000+i%50))
				d.ServeDNS(context.Background(), w, r)
				got := aaaaStrings(w.msg)
				if len(got) == 0 {
					t.Errorf("%s: no synthesis: %v", names[i%len(names)], w.msg)
					return
				}
				for _, a := range got {
					if !strings.HasPrefix(a, "2001:db8:64::") && !strings.HasPrefix(a, "2001:db8:65::") {
						t.Errorf("%s: %s", names[i%len(names)], a)
						return
					}
				}
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	close(stop)
	<-flipped
	if n := d.cache.entries(); n > 32 || int(d.cache.count.Load()) != n {
		t.Errorf("%d entries (count %d), bound 32", n, d.cache.count.Load())
	}
}
