package fastpath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
	"github.com/nat64kit/nat64kit/internal/state"
	"github.com/nat64kit/nat64kit/internal/xlat"
)

// The fuzzed sessions' addresses: X is the IPv6 host, Z the IPv4 server
// (Y is Z in the prefix), T the pool4 address.
var (
	diffPrefix = nat64.MustPrefix("64:ff9b:1::/96")
	diffX      = netip.MustParseAddr("2001:db8:10::5").As16()
	diffZ      = [4]byte{192, 0, 2, 33}
	diffT      = [4]byte{203, 0, 113, 1}
)

// mirror is the state table's mirror for the tests: the table tells the
// fast path's maps which sessions it may carry, as the daemon's does.
type mirror struct {
	f    *FastPath
	live map[Session]bool
}

func (m *mirror) conv(s *state.MirrorSession) Session {
	return Session{
		Proto: s.Proto, Src6: s.Src6, Src6Port: s.SrcPort6, Dst6: s.Dst6, Dst6Port: s.DstPort6,
		Src4: s.Src4, Src4Port: s.SrcPort4, Dst4: s.Dst4, Dst4Port: s.DstPort4,
	}
}

func (m *mirror) Add(s *state.MirrorSession) {
	c := m.conv(s)
	if m.f.Insert(&c) == nil {
		m.live[c] = true
	}
}

func (m *mirror) Remove(s *state.MirrorSession) {
	c := m.conv(s)
	m.f.Delete(&c)
	delete(m.live, c)
}

func (m *mirror) Idle(s *state.MirrorSession) (time.Duration, bool) {
	c := m.conv(s)
	return m.f.Idle(&c)
}

// goSide is the Go translator with its own state table, mirrored into the
// fast path's maps.
type goSide struct {
	tr  *xlat.Translator
	tbl *state.Table
	m   *mirror
	out *xlat.Output
	buf []byte
	now int64
}

