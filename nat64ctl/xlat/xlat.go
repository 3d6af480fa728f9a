// Package xlat is the stateful NAT64 packet pipeline: RFC 7915 IP/ICMP
// translation joined to the RFC 6146 state table. Each packet goes through
// the steps Jool names: determine the incoming tuple, filter and update
// state, compute the outgoing tuple, translate, and hand over for sending.
//
// A Translator belongs to one worker goroutine. Its only shared mutable
// state is the *state.Table; counters, the fragment table and identification
// generators are its own. Process allocates nothing.
package xlat

import (
	"math/rand/v2"

	"github.com/nat64kit/nat64kit/nat64conf"
	"github.com/nat64kit/nat64kit/nat64ctl/packet"
	"github.com/nat64kit/nat64kit/nat64ctl/state"
)

// MinHeadroom is the free space Process needs before the packet: an IPv4
// header of 20 bytes grows into 40 bytes of IPv6 header plus an 8-byte
// Fragment header.
const MinHeadroom = 28

// hopLimitErrors is the hop limit / TTL of the ICMP errors the translator
// originates.
const hopLimitErrors = 64

// dfThreshold: RFC 7915 §5.1 sets DF on a translated packet larger than
// 1260 bytes (so a 1280-byte IPv6 path can still be reported through
// Fragmentation Needed plus 20 bytes of header growth).
const dfThreshold = 1260

// Translator translates packets of one NAT64 instance. Not safe for
// concurrent use: make one per worker goroutine.
type Translator struct {
	prefix      nat64conf.Prefix
	tbl         *state.Table
	mtu6        int // IPv6-side MTU (the TUN device's)
	mtu4        int // IPv4-side next-hop MTU
	dropZeroUDP bool
	ipID        uint16 // IPv4 identification generator
	frags       fragTable

	// Counters are this Translator's statistics; the daemon aggregates them.
	Counters Counters
}

// New makes a Translator for the instance, sharing the state table tbl.
// MTUs of 0 default to 1500; the IPv6 MTU is never taken below 1280.
func New(in *nat64conf.Instance, tbl *state.Table) *Translator {
	t := &Translator{
		prefix:      in.Prefix,
		tbl:         tbl,
		mtu6:        in.MTU,
		mtu4:        in.IPv4MTU,
		dropZeroUDP: in.DropZeroChecksumUDP,
	}
	if t.mtu6 == 0 {
		t.mtu6 = nat64conf.DefaultMTU
	}
	if t.mtu6 < packet.IPv6MinMTU {
		t.mtu6 = packet.IPv6MinMTU
	}
	if t.mtu4 == 0 {
		t.mtu4 = nat64conf.DefaultMTU
	}
	if t.mtu4 < packet.IPv4MinMTU {
		t.mtu4 = packet.IPv4MinMTU
	}
	// Start identifications somewhere that differs between workers and
	// restarts; uniqueness within the reassembly timeout is what matters.
	t.ipID = uint16(rand.Uint32())
	return t
}

// MaxPackets is how many packets one Process call can emit: IPv6 fragments
// of one IPv4 packet (65535 / 1232 < 54) or an ICMP error.
const MaxPackets = 64

// arenaSize holds the fragments of the largest IPv4 datagram plus their
// headers, and the ICMP errors.
const arenaSize = 65535 + MaxPackets*48 + 2*packet.ICMPv6ErrorMax

// Output is where Process puts the packets to send, all toward the TUN
// device (the kernel routes each by its version). Packets[i] points either
// into the caller's buffer (the translated packet, in place) or into the
// Output's own arena; both stay valid until the next Process with this
// Output. Make one per worker with NewOutput and reuse it.
type Output struct {
	Packets [MaxPackets][]byte
	N       int
	arena   []byte
	used    int
}

// NewOutput allocates an Output with its arena.
func NewOutput() *Output { return &Output{arena: make([]byte, arenaSize)} }

// List returns the packets to send.
func (o *Output) List() [][]byte { return o.Packets[:o.N] }

// Reset forgets the previous packets.
func (o *Output) Reset() { o.N, o.used = 0, 0 }

