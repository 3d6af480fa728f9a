package xlat

import (
	"encoding/binary"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
	"github.com/nat64kit/nat64kit/internal/state"
)

// packet6to4 carries one IPv6 packet through the steps of from6. Each step
// returns nat64.Translated to go on, or the reason to drop.
type packet6to4 struct {
	buf      []byte
	off      int
	p        []byte // the IPv6 packet, buf[off:off+n]
	in       packet.Info
	z        [4]byte // the IPv4 destination, extracted from the IPv6 one
	l4       []byte  // the upper-layer header and data
	flow     state.Flow6
	tcpFlags uint8
	frag     fragKey // set for a fragment
	reasm    bool    // a fragment of ICMP: it goes to reassembly
	parked   bool    // a later fragment before its first: it waits
	whole    bool    // a datagram just reassembled, in t.whole
	split    bool    // whole, and too big for the IPv4 MTU: sent as IPv4 fragments

	// The outgoing tuple (step 2).
	src4    [4]byte
	port4   uint16
	hairpin bool // the destination is one of our own pool4 addresses
}

// start readies x for a packet. x lives in the Translator, so that a
// packet does not pay for zeroing all of it: start sets the fields a step
// may read before another step writes them, and the steps set the rest.
func (x *packet6to4) start(buf []byte, off, n int, whole bool) {
	x.buf, x.off, x.p = buf, off, buf[off:off+n]
	x.flow = state.Flow6{}
	x.tcpFlags, x.port4 = 0, 0
	x.reasm, x.whole, x.split, x.parked = false, whole, false, false
}

// from6 is the IPv6 -> IPv4 pipeline. whole is set for a datagram the
// translator reassembled (in t.whole).
func (t *Translator) from6(buf []byte, off, n int, now int64, out *Output, whole bool) nat64.DropReason {
	x := &t.x6
	x.start(buf, off, n, whole)
	if r := t.determineIncomingTuple6(x, out); r != nat64.Translated {
		return r
	}
	if x.reasm {
		return t.reassemble6(x, now, out)
	}
	if x.in.Proto == nat64.ProtoICMPv6 && packet.IsICMPv6Error(x.l4[0]) {
		return t.icmpError6to4(x.p[:x.in.Len], &x.in, x.z, now, out)
	}
	if r := t.filterAndUpdate6(x, now, out); r != nat64.Translated || x.parked {
		return r
	}
	if r := t.checkSize6to4(x, out); r != nat64.Translated {
		return r
	}
	start, end := t.translate6to4(x)
	r := t.handOver6to4(x, start, end, now, out)
	if r == nat64.Translated && x.in.Fragmented && x.in.HasL4Header() && !x.hairpin {
		t.releaseParked6(x, out) // its later fragments that came first
	}
	return r
}

// determineIncomingTuple6 is RFC 6146 §3.4 for an IPv6 packet: it parses
// and checks the packet and reads its 5-tuple (for ICMP echo, the
// identifier stands for both ports).
func (t *Translator) determineIncomingTuple6(x *packet6to4, out *Output) nat64.DropReason {
	in := &x.in
	if packet.ParseIPv6(x.p, in) != packet.OK {
		return nat64.MalformedIPv6
	}
	h := packet.IPv6(x.p)
	z, ok := t.prefix.Extract(h.Dst())
	if !ok {
		return nat64.NotPool6
	}
	x.z = z
	if h.HopLimit() <= 1 {
		t.icmp6Error(x.p[:in.Len], in, packet.ICMPv6TimeExceeded, 0, 0, out)
		return nat64.TTLExpired
	}
	if in.SegLeftOff != 0 {
		// RFC 7915 §5.1: Parameter Problem code 0 pointing at Segments Left.
		t.icmp6Error(x.p[:in.Len], in, packet.ICMPv6ParamProblem, 0, uint32(in.SegLeftOff), out)
		return nat64.SegmentsLeft
	}
	x.flow.Src, x.flow.Dst = h.Src(), z
	x.l4 = x.p[in.L4Off:in.Len]
	if in.Fragmented {
		x.frag = fragKey{src: x.flow.Src, dst: h.Dst(), id: in.FragID, proto: in.Proto, v6: true}
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
				return nat64.UDP6ZeroChecksum
			}
			x.flow.SrcPort, x.flow.DstPort = u.SrcPort(), u.DstPort()
		}
	case nat64.ProtoICMPv6:
		if in.Fragmented {
			// Its checksum needs the whole datagram. The fragment's data
			// must start right after the Fragment header, as it does in
			// the later fragments (whose Fragment header names ICMPv6).
			if in.L4Off != in.FragHdrOff+packet.FragmentLen {
				return nat64.UnsupportedProto
			}
			x.reasm = true
			return nat64.Translated
		}
		ic := packet.ICMPv6(x.l4)
		if packet.IsICMPv6Error(ic.Type()) {
			return nat64.Translated // from6 hands it to icmpError6to4
		}
		if ic.Type() != packet.ICMPv6EchoRequest && ic.Type() != packet.ICMPv6EchoReply || ic.Code() != 0 {
			return nat64.UntranslatableICMP
		}
		x.flow.Proto = nat64.ICMP
		x.flow.SrcPort, x.flow.DstPort = ic.Ident(), ic.Ident()
	default:
		return nat64.UnsupportedProto
	}
	return nat64.Translated
}

