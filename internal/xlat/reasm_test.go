package xlat

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
)

// echoPayload is the data of the large pings (what `ping -s 3000` sends).
const echoPayload = 3000

// echoDatagram6 is X's whole ICMPv6 echo request to Z' with a correct
// checksum, n bytes of data.
func echoDatagram6(n int) []byte {
	return fillChecksum(ipv6(hostX, serverZ6, 64, nat64.ProtoICMPv6, echo(packet.ICMPv6EchoRequest, identX, 9, pattern(n)), 0, nil))[40:]
}

// echoDatagram4 is Z's whole ICMPv4 echo reply to X's pool4 identifier.
func echoDatagram4(n int) []byte {
	return fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoICMPv4, 1, false, echo(packet.ICMPv4EchoReply, identT, 9, pattern(n))))[20:]
}

// cut is a byte range [lo, hi) of a datagram sent as one fragment.
type cut struct{ lo, hi int }

// cuts splits n bytes into fragments of size (a multiple of 8) bytes.
func cuts(n, size int) []cut {
	var c []cut
	for lo := 0; lo < n; lo += size {
		c = append(c, cut{lo, min(lo+size, n)})
	}
	return c
}

// linuxCuts6 are the fragments Linux sends a datagram of n bytes in over a
// 1500-byte link: 1448 bytes each (1500 - 40 - 8, rounded down to 8).
func linuxCuts6(n int) []cut { return cuts(n, 1448) }

// linuxCuts4 are the IPv4 ones: 1480 bytes each.
func linuxCuts4(n int) []cut { return cuts(n, 1480) }

func fragOf6(d []byte, id uint32, c cut) []byte {
	return frag6(hostX, serverZ6, nat64.ProtoICMPv6, c.lo, c.hi < len(d), id, d[c.lo:c.hi])
}

func fragOf4(d []byte, id uint16, c cut) []byte {
	p := ipv4(serverZ, pool4, 50, nat64.ProtoICMPv4, id, false, d[c.lo:c.hi])
	setFrag4(p, c.lo, c.hi < len(d))
	return p
}

// primeFrags holds the fragments of cs in order, each held (nothing out).
func primeFrags(t *testing.T, tr *Translator, pkts ...[]byte) {
	t.Helper()
	for _, p := range pkts {
		r, out := run(tr, p, now0)
		if r != nat64.Translated || len(out) != 0 {
			t.Fatalf("fragment not held: %v, %d packets out", r, len(out))
		}
	}
}

// The IDs of the datagrams below: the IPv6 one wider than 16 bits, to show
// that the IPv4 identification takes its low 16 bits (RFC 7915 §5.1.1).
const (
	reasmID6 = 0x00a10105
	reasmID4 = 0x4545
)

// checkEcho4 asserts that IPv4 fragments carry X's echo request, each at
// most 1500 bytes, following one another; put back together they make an
// ICMPv4 echo request from pool4's identifier with a valid checksum and
// the original data.
func checkEcho4(t *testing.T, out [][]byte, n int) {
	t.Helper()
	var whole []byte
	for i, o := range out {
		last := i == len(out)-1
		assert4(t, "ipv4 fragment", o, want4{src: pool4, dst: serverZ, ttl: 63, proto: nat64.ProtoICMPv4, tos: 0xb8, mf: !last, fragOff: len(whole), sport: -1, dport: -1})
		if len(o) > 1500 {
			t.Errorf("fragment %d: %d bytes, more than the IPv4 MTU", i, len(o))
		}
		if id := packet.IPv4(o).ID(); id != reasmID6&0xffff {
			t.Errorf("fragment %d: identification %#x, want %#x", i, id, reasmID6&0xffff)
		}
		whole = append(whole, o[20:]...)
	}
	if len(whole) != 8+n {
		t.Fatalf("%d bytes of ICMP, want %d", len(whole), 8+n)
	}
	assertICMP(t, "icmpv4", whole, packet.ICMPv4EchoRequest, 0, uint32(identT)<<16|9)
	if refSum(whole, 0) != 0xffff {
		t.Error("reassembled ICMPv4 checksum invalid")
	}
	if !bytes.Equal(whole[8:], pattern(n)) {
		t.Error("echo data changed")
	}
}

