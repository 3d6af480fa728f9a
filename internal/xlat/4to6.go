package xlat

import (
	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
	"github.com/nat64kit/nat64kit/internal/state"
)

// packet4to6 carries one IPv4 packet through the steps of from4. Each step
// returns nat64.Translated to go on, or the reason to drop.
type packet4to6 struct {
	buf      []byte
	off      int
	p        []byte // the IPv4 packet, buf[off:off+n]
	in       packet.Info
	src4     [4]byte
	dst4     [4]byte
	ttl      uint8  // already decremented, unless hairpinned
	l4       []byte // the upper-layer header and data
	flow     state.Flow4
	tcpFlags uint8
	zeroUDP  bool // UDP without checksum: one is computed
	frag     fragKey
	reasm    bool // a fragment of ICMP: it goes to reassembly
	parked   bool // a later fragment before its first: it waits
	hairpin  bool // the IPv4 form of a packet from6 just translated

	// The outgoing tuple (step 2).
	src6  [16]byte
	dst6  [16]byte
	port6 uint16

	fragHdr int  // 8 when the IPv6 packet carries a Fragment header
	split   bool // too big for the IPv6 MTU: sent as fragments
}

// start readies x for a packet. x lives in the Translator, so that a
// packet does not pay for zeroing all of it: start sets the fields a step
// may read before another step writes them, and the steps set the rest.
func (x *packet4to6) start(buf []byte, off, n int, hairpin bool) {
	x.buf, x.off, x.p, x.hairpin = buf, off, buf[off:off+n], hairpin
	x.flow = state.Flow4{}
	x.tcpFlags, x.zeroUDP, x.fragHdr, x.port6 = 0, false, 0, 0
	x.reasm, x.parked = false, false
}

// from4 is the IPv4 -> IPv6 pipeline. hairpin is set when the packet is the
// IPv4 form of an IPv6 packet translated a moment ago (its hop limit was
// already decremented).
func (t *Translator) from4(buf []byte, off, n int, now int64, out *Output, hairpin bool) nat64.DropReason {
	x := &t.x4
	x.start(buf, off, n, hairpin)
	if r := t.determineIncomingTuple4(x, out); r != nat64.Translated {
		return r
	}
	if x.reasm {
		return t.reassemble4(x, now, out)
	}
	if x.in.Proto == nat64.ProtoICMPv4 && packet.IsICMPv4Error(x.l4[0]) {
		if hairpin {
			return nat64.UntranslatableICMP
		}
		return t.icmpError4to6(x.p[:x.in.Len], &x.in, x.ttl, out)
	}
	if r := t.filterAndUpdate4(x, now, out); r != nat64.Translated || x.parked {
		return r
	}
	if r := t.checkSize4to6(x, out); r != nat64.Translated {
		return r
	}
	// The upper layer first: it does not move, the headers grow in front.
	if x.in.HasL4Header() {
		t.translateUpperLayer4to6(x)
	}
	var r nat64.DropReason
	if x.split {
		r = t.fragment6(x, out)
	} else {
		start, end := t.translate4to6(x)
		r = t.handOver4to6(x, start, end, out)
	}
	if r == nat64.Translated && x.in.Fragmented && x.in.HasL4Header() && !x.hairpin {
		t.releaseParked4(x, out) // its later fragments that came first
	}
	return r
}

