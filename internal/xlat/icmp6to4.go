package xlat

import (
	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
	"github.com/nat64kit/nat64kit/internal/state"
)

// This file is RFC 7915 §5.2 and RFC 6146 §3.5.3: an ICMPv6 error about a
// packet of one of our sessions becomes an ICMPv4 error.

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

// icmpError6to4 translates an ICMPv6 error (p, the whole IPv6 packet) into
// ICMPv4 in the Output's arena (RFC 7915 §5.2, RFC 6146 §3.5.3 / §3.6.3:
// outer source becomes the pool4 address of the session the quoted packet
// belongs to; inner addresses come from that session, reversed).
func (t *Translator) icmpError6to4(p []byte, in *packet.Info, z [4]byte, now int64, out *Output) nat64.DropReason {
	h := packet.IPv6(p)
	src6, dst6 := h.Src(), h.Dst()
	ic := packet.ICMPv6(p[in.L4Off:])
	if packet.Checksum(ic, packet.PseudoHeaderSum6(&src6, &dst6, nat64.ProtoICMPv6, uint32(len(ic)))) != 0xffff {
		return nat64.BadICMPChecksum
	}
	typ, code, rest, has4884, ok := t.mapError6to4(ic)
	if !ok {
		return nat64.UntranslatableICMP
	}
	length := 0
	if ic.Type() == packet.ICMPv6DestUnreach || ic.Type() == packet.ICMPv6TimeExceeded {
		length = ic.Length4884()
	}
	orig, ext, ok := splitOriginal(ic[packet.ICMPHeaderLen:], length)
	if !ok {
		return nat64.MalformedInner
	}
	var ii packet.Info
	if packet.ParseInner(orig, 6, &ii) != packet.OK {
		return nat64.MalformedInner
	}
	innerL4 := orig[ii.L4Off:ii.Len]
	if ii.Proto == nat64.ProtoICMPv6 && ii.HasL4Header() && packet.IsICMPv6Error(innerL4[0]) {
		return nat64.ICMPErrorInError
	}
	if !ii.HasL4Header() {
		return nat64.UntranslatableICMP
	}
	ih := packet.IPv6(orig)
	isrc6, idst6 := ih.Src(), ih.Dst()
	iz, ok := t.prefix.Extract(isrc6)
	if !ok {
		return nat64.UntranslatableICMP
	}
	var f state.Flow6
	f.Src, f.Dst = idst6, iz
	if f.Proto, f.SrcPort, f.DstPort, ok = quotedTuple(ii.Proto, innerL4, nat64.ProtoICMPv6); !ok {
		return nat64.UntranslatableICMP
	}
	t4, tport, ok := t.tbl.LookupOutbound(&f)
	if !ok {
		return nat64.NoBinding
	}
	// The quoted packet's own length, as its header claims (it is
	// usually truncated).
	claimedL4 := packet.IPv6HeaderLen + int(ih.PayloadLen()) - ii.L4Off
	if claimedL4 < 0 {
		return nat64.MalformedInner
	}

	origOut := packet.IPv4MinHeader + len(innerL4)
	const hdrs = packet.IPv4MinHeader + packet.ICMPHeaderLen
	padded, total, ext := errorLayout(hdrs, origOut, 4, packet.ICMPv4ErrorMax, ext, has4884)
	b := out.alloc(total)
	if b == nil {
		return nat64.OutputFull
	}
	clear(b)
	packet.IPv4(b).Encode(&packet.IPv4Fields{
		TOS:      h.TrafficClass(),
		TotalLen: uint16(total),
		ID:       t.nextID(),
		TTL:      h.HopLimit() - 1,
		Protocol: nat64.ProtoICMPv4,
		Src:      t4,
		Dst:      z,
	})
	if ext != nil {
		rest |= packet.ICMPv4Rest4884(uint8(padded / 4))
	}
	packet.ICMPv4(b[packet.IPv4MinHeader:]).Encode(&packet.ICMPFields{Type: typ, Code: code, Rest: rest})

	// The quoted packet, translated as its own header claims (RFC 7915
	// §5.3: no hop limit decrement inside).
	inner := b[hdrs:]
	q := packet.IPv4Fields{
		TOS:      ih.TrafficClass(),
		TotalLen: uint16(packet.IPv4MinHeader + claimedL4),
		TTL:      ih.HopLimit(),
		Protocol: ii.Proto,
		Src:      iz,
		Dst:      t4,
	}
	if ii.FragHdrOff != 0 {
		q.ID, q.MF, q.FragOffset = uint16(ii.FragID), ii.MoreFrags, ii.FragOffset
	} else {
		q.DF = packet.IPv4MinHeader+claimedL4 > dfThreshold
	}
	if ii.Proto == nat64.ProtoICMPv6 {
		q.Protocol = nat64.ProtoICMPv4
	}
	packet.IPv4(inner).Encode(&q)
	l4 := inner[packet.IPv4MinHeader:min(origOut, total-hdrs)]
	copy(l4, innerL4)
	addrOld := addrSum6(&isrc6, &idst6)
	addrNew := addrSum4(&iz, &t4)
	switch ii.Proto {
	case nat64.ProtoTCP, nat64.ProtoUDP:
		rewriteQuotedPort(l4, ii.Proto, true, tport, addrOld, addrNew)
	case nat64.ProtoICMPv6:
		echo6to4(l4, addrOld, tport, claimedL4)
	}
	if ext != nil {
		copy(b[hdrs+padded:], ext)
	}
	icmp := packet.ICMPv4(b[packet.IPv4MinHeader:])
	icmp.SetChecksum(^packet.Checksum(icmp, 0))
	out.push(b)
	t.count(SixToFour, nat64.ProtoICMPv4, b)
	return nat64.Translated
}
