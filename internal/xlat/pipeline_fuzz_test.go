package xlat

// FuzzPipeline drives whole sequences of packets, both directions, through
// Process on a real state table, so that the later packets of a flow meet
// the state the earlier ones made (sessions, held SYNs, fragments, the
// error rate limit). Two twin translators (same state secret, same
// identification start, same clock) get the same sequence, each in a
// buffer and an Output arena filled with a different poison byte: any
// emitted byte the translator did not write itself (headroom, the tail
// past the packet, a stale arena) shows up as a difference between the
// twins.

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
	"github.com/nat64kit/nat64kit/internal/state"
)

// Control bits of one packet in a FuzzPipeline input.
const (
	ctlIPv4     = 1 << iota // force version 4 (else 6) and a right IPv4 header checksum
	ctlFixL4                // recompute the transport checksum, so mutations get past it
	ctlReply                // the packet is the reverse of the last one emitted (a reply), its payload the data
	ctlExpire               // afterwards, 7 s pass and Expire runs (held SYNs time out)
	ctlTailRoom             // the buffer has 2 KiB of poisoned room after the packet
)

// maxPipelinePackets bounds one input's sequence.
const maxPipelinePackets = 8

// pipelineHeadroom is what the daemon gives (tunio.Offset is in this range).
const pipelineHeadroom = 64

type twin struct {
	tr     *Translator
	tbl    *state.Table
	out    *Output
	poison byte
}

func newTwin(t testing.TB, poison byte) *twin {
	in := testInstance()
	// Limits one input of a few packets can reach.
	in.State.MaxSessions = 64
	in.State.MaxSessionsPerSource = 4
	in.ICMPErrorRate, in.ICMPErrorBurst = 1000, 3
	tbl, err := state.New(&in.State, state.Options{Secret: [32]byte{1, 2, 3}, MaxHeldSYNs: 4})
	if err != nil {
		t.Fatal(err)
	}
	tr := New(&in.Config, tbl)
	tr.ipID = 0x1000
	return &twin{tr: tr, tbl: tbl, out: NewOutput(), poison: poison}
}

// process runs one packet in a poisoned buffer and returns the verdict and
// copies of what was emitted.
func (w *twin) process(pkt []byte, tail int, now int64) (nat64.DropReason, [][]byte) {
	buf := bytes.Repeat([]byte{w.poison}, pipelineHeadroom+len(pkt)+tail)
	copy(buf[pipelineHeadroom:], pkt)
	for i := range w.out.arena {
		w.out.arena[i] = w.poison
	}
	r := w.tr.Process(buf, pipelineHeadroom, len(pkt), now, w.out)
	return r, copyList(w.out.List())
}

// expire runs the expiry as the daemon does, with the held SYNs' Port
// Unreachable into the Output.
func (w *twin) expire(now int64) [][]byte {
	for i := range w.out.arena {
		w.out.arena[i] = w.poison
	}
	w.out.Reset()
	w.tbl.Expire(now, func(pkt []byte) { w.tr.PortUnreachable(pkt, now, w.out) })
	return copyList(w.out.List())
}

func copyList(l [][]byte) [][]byte {
	var res [][]byte
	for _, p := range l {
		res = append(res, append([]byte(nil), p...))
	}
	return res
}

// pipelineStep is one packet of an input.
type pipelineStep struct {
	ctl  byte
	data []byte
}

// splitSteps reads an input as [ctl][len hi][len lo][len bytes]..., the
// last step taking what is left.
func splitSteps(b []byte) []pipelineStep {
	var steps []pipelineStep
	for len(b) >= 3 && len(steps) < maxPipelinePackets {
		ctl, n := b[0], int(binary.BigEndian.Uint16(b[1:]))
		b = b[3:]
		n = min(n, len(b))
		steps = append(steps, pipelineStep{ctl: ctl, data: b[:n]})
		b = b[n:]
	}
	return steps
}

func joinSteps(steps ...pipelineStep) []byte {
	var b []byte
	for _, s := range steps {
		b = append(b, s.ctl, byte(len(s.data)>>8), byte(len(s.data)))
		b = append(b, s.data...)
	}
	return b
}

// buildStep turns a step into the packet to process; last is the last
// packet emitted (nil if none). A reply has the version of what it answers.
func buildStep(s pipelineStep, last []byte) []byte {
	var p []byte
	reply := s.ctl&ctlReply != 0 && last != nil
	if reply {
		p = reverse(last, s.data)
	} else {
		p = append([]byte(nil), s.data...)
	}
	if len(p) == 0 {
		return p
	}
	if reply && p[0]>>4 == 4 || !reply && s.ctl&ctlIPv4 != 0 {
		p[0] = 0x40 | p[0]&0x0f
		if hl := int(p[0]&0x0f) * 4; hl >= 20 && hl <= len(p) {
			setIPv4HeaderChecksum(p)
		}
	} else {
		p[0] = 0x60 | p[0]&0x0f
	}
	if s.ctl&ctlFixL4 != 0 {
		fixL4(p)
	}
	return p
}