// determineIncomingTuple4 is RFC 6146 §3.4 for an IPv4 packet: it parses
// and checks the packet and reads its 5-tuple.
func (t *Translator) determineIncomingTuple4(x *packet4to6, out *Output) nat64.DropReason {
	in := &x.in
	if packet.ParseIPv4(x.p, in) != packet.OK {
		return nat64.MalformedIPv4
	}
	h := packet.IPv4(x.p)
	x.src4, x.dst4 = h.Src(), h.Dst()
	if !t.tbl.OwnsIPv4(x.dst4) {
		return nat64.NotPool4
	}
	if !t.prefix.CanCarry(x.src4) {
		return nat64.SrcNotEmbeddable
	}
	x.ttl = h.TTL()
	if !x.hairpin {
		if x.ttl <= 1 {
			t.icmp4Error(x.p[:in.Len], in, packet.ICMPv4TimeExceeded, 0, 0, out)
			return nat64.TTLExpired
		}
		x.ttl--
	}
	x.l4 = x.p[in.L4Off:in.Len]
	x.flow.Src, x.flow.Dst = x.src4, x.dst4
	if in.Fragmented {
		x.frag = fragKey{id: in.FragID, proto: in.Proto}
		copy(x.frag.src[:], x.src4[:])
		copy(x.frag.dst[:], x.dst4[:])
	}
	switch in.Proto {
	case nat64.ProtoTCP:
		x.flow.Proto = nat64.TCP
		if in.HasL4Header() {
			tc := packet.TCP(x.l4)
			x.flow.SrcPort, x.flow.DstPort, x.tcpFlags = tc.SrcPort(), tc.DstPort(), tc.Flags()
		}
	case nat64.ProtoUDP:
		x.flow.Proto = nat64.UDP
		if in.HasL4Header() {
			u := packet.UDP(x.l4)
			if u.Checksum() == 0 {
				if in.Fragmented {
					return nat64.FragmentedZeroChecksumUDP
				}
				if t.dropZeroUDP {
					return nat64.ZeroChecksumUDP
				}
				x.zeroUDP = true
			}
			x.flow.SrcPort, x.flow.DstPort = u.SrcPort(), u.DstPort()
		}
	case nat64.ProtoICMPv4:
		if in.Fragmented {
			x.reasm = true // the ICMPv6 checksum needs the whole datagram
			return nat64.Translated
		}
		ic := packet.ICMPv4(x.l4)
		if packet.IsICMPv4Error(ic.Type()) {
			return nat64.Translated // from4 hands it to icmpError4to6
		}
		if ic.Type() != packet.ICMPv4EchoRequest && ic.Type() != packet.ICMPv4EchoReply || ic.Code() != 0 {
			return nat64.UntranslatableICMP
		}
		x.flow.Proto = nat64.ICMP
		x.flow.SrcPort, x.flow.DstPort = ic.Ident(), ic.Ident()
	default:
		return nat64.UnsupportedProto
	}
	return nat64.Translated
}

// filterAndUpdate4 is RFC 6146 §3.5 and §3.6 for an IPv4 packet: the
// session (and filtering) decides the IPv6 destination; the source is the
// IPv4 source embedded in our prefix. A later fragment takes the
// destination its first fragment got.
func (t *Translator) filterAndUpdate4(x *packet4to6, now int64, out *Output) nat64.DropReason {
	if !x.in.HasL4Header() {
		if !t.frags.lookup(&x.frag, now, &x.dst6) {
			return t.park4(x, now, out)
		}
	} else {
		var r nat64.DropReason
		x.dst6, x.port6, r = t.tbl.Inbound(&x.flow, x.tcpFlags, x.p[:x.in.Len], now)
		if r != nat64.Translated {
			if r == nat64.NoBinding {
				t.noBinding4(x, out)
			}
			return r
		}
		if x.in.Fragmented {
			t.frags.remember(&x.frag, &x.dst6, now)
		}
	}
	t.prefix.EmbedTo(&x.src6, x.src4)
	return nat64.Translated
}

// noBinding4 answers an IPv4 packet to pool4 that no BIB entry claims:
//
//   - UDP (RFC 6146 §3.5.1) and ICMP echo (§3.5.3): the packet is dropped,
//     and Destination Unreachable, code 1 (Host Unreachable), MAY be sent
//     unless the packet is itself an ICMP error (errors never come here:
//     they only look sessions up). It is sent: an IPv4 peer then stops
//     retrying a mapping that is gone instead of timing out.
//   - TCP (§3.5.2.2, the CLOSED state): a packet that is not a SYN is
//     silently dropped, as the RFC says. A SYN reaches here only when no
//     IPv6 host could ever claim its port (outside pool4's ranges), so it
//     is not held for simultaneous open; it gets at once the Port
//     Unreachable (code 3) that a held SYN gets when its 6 s run out.
//
// A hairpinned packet gets nothing: its sender is on the IPv6 side, and
// the IPv4 form's source is our own pool4 address. Every error passes the
// rate limit of the errors the translator originates (icmp4Error).
func (t *Translator) noBinding4(x *packet4to6, out *Output) {
	if x.hairpin {
		return
	}
	code := uint8(packet.ICMPv4CodeHostUnr)
	if x.in.Proto == nat64.ProtoTCP {
		if x.tcpFlags&nat64.TCPSyn == 0 || x.tcpFlags&nat64.TCPRst != 0 {
			return
		}
		code = packet.ICMPv4CodePortUnr
	}
	t.icmp4Error(x.p[:x.in.Len], &x.in, packet.ICMPv4DestUnreach, code, 0, out)
}