// alloc returns n bytes of arena, or nil when full.
func (o *Output) alloc(n int) []byte {
	if o.used+n > len(o.arena) || o.N >= MaxPackets {
		return nil
	}
	b := o.arena[o.used : o.used+n : o.used+n]
	o.used += n
	return b
}

func (o *Output) push(b []byte) bool {
	if o.N >= MaxPackets {
		return false
	}
	o.Packets[o.N] = b
	o.N++
	return true
}

// Process translates the packet at buf[off:off+n] (IPv6 toward IPv4, or
// IPv4 toward IPv6, chosen by its version). buf[:off] is free headroom, at
// least MinHeadroom bytes, so IPv4->IPv6 growth happens in place; the packet
// bytes are rewritten. now is a monotonic time in nanoseconds. out is reset
// and receives what to send: the translated packet (or its fragments) and/or
// an ICMP error toward the sender. The return value is Translated or why the
// packet was dropped (already counted in t.Counters); some drops come with
// an ICMP error in out (Time Exceeded, Parameter Problem, Packet Too Big,
// Fragmentation Needed, Address Unreachable), so always send out.List().
func (t *Translator) Process(buf []byte, off, n int, now int64, out *Output) DropReason {
	out.Reset()
	var r DropReason
	if n <= 0 || off < 0 || off+n > len(buf) {
		r = UnknownVersion
	} else {
		switch buf[off] >> 4 {
		case 6:
			r = t.from6(buf, off, n, now, out)
		case 4:
			r = t.from4(buf, off, n, now, out, false)
		default:
			r = UnknownVersion
		}
	}
	if r != Translated {
		t.Counters.Drops[r]++
	}
	return r
}

func protoIndex(p uint8) ProtoIndex {
	switch p {
	case packet.ProtoTCP:
		return ProtoTCP
	case packet.ProtoUDP:
		return ProtoUDP
	}
	return ProtoICMP
}

func (t *Translator) count(d Direction, proto uint8, b []byte) {
	i := protoIndex(proto)
	t.Counters.Packets[d][i]++
	t.Counters.Bytes[d][i] += uint64(len(b))
}

func stateDrop(r state.Result) DropReason {
	switch r {
	case state.NoBinding:
		return NoBinding
	case state.Filtered:
		return Filtered
	case state.PoolExhausted:
		return Pool4Exhausted
	case state.SourceLimit:
		return SessionLimit
	case state.TableFull:
		return TableFull
	case state.HeldSYN:
		return SYNHeld
	case state.HeldSYNFull:
		return HeldSYNFull
	case state.NotSYN:
		return NotSYN
	case state.BadProtocol:
		return UnsupportedProto
	}
	return StateError
}

func (t *Translator) nextID() uint16 {
	t.ipID++
	return t.ipID
}

