package packet

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// naiveSum is RFC 1071 word by word, the reference for Checksum.
func naiveSum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

func TestChecksumMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		if n%7 == 0 {
			for i := range b {
				b[i] = 0xff // worst case for carries
			}
		}
		if got, want := Checksum(b, 0), naiveSum(b); got != want && !(got == 0xffff && want == 0) && !(got == 0 && want == 0xffff) {
			t.Fatalf("len %d: Checksum=%#04x naive=%#04x", n, got, want)
		}
	}
	// RFC 1071 §3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
	if got := Checksum([]byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0); got != 0xddf2 {
		t.Fatalf("RFC 1071 example: got %#04x", got)
	}
}

func TestIncrementalMatchesFull(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 2000; n++ {
		b := make([]byte, 8+2*r.IntN(40))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		binary.BigEndian.PutUint16(b[2:], 0)
		ck := ^Checksum(b, 0)
		binary.BigEndian.PutUint16(b[2:], ck)
		// Change one 16-bit word.
		w := 4 + 2*r.IntN((len(b)-4)/2)
		old := binary.BigEndian.Uint16(b[w:])
		nw := uint16(r.UintN(65536))
		binary.BigEndian.PutUint16(b[w:], nw)
		ck = UpdateChecksum(ck, old, nw)
		binary.BigEndian.PutUint16(b[2:], ck)
		if s := Checksum(b, 0); s != 0xffff {
			t.Fatalf("16-bit update: sum %#04x", s)
		}
		// Swap a 4-byte "address" at offset 4.
		var o4, n4 [4]byte
		copy(o4[:], b[4:8])
		binary.BigEndian.PutUint32(n4[:], r.Uint32())
		copy(b[4:8], n4[:])
		ck = UpdateChecksum(ck, Checksum(o4[:], 0), Checksum(n4[:], 0))
		binary.BigEndian.PutUint16(b[2:], ck)
		if s := Checksum(b, 0); s != 0xffff {
			t.Fatalf("addr4 update: sum %#04x", s)
		}
	}
}

func TestPseudoHeader6(t *testing.T) {
	var src, dst [16]byte
	src[0], dst[15] = 0x20, 1
	// Build the pseudo-header bytes literally and compare.
	ph := make([]byte, 40)
	copy(ph, src[:])
	copy(ph[16:], dst[:])
	binary.BigEndian.PutUint32(ph[32:], 70000)
	ph[39] = 17
	if got, want := PseudoHeaderSum6(&src, &dst, 17, 70000), Checksum(ph, 0); got != want {
		t.Fatalf("got %#04x want %#04x", got, want)
	}
	ph4 := []byte{192, 0, 2, 1, 198, 51, 100, 2, 0, 6, 0x05, 0xdc}
	if got, want := PseudoHeaderSum4([4]byte{192, 0, 2, 1}, [4]byte{198, 51, 100, 2}, 6, 1500), Checksum(ph4, 0); got != want {
		t.Fatalf("v4 got %#04x want %#04x", got, want)
	}
}

func ipv4UDP(payload int) []byte {
	b := make([]byte, 20+8+payload)
	IPv4(b).Encode(&IPv4Fields{TotalLen: uint16(len(b)), TTL: 64, Protocol: nat64.ProtoUDP,
		Src: [4]byte{192, 0, 2, 1}, Dst: [4]byte{203, 0, 113, 1}})
	binary.BigEndian.PutUint16(b[20:], 1234)
	binary.BigEndian.PutUint16(b[22:], 53)
	binary.BigEndian.PutUint16(b[24:], uint16(8+payload))
	return b
}

