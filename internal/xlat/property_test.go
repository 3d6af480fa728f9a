package xlat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
)

// randomFlow6 builds a random valid IPv6 packet from X toward Z': TCP, UDP
// or echo request, with a random payload of up to 1400 bytes.
func randomFlow6(r *rand.Rand) []byte {
	payload := make([]byte, r.IntN(1400))
	for i := range payload {
		payload[i] = byte(r.UintN(256))
	}
	sport := uint16(1024 + r.IntN(60000))
	switch r.IntN(3) {
	case 0:
		// Always a SYN: the state machine only opens sessions on SYN.
		flags := uint8(nat64.TCPSyn)
		return fillChecksum(ipv6(hostX, serverZ6, uint8(2+r.IntN(250)), nat64.ProtoTCP, tcpSeg(sport, uint16(r.IntN(65536)), flags, payload), 0, nil))
	case 1:
		return fillChecksum(ipv6(hostX, serverZ6, uint8(2+r.IntN(250)), nat64.ProtoUDP, udpDgram(sport, uint16(r.IntN(65536)), payload), 0, nil))
	}
	return fillChecksum(ipv6(hostX, serverZ6, uint8(2+r.IntN(250)), nat64.ProtoICMPv6, echo(packet.ICMPv6EchoRequest, sport, uint16(r.IntN(65536)), payload), 0, nil))
}

// reflect4 turns a translated IPv4 packet into the reply Z would send:
// addresses and ports swapped (which leaves every checksum valid, the sum
// being commutative), echo request turned into echo reply.
func reflect4(p []byte) []byte {
	q := append([]byte(nil), p...)
	var a [4]byte
	copy(a[:], q[12:16])
	copy(q[12:16], q[16:20])
	copy(q[16:20], a[:])
	q[8] = 40
	setIPv4HeaderChecksum(q)
	l4 := q[20:]
	switch nat64.Proto(q[9]) {
	case nat64.ProtoTCP, nat64.ProtoUDP:
		s, d := binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
		binary.BigEndian.PutUint16(l4[0:], d)
		binary.BigEndian.PutUint16(l4[2:], s)
		if nat64.Proto(q[9]) == nat64.ProtoTCP {
			l4[13] = nat64.TCPSyn | nat64.TCPAck
			fillChecksum(q)
		}
	case nat64.ProtoICMPv4:
		l4[0] = packet.ICMPv4EchoReply
		fillChecksum(q)
	}
	return q
}

// TestRoundTrip: 6->4, reply, 4->6 preserves the payload and addressing,
// and every output's checksums verify from scratch.
func TestRoundTrip(t *testing.T) {
	tr := newTestTranslator(t, func(in *testConfig) { in.MTU, in.IPv4MTU = 1500, 1500 })
	r := rand.New(rand.NewPCG(7, 9))
	for i := 0; i < 3000; i++ {
		p6 := randomFlow6(r)
		v, out := run(tr, p6, now0+int64(i))
		if v != nat64.Translated || len(out) != 1 {
			t.Fatalf("6->4 #%d: %v, %d packets", i, v, len(out))
		}
		checkWellFormed(t, out[0])
		p4 := out[0]
		if got, want := p4[20:], p6[40:]; len(got) != len(want) {
			t.Fatalf("6->4 length changed: %d -> %d", len(want), len(got))
		}
		l4off := 8 // payload starts after ports/ICMP header at least
		if nat64.Proto(p6[6]) == nat64.ProtoTCP {
			l4off = 20
		}
		if !bytes.Equal(p4[20+l4off:], p6[40+l4off:]) {
			t.Fatalf("6->4 payload changed")
		}
		back := reflect4(p4)
		v, out = run(tr, back, now0+int64(i))
		if v != nat64.Translated || len(out) != 1 {
			t.Fatalf("4->6 #%d: %v, %d packets", i, v, len(out))
		}
		checkWellFormed(t, out[0])
		o := packet.IPv6(out[0])
		if o.Src() != serverZ6 || o.Dst() != hostX {
			t.Fatalf("4->6 addresses %x -> %x", o.Src(), o.Dst())
		}
		if !bytes.Equal(out[0][40+l4off:], p6[40+l4off:]) {
			t.Fatalf("round trip payload changed")
		}
		// Ports come back as the original ones, swapped.
		if nat64.Proto(p6[6]) != nat64.ProtoICMPv6 {
			if !bytes.Equal(out[0][40:42], p6[42:44]) || !bytes.Equal(out[0][42:44], p6[40:42]) {
				t.Fatalf("ports %x, original %x", out[0][40:44], p6[40:44])
			}
		} else if !bytes.Equal(out[0][44:46], p6[44:46]) || out[0][40] != packet.ICMPv6EchoReply {
			t.Fatalf("echo identifier %x, original %x", out[0][44:46], p6[44:46])
		}
		if nat64.Proto(p6[6]) == nat64.ProtoUDP && !bytes.Equal(out[0][46:48], p6[46:48]) {
			// UDP: addresses and ports swapped exactly, so the checksum
			// field must come back bit for bit.
			t.Fatalf("UDP checksum %x, original %x", out[0][46:48], p6[46:48])
		}
	}
}