// checkEcho6 is checkEcho4 for Z's reply toward X: IPv6 fragments of at
// most lowest-ipv6-mtu (1280) bytes, an ICMPv6 echo reply to X's identifier
// with a valid checksum over the IPv6 pseudo-header.
func checkEcho6(t *testing.T, out [][]byte, n int) {
	t.Helper()
	var whole []byte
	for i, o := range out {
		last := i == len(out)-1
		assert6(t, "ipv6 fragment", o, want6{src: serverZ6, dst: hostX, hop: 49, nh: nat64.ProtoICMPv6, tc: 0xb8, frag: true, fragOff: len(whole), more: !last, fragID: reasmID4, sport: -1, dport: -1})
		if len(o) > 1280 {
			t.Errorf("fragment %d: %d bytes, more than lowest-ipv6-mtu", i, len(o))
		}
		whole = append(whole, o[48:]...)
	}
	if len(whole) != 8+n {
		t.Fatalf("%d bytes of ICMP, want %d", len(whole), 8+n)
	}
	assertICMP(t, "icmpv6", whole, packet.ICMPv6EchoReply, 0, uint32(identX)<<16|9)
	if refSum(whole, refPseudo6(serverZ6[:], hostX[:], nat64.ProtoICMPv6, len(whole))) != 0xffff {
		t.Error("reassembled ICMPv6 checksum invalid")
	}
	if !bytes.Equal(whole[8:], pattern(n)) {
		t.Error("echo data changed")
	}
}

// reassemblyCase is a golden case: the fragments of order but the last are
// held in setup, the last one is the input, and what comes out is checked.
func reassemblyCase(name, why string, v6 bool, order []int) goldenCase {
	frag := func(i int) []byte {
		if v6 {
			d := echoDatagram6(echoPayload)
			return fragOf6(d, reasmID6, linuxCuts6(len(d))[i])
		}
		d := echoDatagram4(echoPayload)
		return fragOf4(d, reasmID4, linuxCuts4(len(d))[i])
	}
	return goldenCase{
		name: name, why: why,
		setup: func(t *testing.T, tr *Translator) {
			for _, i := range order[:len(order)-1] {
				primeFrags(t, tr, frag(i))
			}
		},
		input: func() []byte { return frag(order[len(order)-1]) },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			if v6 {
				wantVerdict(t, r, nat64.Translated, out, 3) // 3008 bytes: 1480 + 1480 + 48
				checkEcho4(t, out, echoPayload)
			} else {
				wantVerdict(t, r, nat64.Translated, out, 3) // 3008 bytes: 1232 + 1232 + 544
				checkEcho6(t, out, echoPayload)
			}
		},
	}
}

func init() {
	goldenCases = append(goldenCases,
		reassemblyCase("reassembled_echo_6to4",
			"ping -s 3000 from X: the ICMPv6 echo in three fragments of 1448, 1448 and 112 bytes, in order; the last completes it.\n"+
				"The whole datagram is translated (checksum moved off the IPv6 pseudo-header) and sent as IPv4 fragments of 1480, 1480 and 48 bytes, DF clear, id 0x0105.",
			true, []int{0, 1, 2}),
		reassemblyCase("reassembled_out_of_order_6to4",
			"The same fragments arriving last, first, middle: the middle one completes the datagram; the output is the same.",
			true, []int{2, 0, 1}),
		reassemblyCase("reassembled_echo_4to6",
			"Z's 3000-byte echo reply in IPv4 fragments of 1480, 1480 and 48 bytes, in order: translated whole and sent as IPv6 fragments of at most 1280 bytes (1232, 1232, 544 of data), id 0x4545.",
			false, []int{0, 1, 2}),
		reassemblyCase("reassembled_out_of_order_4to6",
			"The same IPv4 fragments arriving middle, last, first: the first completes the datagram.",
			false, []int{1, 2, 0}),
	)
}

// reasmDrops is the sum of the reassembly drop counters.
func reasmDrops(c *Counters) map[nat64.DropReason]uint64 {
	m := map[nat64.DropReason]uint64{}
	for _, r := range []nat64.DropReason{nat64.ReassemblyTimeout, nat64.ReassemblyOverlap, nat64.ReassemblyTooMany, nat64.ReassemblyTooBig} {
		if c.Drops[r] != 0 {
			m[r] = c.Drops[r]
		}
	}
	return m
}

func wantDrops(t *testing.T, tr *Translator, want map[nat64.DropReason]uint64) {
	t.Helper()
	got := reasmDrops(&tr.Counters)
	if len(got) != len(want) {
		t.Fatalf("reassembly drops %v, want %v", got, want)
	}
	for r, n := range want {
		if got[r] != n {
			t.Fatalf("reassembly drops %v, want %v", got, want)
		}
	}
}

