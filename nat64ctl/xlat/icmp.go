package xlat

import (
	"github.com/nat64kit/nat64kit/nat64conf"
	"github.com/nat64kit/nat64kit/nat64ctl/packet"
	"github.com/nat64kit/nat64kit/nat64ctl/state"
)

// rfc4884MinOriginal is the least length of the "original datagram" field
// when ICMP extensions follow it (RFC 4884 §4.1, §5.1).
const rfc4884MinOriginal = 128

// plateaus are RFC 1191 §7's MTU plateaus, largest first.
var plateaus = [...]int{65535, 32000, 17914, 8166, 4352, 2002, 1492, 1006, 508, 296, 68}

// plateauBelow returns the largest plateau smaller than length (RFC 7915
// §4.2: a Fragmentation Needed reporting MTU 0 came from an RFC 1191-unaware
// router).
func plateauBelow(length int) int {
	for _, p := range plateaus {
		if p < length {
			return p
		}
	}
	return plateaus[len(plateaus)-1]
}

// paramPointer6to4 maps an ICMPv6 Parameter Problem pointer into the IPv4
// header (RFC 7915 §5.2 figure 6); ok is false for "drop".
func paramPointer6to4(p uint32) (uint8, bool) {
	switch {
	case p == 0 || p == 1:
		return uint8(p), true
	case p == 4 || p == 5:
		return 2, true
	case p == 6:
		return 9, true
	case p == 7:
		return 8, true
	case p >= 8 && p <= 23:
		return 12, true
	case p >= 24 && p <= 39:
		return 16, true
	}
	return 0, false
}

// paramPointer4to6 maps an ICMPv4 Parameter Problem pointer into the IPv6
// header (RFC 7915 §4.2 figure 3).
func paramPointer4to6(p uint8) (uint32, bool) {
	switch {
	case p == 0 || p == 1:
		return uint32(p), true
	case p == 2 || p == 3:
		return 4, true
	case p == 8:
		return 7, true
	case p == 9:
		return 6, true
	case p >= 12 && p <= 15:
		return 8, true
	case p >= 16 && p <= 19:
		return 24, true
	}
	return 0, false
}

// mapError6to4 returns the ICMPv4 type, code and second word for an ICMPv6
// error (RFC 7915 §5.2); has4884 tells whether the ICMPv4 type has an RFC
// 4884 length field.
func (t *Translator) mapError6to4(ic packet.ICMPv6) (typ, code uint8, rest uint32, has4884, ok bool) {
	switch ic.Type() {
	case packet.ICMPv6DestUnreach:
		switch ic.Code() {
		case 0, 2, 3:
			return packet.ICMPv4DestUnreach, 1, 0, true, true // host unreachable
		case 1:
			return packet.ICMPv4DestUnreach, 10, 0, true, true // communication administratively prohibited
		case 4:
			return packet.ICMPv4DestUnreach, 3, 0, true, true // port unreachable
		}
	case packet.ICMPv6PacketTooBig:
		mtu := int(min(ic.MTU(), 1<<20)) - 20
		mtu = min(mtu, t.mtu4, t.mtu6-20)
		mtu = max(mtu, packet.IPv4MinMTU)
		return packet.ICMPv4DestUnreach, packet.ICMPv4CodeFragNeeded, uint32(mtu), true, true
	case packet.ICMPv6TimeExceeded:
		return packet.ICMPv4TimeExceeded, ic.Code(), 0, true, true
	case packet.ICMPv6ParamProblem:
		switch ic.Code() {
		case 0:
			if p, ok := paramPointer6to4(ic.Pointer()); ok {
				return packet.ICMPv4ParamProblem, 0, uint32(p) << 24, true, true
			}
		case 1:
			return packet.ICMPv4DestUnreach, 2, 0, true, true // protocol unreachable
		}
	}
	return 0, 0, 0, false, false
}