// checkSize4to6 decides whether the IPv6 packet goes out whole, as
// fragments, or not at all (RFC 7915 §4):
//
//   - DF clear: the sender left fragmentation to the network, and the
//     translator cannot know the IPv6 path MTU, so anything larger than
//     lowest-ipv6-mtu (1280 unless the operator raised it) is sent as
//     fragments no larger than that.
//   - DF set: the sender does path MTU discovery end to end, so the packet
//     goes out whole when it fits the IPv6 side's own MTU (an IPv6 router
//     further on answers Packet Too Big, which we translate back into
//     Fragmentation Needed, §5.2); when it does not fit, the sender gets
//     Fragmentation Needed with the MTU that fits, as any router would
//     answer (RFC 1812 §4.2.2.5 by way of RFC 1191).
//
// The lowest-ipv6-mtu therefore never applies to DF packets: fragmenting
// them would defeat the sender's path MTU discovery, and refusing them
// above 1280 would cap every DF flow at 1280 even where paths carry more.
func (t *Translator) checkSize4to6(x *packet4to6, out *Output) nat64.DropReason {
	if x.in.Fragmented {
		x.fragHdr = packet.FragmentLen
	}
	size := packet.IPv6HeaderLen + x.fragHdr + len(x.l4)
	if x.in.DF {
		x.split = false
		if size > t.mtu6 {
			if x.hairpin {
				return nat64.PacketTooBigSent
			}
			mtu := t.mtu6 - packet.IPv6HeaderLen + packet.IPv4MinHeader - x.fragHdr
			t.icmp4Error(x.p[:x.in.Len], &x.in, packet.ICMPv4DestUnreach, packet.ICMPv4CodeFragNeeded, uint32(mtu), out)
			return nat64.FragNeededSent
		}
	} else {
		x.split = size > t.lowMTU6
	}
	if x.off+x.in.L4Off-packet.IPv6HeaderLen-x.fragHdr < 0 {
		return nat64.NoHeadroom
	}
	return nat64.Translated
}

// translateUpperLayer4to6 rewrites the destination port (the identifier
// for ICMP) to the outgoing tuple's, and moves the checksum from the IPv4
// pseudo-header to the IPv6 one, incrementally. UDP without a checksum
// gets a full one, since IPv6 requires it (RFC 7915 §4.5).
func (t *Translator) translateUpperLayer4to6(x *packet4to6) {
	// The source is summed from the prefix and the IPv4 source rather than
	// read back from x.src6, just written.
	addrs6 := packet.Checksum(x.dst6[:], t.prefix.EmbedSum(x.src4))
	switch x.in.Proto {
	case nat64.ProtoTCP:
		tc := packet.TCP(x.l4)
		ck := packet.UpdateChecksum(tc.Checksum(), packet.IPv4(x.p).AddrSum(), addrs6)
		ck = packet.UpdateChecksum(ck, tc.DstPort(), x.port6)
		tc.SetDstPort(x.port6)
		tc.SetChecksum(ck)
	case nat64.ProtoUDP:
		u := packet.UDP(x.l4)
		u.SetDstPort(x.port6)
		var ck uint16
		if x.zeroUDP {
			ck = ^packet.Checksum(x.l4, packet.AddPseudoHeader6(addrs6, nat64.ProtoUDP, uint32(len(x.l4))))
		} else {
			ck = packet.UpdateChecksum(u.Checksum(), packet.IPv4(x.p).AddrSum(), addrs6)
			ck = packet.UpdateChecksum(ck, x.flow.DstPort, x.port6)
		}
		if ck == 0 {
			ck = 0xffff
		}
		u.SetChecksum(ck)
	case nat64.ProtoICMPv4:
		echo4to6(x.l4, addrs6, x.port6, len(x.l4))
	}
}

// nextHeader6 is the IPv6 next header for an IPv4 protocol.
func nextHeader6(proto nat64.Proto) nat64.Proto {
	if proto == nat64.ProtoICMPv4 {
		return nat64.ProtoICMPv6
	}
	return proto
}