func wantUsage(t *testing.T, tr *Translator, datagrams int) {
	t.Helper()
	d, _, ok := tr.frags.usage()
	if !ok {
		t.Fatal("reassembly slots and arena blocks disagree with the free list")
	}
	if d != datagrams {
		t.Fatalf("%d datagrams in reassembly, want %d", d, datagrams)
	}
}

// Each way a reassembly ends in a drop moves its own counter, by every
// fragment it drops; in both directions.
func TestReassemblyDrops(t *testing.T) {
	d6 := echoDatagram6(echoPayload)
	d4 := echoDatagram4(echoPayload)
	c6, c4 := linuxCuts6(len(d6)), linuxCuts4(len(d4))
	f6 := func(c cut) []byte { return fragOf6(d6, reasmID6, c) }
	f4 := func(c cut) []byte { return fragOf4(d4, reasmID4, c) }
	timeout := int64(FragmentTimeout)

	t.Run("in order and counted", func(t *testing.T) {
		tr := newTestTranslator(t, nil)
		primeFrags(t, tr, f6(c6[0]), f6(c6[1]))
		r, out := run(tr, f6(c6[2]), now0)
		wantVerdict(t, r, nat64.Translated, out, 3)
		if tr.Counters.FragmentsHeld != 2 || tr.Counters.Reassembled != 1 {
			t.Fatalf("held %d reassembled %d, want 2 and 1", tr.Counters.FragmentsHeld, tr.Counters.Reassembled)
		}
		if n := tr.Counters.Packets[SixToFour][nat64.ICMP.Index()]; n != 3 {
			t.Fatalf("%d ICMP packets counted 6to4, want the 3 fragments sent", n)
		}
		wantDrops(t, tr, nil)
		wantUsage(t, tr, 0)
	})
	for _, v6 := range []bool{true, false} {
		dir := map[bool]string{true: "6to4", false: "4to6"}[v6]
		frag := func(i int) []byte {
			if v6 {
				return f6(c6[i])
			}
			return f4(c4[i])
		}
		// overlapping returns a fragment overlapping fragment 0 by 8 bytes.
		overlapping := func() []byte {
			if v6 {
				return f6(cut{c6[1].lo - 8, c6[1].hi})
			}
			return f4(cut{c4[1].lo - 8, c4[1].hi})
		}
		t.Run("overlap "+dir, func(t *testing.T) {
			tr := newTestTranslator(t, nil)
			primeFrags(t, tr, frag(0))
			if r, out := run(tr, overlapping(), now0); r != nat64.ReassemblyOverlap || len(out) != 0 {
				t.Fatalf("overlapping fragment: %v, %d out", r, len(out))
			}
			wantDrops(t, tr, map[nat64.DropReason]uint64{nat64.ReassemblyOverlap: 2})
			// RFC 5722: the fragments not yet received are dropped too,
			// even ones that would have completed a clean datagram.
			for _, i := range []int{1, 2} {
				if r, _ := run(tr, frag(i), now0); r != nat64.ReassemblyOverlap {
					t.Fatalf("fragment %d after the overlap: %v", i, r)
				}
			}
			wantDrops(t, tr, map[nat64.DropReason]uint64{nat64.ReassemblyOverlap: 4})
			wantUsage(t, tr, 1) // remembered until its timeout, holding no memory
			// After the timeout the same identification starts afresh.
			for _, i := range []int{0, 1} {
				if r, out := run(tr, frag(i), now0+timeout); r != nat64.Translated || len(out) != 0 {
					t.Fatalf("fragment %d after the timeout: %v", i, r)
				}
			}
			if r, out := run(tr, frag(2), now0+timeout); r != nat64.Translated || len(out) != 3 {
				t.Fatalf("datagram after the timeout: %v, %d out", r, len(out))
			}
			wantDrops(t, tr, map[nat64.DropReason]uint64{nat64.ReassemblyOverlap: 4})
		})
		t.Run("duplicate "+dir, func(t *testing.T) {
			tr := newTestTranslator(t, nil)
			primeFrags(t, tr, frag(1))
			if r, _ := run(tr, frag(1), now0); r != nat64.ReassemblyOverlap {
				t.Fatalf("exact duplicate: %v", r)
			}
			wantDrops(t, tr, map[nat64.DropReason]uint64{nat64.ReassemblyOverlap: 2})
		})
		t.Run("inconsistent length "+dir, func(t *testing.T) {
			tr := newTestTranslator(t, nil)
			primeFrags(t, tr, frag(2))
			// A second "last" fragment, ending before the end known.
			var short []byte
			if v6 {
				short = frag6(hostX, serverZ6, nat64.ProtoICMPv6, 8, false, reasmID6, d6[8:16])
			} else {
				short = ipv4(serverZ, pool4, 50, nat64.ProtoICMPv4, reasmID4, false, d4[8:16])
				setFrag4(short, 8, false)
			}
			if r, _ := run(tr, short, now0); r != nat64.ReassemblyOverlap {
				t.Fatalf("second last fragment: %v", r)
			}
			wantDrops(t, tr, map[nat64.DropReason]uint64{nat64.ReassemblyOverlap: 2})
		})
		t.Run("timeout "+dir, func(t *testing.T) {
			tr := newTestTranslator(t, nil)
			primeFrags(t, tr, frag(0), frag(2))
			tr.ExpireFragments(now0 + timeout - 1)
			wantDrops(t, tr, nil)
			tr.ExpireFragments(now0 + timeout)
			wantDrops(t, tr, map[nat64.DropReason]uint64{nat64.ReassemblyTimeout: 2})
			wantUsage(t, tr, 0)
			// The missing fragment, late, starts a datagram of its own.
			if r, out := run(tr, frag(1), now0+timeout); r != nat64.Translated || len(out) != 0 {
				t.Fatalf("late fragment: %v, %d out", r, len(out))
			}
		})
		t.Run("timeout found by Process "+dir, func(t *testing.T) {
			tr := newTestTranslator(t, nil)
			primeFrags(t, tr, frag(0))
			if r, _ := run(tr, udp6(16), now0+timeout); r != nat64.Translated {
				t.Fatal(r)
			}
			wantDrops(t, tr, map[nat64.DropReason]uint64{nat64.ReassemblyTimeout: 1})
		})
		t.Run("configured timeout "+dir, func(t *testing.T) {
			tr := newTestTranslator(t, func(c *testConfig) { c.FragmentTimeout = 5 * time.Second })
			primeFrags(t, tr, frag(0))
			tr.ExpireFragments(now0 + int64(5*time.Second) - 1)
			wantDrops(t, tr, nil)
			primeFrags(t, tr, frag(1))
			if r, out := run(tr, frag(2), now0+int64(5*time.Second)-1); r != nat64.Translated || len(out) != 3 {
				t.Fatalf("completed 1 ns before a 5 s timeout: %v, %d out", r, len(out))
			}
			primeFrags(t, tr, frag(0))
			tr.ExpireFragments(now0 + int64(5*time.Second))
			wantDrops(t, tr, map[nat64.DropReason]uint64{nat64.ReassemblyTimeout: 1})
		})
	}

	t.Run("too many", func(t *testing.T) {
		tr := newTestTranslator(t, nil)
		for i := 0; i < reasmMaxDatagrams; i++ {
			primeFrags(t, tr, fragOf6(d6, uint32(i), c6[0]))
		}
		if r, _ := run(tr, fragOf6(d6, reasmMaxDatagrams, c6[0]), now0); r != nat64.ReassemblyTooMany {
			t.Fatalf("datagram %d: %v", reasmMaxDatagrams+1, r)
		}
		wantDrops(t, tr, map[nat64.DropReason]uint64{nat64.ReassemblyTooMany: 1})
		wantUsage(t, tr, reasmMaxDatagrams)
		// The datagrams in flight still complete.
		primeFrags(t, tr, fragOf6(d6, 7, c6[1]))
		if r, out := run(tr, fragOf6(d6, 7, c6[2]), now0); r != nat64.Translated || len(out) != 3 {
			t.Fatalf("datagram in flight: %v, %d out", r, len(out))
		}
	})
	t.Run("arena full", func(t *testing.T) {
		tr := newTestTranslator(t, nil)
		// First fragments of 60000 bytes: 30 blocks each, so the arena
		// holds 34 of them; the 35th is dropped with what it held.
		big := echoDatagram6(60000)
		tooMany := 0
		for i := 0; i < 40; i++ {
			r, _ := run(tr, fragOf6(big, uint32(i), cut{0, 60000}), now0)
			if r == nat64.ReassemblyTooMany {
				tooMany++
			} else if r != nat64.Translated {
				t.Fatal(r)
			}
		}
		if want := 40 - reasmArenaBlocks/30; tooMany != want {
			t.Fatalf("%d datagrams refused, want %d", tooMany, want)
		}
		wantDrops(t, tr, map[nat64.DropReason]uint64{nat64.ReassemblyTooMany: uint64(tooMany)})
		_, blocks, ok := tr.frags.usage()
		if !ok || blocks > reasmArenaBlocks {
			t.Fatalf("%d blocks in use (consistent %v)", blocks, ok)
		}
		tr.ExpireFragments(now0 + timeout)
		wantUsage(t, tr, 0)
	})
	t.Run("too big", func(t *testing.T) {
		tr := newTestTranslator(t, nil)
		primeFrags(t, tr, f6(c6[0]))
		// Ends at 65528: a valid IPv6 fragment, but more than an IPv4
		// packet carries (65515 bytes after its header).
		p := frag6(hostX, serverZ6, nat64.ProtoICMPv6, 65512, false, reasmID6, pattern(16))
		if r, _ := run(tr, p, now0); r != nat64.ReassemblyTooBig {
			t.Fatalf("fragment past 65515: %v", r)
		}
		wantDrops(t, tr, map[nat64.DropReason]uint64{nat64.ReassemblyTooBig: 2})
		wantUsage(t, tr, 1)
	})
	t.Run("not a multiple of 8", func(t *testing.T) {
		tr := newTestTranslator(t, nil)
		if r, _ := run(tr, f6(cut{0, 1450}), now0); r != nat64.MalformedIPv6 {
			t.Fatalf("IPv6: %v", r)
		}
		if r, _ := run(tr, f4(cut{0, 1450}), now0); r != nat64.MalformedIPv4 {
			t.Fatalf("IPv4: %v", r)
		}
		wantUsage(t, tr, 0)
	})
}

