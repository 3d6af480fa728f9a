package xlat

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
	"github.com/nat64kit/nat64kit/internal/state"
)

// Test address plan (documentation ranges only).
var (
	hostX    = addr16("2001:db8:10::5") // IPv6 client
	hostX2   = addr16("2001:db8:10::6") // second IPv6 client (hairpin target)
	router6  = addr16("2001:db8:ff::1") // IPv6 router reporting errors
	pool4    = [4]byte{203, 0, 113, 1}  // T
	serverZ  = [4]byte{198, 51, 100, 2} // Z
	router4  = [4]byte{192, 0, 2, 254}  // IPv4 router reporting errors
	prefix   = nat64.MustPrefix("64:ff9b:1::/96")
	serverZ6 = prefix.Embed(serverZ) // Z'
	pool4in6 = prefix.Embed(pool4)   // T' (hairpin destination)
)

// Static bindings make the pool4 ports deterministic, so goldens need no
// masks for them.
const (
	portX    = 40000 // TCP source on X
	portXudp = 40001 // UDP source on X
	identX   = 0x1234
	portT    = 5000 // pool4 port of X:40000/tcp
	portTudp = 5001 // pool4 port of X:40001/udp
	identT   = 6000 // pool4 identifier of X's echo id
	portX2   = 7000 // UDP on X2
	portT2   = 7000 // its pool4 port
	portZ    = 80
	portZudp = 53
)

func addr16(s string) [16]byte { return netip.MustParseAddr(s).As16() }

// testConfig is the instance the translator tests run: the translator's
// half of it, and the state table's in State.
type testConfig struct {
	Config
	State state.Config
}

func testInstance() *testConfig {
	x := netip.AddrFrom16(hostX)
	t4 := netip.AddrFrom4(pool4)
	return &testConfig{
		Config: Config{Prefix: prefix, MTU: 1500, IPv4MTU: 1500},
		State: state.Config{
			Prefix: prefix,
			Pool4:  []nat64.Pool4Range{{Prefix: netip.PrefixFrom(t4, 32), FirstPort: 1024, LastPort: 65535}},
			Timeouts: nat64.Timeouts{
				UDP: nat64.DefaultUDPTimeout, TCPEstablished: nat64.DefaultTCPEstablishedTimeout,
				TCPTransitory: nat64.DefaultTCPTransitoryTimeout, ICMP: nat64.DefaultICMPTimeout,
			},
			EndpointIndependentFiltering: true,
			MaxSessions:                  1 << 16,
			MaxSessionsPerSource:         1 << 12,
			Static: []nat64.StaticBIB{
				{Proto: nat64.TCP, IPv6: netip.AddrPortFrom(x, portX), IPv4: netip.AddrPortFrom(t4, portT)},
				{Proto: nat64.UDP, IPv6: netip.AddrPortFrom(x, portXudp), IPv4: netip.AddrPortFrom(t4, portTudp)},
				{Proto: nat64.ICMP, IPv6: netip.AddrPortFrom(x, identX), IPv4: netip.AddrPortFrom(t4, identT)},
				{Proto: nat64.UDP, IPv6: netip.AddrPortFrom(netip.AddrFrom16(hostX2), portX2), IPv4: netip.AddrPortFrom(t4, portT2)},
			},
		},
	}
}

func newTestTranslator(t testing.TB, mod func(*testConfig)) *Translator {
	t.Helper()
	in := testInstance()
	if mod != nil {
		mod(in)
	}
	tbl, err := state.New(&in.State, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tr := New(&in.Config, tbl)
	tr.ipID = 0x1000 // deterministic identifications for goldens
	return tr
}

// --- packet builders (test-only, independent of the translator) ---

func tcpSeg(sport, dport uint16, flags uint8, payload []byte) []byte {
	b := make([]byte, 20+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 0x01020304)
	if flags&nat64.TCPAck != 0 {
		binary.BigEndian.PutUint32(b[8:], 0x0a0b0c0d)
	}
	b[12] = 5 << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 65535)
	copy(b[20:], payload)
	return b
}