// filterAndUpdate6 is RFC 6146 §3.5 (filtering and updating the BIB and
// session tables) and §3.6 (computing the outgoing tuple). A later
// fragment carries no ports: it takes the source its first fragment got.
func (t *Translator) filterAndUpdate6(x *packet6to4, now int64, out *Output) nat64.DropReason {
	if !x.in.HasL4Header() {
		var a [16]byte
		if !t.frags.lookup(&x.frag, now, &a) {
			return t.park6(x, now, out)
		}
		copy(x.src4[:], a[:4])
	} else {
		var r nat64.DropReason
		x.src4, x.port4, r = t.tbl.Outbound(&x.flow, x.tcpFlags, now)
		if r != nat64.Translated {
			if r == nat64.Pool4Exhausted {
				// RFC 6146 §3.5.1.1: Destination Unreachable, Address
				// Unreachable.
				t.icmp6Error(x.p[:x.in.Len], &x.in, packet.ICMPv6DestUnreach, 3, 0, out)
			}
			return r
		}
		if x.in.Fragmented {
			var a [16]byte
			copy(a[:], x.src4[:])
			t.frags.remember(&x.frag, &a, now)
		}
	}
	x.hairpin = t.tbl.OwnsIPv4(x.z)
	return nat64.Translated
}

// checkSize6to4 answers a packet too big for the IPv4 side with Packet Too
// Big (RFC 7915 §5.1), reporting the IPv4 MTU plus the header difference.
func (t *Translator) checkSize6to4(x *packet6to4, out *Output) nat64.DropReason {
	if packet.IPv4MinHeader+len(x.l4) <= t.mtu4 || x.hairpin {
		return nat64.Translated
	}
	if x.whole {
		// Its sender fragmented it already, so it allows fragmentation:
		// the IPv4 form is fragmented to the IPv4 MTU (DF clear), as the
		// fragments would have been translated one by one (RFC 7915
		// §5.1.1).
		x.split = true
		return nat64.Translated
	}
	mtu := max(t.mtu4+20, packet.IPv6MinMTU)
	t.icmp6Error(x.p[:x.in.Len], &x.in, packet.ICMPv6PacketTooBig, 0, uint32(mtu), out)
	return nat64.PacketTooBigSent
}

// translate6to4 is RFC 7915 §5.1, in place: the IPv4 header goes right
// before the upper-layer header, over the tail of the IPv6 header(s), and
// the upper layer's ports and checksum are updated. It returns where the
// IPv4 packet lies in buf.
func (t *Translator) translate6to4(x *packet6to4) (start, end int) {
	in := &x.in
	h := packet.IPv6(x.p)
	outLen := packet.IPv4MinHeader + len(x.l4)
	start = x.off + in.L4Off - packet.IPv4MinHeader
	// Field by field: a composite literal is built in a temporary and
	// copied, and that copy stalls on the stores just made.
	var f packet.IPv4Fields
	f.TOS = h.TrafficClass()
	f.TotalLen = uint16(outLen)
	f.TTL = h.HopLimit() - 1
	f.Protocol = in.Proto
	f.Src, f.Dst = x.src4, x.z
	if in.FragHdrOff != 0 {
		// RFC 7915 §5.1.1: identification from the Fragment header, DF
		// clear so IPv4 routers may fragment further.
		f.ID, f.MF, f.FragOffset = uint16(in.FragID), in.MoreFrags, in.FragOffset
	} else if x.whole {
		// RFC 7915 §5.1.1, as for its fragments: the identification's
		// low 16 bits, DF clear.
		f.ID = uint16(t.wholeFrag)
	} else {
		f.ID, f.DF = t.nextID(), outLen > dfThreshold
	}
	if in.Proto == nat64.ProtoICMPv6 {
		f.Protocol = nat64.ProtoICMPv4
	}
	addrs6 := h.AddrSum() // before the IPv4 header overwrites the addresses
	o := packet.IPv4(x.buf[start : start+outLen])
	o.Encode(&f)
	if in.HasL4Header() {
		translateUpperLayer6to4(x, o[packet.IPv4MinHeader:], addrs6, o.AddrSum())
	}
	return start, start + outLen
}