// The fragments of one datagram may reach different workers (see
// Fragments): Translators made from one Config share the reassembly, so a
// datagram completes wherever its last fragment arrives.
func TestReassemblySharedByWorkers(t *testing.T) {
	shared := NewFragments(0)
	tr0 := newTestTranslator(t, func(c *testConfig) { c.Fragments = shared })
	tr1 := New(&Config{Prefix: prefix, MTU: 1500, IPv4MTU: 1500, Fragments: shared}, tr0.tbl)
	d := echoDatagram6(echoPayload)
	cs := linuxCuts6(len(d))
	primeFrags(t, tr0, fragOf6(d, reasmID6, cs[0]))
	primeFrags(t, tr1, fragOf6(d, reasmID6, cs[2]))
	r, out := run(tr0, fragOf6(d, reasmID6, cs[1]), now0)
	wantVerdict(t, r, nat64.Translated, out, 3)
	checkEcho4(t, out, echoPayload)

	// Concurrently, with -race: each worker sends its share of the
	// fragments of every datagram; each datagram completes exactly once.
	// 100 datagrams: fewer than the slots, however far one worker runs
	// ahead of the other.
	done := make(chan uint64, 2)
	for w, tr := range []*Translator{tr0, tr1} {
		go func() {
			for id := uint32(100); id < 200; id++ {
				for i, c := range cs {
					if i%2 == w {
						run(tr, fragOf6(d, id, c), now0)
					}
				}
			}
			done <- tr.Counters.Reassembled
		}()
	}
	total := <-done + <-done
	if total != 1+100 {
		t.Fatalf("%d datagrams reassembled, want 101", total)
	}
}