// onesDiff is a - b in one's complement, with 0xffff and 0 identified.
func onesDiff(a, b uint16) uint16 {
	d := packet.Add(a, ^b)
	if d == 0xffff {
		d = 0
	}
	return d
}

// storedAndCorrect returns the transport checksum field of a whole packet
// and the value that would be correct.
func storedAndCorrect(p []byte) (stored, correct uint16) {
	q := append([]byte(nil), p...)
	off, proto := l4Offset(q)
	at := map[nat64.Proto]int{nat64.ProtoTCP: 16, nat64.ProtoUDP: 6, nat64.ProtoICMPv4: 2, nat64.ProtoICMPv6: 2}[proto]
	stored = binary.BigEndian.Uint16(q[off+at:])
	fillChecksum(q)
	correct = binary.BigEndian.Uint16(q[off+at:])
	return
}

// TestWrongChecksumStaysWrong: RFC 7915 translators must not fix a wrong
// transport checksum; with incremental updates the error carries over by
// exactly the same amount, both ways.
func TestWrongChecksumStaysWrong(t *testing.T) {
	tr := newTestTranslator(t, nil)
	r := rand.New(rand.NewPCG(11, 13))
	for i := 0; i < 2000; i++ {
		p6 := randomFlow6(r)
		off, _ := l4Offset(p6)
		at := map[nat64.Proto]int{nat64.ProtoTCP: 16, nat64.ProtoUDP: 6, nat64.ProtoICMPv6: 2}[nat64.Proto(p6[6])]
		delta := uint16(1 + r.IntN(0xfffd))
		ck := binary.BigEndian.Uint16(p6[off+at:])
		bad := packet.Add(ck, delta)
		if bad == 0 || bad == 0xffff || bad == ck {
			continue
		}
		binary.BigEndian.PutUint16(p6[off+at:], bad)
		s, c := storedAndCorrect(p6)
		inErr := onesDiff(s, c)
		v, out := run(tr, p6, now0)
		if v != nat64.Translated {
			t.Fatalf("dropped: %v", v)
		}
		if ok, _ := l4ChecksumOK(out[0]); ok {
			t.Fatalf("6->4 fixed a wrong checksum")
		}
		s, c = storedAndCorrect(out[0])
		if outErr := onesDiff(s, c); outErr != inErr {
			t.Fatalf("6->4 checksum error %#x became %#x", inErr, outErr)
		}
		back := reflect4(out[0]) // valid again; corrupt it the same way
		boff, bproto := l4Offset(back)
		bat := map[nat64.Proto]int{nat64.ProtoTCP: 16, nat64.ProtoUDP: 6, nat64.ProtoICMPv4: 2}[bproto]
		bck := binary.BigEndian.Uint16(back[boff+bat:])
		bbad := packet.Add(bck, delta)
		if bbad == 0 || bbad == 0xffff {
			continue
		}
		binary.BigEndian.PutUint16(back[boff+bat:], bbad)
		s, c = storedAndCorrect(back)
		inErr = onesDiff(s, c)
		v, out = run(tr, back, now0)
		if v != nat64.Translated {
			t.Fatalf("4->6 dropped: %v", v)
		}
		if ok, _ := l4ChecksumOK(out[0]); ok {
			t.Fatalf("4->6 fixed a wrong checksum")
		}
		s, c = storedAndCorrect(out[0])
		if outErr := onesDiff(s, c); outErr != inErr {
			t.Fatalf("4->6 checksum error %#x became %#x", inErr, outErr)
		}
	}
}