// from6 is the IPv6 -> IPv4 pipeline.
func (t *Translator) from6(buf []byte, off, n int, now int64, out *Output) DropReason {
	p := buf[off : off+n]
	var in packet.Info
	if packet.ParseIPv6(p, &in) != packet.OK {
		return MalformedIPv6
	}
	h := packet.IPv6(p)
	src6, dst6 := h.Src(), h.Dst()

	// Step 1: determine the incoming tuple.
	z, ok := t.prefix.Extract(dst6)
	if !ok {
		return NotPool6
	}
	if h.HopLimit() <= 1 {
		t.icmp6Error(p[:in.Len], &in, packet.ICMPv6TimeExceeded, 0, 0, out)
		return TTLExpired
	}
	if in.SegLeftOff != 0 {
		// RFC 7915 §5.1: Parameter Problem code 0 pointing at Segments Left.
		t.icmp6Error(p[:in.Len], &in, packet.ICMPv6ParamProblem, 0, uint32(in.SegLeftOff), out)
		return SegmentsLeft
	}
	proto := in.Proto
	var flow state.Flow6
	flow.Src, flow.Dst = src6, z
	l4 := p[in.L4Off:in.Len]
	var tcpFlags uint8
	switch proto {
	case packet.ProtoTCP:
		flow.Proto = nat64conf.TCP
		if in.HasL4Header() {
			flow.SrcPort, flow.DstPort = packet.TCP(l4).SrcPort(), packet.TCP(l4).DstPort()
			tcpFlags = packet.TCP(l4).Flags()
		}
	case packet.ProtoUDP:
		flow.Proto = nat64conf.UDP
		if in.HasL4Header() {
			u := packet.UDP(l4)
			if u.Checksum() == 0 {
				return UDP6ZeroChecksum
			}
			flow.SrcPort, flow.DstPort = u.SrcPort(), u.DstPort()
		}
	case packet.ProtoICMPv6:
		if in.Fragmented {
			return FragmentedICMP
		}
		ic := packet.ICMPv6(l4)
		if packet.IsICMPv6Error(ic.Type()) {
			return t.icmpError6to4(p[:in.Len], &in, z, now, out)
		}
		if ic.Type() != packet.ICMPv6EchoRequest && ic.Type() != packet.ICMPv6EchoReply || ic.Code() != 0 {
			return UntranslatableICMP
		}
		flow.Proto = nat64conf.ICMP
		flow.SrcPort, flow.DstPort = ic.Ident(), ic.Ident()
	default:
		return UnsupportedProto
	}

	// Step 2: filter and update state; step 3: the outgoing tuple.
	var src4 [4]byte
	var port4 uint16
	var fk fragKey
	if in.Fragmented {
		fk = fragKey{src: src6, dst: dst6, id: in.FragID, proto: proto, v6: true}
	}
	if !in.HasL4Header() {
		a, ok := t.frags.get(&fk, now)
		if !ok {
			return FragmentNoState
		}
		copy(src4[:], a[:4])
	} else {
		var r state.Result
		src4, port4, r = t.tbl.Outbound(&flow, tcpFlags, now)
		if r != state.OK {
			if r == state.PoolExhausted {
				// RFC 6146 §3.5.1.1: Destination Unreachable, Address
				// Unreachable.
				t.icmp6Error(p[:in.Len], &in, packet.ICMPv6DestUnreach, 3, 0, out)
			}
			return stateDrop(r)
		}
		if in.Fragmented {
			var a [16]byte
			copy(a[:], src4[:])
			t.frags.put(&fk, &a, now)
		}
	}
	hairpin := t.tbl.OwnsIPv4(z)

	outLen := packet.IPv4MinHeader + len(l4)
	if outLen > t.mtu4 && !hairpin {
		mtu := t.mtu4 + 20
		if mtu < packet.IPv6MinMTU {
			mtu = packet.IPv6MinMTU
		}
		t.icmp6Error(p[:in.Len], &in, packet.ICMPv6PacketTooBig, 0, uint32(mtu), out)
		return PacketTooBigSent
	}

	// Step 4: translate, in place. The IPv4 header goes right before the
	// L4 header, over the tail of the IPv6 header(s).
	tc, hop := h.TrafficClass(), h.HopLimit()
	start := off + in.L4Off - packet.IPv4MinHeader
	o := packet.IPv4(buf[start : start+outLen])
	o.SetVersionIHL(packet.IPv4MinHeader)
	o.SetTOS(tc)
	o.SetTotalLen(uint16(outLen))
	if in.FragHdrOff != 0 {
		// RFC 7915 §5.1.1: identification from the Fragment header, DF
		// clear so IPv4 routers may fragment further.
		o.SetID(uint16(in.FragID))
		o.SetFlagsOffset(false, in.MoreFrags, in.FragOffset)
	} else {
		o.SetID(t.nextID())
		o.SetFlagsOffset(outLen > dfThreshold, false, 0)
	}
	o.SetTTL(hop - 1)
	if proto == packet.ProtoICMPv6 {
		o.SetProtocol(packet.ProtoICMPv4)
	} else {
		o.SetProtocol(proto)
	}
	o.SetSrc(src4)
	o.SetDst(z)
	o.ComputeHeaderChecksum()

	if in.HasL4Header() {
		l4 = o[packet.IPv4MinHeader:]
		addrOld := packet.Add(packet.Checksum(src6[:], 0), packet.Checksum(dst6[:], 0))
		addrNew := packet.Add(packet.Checksum(src4[:], 0), packet.Checksum(z[:], 0))
		switch proto {
		case packet.ProtoTCP:
			tc := packet.TCP(l4)
			ck := packet.UpdateChecksumSum(tc.Checksum(), addrOld, addrNew)
			ck = packet.UpdateChecksum16(ck, tc.SrcPort(), port4)
			tc.SetSrcPort(port4)
			tc.SetChecksum(ck)
		case packet.ProtoUDP:
			u := packet.UDP(l4)
			ck := packet.UpdateChecksumSum(u.Checksum(), addrOld, addrNew)
			ck = packet.UpdateChecksum16(ck, u.SrcPort(), port4)
			if ck == 0 {
				ck = 0xffff // 0 would mean "no checksum" in IPv4
			}
			u.SetSrcPort(port4)
			u.SetChecksum(ck)
		case packet.ProtoICMPv6:
			echo6to4(l4, &src6, &dst6, port4)
		}
	}
	res := buf[start : start+outLen]
	t.count(SixToFour, proto, res)
	if hairpin {
		// RFC 6146 §3.8: straight back into the IPv6 side.
		t.Counters.Hairpinned++
		return t.from4(buf, start, outLen, now, out, true)
	}
	if !out.push(res) {
		return OutputFull
	}
	return Translated
}

