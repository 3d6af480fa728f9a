package dns64

import (
	"math"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

func weightedSet(weights ...int) *instanceSet {
	s := &instanceSet{}
	for i, w := range weights {
		p := nat64.MustPrefix(netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x64, byte(i)}), 96).String())
		s.all = append(s.all, newInstance("nat64-"+string(rune('a'+i)), p, w, ""))
	}
	return s
}

func clientKey(i int) [16]byte {
	return netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)}).As16()
}

func TestRendezvousWeights(t *testing.T) {
	s := weightedSet(1, 2)
	const n = 30000
	var count [2]int
	for i := 0; i < n; i++ {
		count[s.index(s.rendezvous(clientKey(i), false))]++
	}
	share := float64(count[1]) / n
	if math.Abs(share-2.0/3) > 0.02 {
		t.Errorf("weight-2 share %.3f, want 0.667 ± 0.02 (%v)", share, count)
	}
}

func TestRendezvousMinimalDisruption(t *testing.T) {
	s := weightedSet(1, 1, 1)
	const n = 10000
	before := make([]*instance, n)
	for i := range before {
		before[i] = s.rendezvous(clientKey(i), false)
	}
	s.all[1].healthy.Store(false)
	moved := 0
	for i := range before {
		after := s.rendezvous(clientKey(i), false)
		if after == s.all[1] {
			t.Fatal("unhealthy instance chosen")
		}
		if before[i] != s.all[1] && after != before[i] {
			moved++
		}
	}
	if moved != 0 {
		t.Errorf("%d clients of healthy instances moved", moved)
	}
	// Stickiness: the same key, the same answer.
	k := clientKey(42)
	if first, again := s.rendezvous(k, false), s.rendezvous(k, false); first != again {
		t.Error("not deterministic")
	}
}

func TestWeightedRandom(t *testing.T) {
	s := weightedSet(1, 3)
	const n = 20000
	var count [2]int
	for i := 0; i < n; i++ {
		count[s.index(s.weightedRandom(false))]++
	}
	if share := float64(count[1]) / n; math.Abs(share-0.75) > 0.02 {
		t.Errorf("weight-3 share %.3f, want 0.75 ± 0.02", share)
	}
	s.all[1].healthy.Store(false)
	for i := 0; i < 100; i++ {
		if s.weightedRandom(false) != s.all[0] {
			t.Fatal("unhealthy instance chosen")
		}
	}
}

// balancePlugin is a plugin over two /96 prefixes, weights 1 and 2.
func balancePlugin(t *testing.T, mode string) (*DNS64, *fakeZone) {
	z := newFakeZone(t, zoneRecords...)
	d := newPlugin(t, "dns64 2001:db8:64::/96 2001:db8:65::/96 {\nallow_ipv4\nbalance "+mode+"\n}", z)
	d.set.Load().all[1].weight = 2
	return d, z
}

func TestBalanceClient(t *testing.T) {
	d, _ := balancePlugin(t, "client")
	counts := map[string]int{}
	for i := 0; i < 600; i++ {
		client := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 1, 14: byte(i >> 8), 15: byte(i)}).String()
		if i%2 == 1 {
			client = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}).String()
		}
		m := ask(t, d, client, "v4.example.org", dns.TypeAAAA)
		got := aaaaStrings(m)
		if len(got) != 2 || got[0][:14] != got[1][:14] {
			t.Fatalf("one prefix per answer: %v", got)
		}
		counts[got[0][:14]]++
		// Sticky.
		if again := aaaaStrings(ask(t, d, client, "www.example.org", dns.TypeAAAA)); again[0][:14] != got[0][:14] {
			t.Fatalf("client %s moved between answers", client)
		}
	}
	if len(counts) != 2 || counts["2001:db8:65::c"] < counts["2001:db8:64::c"] {
		t.Errorf("distribution %v", counts)
	}
}

func TestBalanceAllAndDestination(t *testing.T) {
	d, _ := balancePlugin(t, "all")
	got := aaaaStrings(ask(t, d, client6, "v4.example.org", dns.TypeAAAA))
	want := []string{"2001:db8:64::c633:6402", "2001:db8:65::c633:6402", "2001:db8:64::c633:6403", "2001:db8:65::c633:6403"}
	if len(got) != 4 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || got[3] != want[3] {
		t.Errorf("all: %v", got)
	}
	d.set.Load().all[0].healthy.Store(false)
	if got := aaaaStrings(ask(t, d, client6, "v4.example.org", dns.TypeAAAA)); len(got) != 2 || got[0] != want[1] {
		t.Errorf("all with one down: %v", got)
	}

	d, _ = balancePlugin(t, "destination")
	first := aaaaStrings(ask(t, d, client6, "v4.example.org", dns.TypeAAAA))
	for i := 0; i < 50; i++ {
		client := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 2, 15: byte(i)}).String()
		if again := aaaaStrings(ask(t, d, client, "v4.example.org", dns.TypeAAAA)); again[0] != first[0] || again[1] != first[1] {
			t.Fatalf("destination mode differs per client: %v vs %v", again, first)
		}
	}
}

func TestAllUnhealthyFallsBack(t *testing.T) {
	d, _ := balancePlugin(t, "client")
	for _, in := range d.set.Load().all {
		in.healthy.Store(false)
	}
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		client := netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 3, 15: byte(i)}).String()
		got := aaaaStrings(ask(t, d, client, "v4.example.org", dns.TypeAAAA))
		if len(got) != 2 {
			t.Fatalf("no synthesis with all instances down: %v", got)
		}
		seen[got[0][:14]] = true
	}
	if len(seen) != 2 {
		t.Errorf("fallback did not use all instances: %v", seen)
	}
}