// translateUpperLayer6to4 rewrites the source port (the identifier for
// ICMP) to the outgoing tuple's, and moves the checksum from the IPv6
// pseudo-header to the IPv4 one, incrementally: addrOld and addrNew are
// the sums of the two headers' addresses.
func translateUpperLayer6to4(x *packet6to4, l4 []byte, addrOld, addrNew uint16) {
	switch x.in.Proto {
	case nat64.ProtoTCP:
		tc := packet.TCP(l4)
		ck := packet.UpdateChecksum(tc.Checksum(), addrOld, addrNew)
		ck = packet.UpdateChecksum(ck, tc.SrcPort(), x.port4)
		tc.SetSrcPort(x.port4)
		tc.SetChecksum(ck)
	case nat64.ProtoUDP:
		u := packet.UDP(l4)
		ck := packet.UpdateChecksum(u.Checksum(), addrOld, addrNew)
		ck = packet.UpdateChecksum(ck, u.SrcPort(), x.port4)
		if ck == 0 {
			ck = 0xffff // 0 would mean "no checksum" in IPv4
		}
		u.SetSrcPort(x.port4)
		u.SetChecksum(ck)
	case nat64.ProtoICMPv6:
		echo6to4(l4, addrOld, x.port4, len(l4))
	}
}

// handOver6to4 queues the IPv4 packet buf[start:end], or, when its
// destination is one of our own pool4 addresses, sends it straight back
// through the 4->6 pipeline (RFC 6146 §3.8, hairpinning).
func (t *Translator) handOver6to4(x *packet6to4, start, end int, now int64, out *Output) nat64.DropReason {
	if x.split {
		return t.fragment4(x.buf[start:end], out)
	}
	t.count(SixToFour, x.in.Proto, x.buf[start:end])
	if x.hairpin {
		t.Counters.Hairpinned++
		return t.from4(x.buf, start, end-start, now, out, true)
	}
	if !out.pushInPlace(x.buf, start, end) {
		return nat64.OutputFull
	}
	return nat64.Translated
}

// echo6to4 turns an ICMPv6 echo message into ICMPv4 in place, updating the
// checksum incrementally (an incorrect one stays incorrect): the ICMPv6
// pseudo-header (addresses summing to addrs6, and length) leaves the sum,
// the type changes, and the identifier becomes id.
func echo6to4(l4 []byte, addrs6, id uint16, length int) {
	ic := packet.ICMPv6(l4)
	oldType := uint16(ic.Type()) << 8
	newType := uint16(packet.ICMPv4EchoRequest) << 8
	if ic.Type() == packet.ICMPv6EchoReply {
		newType = uint16(packet.ICMPv4EchoReply) << 8
	}
	ck := packet.UpdateChecksum(ic.Checksum(), packet.AddPseudoHeader6(addrs6, nat64.ProtoICMPv6, uint32(length)), 0)
	ck = packet.UpdateChecksum(ck, oldType, newType)
	ck = packet.UpdateChecksum(ck, ic.Ident(), id)
	ic.SetTypeCode(uint8(newType>>8), 0)
	ic.SetIdent(id)
	ic.SetChecksum(ck)
}

// reassemble6 takes an ICMPv6 fragment into reassembly; the fragment that
// completes its datagram sends the whole datagram through from6.
func (t *Translator) reassemble6(x *packet6to4, now int64, out *Output) nat64.DropReason {
	in := &x.in
	data := x.p[in.L4Off:in.Len]
	if len(data) == 0 || in.MoreFrags && len(data)%8 != 0 {
		// RFC 8200 §4.5: a fragment other than the last is a multiple
		// of 8 bytes long.
		return nat64.MalformedIPv6
	}
	f := fragment{key: &x.frag, hdr: x.p[:packet.IPv6HeaderLen], data: data, off: in.FragOffset, more: in.MoreFrags}
	id := in.FragID
	l4 := t.whole[wholeHeadroom+packet.IPv6HeaderLen:]
	n, r := t.frags.add(&f, now, &t.Counters, l4, &t.wholeHdr)
	if r != nat64.Translated {
		return r
	}
	if n == 0 {
		t.Counters.FragmentsHeld++
		return nat64.Translated
	}
	t.Counters.Reassembled++
	// The first fragment's IPv6 header, without extension headers: what
	// translation needs of them was checked on every fragment.
	p := t.whole[wholeHeadroom : wholeHeadroom+packet.IPv6HeaderLen+n]
	copy(p, t.wholeHdr[:packet.IPv6HeaderLen])
	binary.BigEndian.PutUint16(p[4:], uint16(n))
	p[6] = byte(nat64.ProtoICMPv6)
	t.wholeFrag = id
	r = t.from6(t.whole, wholeHeadroom, len(p), now, out, true)
	if !out.detach() {
		return nat64.OutputFull
	}
	return r
}