// translate4to6 is RFC 7915 §4.1, in place: the IPv6 header (and a
// Fragment header for a fragment) is written in front of the upper-layer
// header, over the IPv4 header and the headroom. It returns where the IPv6
// packet lies in buf.
func (t *Translator) translate4to6(x *packet4to6) (start, end int) {
	in := &x.in
	h := packet.IPv4(x.p)
	outLen := packet.IPv6HeaderLen + x.fragHdr + len(x.l4)
	start = x.off + in.L4Off - packet.IPv6HeaderLen - x.fragHdr
	o := packet.IPv6(x.buf[start : start+outLen])
	// Field by field: a composite literal is built in a temporary and
	// copied, and that copy stalls on the stores just made.
	var f packet.IPv6Fields
	f.TrafficClass = h.TOS()
	f.PayloadLen = uint16(outLen - packet.IPv6HeaderLen)
	f.NextHeader = nextHeader6(in.Proto)
	f.HopLimit = x.ttl
	f.Src, f.Dst = &x.src6, &x.dst6
	if x.fragHdr != 0 {
		packet.IPv6Fragment(o[packet.IPv6HeaderLen:]).Encode(&packet.IPv6FragmentFields{
			NextHeader: f.NextHeader, Offset: in.FragOffset, More: in.MoreFrags, ID: uint32(h.ID()),
		})
		f.NextHeader = nat64.ProtoFragment
	}
	o.Encode(&f)
	return start, start + outLen
}

// handOver4to6 queues the IPv6 packet buf[start:end].
func (t *Translator) handOver4to6(x *packet4to6, start, end int, out *Output) nat64.DropReason {
	t.count(FourToSix, x.in.Proto, x.buf[start:end])
	if !out.pushInPlace(x.buf, start, end) {
		return nat64.OutputFull
	}
	return nat64.Translated
}

// fragment6 emits the upper layer (a whole datagram, or a fragment of one
// that starts at its FragOffset) as IPv6 fragments no larger than
// lowest-ipv6-mtu (1280 by default, never above the IPv6 MTU), into the
// Output's arena (RFC 7915 §4: with 1280, 1232 bytes of payload each).
func (t *Translator) fragment6(x *packet4to6, out *Output) nat64.DropReason {
	h := packet.IPv4(x.p)
	data := x.l4
	maxPay := (t.lowMTU6 - packet.IPv6HeaderLen - packet.FragmentLen) &^ 7
	ip := packet.IPv6Fields{
		TrafficClass: h.TOS(),
		NextHeader:   nat64.ProtoFragment,
		HopLimit:     x.ttl,
		Src:          &x.src6,
		Dst:          &x.dst6,
	}
	frag := packet.IPv6FragmentFields{NextHeader: nextHeader6(x.in.Proto), ID: uint32(h.ID())}
	for pos := 0; pos < len(data); pos += maxPay {
		chunk := data[pos:min(pos+maxPay, len(data))]
		b := out.alloc(packet.IPv6HeaderLen + packet.FragmentLen + len(chunk))
		if b == nil {
			out.Reset()
			return nat64.OutputFull
		}
		ip.PayloadLen = uint16(packet.FragmentLen + len(chunk))
		packet.IPv6(b).Encode(&ip)
		frag.Offset = x.in.FragOffset + pos
		frag.More = x.in.MoreFrags || pos+len(chunk) < len(data)
		packet.IPv6Fragment(b[packet.IPv6HeaderLen:]).Encode(&frag)
		copy(b[packet.IPv6HeaderLen+packet.FragmentLen:], chunk)
		out.push(b)
		t.count(FourToSix, x.in.Proto, b)
	}
	return nat64.Translated
}

// echo4to6 is the reverse of echo6to4; addrs6 and length are the address
// sum and ICMP message length the IPv6 pseudo-header must carry.
func echo4to6(l4 []byte, addrs6, id uint16, length int) {
	ic := packet.ICMPv4(l4)
	oldType := uint16(ic.Type()) << 8
	newType := uint16(packet.ICMPv6EchoRequest) << 8
	if ic.Type() == packet.ICMPv4EchoReply {
		newType = uint16(packet.ICMPv6EchoReply) << 8
	}
	ck := packet.UpdateChecksum(ic.Checksum(), 0, packet.AddPseudoHeader6(addrs6, nat64.ProtoICMPv6, uint32(length)))
	ck = packet.UpdateChecksum(ck, oldType, newType)
	ck = packet.UpdateChecksum(ck, ic.Ident(), id)
	ic.SetTypeCode(uint8(newType>>8), 0)
	ic.SetIdent(id)
	ic.SetChecksum(ck)
}

func addrSum4(a, b *[4]byte) uint16 {
	return packet.Checksum(b[:], packet.Checksum(a[:], 0))
}