// reverse builds the reply to an emitted packet: addresses and ports
// swapped, echo request turned into a reply, the payload replaced by data.
func reverse(emitted, data []byte) []byte {
	var in packet.Info
	if packet.Parse(emitted, &in) != packet.OK || in.Fragmented || !in.HasL4Header() {
		return append([]byte(nil), data...)
	}
	hdrLen := 8
	if in.Proto == nat64.ProtoTCP {
		hdrLen = int(emitted[in.L4Off+12]>>4) * 4
	}
	p := append([]byte(nil), emitted[:in.L4Off+hdrLen]...)
	p = append(p, data...)
	l4 := p[in.L4Off:]
	switch in.Proto {
	case nat64.ProtoTCP, nat64.ProtoUDP:
		sp, dp := binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		binary.BigEndian.PutUint16(l4, dp)
		binary.BigEndian.PutUint16(l4[2:], sp)
		if in.Proto == nat64.ProtoUDP {
			binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		} else {
			l4[13] = nat64.TCPAck | l4[13]&(nat64.TCPSyn|nat64.TCPFin|nat64.TCPRst)
		}
	case nat64.ProtoICMPv4:
		if l4[0] == packet.ICMPv4EchoRequest {
			l4[0] = packet.ICMPv4EchoReply
		}
	case nat64.ProtoICMPv6:
		if l4[0] == packet.ICMPv6EchoRequest {
			l4[0] = packet.ICMPv6EchoReply
		}
	}
	if in.Version == 4 {
		var a [4]byte
		copy(a[:], p[12:16])
		copy(p[12:16], p[16:20])
		copy(p[16:20], a[:])
		binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
		p[8] = 64
	} else {
		var a [16]byte
		copy(a[:], p[8:24])
		copy(p[8:24], p[24:40])
		copy(p[24:40], a[:])
		binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
		p[7] = 64
	}
	return p
}

// fixL4 recomputes the transport checksum of a packet that parses whole.
func fixL4(p []byte) {
	var in packet.Info
	if packet.Parse(p, &in) != packet.OK || in.Fragmented || !in.HasL4Header() {
		return
	}
	l4 := p[in.L4Off:in.Len]
	var at int
	switch in.Proto {
	case nat64.ProtoTCP:
		at = packet.TCPChecksumOffset
	case nat64.ProtoUDP:
		at = 6
	case nat64.ProtoICMPv4, nat64.ProtoICMPv6:
		at = 2
	default:
		return
	}
	l4[at], l4[at+1] = 0, 0
	var init uint32
	if in.Version == 6 {
		init = refPseudo6(p[8:24], p[24:40], in.Proto, len(l4))
	} else if in.Proto != nat64.ProtoICMPv4 {
		init = refPseudo4(p[12:16], p[16:20], in.Proto, len(l4))
	}
	ck := ^refSum(l4, init)
	if ck == 0 && in.Proto == nat64.ProtoUDP {
		ck = 0xffff
	}
	binary.BigEndian.PutUint16(l4[at:], ck)
}

// checkEmitted asserts what every emitted packet must be, whatever went
// in: it parses with the IPv4 header checksum right and no trailing
// bytes, fits its side's MTU, and, when it is an ICMP error (always built
// afresh) or the input's transport checksum was right, carries a right
// transport checksum and a quote that parses.
func checkEmitted(t *testing.T, in []byte, r nat64.DropReason, out [][]byte) {
	t.Helper()
	inValid, inVerifiable := l4ChecksumOK(in)
	// A fragment may be held (for reassembly, or until its first
	// fragment arrives): translated, with nothing to send yet.
	var ii packet.Info
	if r == nat64.Translated && len(out) == 0 && !(packet.Parse(in, &ii) == packet.OK && ii.Fragmented) {
		t.Fatalf("translated but nothing to send\nin %x", in)
	}
	if r != nat64.Translated && !icmpAnswers[r] && len(out) != 0 {
		t.Fatalf("dropped (%v) but %d packets emitted\nin %x", r, len(out), in)
	}
	for _, o := range out {
		var pi packet.Info
		if pr := packet.Parse(o, &pi); pr != packet.OK {
			t.Fatalf("emitted packet does not parse: %v\nin  %x\nout %x", pr, in, o)
		}
		if pi.Len != len(o) {
			t.Fatalf("emitted packet has %d trailing bytes\nin  %x\nout %x", len(o)-pi.Len, in, o)
		}
		if pi.Version == 4 && len(o) > 1500 {
			t.Fatalf("emitted IPv4 packet of %d bytes exceeds the IPv4 MTU\nin %x", len(o), in)
		}
		isErr := !pi.Fragmented && pi.HasL4Header() && (pi.Proto == nat64.ProtoICMPv4 && packet.IsICMPv4Error(o[pi.L4Off]) ||
			pi.Proto == nat64.ProtoICMPv6 && packet.IsICMPv6Error(o[pi.L4Off]))
		if isErr || (inValid && inVerifiable) {
			checkWellFormed(t, o)
		}
	}
}