// fragment4 sends the IPv4 packet p (a 20-byte header, DF clear) as
// fragments of at most the IPv4 MTU, into the Output's arena (RFC 791).
func (t *Translator) fragment4(p []byte, out *Output) nat64.DropReason {
	h := packet.IPv4(p)
	data := p[packet.IPv4MinHeader:]
	maxPay := (t.mtu4 - packet.IPv4MinHeader) &^ 7
	var f packet.IPv4Fields
	f.TOS, f.ID, f.TTL, f.Protocol = h.TOS(), h.ID(), h.TTL(), h.Protocol()
	f.Src, f.Dst = h.Src(), h.Dst()
	for pos := 0; pos < len(data); pos += maxPay {
		chunk := data[pos:min(pos+maxPay, len(data))]
		b := out.alloc(packet.IPv4MinHeader + len(chunk))
		if b == nil {
			out.Reset()
			return nat64.OutputFull
		}
		f.TotalLen = uint16(len(b))
		f.FragOffset = pos
		f.MF = pos+len(chunk) < len(data)
		packet.IPv4(b).Encode(&f)
		copy(b[packet.IPv4MinHeader:], chunk)
		out.push(b)
		t.count(SixToFour, nat64.ProtoICMPv6, b)
	}
	return nat64.Translated
}

// park6 holds a later TCP or UDP fragment that came before its first
// (RFC 6146 §4: fragments may arrive out of order) until the first one is
// translated, or the fragment timeout drops it as fragment_no_state.
func (t *Translator) park6(x *packet6to4, now int64, out *Output) nat64.DropReason {
	if r := t.hold(&x.frag, x.p[:packet.IPv6HeaderLen], x.p, &x.in, nat64.MalformedIPv6, now); r != nat64.Translated {
		return r
	}
	x.parked = true
	// The first fragment may have been translated by another worker since
	// the lookup, and found nothing parked yet: then this one releases.
	var a [16]byte
	if t.frags.lookup(&x.frag, now, &a) && !t.tbl.OwnsIPv4(x.z) {
		copy(x.src4[:], a[:4])
		t.releaseParked6(x, out)
	}
	return nat64.Translated
}

// releaseParked6 sends the parked later fragments of x's datagram, now that
// x's translation is known, as IPv4 fragments of at most the IPv4 MTU
// (adjacent ones were merged while they waited).
func (t *Translator) releaseParked6(x *packet6to4, out *Output) {
	n, total, ok := t.frags.claim(&x.frag, t.whole, &t.pieces, &t.wholeHdr)
	if !ok {
		return
	}
	h := packet.IPv6(t.wholeHdr[:])
	var f packet.IPv4Fields
	f.TOS, f.TTL, f.Protocol = h.TrafficClass(), h.HopLimit()-1, x.in.Proto
	f.Src, f.Dst, f.ID = x.src4, x.z, uint16(x.in.FragID)
	maxPay := (t.mtu4 - packet.IPv4MinHeader) &^ 7
	for i := 0; i < n; i++ {
		p := t.pieces[i]
		for pos := int(p.lo); pos < int(p.hi); pos += maxPay {
			end := min(pos+maxPay, int(p.hi))
			b := out.alloc(packet.IPv4MinHeader + end - pos)
			if b == nil {
				t.Counters.Drops[nat64.OutputFull]++
				return
			}
			f.TotalLen, f.FragOffset, f.MF = uint16(len(b)), pos, end != total
			packet.IPv4(b).Encode(&f)
			copy(b[packet.IPv4MinHeader:], t.whole[pos:end])
			out.push(b)
			t.count(SixToFour, x.in.Proto, b)
		}
	}
}

// hold parks the fragment p (header hdr) in the instance's fragment store
// until its first fragment is translated. A non-final fragment whose data
// is not a multiple of 8 bytes is malformed.
func (t *Translator) hold(key *fragKey, hdr, p []byte, in *packet.Info, malformed nat64.DropReason, now int64) nat64.DropReason {
	data := p[in.L4Off:in.Len]
	if len(data) == 0 || in.MoreFrags && len(data)%8 != 0 {
		return malformed
	}
	f := fragment{key: key, hdr: hdr, data: data, off: in.FragOffset, more: in.MoreFrags}
	if _, r := t.frags.add(&f, now, &t.Counters, nil, nil); r != nat64.Translated {
		return r
	}
	t.Counters.FragmentsHeld++
	return nat64.Translated
}
