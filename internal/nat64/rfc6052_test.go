package nat64

import (
	"errors"
	"net/netip"
	"testing"
)

// The table of RFC 6052 section 2.4: 192.0.2.33 under each prefix length.
var rfc6052Table = []struct {
	prefix, embedded string
}{
	{"2001:db8::/32", "2001:db8:c000:221::"},
	{"2001:db8:100::/40", "2001:db8:1c0:2:21::"},
	{"2001:db8:122::/48", "2001:db8:122:c000:2:2100::"},
	{"2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"},
	{"2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100::"},
	{"2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"},
}

func TestRFC6052Table(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.33")
	for _, tc := range rfc6052Table {
		p := MustPrefix(tc.prefix)
		want := netip.MustParseAddr(tc.embedded)
		if got := p.EmbedAddr(v4); got != want {
			t.Errorf("Embed(%s, %s) = %s, want %s", tc.prefix, v4, got, want)
		}
		got, ok := p.ExtractAddr(want)
		if !ok || got != v4 {
			t.Errorf("Extract(%s, %s) = %s, %v; want %s", tc.prefix, want, got, ok, v4)
		}
	}
}

// RFC 5952 text is what every tool prints; pin it for the /64 row, whose
// trailing zero group Go prints in full.
func TestEmbedPrintsRFC5952(t *testing.T) {
	got := MustPrefix("2001:db8:122:344::/64").EmbedAddr(netip.MustParseAddr("192.0.2.33")).String()
	if got != "2001:db8:122:344:c0:2:2100:0" {
		t.Errorf("got %s", got)
	}
}

func TestExtractIgnoresUOctetAndSuffix(t *testing.T) {
	// RFC 6052 section 2.2: decoders ignore the suffix bits.
	p := MustPrefix("2001:db8:122::/48")
	a := netip.MustParseAddr("2001:db8:122:c000:2:2100:ffff:ffff").As16()
	a[8] = 0xff
	v4, ok := p.Extract(a)
	if !ok || v4 != [4]byte{192, 0, 2, 33} {
		t.Errorf("Extract = %v, %v", v4, ok)
	}
}

func TestExtractOutsidePrefix(t *testing.T) {
	p := MustPrefix("64:ff9b:1::/96")
	if _, ok := p.ExtractAddr(netip.MustParseAddr("64:ff9b:2::c000:221")); ok {
		t.Error("extracted from an address outside the prefix")
	}
	if _, ok := p.ExtractAddr(netip.MustParseAddr("192.0.2.33")); ok {
		t.Error("extracted from an IPv4 address")
	}
}

func TestNewPrefixRejects(t *testing.T) {
	for _, s := range []string{
		"2001:db8::/33",          // length not in RFC 6052
		"2001:db8::/128",         // length not in RFC 6052
		"2001:db8::/0",           // length not in RFC 6052
		"2001:db8:0:0:ff00::/96", // bits 64-71 set
		"2001:db8::1/96",         // host bits
		"::ffff:0:0/96",          // IPv4-mapped space
		"192.0.2.0/24",           // IPv4
	} {
		if _, err := ParsePrefix(s); !errors.Is(err, ErrPrefix) {
			t.Errorf("ParsePrefix(%q) = %v, want an ErrPrefix", s, err)
		}
	}
	if _, err := ParsePrefix("not a prefix"); !errors.Is(err, ErrPrefix) {
		t.Errorf("garbage: %v", err)
	}
}

