package xlat

import (
	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
)

// This file holds what both ICMP-error halves share, and the errors the
// translator originates itself (Time Exceeded, Packet Too Big,
// Fragmentation Needed, Parameter Problem, Address and Port Unreachable).

// rfc4884MinOriginal is the least length of the "original datagram" field
// when ICMP extensions follow it (RFC 4884 §4.1, §5.1).
const rfc4884MinOriginal = 128

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

// quotedTuple returns the protocol and ports of a packet quoted in an ICMP
// error, reversed into the direction of the error itself (the quoted packet
// travelled the other way). For ICMP only echo is stateful: the identifier
// stands for both ports. icmpProto is the ICMP of the quoted packet's IP
// version (ICMPv6 in IPv6, ICMPv4 in IPv4).
func quotedTuple(proto nat64.Proto, l4 []byte, icmpProto nat64.Proto) (p nat64.Transport, src, dst uint16, ok bool) {
	switch proto {
	case nat64.ProtoTCP:
		return nat64.TCP, packet.TCP(l4).DstPort(), packet.TCP(l4).SrcPort(), true
	case nat64.ProtoUDP:
		return nat64.UDP, packet.UDP(l4).DstPort(), packet.UDP(l4).SrcPort(), true
	case icmpProto:
		var echo bool
		var id uint16
		if icmpProto == nat64.ProtoICMPv6 {
			t := packet.ICMPv6(l4).Type()
			echo, id = t == packet.ICMPv6EchoRequest || t == packet.ICMPv6EchoReply, packet.ICMPv6(l4).Ident()
		} else {
			t := packet.ICMPv4(l4).Type()
			echo, id = t == packet.ICMPv4EchoRequest || t == packet.ICMPv4EchoReply, packet.ICMPv4(l4).Ident()
		}
		if echo {
			return nat64.ICMP, id, id, true
		}
	}
	return 0, 0, 0, false
}

// icmp6Error sends an ICMPv6 error about orig (an IPv6 packet) back to its
// source. The error's source is orig's destination: an address of our
// prefix, which the sender routes to us anyway (the translator has no
// IPv6 address of its own in the config).
func (t *Translator) icmp6Error(orig []byte, in *packet.Info, typ, code uint8, rest uint32, out *Output) {
	h := packet.IPv6(orig)
	// RFC 4443 §2.4(e): never about an ICMPv6 error, nor to a multicast or
	// unspecified source.
	if in.Proto == nat64.ProtoICMPv6 && in.HasL4Header() && packet.IsICMPv6Error(orig[in.L4Off]) {
		return
	}
	src, dst := h.Dst(), h.Src()
	if dst[0] == 0xff || dst == ([16]byte{}) {
		return
	}
	if !t.allowError() {
		return
	}
	n := min(len(orig), packet.ICMPv6ErrorMax-packet.IPv6HeaderLen-packet.ICMPHeaderLen)
	b := out.alloc(packet.IPv6HeaderLen + packet.ICMPHeaderLen + n)
	if b == nil {
		return
	}
	packet.IPv6(b).Encode(&packet.IPv6Fields{
		PayloadLen: uint16(packet.ICMPHeaderLen + n),
		NextHeader: nat64.ProtoICMPv6,
		HopLimit:   hopLimitErrors,
		Src:        &src,
		Dst:        &dst,
	})
	ic := packet.ICMPv6(b[packet.IPv6HeaderLen:])
	ic.Encode(&packet.ICMPFields{Type: typ, Code: code, Rest: rest})
	copy(ic[packet.ICMPHeaderLen:], orig[:n])
	ic.SetChecksum(^packet.Checksum(ic, packet.PseudoHeaderSum6(&src, &dst, nat64.ProtoICMPv6, uint32(len(ic)))))
	out.push(b)
	t.Counters.ICMPErrors++
}