func addrSum6(a, b *[16]byte) uint16 {
	return packet.Checksum(b[:], packet.Checksum(a[:], 0))
}

// reassemble4 takes an ICMPv4 fragment into reassembly; the fragment that
// completes its datagram sends the whole datagram through from4.
func (t *Translator) reassemble4(x *packet4to6, now int64, out *Output) nat64.DropReason {
	in := &x.in
	data := x.p[in.L4Off:in.Len]
	if len(data) == 0 || in.MoreFrags && len(data)%8 != 0 {
		return nat64.MalformedIPv4 // offsets count 8-byte units (RFC 791)
	}
	f := fragment{key: &x.frag, hdr: x.p[:packet.IPv4MinHeader], data: data, off: in.FragOffset, more: in.MoreFrags}
	l4 := t.whole[wholeHeadroom+packet.IPv4MinHeader:]
	n, r := t.frags.add(&f, now, &t.Counters, l4, &t.wholeHdr)
	if r != nat64.Translated {
		return r
	}
	if n == 0 {
		t.Counters.FragmentsHeld++
		return nat64.Translated
	}
	t.Counters.Reassembled++
	// RFC 791: the first fragment's header, options left out (the
	// translation drops them anyway), now for the whole datagram.
	h := packet.IPv4(t.wholeHdr[:packet.IPv4MinHeader])
	var fl packet.IPv4Fields
	fl.TOS, fl.ID, fl.DF, fl.TTL, fl.Protocol = h.TOS(), h.ID(), h.DF(), h.TTL(), h.Protocol()
	fl.Src, fl.Dst = h.Src(), h.Dst()
	fl.TotalLen = uint16(packet.IPv4MinHeader + n)
	p := t.whole[wholeHeadroom : wholeHeadroom+packet.IPv4MinHeader+n]
	packet.IPv4(p).Encode(&fl)
	r = t.from4(t.whole, wholeHeadroom, len(p), now, out, x.hairpin)
	if !out.detach() {
		return nat64.OutputFull
	}
	return r
}

// park4 is park6 for an IPv4 fragment.
func (t *Translator) park4(x *packet4to6, now int64, out *Output) nat64.DropReason {
	if r := t.hold(&x.frag, x.p[:packet.IPv4MinHeader], x.p, &x.in, nat64.MalformedIPv4, now); r != nat64.Translated {
		return r
	}
	x.parked = true
	if !x.hairpin && t.frags.lookup(&x.frag, now, &x.dst6) {
		t.prefix.EmbedTo(&x.src6, x.src4)
		t.releaseParked4(x, out)
	}
	return nat64.Translated
}

// releaseParked4 sends the parked later fragments of x's datagram as IPv6
// fragments of at most lowest-ipv6-mtu.
func (t *Translator) releaseParked4(x *packet4to6, out *Output) {
	n, total, ok := t.frags.claim(&x.frag, t.whole, &t.pieces, &t.wholeHdr)
	if !ok {
		return
	}
	h := packet.IPv4(t.wholeHdr[:packet.IPv4MinHeader])
	ip := packet.IPv6Fields{TrafficClass: h.TOS(), NextHeader: nat64.ProtoFragment, HopLimit: h.TTL() - 1, Src: &x.src6, Dst: &x.dst6}
	frag := packet.IPv6FragmentFields{NextHeader: nextHeader6(x.in.Proto), ID: uint32(h.ID())}
	maxPay := (t.lowMTU6 - packet.IPv6HeaderLen - packet.FragmentLen) &^ 7
	for i := 0; i < n; i++ {
		p := t.pieces[i]
		for pos := int(p.lo); pos < int(p.hi); pos += maxPay {
			end := min(pos+maxPay, int(p.hi))
			b := out.alloc(packet.IPv6HeaderLen + packet.FragmentLen + end - pos)
			if b == nil {
				t.Counters.Drops[nat64.OutputFull]++
				return
			}
			ip.PayloadLen = uint16(packet.FragmentLen + end - pos)
			packet.IPv6(b).Encode(&ip)
			frag.Offset, frag.More = pos, end != total
			packet.IPv6Fragment(b[packet.IPv6HeaderLen:]).Encode(&frag)
			copy(b[packet.IPv6HeaderLen+packet.FragmentLen:], t.whole[pos:end])
			out.push(b)
			t.count(FourToSix, x.in.Proto, b)
		}
	}
}