func sameOutput(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func pipelineOne(t *testing.T, data []byte) {
	a, b := newTwin(t, 0xa5), newTwin(t, 0x5a)
	now := now0
	var last []byte // the last packet emitted, what a ctlReply step answers
	for i, s := range splitSteps(data) {
		p := buildStep(s, last)
		tail := 0
		if s.ctl&ctlTailRoom != 0 {
			tail = 2048
		}
		ra, outA := a.process(p, tail, now)
		rb, outB := b.process(p, tail, now)
		if ra != rb || !sameOutput(outA, outB) {
			t.Fatalf("step %d: the output depends on bytes the translator did not write (poison 0x%02x vs 0x%02x)\nin %x\n%v %x\n%v %x",
				i, a.poison, b.poison, p, ra, outA, rb, outB)
		}
		checkEmitted(t, p, ra, outA)
		if len(outA) > 0 {
			last = outA[len(outA)-1]
		}
		now += int64(1e6)
		if s.ctl&ctlExpire != 0 {
			now += int64(7e9)
			ea, eb := a.expire(now), b.expire(now)
			if !sameOutput(ea, eb) {
				t.Fatalf("step %d: expiry output depends on poison\n%x\n%x", i, ea, eb)
			}
			for _, o := range ea {
				checkWellFormed(t, o)
			}
		}
	}
	if ca, cb := a.tr.Counters, b.tr.Counters; ca != cb {
		t.Fatalf("twins counted differently:\n%+v\n%+v", ca, cb)
	}
}

// pipelineSeeds are whole flows: each golden input alone, and the
// exchanges of a TCP handshake, a UDP and an echo round trip, a
// dynamically mapped flow answered through ctlReply, an IPv4 SYN held and
// expired, and fragments.
func pipelineSeeds(f *testing.F) {
	for _, c := range goldenCases {
		p := c.input()
		ctl := byte(0)
		if p[0]>>4 == 4 {
			ctl = ctlIPv4
		}
		f.Add(joinSteps(pipelineStep{ctl, p}))
	}
	dyn6 := func(proto nat64.Proto, l4 []byte) []byte {
		return fillChecksum(ipv6(hostX2, serverZ6, 64, proto, l4, 0, nil))
	}
	f.Add(joinSteps(pipelineStep{0, syn6()}, pipelineStep{ctlIPv4, synAck4()},
		pipelineStep{0, fillChecksum(ipv6(hostX, serverZ6, 64, nat64.ProtoTCP, tcpSeg(portX, portZ, nat64.TCPAck, pattern(100)), 0, nil))}))
	f.Add(joinSteps(pipelineStep{0, udp6(16)}, pipelineStep{ctlIPv4, udp4(1400, false)}, pipelineStep{ctlIPv4 | ctlTailRoom, udp4(3000, false)}))
	f.Add(joinSteps(pipelineStep{0, echo6(packet.ICMPv6EchoRequest)}, pipelineStep{ctlIPv4, echo4(packet.ICMPv4EchoReply)}))
	f.Add(joinSteps(pipelineStep{0, dyn6(nat64.ProtoUDP, udpDgram(33000, 53, pattern(20)))}, pipelineStep{ctlReply | ctlFixL4, pattern(30)},
		pipelineStep{0, dyn6(nat64.ProtoTCP, tcpSeg(34000, 80, nat64.TCPSyn, nil))}, pipelineStep{ctlReply | ctlFixL4, nil},
		pipelineStep{0, dyn6(nat64.ProtoICMPv6, echo(packet.ICMPv6EchoRequest, 99, 1, pattern(8)))}, pipelineStep{ctlReply | ctlFixL4, pattern(8)}))
	// An IPv4 SYN to a pool4 port no one has: held, then Port Unreachable.
	f.Add(joinSteps(pipelineStep{ctlIPv4 | ctlExpire, fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoTCP, 1, true, tcpSeg(portZ, 5002, nat64.TCPSyn, nil)))}))
	// Many sources' flows: pool4 exhaustion and the session limits.
	var many []pipelineStep
	for i := 0; i < maxPipelinePackets; i++ {
		many = append(many, pipelineStep{ctlFixL4, dyn6(nat64.ProtoUDP, udpDgram(uint16(40000+i), 53, nil))})
	}
	f.Add(joinSteps(many...))
	// Fragments both ways (a first fragment, then a later one).
	first4 := udp4(64, false)
	setFrag4(first4, 0, true)
	later4 := fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoUDP, 0x4343, false, pattern(40)))
	setFrag4(later4, 72, false)
	f.Add(joinSteps(pipelineStep{0, udp6(16)}, pipelineStep{ctlIPv4, first4}, pipelineStep{ctlIPv4, later4}))
}

func FuzzPipeline(f *testing.F) {
	pipelineSeeds(f)
	f.Fuzz(pipelineOne)
}