// mapError4to6 is RFC 7915 §4.2 for ICMPv4 errors; innerLen is the quoted
// packet's total length (for MTU 0 reports).
func (t *Translator) mapError4to6(ic packet.ICMPv4, innerLen int) (typ, code uint8, rest uint32, has4884, ok bool) {
	switch ic.Type() {
	case packet.ICMPv4DestUnreach:
		switch ic.Code() {
		case 0, 1, 5, 6, 7, 8, 11, 12:
			return packet.ICMPv6DestUnreach, 0, 0, true, true
		case 2:
			return packet.ICMPv6ParamProblem, 1, 6, false, true // pointer at Next Header
		case 3:
			return packet.ICMPv6DestUnreach, 4, 0, true, true
		case 4:
			reported := int(ic.MTU())
			if reported == 0 {
				reported = plateauBelow(innerLen)
			}
			mtu := min(reported+20, t.mtu6, t.mtu4+20)
			mtu = max(mtu, packet.IPv6MinMTU)
			return packet.ICMPv6PacketTooBig, 0, uint32(mtu), false, true
		case 9, 10, 13, 15:
			return packet.ICMPv6DestUnreach, 1, 0, true, true
		}
	case packet.ICMPv4TimeExceeded:
		return packet.ICMPv6TimeExceeded, ic.Code(), 0, true, true
	case packet.ICMPv4ParamProblem:
		if ic.Code() == 0 || ic.Code() == 2 {
			if p, ok := paramPointer4to6(ic.Pointer()); ok {
				return packet.ICMPv6ParamProblem, 0, p, false, true
			}
		}
	}
	return 0, 0, 0, false, false
}

// splitOriginal separates an ICMP error body into the quoted datagram and
// any RFC 4884 extension, given the length field in bytes (0: none).
func splitOriginal(body []byte, length int) (orig, ext []byte, ok bool) {
	if length == 0 {
		return body, nil, true
	}
	if length > len(body) {
		return nil, nil, false
	}
	return body[:length], body[length:], true
}