func udpDgram(sport, dport uint16, payload []byte) []byte {
	b := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
	copy(b[8:], payload)
	return b
}

func icmpMsg(typ, code uint8, rest uint32, body []byte) []byte {
	b := make([]byte, 8+len(body))
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint32(b[4:], rest)
	copy(b[8:], body)
	return b
}

func echo(typ uint8, id, seq uint16, payload []byte) []byte {
	return icmpMsg(typ, 0, uint32(id)<<16|uint32(seq), payload)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// ipv6 builds an IPv6 packet; ext are raw extension headers whose chain
// starts with first (ignored when ext is empty) and ends with proto.
func ipv6(src, dst [16]byte, hop uint8, proto nat64.Proto, l4 []byte, first nat64.Proto, ext []byte) []byte {
	b := make([]byte, 40, 40+len(ext)+len(l4))
	b[0] = 0x60 | 0x0b>>4 // traffic class 0xb8 below
	binary.BigEndian.PutUint32(b[0:], 6<<28|0xb8<<20|0x12345)
	b[7] = hop
	copy(b[8:], src[:])
	copy(b[24:], dst[:])
	if len(ext) == 0 {
		b[6] = byte(proto)
	} else {
		b[6] = byte(first)
	}
	b = append(b, ext...)
	b = append(b, l4...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return b
}

// ipv4 builds an IPv4 packet with a correct header checksum.
func ipv4(src, dst [4]byte, ttl uint8, proto nat64.Proto, id uint16, df bool, l4 []byte) []byte {
	b := make([]byte, 20+len(l4))
	b[0] = 0x45
	b[1] = 0xb8
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], id)
	if df {
		b[6] = 0x40
	}
	b[8] = ttl
	b[9] = byte(proto)
	copy(b[12:], src[:])
	copy(b[16:], dst[:])
	copy(b[20:], l4)
	setIPv4HeaderChecksum(b)
	return b
}

func setIPv4HeaderChecksum(b []byte) {
	b[10], b[11] = 0, 0
	binary.BigEndian.PutUint16(b[10:], ^refSum(b[:int(b[0]&0xf)*4], 0))
}

// setFrag4 marks an IPv4 packet as a fragment.
func setFrag4(b []byte, offset int, more bool) {
	v := uint16(offset / 8)
	if more {
		v |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], v)
	setIPv4HeaderChecksum(b)
}