func ipv6Ext(exts []byte, first nat64.Proto, proto nat64.Proto, l4 []byte) []byte {
	b := make([]byte, 40, 40+len(exts)+len(l4))
	b[0] = 0x60
	b[6] = byte(first)
	b[7] = 64
	b[8], b[9] = 0x20, 0x01
	b[24], b[25] = 0x20, 0x01
	b = append(b, exts...)
	b = append(b, l4...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	_ = proto
	return b
}

func TestParse(t *testing.T) {
	var in Info
	p := ipv4UDP(10)
	if r := Parse(p, &in); r != OK || in.Proto != nat64.ProtoUDP || in.L4Off != 20 || in.Len != len(p) || in.Fragmented {
		t.Fatalf("udp4: %v %+v", r, in)
	}
	p[10] ^= 1
	if r := Parse(p, &in); r != BadHeaderChecksum {
		t.Fatalf("bad checksum: %v", r)
	}
	p[10] ^= 1
	binary.BigEndian.PutUint16(p[24:], 7)
	if r := Parse(p, &in); r != BadUDPLength {
		t.Fatalf("udp length: %v", r)
	}
	if r := Parse(p[:19], &in); r != TooShort {
		t.Fatalf("short: %v", r)
	}

	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[4:], 8)
	// Hop-by-hop, routing (segments left 2), fragment (first), UDP.
	ext := []byte{
		byte(nat64.ProtoRouting), 0, 1, 4, 0, 0, 0, 0, // HBH: next routing
		byte(nat64.ProtoFragment), 0, 0, 2, 0, 0, 0, 0, // routing: next fragment, segleft 2
		byte(nat64.ProtoUDP), 0, 0, 1, 0, 0, 0, 9, // fragment: offset 0, M=1, id 9
	}
	p6 := ipv6Ext(ext, nat64.ProtoHopByHop, nat64.ProtoUDP, udp)
	if r := Parse(p6, &in); r != OK || in.Proto != nat64.ProtoUDP || in.L4Off != 64 || in.SegLeftOff != 51 ||
		in.FragHdrOff != 56 || !in.Fragmented || !in.MoreFrags || in.FragID != 9 {
		t.Fatalf("ext chain: %v %+v", r, in)
	}
	// Hop-by-hop not first is an error.
	bad := ipv6Ext([]byte{byte(nat64.ProtoHopByHop), 0, 0, 0, 0, 0, 0, 0, byte(nat64.ProtoUDP), 0, 0, 0, 0, 0, 0, 0}, nat64.ProtoDestOpts, 0, udp)
	if r := Parse(bad, &in); r != BadExtHeader {
		t.Fatalf("late HBH: %v", r)
	}
	// Non-first fragment: no L4 check.
	p6 = ipv6Ext([]byte{byte(nat64.ProtoTCP), 0, 0, 0x10, 0, 0, 0, 1}, nat64.ProtoFragment, 0, []byte{1, 2, 3})
	if r := Parse(p6, &in); r != OK || in.FragOffset != 16 || in.Proto != nat64.ProtoTCP || in.HasL4Header() {
		t.Fatalf("later fragment: %v %+v", r, in)
	}
	// Truncated TCP is rejected unless inner.
	p6 = ipv6Ext(nil, nat64.ProtoTCP, 0, make([]byte, 12))
	if r := Parse(p6, &in); r != L4TooShort {
		t.Fatalf("short tcp: %v", r)
	}
	if r := ParseInner(p6, 6, &in); r != OK {
		t.Fatalf("inner short tcp: %v", r)
	}
	// Extension header loop bounded.
	var many []byte
	for i := 0; i < 12; i++ {
		many = append(many, byte(nat64.ProtoDestOpts), 0, 0, 0, 0, 0, 0, 0)
	}
	many[len(many)-8] = byte(nat64.ProtoUDP)
	if r := Parse(ipv6Ext(many, nat64.ProtoDestOpts, 0, udp), &in); r != TooManyExtHeaders {
		t.Fatalf("many ext: %v", r)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(ipv4UDP(4))
	f.Add(ipv6Ext([]byte{byte(nat64.ProtoUDP), 0, 0, 1, 0, 0, 0, 9}, nat64.ProtoFragment, 0, []byte{0, 1, 0, 2, 0, 8, 0, 0}))
	f.Add(ipv6Ext([]byte{byte(nat64.ProtoTCP), 0, 0, 1, 0, 0, 0, 0}, nat64.ProtoRouting, 0, make([]byte, 20)))
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		var in Info
		for _, inner := range []bool{false, true} {
			var r Reason
			if inner && len(b) > 0 {
				r = ParseInner(b, b[0]>>4, &in)
			} else {
				r = Parse(b, &in)
			}
			if r != OK {
				if r.String() == "unknown" {
					t.Fatalf("unnamed reason %d", r)
				}
				continue
			}
			// Every offset Parse reports must lie inside the data.
			if in.Len > len(b) || in.L4Off > in.Len || in.FragHdrOff+FragmentLen > len(b) && in.FragHdrOff != 0 || in.SegLeftOff >= len(b) {
				t.Fatalf("offsets out of range: %+v len %d", in, len(b))
			}
			if in.HasL4Header() {
				switch in.Proto {
				case nat64.ProtoTCP, nat64.ProtoUDP, nat64.ProtoICMPv4, nat64.ProtoICMPv6:
					if in.L4Len() < 8 {
						t.Fatalf("L4 header short: %+v", in)
					}
				}
				if !inner && in.Proto == nat64.ProtoTCP && TCP(b[in.L4Off:]).DataOffset() > in.L4Len() {
					t.Fatalf("tcp data offset past end")
				}
			}
		}
	})
}

func BenchmarkChecksum1500(b *testing.B) {
	p := make([]byte, 1500)
	for i := range p {
		p[i] = byte(i)
	}
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		_ = Checksum(p, 0)
	}
}

func BenchmarkParseIPv6UDP(b *testing.B) {
	udp := make([]byte, 72)
	binary.BigEndian.PutUint16(udp[4:], 72)
	p := ipv6Ext(nil, nat64.ProtoUDP, 0, udp)
	p[6] = byte(nat64.ProtoUDP)
	var in Info
	b.ReportAllocs()
	for b.Loop() {
		if Parse(p, &in) != OK {
			b.Fatal("parse")
		}
	}
}

// Encode sums the IPv4 header checksum from the fields; it must be the
// checksum of the bytes it wrote, for any fields.
func TestIPv4EncodeChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make(IPv4, IPv4MinHeader)
	for i := 0; i < 10000; i++ {
		f := IPv4Fields{
			TOS: uint8(rng.Uint32()), TotalLen: uint16(rng.Uint32()), ID: uint16(rng.Uint32()),
			DF: rng.IntN(2) == 0, MF: rng.IntN(2) == 0, FragOffset: rng.IntN(8192) * 8,
			TTL: uint8(rng.Uint32()), Protocol: nat64.Proto(rng.Uint32()),
		}
		binary.BigEndian.PutUint32(f.Src[:], rng.Uint32())
		binary.BigEndian.PutUint32(f.Dst[:], rng.Uint32())
		b.Encode(&f)
		if !b.HeaderChecksumOK() {
			t.Fatalf("%+v: header checksum %#04x does not verify", f, b.Checksum())
		}
	}
}