// icmpError6to4 translates an ICMPv6 error (p, the whole IPv6 packet) into
// ICMPv4 in the Output's arena (RFC 7915 §5.2, RFC 6146 §3.5.3 / §3.6.3:
// outer source becomes the pool4 address of the session the quoted packet
// belongs to; inner addresses come from that session, reversed).
func (t *Translator) icmpError6to4(p []byte, in *packet.Info, z [4]byte, now int64, out *Output) DropReason {
	h := packet.IPv6(p)
	src6, dst6 := h.Src(), h.Dst()
	ic := packet.ICMPv6(p[in.L4Off:])
	if packet.Checksum(ic, packet.PseudoHeaderSum6(&src6, &dst6, packet.ProtoICMPv6, uint32(len(ic)))) != 0xffff {
		return BadICMPChecksum
	}
	typ, code, rest, has4884, ok := t.mapError6to4(ic)
	if !ok {
		return UntranslatableICMP
	}
	length := 0
	if ic.Type() == packet.ICMPv6DestUnreach || ic.Type() == packet.ICMPv6TimeExceeded {
		length = ic.Length4884()
	}
	orig, ext, ok := splitOriginal(ic[packet.ICMPHeaderLen:], length)
	if !ok {
		return MalformedInner
	}
	var ii packet.Info
	if packet.ParseInner(orig, 6, &ii) != packet.OK {
		return MalformedInner
	}
	innerL4 := orig[ii.L4Off:ii.Len]
	if ii.Proto == packet.ProtoICMPv6 && ii.HasL4Header() && packet.IsICMPv6Error(innerL4[0]) {
		return ICMPErrorInError
	}
	if !ii.HasL4Header() {
		return UntranslatableICMP
	}
	ih := packet.IPv6(orig)
	isrc6, idst6 := ih.Src(), ih.Dst()
	iz, ok := t.prefix.Extract(isrc6)
	if !ok {
		return UntranslatableICMP
	}
	var f state.Flow6
	f.Src, f.Dst = idst6, iz
	if f.Proto, f.SrcPort, f.DstPort, ok = quotedTuple(ii.Proto, innerL4, packet.ProtoICMPv6); !ok {
		return UntranslatableICMP
	}
	t4, tport, ok := t.tbl.LookupOutbound(&f)
	if !ok {
		return NoBinding
	}
	// The quoted packet's own length, as its header claims (it is
	// usually truncated).
	claimedL4 := packet.IPv6HeaderLen + int(ih.PayloadLen()) - ii.L4Off
	if claimedL4 < 0 {
		return MalformedInner
	}

	origOut := packet.IPv4MinHeader + len(innerL4)
	padded := origOut
	if len(ext) > 0 && has4884 {
		padded = (max(origOut, rfc4884MinOriginal) + 3) &^ 3
	} else {
		ext = nil
	}
	const hdrs = packet.IPv4MinHeader + packet.ICMPHeaderLen
	total := hdrs + padded + len(ext)
	if total > packet.ICMPv4ErrorMax {
		ext, padded = nil, origOut
		total = min(hdrs+origOut, packet.ICMPv4ErrorMax)
	}
	b := out.alloc(total)
	if b == nil {
		return OutputFull
	}
	clear(b)
	o := packet.IPv4(b)
	o.SetVersionIHL(packet.IPv4MinHeader)
	o.SetTOS(h.TrafficClass())
	o.SetTotalLen(uint16(total))
	o.SetID(t.nextID())
	o.SetTTL(h.HopLimit() - 1)
	o.SetProtocol(packet.ProtoICMPv4)
	o.SetSrc(t4)
	o.SetDst(z)
	o.ComputeHeaderChecksum()

	icmp := packet.ICMPv4(b[packet.IPv4MinHeader:])
	icmp.SetTypeCode(typ, code)
	icmp.SetRest(rest)
	if ext != nil {
		icmp.SetLength4884(uint8(padded / 4))
	}

	inner := b[hdrs:]
	ih4 := packet.IPv4(inner)
	ih4.SetVersionIHL(packet.IPv4MinHeader)
	ih4.SetTOS(ih.TrafficClass())
	ih4.SetTotalLen(uint16(packet.IPv4MinHeader + claimedL4))
	if ii.FragHdrOff != 0 {
		ih4.SetID(uint16(ii.FragID))
		ih4.SetFlagsOffset(false, ii.MoreFrags, ii.FragOffset)
	} else {
		ih4.SetFlagsOffset(packet.IPv4MinHeader+claimedL4 > dfThreshold, false, 0)
	}
	ih4.SetTTL(ih.HopLimit()) // RFC 7915 §5.3: no decrement inside
	if ii.Proto == packet.ProtoICMPv6 {
		ih4.SetProtocol(packet.ProtoICMPv4)
	} else {
		ih4.SetProtocol(ii.Proto)
	}
	ih4.SetSrc(iz)
	ih4.SetDst(t4)
	ih4.ComputeHeaderChecksum()
	l4 := inner[packet.IPv4MinHeader:min(origOut, total-hdrs)]
	copy(l4, innerL4)
	addrOld := addrSum6(&isrc6, &idst6)
	addrNew := addrSum4(&iz, &t4)
	switch ii.Proto {
	case packet.ProtoTCP:
		tc := packet.TCP(l4)
		if len(l4) >= packet.TCPChecksumOffset+2 {
			ck := packet.UpdateChecksumSum(tc.Checksum(), addrOld, addrNew)
			tc.SetChecksum(packet.UpdateChecksum16(ck, tc.DstPort(), tport))
		}
		tc.SetDstPort(tport)
	case packet.ProtoUDP:
		u := packet.UDP(l4)
		if ck := u.Checksum(); ck != 0 {
			ck = packet.UpdateChecksumSum(ck, addrOld, addrNew)
			u.SetChecksum(packet.UpdateChecksum16(ck, u.DstPort(), tport))
		}
		u.SetDstPort(tport)
	case packet.ProtoICMPv6:
		echo6to4n(l4, &isrc6, &idst6, tport, claimedL4)
	}
	if ext != nil {
		copy(b[hdrs+padded:], ext)
	}
	icmp = packet.ICMPv4(b[packet.IPv4MinHeader:])
	icmp.SetChecksum(^packet.Checksum(icmp, 0))
	out.push(b)
	t.count(SixToFour, packet.ProtoICMPv4, b)
	return Translated
}