// echo6to4 turns an ICMPv6 echo message into ICMPv4 in place, updating the
// checksum incrementally (an incorrect one stays incorrect): the ICMPv6
// pseudo-header leaves the sum, the type changes, the identifier becomes id.
func echo6to4(l4 []byte, src6, dst6 *[16]byte, id uint16) {
	echo6to4n(l4, src6, dst6, id, len(l4))
}

// echo6to4n is echo6to4 with the length the pseudo-header carried given
// explicitly (a quoted, truncated echo message).
func echo6to4n(l4 []byte, src6, dst6 *[16]byte, id uint16, length int) {
	ic := packet.ICMPv6(l4)
	oldType := uint16(ic.Type()) << 8
	newType := uint16(packet.ICMPv4EchoRequest) << 8
	if ic.Type() == packet.ICMPv6EchoReply {
		newType = uint16(packet.ICMPv4EchoReply) << 8
	}
	ck := packet.UpdateChecksumSum(ic.Checksum(), packet.PseudoHeaderSum6(src6, dst6, packet.ProtoICMPv6, uint32(length)), 0)
	ck = packet.UpdateChecksum16(ck, oldType, newType)
	ck = packet.UpdateChecksum16(ck, ic.Ident(), id)
	ic.SetTypeCode(uint8(newType>>8), 0)
	ic.SetIdent(id)
	ic.SetChecksum(ck)
}

// echo4to6 is the reverse of echo6to4; length is the ICMP message length
// the pseudo-header must carry.
func echo4to6(l4 []byte, src6, dst6 *[16]byte, id uint16, length int) {
	ic := packet.ICMPv4(l4)
	oldType := uint16(ic.Type()) << 8
	newType := uint16(packet.ICMPv6EchoRequest) << 8
	if ic.Type() == packet.ICMPv4EchoReply {
		newType = uint16(packet.ICMPv6EchoReply) << 8
	}
	ck := packet.UpdateChecksumSum(ic.Checksum(), 0, packet.PseudoHeaderSum6(src6, dst6, packet.ProtoICMPv6, uint32(length)))
	ck = packet.UpdateChecksum16(ck, oldType, newType)
	ck = packet.UpdateChecksum16(ck, ic.Ident(), id)
	ic.SetTypeCode(uint8(newType>>8), 0)
	ic.SetIdent(id)
	ic.SetChecksum(ck)
}