// refSum is an independent RFC 1071 sum, word by word (not packet.Checksum).
func refSum(b []byte, initial uint32) uint16 {
	s := initial
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

func refPseudo6(src, dst []byte, proto nat64.Proto, n int) uint32 {
	ph := make([]byte, 40)
	copy(ph, src)
	copy(ph[16:], dst)
	binary.BigEndian.PutUint32(ph[32:], uint32(n))
	ph[39] = byte(proto)
	return uint32(refSum(ph, 0))
}

func refPseudo4(src, dst []byte, proto nat64.Proto, n int) uint32 {
	ph := make([]byte, 12)
	copy(ph, src)
	copy(ph[4:], dst)
	ph[9] = byte(proto)
	binary.BigEndian.PutUint16(ph[10:], uint16(n))
	return uint32(refSum(ph, 0))
}

// l4Offset walks a test-built packet (no validation, builders are trusted).
func l4Offset(b []byte) (off int, proto nat64.Proto) {
	if b[0]>>4 == 4 {
		return int(b[0]&0xf) * 4, nat64.Proto(b[9])
	}
	var in packet.Info
	if packet.ParseInner(b, 6, &in) != packet.OK {
		panic("l4Offset: unparsable test packet")
	}
	return in.L4Off, in.Proto
}

// fillChecksum computes the L4 checksum of a whole (unfragmented) test packet.
func fillChecksum(b []byte) []byte {
	off, proto := l4Offset(b)
	l4 := b[off:]
	var at int
	switch proto {
	case nat64.ProtoTCP:
		at = 16
	case nat64.ProtoUDP:
		at = 6
	case nat64.ProtoICMPv4, nat64.ProtoICMPv6:
		at = 2
	default:
		return b
	}
	l4[at], l4[at+1] = 0, 0
	var init uint32
	if b[0]>>4 == 6 {
		init = refPseudo6(b[8:24], b[24:40], proto, len(l4))
	} else if proto != nat64.ProtoICMPv4 {
		init = refPseudo4(b[12:16], b[16:20], proto, len(l4))
	}
	ck := ^refSum(l4, init)
	if ck == 0 && proto == nat64.ProtoUDP {
		ck = 0xffff
	}
	binary.BigEndian.PutUint16(l4[at:], ck)
	return b
}

// l4ChecksumOK verifies from scratch the transport checksum of a whole
// packet (ok is false when the packet is a fragment: not verifiable).
func l4ChecksumOK(b []byte) (valid, verifiable bool) {
	var in packet.Info
	if packet.Parse(b, &in) != packet.OK || in.Fragmented {
		return false, false
	}
	l4 := b[in.L4Off:in.Len]
	var init uint32
	if in.Version == 6 {
		init = refPseudo6(b[8:24], b[24:40], in.Proto, len(l4))
	} else if in.Proto != nat64.ProtoICMPv4 {
		init = refPseudo4(b[12:16], b[16:20], in.Proto, len(l4))
	}
	switch in.Proto {
	case nat64.ProtoTCP, nat64.ProtoUDP, nat64.ProtoICMPv4, nat64.ProtoICMPv6:
	default:
		return false, false
	}
	if in.Proto == nat64.ProtoUDP && in.Version == 4 && binary.BigEndian.Uint16(l4[6:]) == 0 {
		return true, true
	}
	return refSum(l4, init) == 0xffff, true
}

// checkWellFormed asserts that an emitted packet parses, has a valid IPv4
// header checksum (Parse checks it) and a valid transport checksum when it
// is not a fragment; for ICMP errors, that the quoted packet parses too.
func checkWellFormed(t testing.TB, b []byte) {
	t.Helper()
	var in packet.Info
	if r := packet.Parse(b, &in); r != packet.OK {
		t.Fatalf("emitted packet does not parse: %v\n%x", r, b)
	}
	if in.Len != len(b) {
		t.Fatalf("emitted packet has %d trailing bytes", len(b)-in.Len)
	}
	if in.Version == 6 && len(b) > 1500 {
		t.Fatalf("emitted IPv6 packet of %d bytes exceeds the MTU", len(b))
	}
	if ok, v := l4ChecksumOK(b); v && !ok {
		t.Fatalf("emitted packet has a bad L4 checksum:\n%x", b)
	}
	if in.Fragmented || !in.HasL4Header() {
		return
	}
	if in.Proto == nat64.ProtoICMPv4 && packet.IsICMPv4Error(b[in.L4Off]) ||
		in.Proto == nat64.ProtoICMPv6 && packet.IsICMPv6Error(b[in.L4Off]) {
		var ii packet.Info
		if r := packet.ParseInner(b[in.L4Off+8:], in.Version, &ii); r != packet.OK {
			t.Fatalf("quoted packet does not parse: %v\n%x", r, b)
		}
		if in.Version == 4 && refSum(b[in.L4Off+8:in.L4Off+8+ii.L4Off], 0) != 0xffff {
			t.Fatalf("quoted IPv4 header checksum wrong\n%x", b)
		}
		if in.Version == 4 && len(b) > packet.ICMPv4ErrorMax || in.Version == 6 && len(b) > packet.ICMPv6ErrorMax {
			t.Fatalf("ICMP error of %d bytes too long", len(b))
		}
	}
}

// run translates pkt with headroom and returns the verdict and copies of
// the emitted packets.
func run(tr *Translator, pkt []byte, now int64) (nat64.DropReason, [][]byte) {
	buf := make([]byte, 64+len(pkt))
	copy(buf[64:], pkt)
	out := NewOutput()
	r := tr.Process(buf, 64, len(pkt), now, out)
	var res [][]byte
	for _, p := range out.List() {
		res = append(res, append([]byte(nil), p...))
	}
	return r, res
}