// icmpError4to6 translates an ICMPv4 error into ICMPv6 in the Output's
// arena (RFC 7915 §4.2, §4.5). hop is the outer hop limit to use (already
// decremented).
func (t *Translator) icmpError4to6(p []byte, in *packet.Info, hop uint8, out *Output) DropReason {
	h := packet.IPv4(p)
	ic := packet.ICMPv4(p[in.L4Off:])
	if packet.Checksum(ic, 0) != 0xffff {
		return BadICMPChecksum
	}
	orig, ext, ok := splitOriginal(ic[packet.ICMPHeaderLen:], ic.Length4884())
	if !ok {
		return MalformedInner
	}
	var ii packet.Info
	if packet.ParseInner(orig, 4, &ii) != packet.OK {
		return MalformedInner
	}
	innerL4 := orig[ii.L4Off:ii.Len]
	if ii.Proto == packet.ProtoICMPv4 && ii.HasL4Header() && packet.IsICMPv4Error(innerL4[0]) {
		return ICMPErrorInError
	}
	if !ii.HasL4Header() {
		return UntranslatableICMP
	}
	ih := packet.IPv4(orig)
	it4, iz := ih.Src(), ih.Dst()
	claimedTotal := int(ih.TotalLen())
	typ, code, rest, has4884, ok := t.mapError4to6(ic, claimedTotal)
	if !ok {
		return UntranslatableICMP
	}
	var f state.Flow4
	f.Src, f.Dst = iz, it4
	if f.Proto, f.SrcPort, f.DstPort, ok = quotedTuple(ii.Proto, innerL4, packet.ProtoICMPv4); !ok {
		return UntranslatableICMP
	}
	x6, xport, ok := t.tbl.LookupInbound(&f)
	if !ok {
		return NoBinding
	}
	if !t.prefix.CanCarry(iz) {
		return SrcNotEmbeddable
	}
	iz6 := t.prefix.Embed(iz)
	src6 := t.prefix.Embed(h.Src())
	claimedL4 := claimedTotal - ii.L4Off
	if claimedL4 < 0 {
		return MalformedInner
	}
	fh := 0
	if ii.Fragmented {
		fh = packet.FragmentLen
	}
	innerHdr := packet.IPv6HeaderLen + fh
	origOut := innerHdr + len(innerL4)
	padded := origOut
	if len(ext) > 0 && has4884 {
		padded = (max(origOut, rfc4884MinOriginal) + 7) &^ 7
	} else {
		ext = nil
	}
	const hdrs = packet.IPv6HeaderLen + packet.ICMPHeaderLen
	total := hdrs + padded + len(ext)
	if total > packet.ICMPv6ErrorMax {
		ext, padded = nil, origOut
		total = min(hdrs+origOut, packet.ICMPv6ErrorMax)
	}
	b := out.alloc(total)
	if b == nil {
		return OutputFull
	}
	clear(b)
	o := packet.IPv6(b)
	o.SetVersionClassFlow(h.TOS(), 0)
	o.SetPayloadLen(uint16(total - packet.IPv6HeaderLen))
	o.SetNextHeader(packet.ProtoICMPv6)
	o.SetHopLimit(hop)
	o.SetSrc(&src6)
	o.SetDst(&x6)

	icmp := packet.ICMPv6(b[packet.IPv6HeaderLen:])
	icmp.SetTypeCode(typ, code)
	icmp.SetRest(rest)
	if ext != nil {
		icmp.SetLength4884(uint8(padded / 8))
	}

	inner := packet.IPv6(b[hdrs:])
	inner.SetVersionClassFlow(ih.TOS(), 0)
	inner.SetPayloadLen(uint16(fh + claimedL4))
	inner.SetHopLimit(ih.TTL())
	inner.SetSrc(&x6)
	inner.SetDst(&iz6)
	nh := ii.Proto
	if nh == packet.ProtoICMPv4 {
		nh = packet.ProtoICMPv6
	}
	if fh != 0 {
		inner.SetNextHeader(packet.ProtoFragment)
		packet.IPv6Fragment(b[hdrs+packet.IPv6HeaderLen:]).Set(nh, ii.FragOffset, ii.MoreFrags, ii.FragID)
	} else {
		inner.SetNextHeader(nh)
	}
	l4 := b[hdrs+innerHdr : hdrs+min(origOut, total-hdrs)]
	copy(l4, innerL4)
	addrOld := addrSum4(&it4, &iz)
	addrNew := addrSum6(&x6, &iz6)
	switch ii.Proto {
	case packet.ProtoTCP:
		tc := packet.TCP(l4)
		if len(l4) >= packet.TCPChecksumOffset+2 {
			ck := packet.UpdateChecksumSum(tc.Checksum(), addrOld, addrNew)
			tc.SetChecksum(packet.UpdateChecksum16(ck, tc.SrcPort(), xport))
		}
		tc.SetSrcPort(xport)
	case packet.ProtoUDP:
		u := packet.UDP(l4)
		if ck := u.Checksum(); ck != 0 {
			ck = packet.UpdateChecksumSum(ck, addrOld, addrNew)
			u.SetChecksum(packet.UpdateChecksum16(ck, u.SrcPort(), xport))
		}
		u.SetSrcPort(xport)
	case packet.ProtoICMPv4:
		echo4to6(l4, &x6, &iz6, xport, claimedL4)
	}
	if ext != nil {
		copy(b[hdrs+padded:], ext)
	}
	icmp = packet.ICMPv6(b[packet.IPv6HeaderLen:])
	icmp.SetChecksum(^packet.Checksum(icmp, packet.PseudoHeaderSum6(&src6, &x6, packet.ProtoICMPv6, uint32(total-packet.IPv6HeaderLen))))
	out.push(b)
	t.count(FourToSix, packet.ProtoICMPv4, b)
	return Translated
}