func newGoSide(t testing.TB, f *FastPath) *goSide {
	t.Helper()
	tbl, err := state.New(&state.Config{
		Prefix: diffPrefix,
		Pool4:  []nat64.Pool4Range{{Prefix: netip.PrefixFrom(netip.AddrFrom4(diffT), 32), FirstPort: 1024, LastPort: 65535}},
		Timeouts: nat64.Timeouts{
			UDP: nat64.DefaultUDPTimeout, TCPEstablished: nat64.DefaultTCPEstablishedTimeout,
			TCPTransitory: nat64.DefaultTCPTransitoryTimeout, ICMP: nat64.DefaultICMPTimeout,
		},
		EndpointIndependentFiltering: true,
		MaxSessions:                  1024,
		MaxSessionsPerSource:         1024,
	}, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := &goSide{
		tr:  xlat.New(&xlat.Config{Prefix: diffPrefix, MTU: 1500, IPv4MTU: 1500}, tbl),
		tbl: tbl, m: &mirror{f: f, live: map[Session]bool{}},
		out: xlat.NewOutput(), buf: make([]byte, 1<<17), now: int64(time.Hour),
	}
	tbl.SetMirror(g.m)
	t.Cleanup(func() {
		tbl.SetMirror(nil)
		for s := range g.m.live {
			f.Delete(&s)
		}
	})
	return g
}

// process runs pkt through the Go translator and returns its verdict and
// output (valid until the next call).
func (g *goSide) process(pkt []byte) (nat64.DropReason, [][]byte) {
	off := 64
	n := copy(g.buf[off:], pkt)
	g.now += int64(time.Millisecond)
	r := g.tr.Process(g.buf, off, n, g.now, g.out)
	return r, g.out.List()
}

// flowSpec is one packet of the fuzzed flow.
type flowSpec struct {
	proto    nat64.Transport
	from6    bool
	x, y     uint16 // the IPv6 host's port (identifier) and the server's
	t        uint16 // the pool4 port the Go translator chose
	flags    uint8  // TCP
	hop, tos uint8
	df       bool
	payload  []byte
}

func (s *flowSpec) build() []byte {
	var l4 []byte
	switch s.proto {
	case nat64.TCP:
		l4 = make([]byte, 20, 20+len(s.payload))
		l4[12], l4[13] = 5<<4, s.flags
		binary.BigEndian.PutUint16(l4[14:], 65535)
	case nat64.UDP:
		l4 = make([]byte, 8, 8+len(s.payload))
	case nat64.ICMP:
		l4 = make([]byte, 8, 8+len(s.payload))
	}
	l4 = append(l4, s.payload...)
	y6 := diffPrefix.Embed(diffZ)
	if s.from6 {
		s.ports6(l4)
		h := make([]byte, 40, 40+len(l4))
		packet.IPv6(h).Encode(&packet.IPv6Fields{
			TrafficClass: s.tos, PayloadLen: uint16(len(l4)), NextHeader: proto6(s.proto),
			HopLimit: s.hop, Src: &diffX, Dst: &y6,
		})
		sum := packet.PseudoHeaderSum6(&diffX, &y6, proto6(s.proto), uint32(len(l4)))
		setChecksum(s.proto, l4, sum)
		return append(h, l4...)
	}
	s.ports4(l4)
	h := make([]byte, 20, 20+len(l4))
	packet.IPv4(h).Encode(&packet.IPv4Fields{
		TOS: s.tos, TotalLen: uint16(20 + len(l4)), ID: 0x1234, DF: s.df, TTL: s.hop,
		Protocol: proto4(s.proto), Src: diffZ, Dst: diffT,
	})
	var sum uint16
	if s.proto != nat64.ICMP {
		sum = packet.PseudoHeaderSum4(diffZ, diffT, proto4(s.proto), uint16(len(l4)))
	}
	setChecksum(s.proto, l4, sum)
	return append(h, l4...)
}

func (s *flowSpec) ports6(l4 []byte) {
	if s.proto == nat64.ICMP {
		l4[0] = packet.ICMPv6EchoRequest
		binary.BigEndian.PutUint16(l4[4:], s.x)
		return
	}
	binary.BigEndian.PutUint16(l4, s.x)
	binary.BigEndian.PutUint16(l4[2:], s.y)
	if s.proto == nat64.UDP {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	}
}

func (s *flowSpec) ports4(l4 []byte) {
	if s.proto == nat64.ICMP {
		l4[0] = packet.ICMPv4EchoReply
		binary.BigEndian.PutUint16(l4[4:], s.t)
		return
	}
	binary.BigEndian.PutUint16(l4, s.y)
	binary.BigEndian.PutUint16(l4[2:], s.t)
	if s.proto == nat64.UDP {
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	}
}

func setChecksum(p nat64.Transport, l4 []byte, pseudo uint16) {
	off := map[nat64.Transport]int{nat64.TCP: 16, nat64.UDP: 6, nat64.ICMP: 2}[p]
	binary.BigEndian.PutUint16(l4[off:], 0)
	ck := ^packet.Checksum(l4, pseudo)
	if ck == 0 && p == nat64.UDP {
		ck = 0xffff
	}
	binary.BigEndian.PutUint16(l4[off:], ck)
}

// establish sets the flow's session up through the Go translator, as the
// first packets of a real flow would, and returns the pool4 port it got.
func establish(t testing.TB, g *goSide, s flowSpec) uint16 {
	t.Helper()
	first := s
	first.from6, first.hop, first.flags, first.payload = true, 64, nat64.TCPSyn, nil
	r, out := g.process(first.build())
	if r != nat64.Translated || len(out) != 1 {
		t.Fatalf("first packet: %v, %d out", r, len(out))
	}
	tp, _ := readTuple(out[0])
	if s.proto != nat64.TCP {
		return tp.sport
	}
	synAck := s
	synAck.from6, synAck.hop, synAck.flags, synAck.t, synAck.payload = false, 64, nat64.TCPSyn|nat64.TCPAck, tp.sport, nil
	if r, _ := g.process(synAck.build()); r != nat64.Translated {
		t.Fatalf("SYN-ACK: %v", r)
	}
	return tp.sport
}

// FuzzAgainstTranslator sets a session up through the Go translator (its
// mirror fills the fast path's maps), then sends one fuzzed packet of that
// flow, perhaps with one byte changed, through both. Whatever the fast path
// takes it must translate exactly as the Go translator does; whatever it
// declines it must leave untouched.
func FuzzAgainstTranslator(f *testing.F) {
	f.Add(uint8(0), true, uint8(nat64.TCPAck), uint8(64), uint8(0), false, []byte("hello"), uint16(0), uint8(0))
	f.Add(uint8(1), false, uint8(0), uint8(64), uint8(0xb8), true, bytes.Repeat([]byte{7}, 1400), uint16(0), uint8(0))
	f.Add(uint8(2), true, uint8(0), uint8(2), uint8(0), false, []byte("ping"), uint16(0), uint8(0))
	f.Add(uint8(0), false, uint8(nat64.TCPAck|nat64.TCPFin), uint8(64), uint8(0), true, []byte{}, uint16(0), uint8(0))
	f.Add(uint8(1), true, uint8(0), uint8(1), uint8(0), false, []byte("x"), uint16(0), uint8(0))
	f.Add(uint8(1), false, uint8(0), uint8(64), uint8(0), false, bytes.Repeat([]byte{1}, 1300), uint16(0), uint8(0))
	f.Add(uint8(0), true, uint8(nat64.TCPAck), uint8(64), uint8(0), false, []byte("abc"), uint16(10), uint8(0x55))
	fp := loadForTest(f, 1500, 1500, 1280)
	r := newRunner(fp)
	f.Fuzz(func(t *testing.T, proto uint8, from6 bool, flags, hop, tos uint8, df bool, payload []byte, at uint16, xor uint8) {
		// BPF_PROG_TEST_RUN takes at most a page less its head- and
		// tailroom; 3000 bytes is well past both MTUs.
		if len(payload) > 3000 {
			return
		}
		g := newGoSide(t, fp)
		s := flowSpec{
			proto: nat64.Transports[int(proto)%nat64.NumTransports],
			from6: from6, x: 40000 + uint16(proto), y: 80, flags: flags, hop: hop, tos: tos, df: df, payload: payload,
		}
		s.t = establish(t, g, s)
		if len(g.m.live) != 1 {
			t.Fatalf("the fast path's maps hold %d sessions after set-up, want 1", len(g.m.live))
		}
		pkt := s.build()
		if xor != 0 {
			pkt[int(at)%len(pkt)] ^= xor
		}
		verdict, got := r.runAs(t, from6, pkt)
		got = bytes.Clone(got)
		res, out := g.process(pkt)
		switch verdict {
		case actRedirect:
			if res != nat64.Translated || len(out) != 1 {
				t.Fatalf("the fast path translated a packet the Go translator made %v (%d out) of:\n%x", res, len(out), pkt)
			}
			want := out[0]
			if len(got) != len(want) {
				t.Fatalf("%d bytes, Go translator %d:\n got %x\nwant %x", len(got), len(want), got, want)
			}
			for i := range want {
				v4 := want[0]>>4 == 4
				if got[i] != want[i] && !(v4 && (i == 4 || i == 5 || i == 10 || i == 11)) {
					t.Fatalf("differs at byte %d:\n got %x\nwant %x\n  in %x", i, got, want, pkt)
				}
			}
			if want[0]>>4 == 4 && !packet.IPv4(got).HeaderChecksumOK() {
				t.Fatal("IPv4 header checksum wrong")
			}
		case actOK:
			if !bytes.Equal(got, pkt) {
				t.Fatalf("declined but changed:\n got %x\nwant %x", got, pkt)
			}
		default:
			t.Fatalf("verdict %d for %x", verdict, pkt)
		}
	})
}
