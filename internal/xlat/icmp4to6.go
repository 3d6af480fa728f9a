package xlat

import (
	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
	"github.com/nat64kit/nat64kit/internal/state"
)

// This file is RFC 7915 §4.2 and RFC 6146 §3.5.3: an ICMPv4 error about a
// packet of one of our sessions becomes an ICMPv6 error.

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

// icmpError4to6 translates an ICMPv4 error into ICMPv6 in the Output's
// arena (RFC 7915 §4.2, §4.5). hop is the outer hop limit to use (already
// decremented).
func (t *Translator) icmpError4to6(p []byte, in *packet.Info, hop uint8, out *Output) nat64.DropReason {
	h := packet.IPv4(p)
	ic := packet.ICMPv4(p[in.L4Off:])
	if packet.Checksum(ic, 0) != 0xffff {
		return nat64.BadICMPChecksum
	}
	orig, ext, ok := splitOriginal(ic[packet.ICMPHeaderLen:], ic.Length4884())
	if !ok {
		return nat64.MalformedInner
	}
	var ii packet.Info
	if packet.ParseInner(orig, 4, &ii) != packet.OK {
		return nat64.MalformedInner
	}
	innerL4 := orig[ii.L4Off:ii.Len]
	if ii.Proto == nat64.ProtoICMPv4 && ii.HasL4Header() && packet.IsICMPv4Error(innerL4[0]) {
		return nat64.ICMPErrorInError
	}
	if !ii.HasL4Header() {
		return nat64.UntranslatableICMP
	}
	ih := packet.IPv4(orig)
	it4, iz := ih.Src(), ih.Dst()
	claimedTotal := int(ih.TotalLen())
	typ, code, rest, has4884, ok := t.mapError4to6(ic, claimedTotal)
	if !ok {
		return nat64.UntranslatableICMP
	}
	var f state.Flow4
	f.Src, f.Dst = iz, it4
	if f.Proto, f.SrcPort, f.DstPort, ok = quotedTuple(ii.Proto, innerL4, nat64.ProtoICMPv4); !ok {
		return nat64.UntranslatableICMP
	}
	x6, xport, ok := t.tbl.LookupInbound(&f)
	if !ok {
		return nat64.NoBinding
	}
	if !t.prefix.CanCarry(iz) {
		return nat64.SrcNotEmbeddable
	}
	iz6 := t.prefix.Embed(iz)
	src6 := t.prefix.Embed(h.Src())
	claimedL4 := claimedTotal - ii.L4Off
	if claimedL4 < 0 {
		return nat64.MalformedInner
	}
	fh := 0
	if ii.Fragmented {
		fh = packet.FragmentLen
	}
	innerHdr := packet.IPv6HeaderLen + fh
	origOut := innerHdr + len(innerL4)
	const hdrs = packet.IPv6HeaderLen + packet.ICMPHeaderLen
	padded, total, ext := errorLayout(hdrs, origOut, 8, packet.ICMPv6ErrorMax, ext, has4884)
	b := out.alloc(total)
	if b == nil {
		return nat64.OutputFull
	}
	clear(b)
	packet.IPv6(b).Encode(&packet.IPv6Fields{
		TrafficClass: h.TOS(),
		PayloadLen:   uint16(total - packet.IPv6HeaderLen),
		NextHeader:   nat64.ProtoICMPv6,
		HopLimit:     hop,
		Src:          &src6,
		Dst:          &x6,
	})
	if ext != nil {
		rest |= packet.ICMPv6Rest4884(uint8(padded / 8))
	}
	packet.ICMPv6(b[packet.IPv6HeaderLen:]).Encode(&packet.ICMPFields{Type: typ, Code: code, Rest: rest})

	// The quoted packet, translated as its own header claims.
	q := packet.IPv6Fields{
		TrafficClass: ih.TOS(),
		PayloadLen:   uint16(fh + claimedL4),
		NextHeader:   nextHeader6(ii.Proto),
		HopLimit:     ih.TTL(),
		Src:          &x6,
		Dst:          &iz6,
	}
	if fh != 0 {
		packet.IPv6Fragment(b[hdrs+packet.IPv6HeaderLen:]).Encode(&packet.IPv6FragmentFields{
			NextHeader: q.NextHeader, Offset: ii.FragOffset, More: ii.MoreFrags, ID: ii.FragID,
		})
		q.NextHeader = nat64.ProtoFragment
	}
	packet.IPv6(b[hdrs:]).Encode(&q)
	l4 := b[hdrs+innerHdr : hdrs+min(origOut, total-hdrs)]
	copy(l4, innerL4)
	addrOld := addrSum4(&it4, &iz)
	addrNew := addrSum6(&x6, &iz6)
	switch ii.Proto {
	case nat64.ProtoTCP, nat64.ProtoUDP:
		rewriteQuotedPort(l4, ii.Proto, false, xport, addrOld, addrNew)
	case nat64.ProtoICMPv4:
		echo4to6(l4, addrNew, xport, claimedL4)
	}
	if ext != nil {
		copy(b[hdrs+padded:], ext)
	}
	icmp := packet.ICMPv6(b[packet.IPv6HeaderLen:])
	icmp.SetChecksum(^packet.Checksum(icmp, packet.PseudoHeaderSum6(&src6, &x6, nat64.ProtoICMPv6, uint32(total-packet.IPv6HeaderLen))))
	out.push(b)
	t.count(FourToSix, nat64.ProtoICMPv4, b)
	return nat64.Translated
}