// TestFragmentsReassemble: a UDP datagram sent as IPv6 fragments comes out
// as IPv4 fragments that reassemble into a datagram with a valid checksum,
// and the reverse.
func TestFragmentsReassemble(t *testing.T) {
	tr := newTestTranslator(t, nil)
	d := udpDatagram6(1000)
	var got []byte
	var first4 []byte
	for off := 0; off < len(d); off += 256 {
		end := min(off+256, len(d))
		v, out := run(tr, frag6(hostX, serverZ6, nat64.ProtoUDP, off, end < len(d), 99, d[off:end]), now0)
		if v != nat64.Translated || len(out) != 1 {
			t.Fatalf("fragment at %d: %v", off, v)
		}
		checkWellFormed(t, out[0])
		h := packet.IPv4(out[0])
		if h.FragOffset() != off || h.MF() != (end < len(d)) || h.ID() != 99 {
			t.Fatalf("fragment fields off %d MF %v id %d", h.FragOffset(), h.MF(), h.ID())
		}
		if first4 == nil {
			first4 = out[0]
		}
		got = append(got, out[0][20:]...)
	}
	if refSum(got, refPseudo4(first4[12:16], first4[16:20], nat64.ProtoUDP, len(got))) != 0xffff {
		t.Fatal("reassembled IPv4 datagram has a bad UDP checksum")
	}

	// 4->6: a 3000-byte datagram in two IPv4 fragments; the second is too
	// big for a 1500 MTU, so it is fragmented again.
	d4 := udpDatagram4(3000 - 8)
	parts := [][2]int{{0, 1480}, {1480, len(d4)}}
	var got6 []byte
	var dst6 []byte
	next := 0
	for _, pr := range parts {
		p := ipv4(serverZ, pool4, 50, nat64.ProtoUDP, 0x7777, false, d4[pr[0]:pr[1]])
		setFrag4(p, pr[0], pr[1] < len(d4))
		v, out := run(tr, p, now0)
		if v != nat64.Translated {
			t.Fatalf("IPv4 fragment at %d: %v", pr[0], v)
		}
		for _, o := range out {
			checkWellFormed(t, o)
			f := packet.IPv6Fragment(o[40:])
			if f.Offset() != next || f.ID() != 0x7777 {
				t.Fatalf("IPv6 fragment offset %d (want %d) id %#x", f.Offset(), next, f.ID())
			}
			next += len(o) - 48
			got6 = append(got6, o[48:]...)
			dst6 = o[24:40]
			if len(o) > 1500 {
				t.Fatalf("fragment of %d bytes", len(o))
			}
		}
	}
	if next != len(d4) {
		t.Fatalf("reassembled %d bytes, want %d", next, len(d4))
	}
	if refSum(got6, refPseudo6(serverZ6[:], dst6, nat64.ProtoUDP, len(got6))) != 0xffff {
		t.Fatal("reassembled IPv6 datagram has a bad UDP checksum")
	}
}

func TestFragmentTableBoundsAndTimeout(t *testing.T) {
	var ft fragTable
	a := [16]byte{1}
	k := fragKey{id: 1, proto: 17}
	ft.put(&k, &a, 0, int64(FragmentTimeout))
	if _, ok := ft.get(&k, int64(FragmentTimeout)-1); !ok {
		t.Fatal("entry gone before the timeout")
	}
	if _, ok := ft.get(&k, int64(FragmentTimeout)); ok {
		t.Fatal("entry alive after the timeout")
	}
	// Far more datagrams than slots: the table stays bounded and the most
	// recent entries are found.
	for i := 0; i < 10*fragTableSize; i++ {
		k := fragKey{id: uint32(i), proto: 6}
		ft.put(&k, &a, 100, int64(FragmentTimeout))
	}
	found := 0
	for i := 9 * fragTableSize; i < 10*fragTableSize; i++ {
		k := fragKey{id: uint32(i), proto: 6}
		if _, ok := ft.get(&k, 100); ok {
			found++
		}
	}
	if found < fragTableSize/2 {
		t.Fatalf("only %d of the last %d entries found", found, fragTableSize)
	}
}