// The fragment path allocates nothing: an echo in three fragments, both
// directions, and a UDP datagram whose later fragment comes first, over
// and over.
func TestReassemblyZeroAllocs(t *testing.T) {
	tr := newTestTranslator(t, nil)
	d6, d4 := echoDatagram6(echoPayload), echoDatagram4(echoPayload)
	var pkts [][]byte
	for _, c := range linuxCuts6(len(d6)) {
		pkts = append(pkts, fragOf6(d6, reasmID6, c))
	}
	for _, c := range linuxCuts4(len(d4)) {
		pkts = append(pkts, fragOf4(d4, reasmID4, c))
	}
	u := udpDatagram6(600)
	pkts = append(pkts, frag6(hostX, serverZ6, nat64.ProtoUDP, 304, false, 5, u[304:]), frag6(hostX, serverZ6, nat64.ProtoUDP, 0, true, 5, u[:304]))
	buf := make([]byte, 2048)
	out := NewOutput()
	sent := 0
	allocs := testing.AllocsPerRun(200, func() {
		for _, p := range pkts {
			copy(buf[64:], p)
			if r := tr.Process(buf, 64, len(p), now0, out); r != nat64.Translated {
				t.Fatal(r)
			}
			sent += out.N
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per round of 8 fragments", allocs)
	}
	if sent != 201*8 {
		t.Errorf("%d packets sent in 201 rounds, want 8 a round", sent)
	}
}

// The reassembled datagram's length goes into the pseudo-header: a check
// that the IPv4 form of a fragmented echo is the form of the same echo
// sent whole (whose translation the other tests pin).
func TestReassembledEqualsWhole(t *testing.T) {
	tr := newTestTranslator(t, nil)
	d := echoDatagram6(1000)
	r, whole := run(tr, fillChecksum(ipv6(hostX, serverZ6, 64, nat64.ProtoICMPv6, echo(packet.ICMPv6EchoRequest, identX, 9, pattern(1000)), 0, nil)), now0)
	wantVerdict(t, r, nat64.Translated, whole, 1)
	cs := cuts(len(d), 256)
	for _, c := range cs[:len(cs)-1] {
		primeFrags(t, tr, fragOf6(d, reasmID6, c))
	}
	r, out := run(tr, fragOf6(d, reasmID6, cs[len(cs)-1]), now0)
	wantVerdict(t, r, nat64.Translated, out, 1)
	if !bytes.Equal(out[0][20:], whole[0][20:]) {
		t.Fatalf("ICMP of the reassembled datagram differs from the whole one's:\n got %x\nwant %x", out[0][20:], whole[0][20:])
	}
	if h := packet.IPv4(out[0]); h.DF() || h.ID() != reasmID6&0xffff || binary.BigEndian.Uint16(out[0][2:]) != uint16(len(out[0])) {
		t.Fatalf("IPv4 header of the reassembled datagram: DF %v id %#x", h.DF(), h.ID())
	}
}

// BenchmarkEchoFragmented6to4 is a ping -s 3000 through reassembly: three
// IPv6 fragments in, three IPv4 fragments out; per datagram.
func BenchmarkEchoFragmented6to4(b *testing.B) {
	tr := newTestTranslator(b, nil)
	d := echoDatagram6(echoPayload)
	var pkts [][]byte
	for _, c := range linuxCuts6(len(d)) {
		pkts = append(pkts, fragOf6(d, reasmID6, c))
	}
	buf := make([]byte, 2048)
	out := NewOutput()
	b.SetBytes(int64(len(d)))
	b.ReportAllocs()
	for b.Loop() {
		for _, p := range pkts {
			copy(buf[64:], p)
			if r := tr.Process(buf, 64, len(p), now0, out); r != nat64.Translated {
				b.Fatal(r)
			}
		}
	}
}

// collect4 puts IPv4 fragments back together by offset, checking that they
// cover the datagram once, that only the one at its end has MF clear, and
// their identification.
func collect4(t *testing.T, out [][]byte, n int, id uint16) []byte {
	t.Helper()
	whole := make([]byte, n)
	covered := 0
	for _, o := range out {
		checkWellFormed(t, o)
		h := packet.IPv4(o)
		off, data := h.FragOffset(), o[20:]
		if off+len(data) > n || h.ID() != id || h.MF() != (off+len(data) < n) || len(o) > 1500 {
			t.Fatalf("fragment at %d: %d bytes, MF %v, id %#x", off, len(data), h.MF(), h.ID())
		}
		copy(whole[off:], data)
		covered += len(data)
	}
	if covered != n {
		t.Fatalf("fragments carry %d bytes of %d", covered, n)
	}
	return whole
}

// collect6 is collect4 for IPv6 fragments of at most 1280 bytes.
func collect6(t *testing.T, out [][]byte, n int, id uint32) []byte {
	t.Helper()
	whole := make([]byte, n)
	covered := 0
	for _, o := range out {
		checkWellFormed(t, o)
		f := packet.IPv6Fragment(o[40:])
		off, data := f.Offset(), o[48:]
		if off+len(data) > n || f.ID() != id || f.More() != (off+len(data) < n) || len(o) > 1280 {
			t.Fatalf("fragment at %d: %d bytes, M %v, id %#x", off, len(data), f.More(), f.ID())
		}
		copy(whole[off:], data)
		covered += len(data)
	}
	if covered != n {
		t.Fatalf("fragments carry %d bytes of %d", covered, n)
	}
	return whole
}

// Later TCP and UDP fragments that come before their first wait for it
// (RFC 6146 §4) and go out with it, translated one by one; both
// directions, the fragments in reverse order.
func TestLaterFragmentsWaitForFirst(t *testing.T) {
	t.Run("6to4", func(t *testing.T) {
		tr := newTestTranslator(t, nil)
		d := udpDatagram6(1000)
		cs := cuts(len(d), 256)
		for i := len(cs) - 1; i > 0; i-- {
			primeFrags(t, tr, frag6(hostX, serverZ6, nat64.ProtoUDP, cs[i].lo, cs[i].hi < len(d), 99, d[cs[i].lo:cs[i].hi]))
		}
		r, out := run(tr, frag6(hostX, serverZ6, nat64.ProtoUDP, 0, true, 99, d[:256]), now0)
		if r != nat64.Translated || len(out) < 2 {
			t.Fatalf("first fragment: %v, %d packets out", r, len(out))
		}
		whole := collect4(t, out, len(d), 99)
		if refSum(whole, refPseudo4(pool4[:], serverZ[:], nat64.ProtoUDP, len(whole))) != 0xffff {
			t.Fatal("the fragments put together have a bad UDP checksum")
		}
		if binary.BigEndian.Uint16(whole[0:]) != portTudp || !bytes.Equal(whole[8:], d[8:]) {
			t.Fatal("the datagram changed")
		}
		wantUsage(t, tr, 0)
		wantDrops(t, tr, nil)
	})
	t.Run("4to6", func(t *testing.T) {
		tr := newTestTranslator(t, nil)
		primeUDP(t, tr)
		d := udpDatagram4(3000 - 8)
		cs := linuxCuts4(len(d))
		frag := func(c cut) []byte {
			p := ipv4(serverZ, pool4, 50, nat64.ProtoUDP, 0x7777, false, d[c.lo:c.hi])
			setFrag4(p, c.lo, c.hi < len(d))
			return p
		}
		primeFrags(t, tr, frag(cs[2]), frag(cs[1]))
		r, out := run(tr, frag(cs[0]), now0)
		if r != nat64.Translated || len(out) < 3 {
			t.Fatalf("first fragment: %v, %d packets out", r, len(out))
		}
		whole := collect6(t, out, len(d), 0x7777)
		if refSum(whole, refPseudo6(serverZ6[:], hostX[:], nat64.ProtoUDP, len(whole))) != 0xffff {
			t.Fatal("the fragments put together have a bad UDP checksum")
		}
		wantUsage(t, tr, 0)
	})
	t.Run("first on another worker", func(t *testing.T) {
		shared := NewFragments(0)
		tr0 := newTestTranslator(t, func(c *testConfig) { c.Fragments = shared })
		tr1 := New(&Config{Prefix: prefix, MTU: 1500, IPv4MTU: 1500, Fragments: shared}, tr0.tbl)
		d := udpDatagram6(600)
		primeFrags(t, tr0, frag6(hostX, serverZ6, nat64.ProtoUDP, 304, false, 5, d[304:]))
		r, out := run(tr1, frag6(hostX, serverZ6, nat64.ProtoUDP, 0, true, 5, d[:304]), now0)
		if r != nat64.Translated || len(out) != 2 {
			t.Fatalf("first fragment on the other worker: %v, %d out", r, len(out))
		}
		collect4(t, out, len(d), 5)
	})
	t.Run("first never comes", func(t *testing.T) {
		tr := newTestTranslator(t, nil)
		primeFrags(t, tr, frag6(hostX, serverZ6, nat64.ProtoUDP, 32, false, 0x777, pattern(16)))
		tr.ExpireFragments(now0 + int64(FragmentTimeout) - 1)
		if n := tr.Counters.Drops[nat64.FragmentNoState]; n != 0 {
			t.Fatalf("dropped before the timeout: %d", n)
		}
		tr.ExpireFragments(now0 + int64(FragmentTimeout))
		if n := tr.Counters.Drops[nat64.FragmentNoState]; n != 1 {
			t.Fatalf("fragment_no_state = %d after the timeout, want 1", n)
		}
		wantUsage(t, tr, 0)
		wantDrops(t, tr, nil)
	})
}