func TestWellKnownPrefixCarriesOnlyGlobal(t *testing.T) {
	wkp := MustPrefix("64:ff9b::/96")
	nsp := MustPrefix("64:ff9b:1::/96")
	if !wkp.IsWellKnown() || nsp.IsWellKnown() {
		t.Fatal("IsWellKnown wrong")
	}
	for _, tc := range []struct {
		v4     string
		global bool
	}{
		{"192.0.2.1", false}, {"198.51.100.7", false}, {"203.0.113.9", false},
		{"10.1.2.3", false}, {"172.16.0.1", false}, {"172.31.255.255", false}, {"192.168.1.1", false},
		{"100.64.0.1", false}, {"127.0.0.1", false}, {"169.254.1.1", false}, {"0.1.2.3", false},
		{"198.18.0.1", false}, {"198.19.255.255", false}, {"240.0.0.1", false}, {"255.255.255.255", false},
		{"224.0.0.251", false}, {"192.0.0.170", false},
		{"192.0.0.9", true}, {"192.0.0.10", true},
		{"8.8.8.8", true}, {"172.32.0.1", true}, {"100.128.0.1", true}, {"198.20.0.1", true},
		{"192.0.3.1", true}, {"223.255.255.255", true},
	} {
		v4 := netip.MustParseAddr(tc.v4).As4()
		if got := IsGlobalIPv4(v4); got != tc.global {
			t.Errorf("IsGlobalIPv4(%s) = %v", tc.v4, got)
		}
		if got := wkp.CanCarry(v4); got != tc.global {
			t.Errorf("64:ff9b::/96 CanCarry(%s) = %v", tc.v4, got)
		}
		if !nsp.CanCarry(v4) {
			t.Errorf("a network-specific prefix must carry %s", tc.v4)
		}
	}
}

func TestEmbedAllocatesNothing(t *testing.T) {
	p := MustPrefix("2001:db8:122::/48")
	v4 := [4]byte{192, 0, 2, 33}
	var sink [16]byte
	n := testing.AllocsPerRun(100, func() {
		sink = p.Embed(v4)
		v4, _ = p.Extract(sink)
	})
	if n != 0 {
		t.Errorf("%v allocs", n)
	}
}

func FuzzEmbedExtract(f *testing.F) {
	for _, tc := range rfc6052Table {
		a := netip.MustParseAddr(tc.embedded).As16()
		f.Add(a[:], []byte{192, 0, 2, 33})
	}
	lengths := []int{32, 40, 48, 56, 64, 96}
	f.Fuzz(func(t *testing.T, pfx []byte, v4 []byte) {
		if len(pfx) < 16 || len(v4) < 4 {
			return
		}
		var a [16]byte
		copy(a[:], pfx)
		a[8] = 0
		var ip [4]byte
		copy(ip[:], v4)
		for _, bits := range lengths {
			np := netip.PrefixFrom(netip.AddrFrom16(a), bits).Masked()
			p, err := NewPrefix(np)
			if err != nil {
				if !np.Addr().Is4In6() {
					t.Fatalf("NewPrefix(%s): %v", np, err)
				}
				continue
			}
			emb := p.Embed(ip)
			if !p.Contains(emb) || !np.Contains(netip.AddrFrom16(emb)) {
				t.Fatalf("%s: embedded %v is outside the prefix", np, emb)
			}
			if emb[8] != 0 {
				t.Fatalf("%s: u octet set in %v", np, netip.AddrFrom16(emb))
			}
			back, ok := p.Extract(emb)
			if !ok || back != ip {
				t.Fatalf("%s: round trip %v -> %v -> %v", np, ip, netip.AddrFrom16(emb), back)
			}
		}
	})
}

// EmbedSum is the checksum arithmetic's shortcut for Embed: it must equal
// the RFC 1071 sum of the address Embed builds, for every prefix length.
func TestEmbedSumMatchesEmbed(t *testing.T) {
	sum := func(a [16]byte) uint16 {
		var s uint32
		for i := 0; i < 16; i += 2 {
			s += uint32(a[i])<<8 | uint32(a[i+1])
		}
		s = s&0xffff + s>>16
		return uint16(s&0xffff + s>>16)
	}
	for _, p := range []string{"2001:db8::/32", "2001:db8:ff00::/40", "2001:db8:ffff::/48", "2001:db8:ffff:ff00::/56", "2001:db8:ffff:ffff::/64", "64:ff9b:1::/96", "2001:db8:64::/96"} {
		pfx := MustPrefix(p)
		for _, v4 := range [][4]byte{{0, 0, 0, 0}, {192, 0, 2, 33}, {255, 255, 255, 255}, {198, 51, 100, 2}, {1, 254, 3, 252}} {
			if got, want := pfx.EmbedSum(v4), sum(pfx.Embed(v4)); got != want {
				t.Errorf("%s %v: EmbedSum %#04x, sum of Embed %#04x", p, v4, got, want)
			}
		}
	}
}