func TestEveryDropCountedOnce(t *testing.T) {
	for i := range goldenCases {
		c := &goldenCases[i]
		t.Run(c.name, func(t *testing.T) {
			tr := newTestTranslator(t, c.mod)
			if c.setup != nil {
				c.setup(t, tr)
			}
			before := tr.Counters
			r, _ := run(tr, c.input(), now0)
			n := uint64(0)
			for j := range tr.Counters.Drops {
				n += tr.Counters.Drops[j] - before.Drops[j]
			}
			want := uint64(0)
			if r != nat64.Translated {
				want = 1
				if tr.Counters.Drops[r]-before.Drops[r] != 1 {
					t.Fatalf("%v not counted", r)
				}
			}
			if n != want {
				t.Fatalf("%d drop counters moved, want %d", n, want)
			}
		})
	}
	for r := nat64.DropReason(0); r < nat64.NumDropReasons; r++ {
		if r.String() == "" || r.String() == "unknown" {
			t.Errorf("drop reason %d has no name", r)
		}
	}
}

func TestHeldSYNPortUnreachable(t *testing.T) {
	tr := newTestTranslator(t, nil)
	syn := fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoTCP, 1, true, tcpSeg(portZ, 4444, nat64.TCPSyn, nil)))
	out := NewOutput()
	if !tr.PortUnreachable(syn, now0, out) || out.N != 1 {
		t.Fatal("no Port Unreachable")
	}
	checkWellFormed(t, out.Packets[0])
	assert4(t, "icmp", out.Packets[0], want4{src: pool4, dst: serverZ, ttl: 64, proto: nat64.ProtoICMPv4, totalLen: 28 + 40, sport: -1, dport: -1})
	assertICMP(t, "icmp", out.Packets[0][20:], 3, 3, 0)
}

// TestWorkersShareTable runs two Translators (one per worker goroutine) on
// one state table, as the daemon does; run with -race.
func TestWorkersShareTable(t *testing.T) {
	tr0 := newTestTranslator(t, nil)
	tr1 := New(&testInstance().Config, tr0.tbl)
	done := make(chan error, 2)
	for w, tr := range []*Translator{tr0, tr1} {
		go func() {
			r := rand.New(rand.NewPCG(uint64(w), 5))
			for i := 0; i < 500; i++ {
				p := randomFlow6(r)
				v, out := run(tr, p, now0)
				if v != nat64.Translated {
					done <- fmt.Errorf("worker %d: %v", w, v)
					return
				}
				if v, _ = run(tr, reflect4(out[0]), now0); v != nat64.Translated {
					done <- fmt.Errorf("worker %d reply: %v", w, v)
					return
				}
			}
			done <- nil
		}()
	}
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	var sum Counters
	sum.Add(&tr0.Counters)
	sum.Add(&tr1.Counters)
	if got := sum.Packets[SixToFour][nat64.TCP.Index()] + sum.Packets[SixToFour][nat64.UDP.Index()] + sum.Packets[SixToFour][nat64.ICMP.Index()]; got != 1000 {
		t.Fatalf("6->4 packets %d, want 1000", got)
	}
}

// TestPool4ExhaustedAnswers: when no pool4 port is left, the packet is
// dropped and counted, and X gets ICMPv6 Address Unreachable (RFC 6146
// §3.5.1.1).
func TestPool4ExhaustedAnswers(t *testing.T) {
	tr := newTestTranslator(t, func(in *testConfig) {
		in.State.Pool4[0].FirstPort, in.State.Pool4[0].LastPort = 2000, 2001
		in.State.Static = nil
	})
	var r nat64.DropReason
	var out [][]byte
	for i := 0; i < 10; i++ {
		p := fillChecksum(ipv6(hostX, serverZ6, 64, nat64.ProtoUDP, udpDgram(uint16(3000+i), 53, nil), 0, nil))
		if r, out = run(tr, p, now0); r != nat64.Translated {
			break
		}
	}
	if r != nat64.Pool4Exhausted {
		t.Fatalf("verdict %v, want pool4_exhausted", r)
	}
	if len(out) != 1 {
		t.Fatalf("%d packets, want the ICMPv6 error", len(out))
	}
	checkWellFormed(t, out[0])
	assertICMP(t, "icmpv6", out[0][40:], 1, 3, 0)
	if tr.Counters.Drops[nat64.Pool4Exhausted] != 1 {
		t.Fatalf("counter %d", tr.Counters.Drops[nat64.Pool4Exhausted])
	}
}