// icmp4Error sends an ICMPv4 error about orig back to its source, from
// orig's destination (one of our pool4 addresses).
func (t *Translator) icmp4Error(orig []byte, in *packet.Info, typ, code uint8, rest uint32, out *Output) {
	h := packet.IPv4(orig)
	// RFC 1812 §4.3.2.7: not about an ICMP error, a non-first fragment,
	// or a packet from a non-unicast source.
	if in.Proto == nat64.ProtoICMPv4 && in.HasL4Header() && packet.IsICMPv4Error(orig[in.L4Off]) {
		return
	}
	if !in.HasL4Header() {
		return
	}
	src, dst := h.Dst(), h.Src()
	if dst[0] == 0 || dst[0] >= 224 {
		return
	}
	if !t.allowError() {
		return
	}
	n := min(len(orig), packet.ICMPv4ErrorMax-packet.IPv4MinHeader-packet.ICMPHeaderLen)
	b := out.alloc(packet.IPv4MinHeader + packet.ICMPHeaderLen + n)
	if b == nil {
		return
	}
	packet.IPv4(b).Encode(&packet.IPv4Fields{
		TotalLen: uint16(len(b)),
		ID:       t.nextID(),
		TTL:      hopLimitErrors,
		Protocol: nat64.ProtoICMPv4,
		Src:      src,
		Dst:      dst,
	})
	ic := packet.ICMPv4(b[packet.IPv4MinHeader:])
	ic.Encode(&packet.ICMPFields{Type: typ, Code: code, Rest: rest})
	copy(ic[packet.ICMPHeaderLen:], orig[:n])
	ic.SetChecksum(^packet.Checksum(ic, 0))
	out.push(b)
	t.Counters.ICMPErrors++
}

// allowError is the rate limit every error the translator originates
// passes (RFC 4443 §2.4(f), RFC 1812 §4.3.2.8), once the rules of when not
// to send one at all have been applied; an error it refuses is counted.
func (t *Translator) allowError() bool {
	if t.errLimit.allow(t.now) {
		return true
	}
	t.Counters.ICMPErrorsSuppressed++
	return false
}

// PortUnreachable answers an IPv4 SYN that the state table held for
// simultaneous open and then let expire (RFC 6146 §3.5.2.2) with ICMPv4
// Port Unreachable, appended to out (not reset). Call it from the
// onHeldSYN callback of state.Table.Expire, with the time given to Expire
// (the error is rate-limited like every other). It reports whether a
// packet was added.
func (t *Translator) PortUnreachable(pkt []byte, now int64, out *Output) bool {
	t.now = now
	var in packet.Info
	if packet.ParseIPv4(pkt, &in) != packet.OK {
		return false
	}
	n := out.N
	t.icmp4Error(pkt[:in.Len], &in, packet.ICMPv4DestUnreach, packet.ICMPv4CodePortUnr, 0, out)
	return out.N > n
}

// rewriteQuotedPort is the upper-layer step for the TCP or UDP packet an
// ICMP error quotes (a packet we sent, coming back): its destination port,
// or its source port, becomes port, and its checksum, where the quote holds
// one, follows the change of addresses and port.
func rewriteQuotedPort(l4 []byte, proto nat64.Proto, dst bool, port, addrOld, addrNew uint16) {
	// TCP and UDP keep their ports in the same place; only the checksum moves.
	ports := packet.UDP(l4)
	old := ports.SrcPort()
	if dst {
		old = ports.DstPort()
	}
	switch {
	case proto == nat64.ProtoTCP && len(l4) >= packet.TCPChecksumOffset+2:
		tc := packet.TCP(l4)
		tc.SetChecksum(packet.UpdateChecksum(packet.UpdateChecksum(tc.Checksum(), addrOld, addrNew), old, port))
	case proto == nat64.ProtoUDP && ports.Checksum() != 0:
		ports.SetChecksum(packet.UpdateChecksum(packet.UpdateChecksum(ports.Checksum(), addrOld, addrNew), old, port))
	}
	if dst {
		ports.SetDstPort(port)
	} else {
		ports.SetSrcPort(port)
	}
}

// errorLayout sizes a translated ICMP error: hdrs of headers, then the
// quoted packet (origLen bytes), then, when the error carries an RFC 4884
// extension, the quote padded to at least 128 bytes and to align, and ext.
// An error that would pass limit loses its extension first, then the
// quote's tail.
func errorLayout(hdrs, origLen, align, limit int, ext []byte, has4884 bool) (padded, total int, kept []byte) {
	if len(ext) > 0 && has4884 {
		padded = (max(origLen, rfc4884MinOriginal) + align - 1) &^ (align - 1)
		if total = hdrs + padded + len(ext); total <= limit {
			return padded, total, ext
		}
	}
	return origLen, min(hdrs+origLen, limit), nil
}