// from4 is the IPv4 -> IPv6 pipeline. hairpin is set when the packet is the
// IPv4 form of an IPv6 packet translated a moment ago (its hop limit was
// already decremented).
func (t *Translator) from4(buf []byte, off, n int, now int64, out *Output, hairpin bool) DropReason {
	p := buf[off : off+n]
	var in packet.Info
	if packet.ParseIPv4(p, &in) != packet.OK {
		return MalformedIPv4
	}
	h := packet.IPv4(p)
	src4, dst4 := h.Src(), h.Dst()

	// Step 1: determine the incoming tuple.
	if !t.tbl.OwnsIPv4(dst4) {
		return NotPool4
	}
	if !t.prefix.CanCarry(src4) {
		return SrcNotEmbeddable
	}
	ttl := h.TTL()
	if !hairpin {
		if ttl <= 1 {
			t.icmp4Error(p[:in.Len], &in, packet.ICMPv4TimeExceeded, 0, 0, out)
			return TTLExpired
		}
		ttl--
	}
	proto := in.Proto
	l4 := p[in.L4Off:in.Len]
	var flow state.Flow4
	flow.Src, flow.Dst = src4, dst4
	var tcpFlags uint8
	zeroUDP := false
	switch proto {
	case packet.ProtoTCP:
		flow.Proto = nat64conf.TCP
		if in.HasL4Header() {
			flow.SrcPort, flow.DstPort = packet.TCP(l4).SrcPort(), packet.TCP(l4).DstPort()
			tcpFlags = packet.TCP(l4).Flags()
		}
	case packet.ProtoUDP:
		flow.Proto = nat64conf.UDP
		if in.HasL4Header() {
			u := packet.UDP(l4)
			if u.Checksum() == 0 {
				if in.Fragmented {
					return FragmentedZeroChecksumUDP
				}
				if t.dropZeroUDP {
					return ZeroChecksumUDP
				}
				zeroUDP = true
			}
			flow.SrcPort, flow.DstPort = u.SrcPort(), u.DstPort()
		}
	case packet.ProtoICMPv4:
		if in.Fragmented {
			return FragmentedICMP
		}
		ic := packet.ICMPv4(l4)
		if packet.IsICMPv4Error(ic.Type()) {
			if hairpin {
				return UntranslatableICMP
			}
			return t.icmpError4to6(p[:in.Len], &in, ttl, out)
		}
		if ic.Type() != packet.ICMPv4EchoRequest && ic.Type() != packet.ICMPv4EchoReply || ic.Code() != 0 {
			return UntranslatableICMP
		}
		flow.Proto = nat64conf.ICMP
		flow.SrcPort, flow.DstPort = ic.Ident(), ic.Ident()
	default:
		return UnsupportedProto
	}

	// Steps 2 and 3: state, and the outgoing tuple.
	var dst6 [16]byte
	var port6 uint16
	var fk fragKey
	if in.Fragmented {
		fk = fragKey{id: in.FragID, proto: proto}
		copy(fk.src[:], src4[:])
		copy(fk.dst[:], dst4[:])
	}
	if !in.HasL4Header() {
		a, ok := t.frags.get(&fk, now)
		if !ok {
			return FragmentNoState
		}
		dst6 = *a
	} else {
		var r state.Result
		dst6, port6, r = t.tbl.Inbound(&flow, tcpFlags, p[:in.Len], now)
		if r != state.OK {
			return stateDrop(r)
		}
		if in.Fragmented {
			t.frags.put(&fk, &dst6, now)
		}
	}
	src6 := t.prefix.Embed(src4)

	fragHdr := 0
	if in.Fragmented {
		fragHdr = packet.FragmentLen
	}
	outLen := packet.IPv6HeaderLen + fragHdr + len(l4)
	needSplit := outLen > t.mtu6
	if needSplit && in.DF {
		if hairpin {
			return PacketTooBigSent
		}
		t.icmp4Error(p[:in.Len], &in, packet.ICMPv4DestUnreach, packet.ICMPv4CodeFragNeeded, uint32(t.mtu6-packet.IPv6HeaderLen+packet.IPv4MinHeader-fragHdr), out)
		return FragNeededSent
	}
	start := off + in.L4Off - packet.IPv6HeaderLen - fragHdr
	if start < 0 {
		return NoHeadroom
	}

	// Step 4: L4 first (it does not move), then the headers in front of it.
	nh := proto
	if proto == packet.ProtoICMPv4 {
		nh = packet.ProtoICMPv6
	}
	if in.HasL4Header() {
		switch proto {
		case packet.ProtoTCP:
			tc := packet.TCP(l4)
			ck := packet.UpdateChecksumSum(tc.Checksum(), addrSum4(&src4, &dst4), addrSum6(&src6, &dst6))
			ck = packet.UpdateChecksum16(ck, tc.DstPort(), port6)
			tc.SetDstPort(port6)
			tc.SetChecksum(ck)
		case packet.ProtoUDP:
			u := packet.UDP(l4)
			u.SetDstPort(port6)
			if zeroUDP {
				u.SetChecksum(0)
				ck := ^packet.Checksum(l4, packet.PseudoHeaderSum6(&src6, &dst6, packet.ProtoUDP, uint32(len(l4))))
				if ck == 0 {
					ck = 0xffff
				}
				u.SetChecksum(ck)
			} else {
				ck := packet.UpdateChecksumSum(u.Checksum(), addrSum4(&src4, &dst4), addrSum6(&src6, &dst6))
				ck = packet.UpdateChecksum16(ck, flow.DstPort, port6)
				if ck == 0 {
					ck = 0xffff
				}
				u.SetChecksum(ck)
			}
		case packet.ProtoICMPv4:
			echo4to6(l4, &src6, &dst6, port6, len(l4))
		}
	}
	tos, id := h.TOS(), h.ID()
	if needSplit {
		return t.fragment6(l4, &src6, &dst6, tos, ttl, nh, uint32(id), in.FragOffset, in.MoreFrags, proto, out)
	}
	o := packet.IPv6(buf[start : start+outLen])
	o.SetVersionClassFlow(tos, 0)
	o.SetPayloadLen(uint16(outLen - packet.IPv6HeaderLen))
	o.SetHopLimit(ttl)
	o.SetSrc(&src6)
	o.SetDst(&dst6)
	if fragHdr != 0 {
		o.SetNextHeader(packet.ProtoFragment)
		packet.IPv6Fragment(o[packet.IPv6HeaderLen:]).Set(nh, in.FragOffset, in.MoreFrags, uint32(id))
	} else {
		o.SetNextHeader(nh)
	}
	t.count(FourToSix, proto, o)
	if !out.push(buf[start : start+outLen]) {
		return OutputFull
	}
	return Translated
}