// icmp6Error sends an ICMPv6 error about orig (an IPv6 packet) back to its
// source. The error's source is orig's destination: an address of our
// prefix, which the sender routes to us anyway (the translator has no
// IPv6 address of its own in the config).
func (t *Translator) icmp6Error(orig []byte, in *packet.Info, typ, code uint8, rest uint32, out *Output) {
	h := packet.IPv6(orig)
	// RFC 4443 §2.4(e): never about an ICMPv6 error, nor to a multicast or
	// unspecified source.
	if in.Proto == packet.ProtoICMPv6 && in.HasL4Header() && packet.IsICMPv6Error(orig[in.L4Off]) {
		return
	}
	src, dst := h.Dst(), h.Src()
	if dst[0] == 0xff || dst == ([16]byte{}) {
		return
	}
	n := min(len(orig), packet.ICMPv6ErrorMax-packet.IPv6HeaderLen-packet.ICMPHeaderLen)
	b := out.alloc(packet.IPv6HeaderLen + packet.ICMPHeaderLen + n)
	if b == nil {
		return
	}
	o := packet.IPv6(b)
	o.SetVersionClassFlow(0, 0)
	o.SetPayloadLen(uint16(packet.ICMPHeaderLen + n))
	o.SetNextHeader(packet.ProtoICMPv6)
	o.SetHopLimit(hopLimitErrors)
	o.SetSrc(&src)
	o.SetDst(&dst)
	ic := packet.ICMPv6(b[packet.IPv6HeaderLen:])
	ic.SetTypeCode(typ, code)
	ic.SetChecksum(0)
	ic.SetRest(rest)
	copy(ic[packet.ICMPHeaderLen:], orig[:n])
	ic.SetChecksum(^packet.Checksum(ic, packet.PseudoHeaderSum6(&src, &dst, packet.ProtoICMPv6, uint32(len(ic)))))
	out.push(b)
	t.Counters.ICMPErrors++
}