// fragment6 emits data (an upper-layer datagram or a fragment of one that
// starts at byte baseOff) as IPv6 fragments no larger than the IPv6 MTU
// (which is at least 1280), into the Output's arena.
func (t *Translator) fragment6(data []byte, src6, dst6 *[16]byte, tos, hop, nh uint8, id uint32, baseOff int, lastMore bool, proto uint8, out *Output) DropReason {
	maxPay := (t.mtu6 - packet.IPv6HeaderLen - packet.FragmentLen) &^ 7
	for pos := 0; pos < len(data); pos += maxPay {
		chunk := data[pos:min(pos+maxPay, len(data))]
		more := lastMore || pos+len(chunk) < len(data)
		b := out.alloc(packet.IPv6HeaderLen + packet.FragmentLen + len(chunk))
		if b == nil {
			out.Reset()
			return OutputFull
		}
		o := packet.IPv6(b)
		o.SetVersionClassFlow(tos, 0)
		o.SetPayloadLen(uint16(packet.FragmentLen + len(chunk)))
		o.SetNextHeader(packet.ProtoFragment)
		o.SetHopLimit(hop)
		o.SetSrc(src6)
		o.SetDst(dst6)
		packet.IPv6Fragment(b[packet.IPv6HeaderLen:]).Set(nh, baseOff+pos, more, id)
		copy(b[packet.IPv6HeaderLen+packet.FragmentLen:], chunk)
		out.push(b)
		t.count(FourToSix, proto, b)
	}
	return Translated
}

func addrSum4(a, b *[4]byte) uint16 {
	return packet.Checksum(b[:], packet.Checksum(a[:], 0))
}

func addrSum6(a, b *[16]byte) uint16 {
	return packet.Checksum(b[:], packet.Checksum(a[:], 0))
}