// icmp4Error sends an ICMPv4 error about orig back to its source, from
// orig's destination (one of our pool4 addresses).
func (t *Translator) icmp4Error(orig []byte, in *packet.Info, typ, code uint8, rest uint32, out *Output) {
	h := packet.IPv4(orig)
	// RFC 1812 §4.3.2.7: not about an ICMP error, a non-first fragment,
	// or a packet from a non-unicast source.
	if in.Proto == packet.ProtoICMPv4 && in.HasL4Header() && packet.IsICMPv4Error(orig[in.L4Off]) {
		return
	}
	if !in.HasL4Header() {
		return
	}
	src, dst := h.Dst(), h.Src()
	if dst[0] == 0 || dst[0] >= 224 {
		return
	}
	n := min(len(orig), packet.ICMPv4ErrorMax-packet.IPv4MinHeader-packet.ICMPHeaderLen)
	b := out.alloc(packet.IPv4MinHeader + packet.ICMPHeaderLen + n)
	if b == nil {
		return
	}
	clear(b[:packet.IPv4MinHeader+packet.ICMPHeaderLen])
	o := packet.IPv4(b)
	o.SetVersionIHL(packet.IPv4MinHeader)
	o.SetTotalLen(uint16(len(b)))
	o.SetID(t.nextID())
	o.SetTTL(hopLimitErrors)
	o.SetProtocol(packet.ProtoICMPv4)
	o.SetSrc(src)
	o.SetDst(dst)
	o.ComputeHeaderChecksum()
	ic := packet.ICMPv4(b[packet.IPv4MinHeader:])
	ic.SetTypeCode(typ, code)
	ic.SetRest(rest)
	copy(ic[packet.ICMPHeaderLen:], orig[:n])
	ic.SetChecksum(^packet.Checksum(ic, 0))
	out.push(b)
	t.Counters.ICMPErrors++
}

// PortUnreachable answers an IPv4 SYN that the state table held for
// simultaneous open and then let expire (RFC 6146 §3.5.2.2) with ICMPv4
// Port Unreachable, appended to out (not reset). Call it from the
// onHeldSYN callback of state.Table.Expire. It reports whether a packet was
// added.
func (t *Translator) PortUnreachable(pkt []byte, out *Output) bool {
	var in packet.Info
	if packet.ParseIPv4(pkt, &in) != packet.OK {
		return false
	}
	n := out.N
	t.icmp4Error(pkt[:in.Len], &in, packet.ICMPv4DestUnreach, packet.ICMPv4CodePortUnr, 0, out)
	return out.N > n
}

// quotedTuple returns the protocol and ports of a packet quoted in an ICMP
// error, reversed into the direction of the error itself (the quoted packet
// travelled the other way). For ICMP only echo is stateful: the identifier
// stands for both ports. icmpProto is the ICMP of the quoted packet's IP
// version (ICMPv6 in IPv6, ICMPv4 in IPv4).
func quotedTuple(proto uint8, l4 []byte, icmpProto uint8) (p nat64conf.Protocol, src, dst uint16, ok bool) {
	switch proto {
	case packet.ProtoTCP:
		return nat64conf.TCP, packet.TCP(l4).DstPort(), packet.TCP(l4).SrcPort(), true
	case packet.ProtoUDP:
		return nat64conf.UDP, packet.UDP(l4).DstPort(), packet.UDP(l4).SrcPort(), true
	case icmpProto:
		var echo bool
		var id uint16
		if icmpProto == packet.ProtoICMPv6 {
			t := packet.ICMPv6(l4).Type()
			echo, id = t == packet.ICMPv6EchoRequest || t == packet.ICMPv6EchoReply, packet.ICMPv6(l4).Ident()
		} else {
			t := packet.ICMPv4(l4).Type()
			echo, id = t == packet.ICMPv4EchoRequest || t == packet.ICMPv4EchoReply, packet.ICMPv4(l4).Ident()
		}
		if echo {
			return nat64conf.ICMP, id, id, true
		}
	}
	return 0, 0, 0, false
}
