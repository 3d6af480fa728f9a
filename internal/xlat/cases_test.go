package xlat

// The golden cases of the translator: one row per translation rule, with
// the packet that goes in and what must come out. It is long because it is
// a table of data; the runner is golden_test.go.

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
)

const now0 = int64(1e12)

// --- canonical input packets ---

func syn6() []byte {
	return fillChecksum(ipv6(hostX, serverZ6, 64, nat64.ProtoTCP, tcpSeg(portX, portZ, nat64.TCPSyn, nil), 0, nil))
}

func synAck4() []byte {
	return fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoTCP, 0x4242, true, tcpSeg(portZ, portT, nat64.TCPSyn|nat64.TCPAck, nil)))
}

func udp6(n int) []byte {
	return fillChecksum(ipv6(hostX, serverZ6, 64, nat64.ProtoUDP, udpDgram(portXudp, portZudp, pattern(n)), 0, nil))
}

func udp4(n int, df bool) []byte {
	return fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoUDP, 0x4343, df, udpDgram(portZudp, portTudp, pattern(n))))
}

func echo6(typ uint8) []byte {
	return fillChecksum(ipv6(hostX, serverZ6, 64, nat64.ProtoICMPv6, echo(typ, identX, 7, pattern(24)), 0, nil))
}

func echo4(typ uint8) []byte {
	return fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoICMPv4, 0x4444, false, echo(typ, identT, 7, pattern(24))))
}

// emittedSyn4 is the IPv4 packet the translator sent for syn6 (what an IPv4
// router quotes back).
func emittedSyn4() []byte {
	return fillChecksum(ipv4(pool4, serverZ, 63, nat64.ProtoTCP, 0x1001, false, tcpSeg(portT, portZ, nat64.TCPSyn, nil)))
}

// emittedUDP6 is the IPv6 packet the translator sent for udp4 (what an
// IPv6 node quotes back).
func emittedUDP6() []byte {
	return fillChecksum(ipv6(serverZ6, hostX, 49, nat64.ProtoUDP, udpDgram(portZudp, portXudp, pattern(16)), 0, nil))
}

func icmp4Err(typ, code uint8, rest uint32, quoted []byte) []byte {
	return fillChecksum(ipv4(router4, pool4, 60, nat64.ProtoICMPv4, 0x5555, false, icmpMsg(typ, code, rest, quoted)))
}

func icmp6Err(typ, code uint8, rest uint32, quoted []byte) []byte {
	return fillChecksum(ipv6(router6, serverZ6, 64, nat64.ProtoICMPv6, icmpMsg(typ, code, rest, quoted), 0, nil))
}

func frag6(src, dst [16]byte, nh nat64.Proto, off int, more bool, id uint32, data []byte) []byte {
	fh := make([]byte, 8)
	packet.IPv6Fragment(fh).Encode(&packet.IPv6FragmentFields{NextHeader: nh, Offset: off, More: more, ID: id})
	return ipv6(src, dst, 64, nh, data, nat64.ProtoFragment, fh)
}

// udpDatagram6 returns the whole UDP datagram (with a correct IPv6
// checksum) that fragment tests split.
func udpDatagram6(n int) []byte {
	p := udp6(n)
	return p[40:]
}

func udpDatagram4(n int) []byte {
	p := udp4(n, false)
	return p[20:]
}

func prime(t *testing.T, tr *Translator, pkts ...[]byte) {
	t.Helper()
	for _, p := range pkts {
		if r, _ := run(tr, p, now0); r != nat64.Translated {
			t.Fatalf("setup packet dropped: %v", r)
		}
	}
}

func primeSyn(t *testing.T, tr *Translator) { prime(t, tr, syn6()) }
func primeUDP(t *testing.T, tr *Translator) { prime(t, tr, udp6(16)) }
func primeEcho(t *testing.T, tr *Translator) {
	prime(t, tr, echo6(packet.ICMPv6EchoRequest))
}

// Expected headers of the common outputs.
var (
	wantSyn4 = want4{src: pool4, dst: serverZ, ttl: 63, proto: nat64.ProtoTCP, tos: 0xb8, totalLen: 40, sport: portT, dport: portZ}
	wantUDP4 = want4{src: pool4, dst: serverZ, ttl: 63, proto: nat64.ProtoUDP, tos: 0xb8, sport: portTudp, dport: portZudp}
	wantUDP6 = want6{src: serverZ6, dst: hostX, hop: 49, nh: nat64.ProtoUDP, tc: 0xb8, sport: portZudp, dport: portXudp}
)

// err4to6 is a golden case for an ICMPv4 error about the translated SYN.
func err4to6(name string, typ, code uint8, rest uint32, wtyp, wcode uint8, wrest uint32, why string) goldenCase {
	return goldenCase{
		name:  name,
		why:   why,
		setup: primeSyn,
		input: func() []byte { return icmp4Err(typ, code, rest, emittedSyn4()) },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			o := out[0]
			assert6(t, "outer", o, want6{src: prefix.Embed(router4), dst: hostX, hop: 59, tc: 0xb8, nh: nat64.ProtoICMPv6, payloadLen: 8 + 40 + 20, sport: -1, dport: -1})
			assertICMP(t, "icmpv6", o[40:], wtyp, wcode, wrest)
			assert6(t, "inner", o[48:], want6{src: hostX, dst: serverZ6, hop: 63, nh: nat64.ProtoTCP, tc: 0xb8, payloadLen: 20, sport: portX, dport: portZ})
			if ok, _ := l4ChecksumOK(o[48:]); !ok {
				t.Errorf("inner TCP checksum not valid after translation")
			}
		},
	}
}

// err6to4 is a golden case for an ICMPv6 error about the translated UDP
// reply (X received Z's datagram and complains).
func err6to4(name string, typ, code uint8, rest uint32, wtyp, wcode uint8, wrest uint32, why string) goldenCase {
	return goldenCase{
		name:  name,
		why:   why,
		setup: primeUDP,
		input: func() []byte { return icmp6Err(typ, code, rest, emittedUDP6()) },
		masks: maskID4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			o := out[0]
			assert4(t, "outer", o, want4{src: pool4, dst: serverZ, ttl: 63, proto: nat64.ProtoICMPv4, tos: 0xb8, totalLen: 20 + 8 + 20 + 24, sport: -1, dport: -1})
			assertICMP(t, "icmpv4", o[20:], wtyp, wcode, wrest)
			assert4(t, "inner", o[28:], want4{src: serverZ, dst: pool4, ttl: 49, proto: nat64.ProtoUDP, tos: 0xb8, totalLen: 44, sport: portZudp, dport: portTudp})
			if ok, _ := l4ChecksumOK(o[28:]); !ok {
				t.Errorf("inner UDP checksum not valid after translation")
			}
		},
	}
}

// noBindingCase is an IPv4 packet no BIB entry claims, answered with ICMPv4
// Destination Unreachable of that code quoting the whole packet (qlen
// bytes), from T to Z.
func noBindingCase(name, why string, input func() []byte, code uint8, qlen int) goldenCase {
	return goldenCase{name: name, why: why, input: input, masks: maskID4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.NoBinding, out, 1)
			assert4(t, "icmpv4", out[0], want4{src: pool4, dst: serverZ, ttl: 64, proto: nat64.ProtoICMPv4, totalLen: 28 + qlen, sport: -1, dport: -1})
			assertICMP(t, "icmpv4", out[0][20:], packet.ICMPv4DestUnreach, code, 0)
			if q := input(); !bytes.Equal(out[0][28:], q) {
				t.Errorf("quote differs from the packet:\n got %x\nwant %x", out[0][28:], q)
			}
		}}
}

func dropCase(name, why string, setup func(*testing.T, *Translator), input func() []byte, want nat64.DropReason) goldenCase {
	return goldenCase{name: name, why: why, setup: setup, input: input,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) { wantVerdict(t, r, want, out, 0) }}
}

var goldenCases = []goldenCase{
	{
		name:  "tcp_syn_6to4",
		why:   "TCP SYN from X to Z' becomes T:5000 -> Z:80; TTL 64-1, TOS copied, DF clear (<= 1260 bytes).",
		input: syn6, masks: maskID4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			assert4(t, "ipv4", out[0], wantSyn4)
		},
	},
	{
		name:  "tcp_synack_4to6",
		why:   "SYN-ACK from Z:80 to T:5000 goes to X:40000 from Z'; hop limit 50-1, flow label 0, no Fragment header although DF... DF is irrelevant when it fits.",
		setup: primeSyn, input: synAck4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			assert6(t, "ipv6", out[0], want6{src: serverZ6, dst: hostX, hop: 49, nh: nat64.ProtoTCP, tc: 0xb8, payloadLen: 20, sport: portZ, dport: portX})
		},
	},
	{
		name:  "udp_6to4",
		why:   "UDP X:40001 -> Z':53 becomes T:5001 -> Z:53, checksum updated incrementally.",
		input: func() []byte { return udp6(32) }, masks: maskID4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			w := wantUDP4
			w.totalLen = 20 + 8 + 32
			assert4(t, "ipv4", out[0], w)
			if !bytes.Equal(out[0][28:], pattern(32)) {
				t.Errorf("payload changed")
			}
		},
	},
	{
		name:  "udp_4to6",
		why:   "UDP reply Z:53 -> T:5001 goes to X:40001.",
		setup: primeUDP, input: func() []byte { return udp4(16, false) },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			w := wantUDP6
			w.payloadLen = 24
			assert6(t, "ipv6", out[0], w)
		},
	},
	{
		name:  "udp_zero_checksum_4to6",
		why:   "IPv4 UDP with checksum 0 gets a computed checksum on the IPv6 side (RFC 7915 §4.5, default configuration).",
		setup: primeUDP,
		input: func() []byte {
			p := udp4(16, false)
			p[26], p[27] = 0, 0
			return p
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			if binary.BigEndian.Uint16(out[0][46:]) == 0 {
				t.Fatalf("checksum still zero")
			}
			if ok, _ := l4ChecksumOK(out[0]); !ok {
				t.Fatalf("computed checksum invalid")
			}
		},
	},
	dropCase("udp_zero_checksum_drop_4to6", "With DropZeroChecksumUDP set, IPv4 UDP with checksum 0 is dropped and counted.",
		nil, func() []byte { p := udp4(16, false); p[26], p[27] = 0, 0; return p }, nat64.ZeroChecksumUDP),
	dropCase("udp_zero_checksum_fragment_4to6", "A fragmented IPv4 UDP datagram with checksum 0 cannot get a checksum without reassembly: dropped.",
		primeUDP, func() []byte {
			d := udpDatagram4(40)
			d[6], d[7] = 0, 0
			p := ipv4(serverZ, pool4, 50, nat64.ProtoUDP, 0x4601, false, d[:24])
			setFrag4(p, 0, true)
			return p
		}, nat64.FragmentedZeroChecksumUDP),
	dropCase("udp6_zero_checksum_6to4", "IPv6 UDP with checksum 0 is invalid (RFC 8200 §8.1): dropped.",
		nil, func() []byte { p := udp6(8); p[46], p[47] = 0, 0; return p }, nat64.UDP6ZeroChecksum),
	{
		name:  "echo_request_6to4",
		why:   "ICMPv6 echo request 128 becomes ICMPv4 8 with the pool4 identifier 6000; checksum drops the pseudo-header.",
		input: func() []byte { return echo6(packet.ICMPv6EchoRequest) }, masks: maskID4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			assert4(t, "ipv4", out[0], want4{src: pool4, dst: serverZ, ttl: 63, proto: nat64.ProtoICMPv4, tos: 0xb8, totalLen: 20 + 32, sport: -1, dport: -1})
			assertICMP(t, "icmpv4", out[0][20:], 8, 0, identT<<16|7)
		},
	},
	{
		name:  "echo_reply_4to6",
		why:   "ICMPv4 echo reply 0 to identifier 6000 becomes ICMPv6 129 to X with identifier 0x1234.",
		setup: primeEcho, input: func() []byte { return echo4(packet.ICMPv4EchoReply) },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			assert6(t, "ipv6", out[0], want6{src: serverZ6, dst: hostX, hop: 49, nh: nat64.ProtoICMPv6, tc: 0xb8, payloadLen: 32, sport: -1, dport: -1})
			assertICMP(t, "icmpv6", out[0][40:], 129, 0, identX<<16|7)
		},
	},
	{
		name:  "echo_request_4to6",
		why:   "IPv4-initiated echo request to the static ICMP binding T/6000 reaches X as ICMPv6 128.",
		setup: primeEcho, input: func() []byte { return echo4(packet.ICMPv4EchoRequest) },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			assertICMP(t, "icmpv6", out[0][40:], 128, 0, identX<<16|7)
		},
	},
	{
		name:  "echo_reply_6to4",
		why:   "ICMPv6 echo reply 129 becomes ICMPv4 0.",
		input: func() []byte { return echo6(packet.ICMPv6EchoReply) }, masks: maskID4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			assertICMP(t, "icmpv4", out[0][20:], 0, 0, identT<<16|7)
		},
	},
	dropCase("nd_neighbor_solicitation_6to4", "Neighbour discovery (135) is never translated.",
		nil, func() []byte {
			return fillChecksum(ipv6(hostX, serverZ6, 255, nat64.ProtoICMPv6, icmpMsg(135, 0, 0, make([]byte, 16)), 0, nil))
		}, nat64.UntranslatableICMP),

	// ICMPv4 errors -> ICMPv6 (RFC 7915 §4.2).
	err4to6("icmp4_unreach_net_4to6", 3, 0, 0, 1, 0, 0, "Destination Unreachable 3/0 (net) -> 1/0."),
	err4to6("icmp4_unreach_host_4to6", 3, 1, 0, 1, 0, 0, "3/1 (host) -> 1/0."),
	err4to6("icmp4_unreach_proto_4to6", 3, 2, 0, 4, 1, 6, "3/2 (protocol) -> Parameter Problem 4/1 pointing at Next Header (6)."),
	err4to6("icmp4_unreach_port_4to6", 3, 3, 0, 1, 4, 0, "3/3 (port) -> 1/4."),
	err4to6("icmp4_unreach_srcroute_4to6", 3, 5, 0, 1, 0, 0, "3/5 (source route failed) -> 1/0."),
	err4to6("icmp4_unreach_netprohib_4to6", 3, 9, 0, 1, 1, 0, "3/9 (net administratively prohibited) -> 1/1."),
	err4to6("icmp4_unreach_adminprohib_4to6", 3, 13, 0, 1, 1, 0, "3/13 (communication administratively prohibited) -> 1/1."),
	err4to6("icmp4_frag_needed_4to6", 3, 4, 1400, 2, 0, 1420,
		"Fragmentation Needed MTU 1400 -> Packet Too Big max(1280, min(1400+20, 1500, 1500+20)) = 1420."),
	err4to6("icmp4_frag_needed_small_4to6", 3, 4, 576, 2, 0, 1280,
		"Fragmentation Needed MTU 576 -> Packet Too Big clamped up to 1280."),
	err4to6("icmp4_time_exceeded_4to6", 11, 1, 0, 3, 1, 0, "Time Exceeded 11/1 -> 3/1 (code copied)."),
	err4to6("icmp4_param_problem_4to6", 12, 0, 9<<24, 4, 0, 6, "Parameter Problem pointer 9 (protocol) -> 4/0 pointer 6 (next header)."),
	err4to6("icmp4_param_problem_addr_4to6", 12, 0, 16<<24, 4, 0, 24, "Parameter Problem pointer 16 (destination) -> pointer 24."),
	dropCase("icmp4_param_problem_unmapped_4to6", "Parameter Problem pointer 10 (header checksum) has no IPv6 equivalent: dropped.",
		primeSyn, func() []byte { return icmp4Err(12, 0, 10<<24, emittedSyn4()) }, nat64.UntranslatableICMP),
	dropCase("icmp4_unreach_precedence_4to6", "3/14 (host precedence violation) has no mapping: dropped.",
		primeSyn, func() []byte { return icmp4Err(3, 14, 0, emittedSyn4()) }, nat64.UntranslatableICMP),
	dropCase("icmp4_redirect_4to6", "Redirect (5) is single-hop: dropped.",
		primeSyn, func() []byte { return icmp4Err(5, 1, 0, emittedSyn4()) }, nat64.UntranslatableICMP),
	{
		name: "icmp4_frag_needed_mtu0_4to6",
		why: "Fragmentation Needed with MTU 0 (pre-RFC 1191 router): plateau below the quoted total length 1500 is 1492;\n" +
			"with IPv6 MTU 9000 and IPv4 MTU 9000: min(1492+20, 9000, 9020) = 1512. Quoted packet truncated to 28 bytes.",
		mod:   func(in *testConfig) { in.MTU, in.IPv4MTU = 9000, 9000 },
		setup: primeSyn,
		input: func() []byte {
			q := emittedSyn4()[:28]
			binary.BigEndian.PutUint16(q[2:], 1500)
			setIPv4HeaderChecksum(q)
			return icmp4Err(3, 4, 0, q)
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			assertICMP(t, "icmpv6", out[0][40:], 2, 0, 1512)
			assert6(t, "inner", out[0][48:], want6{src: hostX, dst: serverZ6, hop: 63, tc: 0xb8, nh: nat64.ProtoTCP, payloadLen: 1480, sport: portX, dport: portZ})
			if len(out[0]) != 48+40+8 {
				t.Errorf("length %d, want 96 (truncated quote kept truncated)", len(out[0]))
			}
		},
	},
	{
		name: "icmp4_time_exceeded_rfc4884_4to6",
		why: "Time Exceeded with an RFC 4884 extension: the original-datagram field (128 bytes, length 32 words) holds a\n" +
			"40-byte packet and zero padding; translated, the packet is 60 bytes, padded to the RFC 4884 minimum of 128\n" +
			"(length 16 in 64-bit words), and the extension follows unchanged.",
		setup: primeSyn,
		input: func() []byte {
			q := make([]byte, 128)
			copy(q, emittedSyn4())
			ext := []byte{0x20, 0, 0, 0, 0, 8, 1, 1, 0xde, 0xad, 0xbe, 0xef}
			binary.BigEndian.PutUint16(ext[2:], ^refSum(ext, 0))
			return icmp4Err(11, 0, 32<<16, append(q, ext...))
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			o := out[0]
			if o[40] != 3 || o[41] != 0 || o[44] != 16 {
				t.Fatalf("ICMPv6 %d/%d length %d, want 3/0 length 16", o[40], o[41], o[44])
			}
			if len(o) != 48+128+12 || !bytes.Equal(o[48+128:48+128+12], []byte{0x20, 0, o[48+130], o[48+131], 0, 8, 1, 1, 0xde, 0xad, 0xbe, 0xef}) {
				t.Fatalf("extension not found after the padded original datagram: %x", o)
			}
			assert6(t, "inner", o[48:], want6{src: hostX, dst: serverZ6, hop: 63, tc: 0xb8, nh: nat64.ProtoTCP, payloadLen: 20, sport: portX, dport: portZ})
		},
	},
	dropCase("icmp4_error_in_error_4to6", "An ICMPv4 error quoting an ICMPv4 error is never translated.",
		primeSyn, func() []byte {
			inner := fillChecksum(ipv4(pool4, serverZ, 63, nat64.ProtoICMPv4, 1, false, icmpMsg(3, 3, 0, emittedSyn4()[:28])))
			return icmp4Err(3, 1, 0, inner)
		}, nat64.ICMPErrorInError),
	dropCase("icmp4_error_no_session_4to6", "An ICMPv4 error about a flow with no state is dropped.",
		nil, func() []byte {
			q := fillChecksum(ipv4(pool4, serverZ, 63, nat64.ProtoTCP, 1, false, tcpSeg(portT+7, portZ, nat64.TCPSyn, nil)))
			return icmp4Err(3, 1, 0, q)
		}, nat64.NoBinding),

	// No BIB entry for an IPv4 packet (RFC 6146 §3.5.1, §3.5.2.2, §3.5.3).
	noBindingCase("no_binding_udp_4to6", "UDP from Z to T:9999, which no BIB entry holds: dropped (no_binding), and ICMPv4 Destination Unreachable 3/1 (Host Unreachable) goes back to Z from T quoting it (RFC 6146 §3.5.1).",
		func() []byte {
			return fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoUDP, 0x4343, false, udpDgram(portZudp, 9999, pattern(16))))
		}, 1, 20+8+16),
	noBindingCase("no_binding_echo_4to6", "Echo request from Z to T with an identifier no BIB entry holds: 3/1 back to Z (RFC 6146 §3.5.3).",
		func() []byte {
			return fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoICMPv4, 0x4444, false, echo(packet.ICMPv4EchoRequest, identT+1, 7, pattern(24))))
		}, 1, 20+8+24),
	noBindingCase("no_binding_tcp_syn_4to6", "TCP SYN from Z to T:80, outside pool4's ports (1024-65535), so no IPv6 SYN could ever claim it: not held, and Port Unreachable 3/3 at once, what a held SYN gets after 6 s (RFC 6146 §3.5.2.2).",
		func() []byte {
			return fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoTCP, 0x4242, true, tcpSeg(portZ, 80, nat64.TCPSyn, nil)))
		}, 3, 20+20),
	dropCase("no_binding_tcp_ack_4to6", "TCP ACK from Z to T:9999 without state: silently dropped (RFC 6146 §3.5.2.2, CLOSED state), no ICMP error.",
		nil, func() []byte {
			return fillChecksum(ipv4(serverZ, pool4, 50, nat64.ProtoTCP, 0x4242, true, tcpSeg(portZ, 9999, nat64.TCPAck, nil)))
		}, nat64.NoBinding),
	dropCase("no_binding_hairpin_6to4", "X sends to T':9999, its own translator's pool4 address, where no BIB entry is: the hairpinned IPv4 form has no binding, and no ICMPv4 error is sent toward our own pool4 address.",
		nil, func() []byte {
			return fillChecksum(ipv6(hostX, pool4in6, 64, nat64.ProtoUDP, udpDgram(portXudp, 9999, pattern(8)), 0, nil))
		}, nat64.NoBinding),

	// ICMPv6 errors -> ICMPv4 (RFC 7915 §5.2).
	err6to4("icmp6_unreach_noroute_6to4", 1, 0, 0, 3, 1, 0, "Destination Unreachable 1/0 -> 3/1 (host)."),
	err6to4("icmp6_unreach_prohib_6to4", 1, 1, 0, 3, 10, 0, "1/1 (administratively prohibited) -> 3/10."),
	err6to4("icmp6_unreach_addr_6to4", 1, 3, 0, 3, 1, 0, "1/3 (address unreachable) -> 3/1."),
	err6to4("icmp6_unreach_port_6to4", 1, 4, 0, 3, 3, 0, "1/4 (port) -> 3/3."),
	err6to4("icmp6_packet_too_big_6to4", 2, 0, 1400, 3, 4, 1380, "Packet Too Big 1400 -> Fragmentation Needed min(1400-20, 1500, 1500-20) = 1380."),
	err6to4("icmp6_time_exceeded_6to4", 3, 0, 0, 11, 0, 0, "Time Exceeded 3/0 -> 11/0."),
	err6to4("icmp6_param_problem_6to4", 4, 0, 7, 12, 0, 8<<24, "Parameter Problem pointer 7 (hop limit) -> 12/0 pointer 8 (TTL)."),
	err6to4("icmp6_param_problem_nh_6to4", 4, 1, 0, 3, 2, 0, "Parameter Problem 4/1 (unrecognized next header) -> 3/2 (protocol unreachable)."),
	dropCase("icmp6_param_problem_option_6to4", "Parameter Problem 4/2 (unrecognized option) has no mapping: dropped.",
		primeUDP, func() []byte { return icmp6Err(4, 2, 40, emittedUDP6()) }, nat64.UntranslatableICMP),
	dropCase("icmp6_error_in_error_6to4", "An ICMPv6 error quoting an ICMPv6 error is never translated.",
		primeUDP, func() []byte {
			inner := fillChecksum(ipv6(serverZ6, hostX, 49, nat64.ProtoICMPv6, icmpMsg(1, 4, 0, emittedUDP6()[:48]), 0, nil))
			return icmp6Err(1, 0, 0, inner)
		}, nat64.ICMPErrorInError),
	dropCase("icmp6_error_bad_checksum_6to4", "An ICMPv6 error with a wrong checksum would be recomputed, so it is dropped instead.",
		primeUDP, func() []byte { p := icmp6Err(1, 0, 0, emittedUDP6()); p[42] ^= 0x55; return p }, nat64.BadICMPChecksum),

	{
		name:  "icmp4_unreach_echo_4to6",
		why:   "Host Unreachable quoting the translated echo request (id 6000): the inner echo goes back to ICMPv6 128 with id 0x1234 and a valid inner checksum.",
		setup: primeEcho,
		input: func() []byte {
			q := fillChecksum(ipv4(pool4, serverZ, 63, nat64.ProtoICMPv4, 0x1001, false, echo(packet.ICMPv4EchoRequest, identT, 7, pattern(24))))
			return icmp4Err(3, 1, 0, q)
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			o := out[0]
			assertICMP(t, "icmpv6", o[40:], 1, 0, 0)
			assert6(t, "inner", o[48:], want6{src: hostX, dst: serverZ6, hop: 63, tc: 0xb8, nh: nat64.ProtoICMPv6, payloadLen: 32, sport: -1, dport: -1})
			assertICMP(t, "inner echo", o[88:], 128, 0, identX<<16|7)
			if ok, _ := l4ChecksumOK(o[48:]); !ok {
				t.Errorf("inner ICMPv6 checksum not valid after translation")
			}
		},
	},
	{
		name:  "icmp6_time_exceeded_truncated_6to4",
		why:   "Time Exceeded quoting a 1200-byte packet: the ICMPv4 result is cut at 576 bytes (RFC 1812), the inner total length still says 1180.",
		setup: primeUDP,
		input: func() []byte {
			q := fillChecksum(ipv6(serverZ6, hostX, 49, nat64.ProtoUDP, udpDgram(portZudp, portXudp, pattern(1200-48)), 0, nil))
			return icmp6Err(3, 0, 0, q)
		},
		masks: maskID4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			o := out[0]
			assert4(t, "outer", o, want4{src: pool4, dst: serverZ, ttl: 63, proto: nat64.ProtoICMPv4, tos: 0xb8, totalLen: 576, sport: -1, dport: -1})
			assertICMP(t, "icmpv4", o[20:], 11, 0, 0)
			assert4(t, "inner", o[28:], want4{src: serverZ, dst: pool4, ttl: 49, proto: nat64.ProtoUDP, tos: 0xb8, totalLen: 1180, sport: portZudp, dport: portTudp})
		},
	},
	{
		name: "icmp6_unreach_rfc4884_6to4",
		why: "Destination Unreachable with an RFC 4884 extension (length 16 words of 8 bytes = 128): the 64-byte quoted\n" +
			"IPv6 packet becomes 44 bytes of IPv4, padded to 128 (length 32 words of 4 bytes), extension copied after it.",
		setup: primeUDP,
		input: func() []byte {
			q := make([]byte, 128)
			copy(q, emittedUDP6())
			ext := []byte{0x20, 0, 0, 0, 0, 8, 1, 1, 0xca, 0xfe, 0xba, 0xbe}
			binary.BigEndian.PutUint16(ext[2:], ^refSum(ext, 0))
			return icmp6Err(1, 4, 16<<24, append(q, ext...))
		},
		masks: maskID4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			o := out[0]
			if o[20] != 3 || o[21] != 3 || o[25] != 32 {
				t.Fatalf("ICMPv4 %d/%d length %d, want 3/3 length 32", o[20], o[21], o[25])
			}
			if len(o) != 28+128+12 || !bytes.Equal(o[28+128+4:], []byte{0, 8, 1, 1, 0xca, 0xfe, 0xba, 0xbe}) {
				t.Fatalf("extension not found after the padded original datagram: %x", o)
			}
			assert4(t, "inner", o[28:], want4{src: serverZ, dst: pool4, ttl: 49, proto: nat64.ProtoUDP, tos: 0xb8, totalLen: 44, sport: portZudp, dport: portTudp})
		},
	},
	// Hop limit / TTL.
	{
		name:  "hop_limit_expired_6to4",
		why:   "Hop limit 1: not translated; ICMPv6 Time Exceeded 3/0 goes back to X from Z' quoting the packet.",
		input: func() []byte { p := udp6(16); p[7] = 1; return p },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.TTLExpired, out, 1)
			assert6(t, "icmpv6", out[0], want6{src: serverZ6, dst: hostX, hop: 64, nh: nat64.ProtoICMPv6, payloadLen: 8 + 64, sport: -1, dport: -1})
			assertICMP(t, "icmpv6", out[0][40:], 3, 0, 0)
		},
	},
	{
		name:  "ttl_expired_4to6",
		why:   "TTL 1: not translated; ICMPv4 Time Exceeded 11/0 goes back to Z from T quoting the packet.",
		setup: primeUDP, input: func() []byte { p := udp4(16, false); p[8] = 1; setIPv4HeaderChecksum(p); return p },
		masks: maskID4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.TTLExpired, out, 1)
			assert4(t, "icmpv4", out[0], want4{src: pool4, dst: serverZ, ttl: 64, proto: nat64.ProtoICMPv4, totalLen: 28 + 44, sport: -1, dport: -1})
			assertICMP(t, "icmpv4", out[0][20:], 11, 0, 0)
		},
	},
	{
		name: "routing_header_6to4",
		why:  "Routing header with Segments Left 1: ICMPv6 Parameter Problem 4/0 pointing at Segments Left (offset 43).",
		input: func() []byte {
			rh := []byte{byte(nat64.ProtoUDP), 0, 253, 1, 0, 0, 0, 0}
			return fillChecksum(ipv6(hostX, serverZ6, 64, nat64.ProtoUDP, udpDgram(portXudp, portZudp, pattern(8)), nat64.ProtoRouting, rh))
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.SegmentsLeft, out, 1)
			assert6(t, "icmpv6", out[0], want6{src: serverZ6, dst: hostX, hop: 64, nh: nat64.ProtoICMPv6, sport: -1, dport: -1})
			assertICMP(t, "icmpv6", out[0][40:], 4, 0, 43)
		},
	},

	// Fragments.
	{
		name: "fragment_first_6to4",
		why:  "First IPv6 fragment (M=1, id 0xabcd1234): IPv4 id 0x1234, MF set, DF clear, ports translated.",
		input: func() []byte {
			return frag6(hostX, serverZ6, nat64.ProtoUDP, 0, true, 0xabcd1234, udpDatagram6(40)[:32])
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			w := wantUDP4
			w.mf, w.totalLen = true, 52
			assert4(t, "ipv4", out[0], w)
			if packet.IPv4(out[0]).ID() != 0x1234 {
				t.Errorf("id %#x, want 0x1234", packet.IPv4(out[0]).ID())
			}
		},
	},
	{
		name: "fragment_later_6to4",
		why:  "Later IPv6 fragment (offset 32, M=0) follows the first fragment's translation through the fragment table.",
		setup: func(t *testing.T, tr *Translator) {
			prime(t, tr, frag6(hostX, serverZ6, nat64.ProtoUDP, 0, true, 0xabcd1234, udpDatagram6(40)[:32]))
		},
		input: func() []byte {
			return frag6(hostX, serverZ6, nat64.ProtoUDP, 32, false, 0xabcd1234, udpDatagram6(40)[32:])
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			assert4(t, "ipv4", out[0], want4{src: pool4, dst: serverZ, ttl: 63, proto: nat64.ProtoUDP, tos: 0xb8, fragOff: 32, totalLen: 36, sport: -1, dport: -1})
			if !bytes.Equal(out[0][20:], udpDatagram6(40)[32:]) {
				t.Errorf("later fragment payload changed")
			}
		},
	},
	{
		name:  "fragment_before_first_6to4",
		why:   "A later UDP fragment whose first fragment has not come yet waits for it (RFC 6146 §4: out of order): nothing is sent yet.",
		input: func() []byte { return frag6(hostX, serverZ6, nat64.ProtoUDP, 32, false, 0x777, pattern(16)) },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 0)
		},
	},
	{
		name:  "fragment_first_4to6",
		why:   "First IPv4 fragment (MF, id 0x4601) becomes IPv6 with a Fragment header (id 0x4601, M=1, offset 0), port translated.",
		setup: primeUDP,
		input: func() []byte {
			p := ipv4(serverZ, pool4, 50, nat64.ProtoUDP, 0x4601, false, udpDatagram4(40)[:32])
			setFrag4(p, 0, true)
			return p
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			w := wantUDP6
			w.frag, w.more, w.fragID, w.payloadLen = true, true, 0x4601, 40
			assert6(t, "ipv6", out[0], w)
		},
	},
	{
		name: "fragment_later_4to6",
		why:  "Later IPv4 fragment (offset 32) reaches X through the fragment table; Fragment header offset 32, M=0.",
		setup: func(t *testing.T, tr *Translator) {
			primeUDP(t, tr)
			p := ipv4(serverZ, pool4, 50, nat64.ProtoUDP, 0x4601, false, udpDatagram4(40)[:32])
			setFrag4(p, 0, true)
			prime(t, tr, p)
		},
		input: func() []byte {
			p := ipv4(serverZ, pool4, 50, nat64.ProtoUDP, 0x4601, false, udpDatagram4(40)[32:])
			setFrag4(p, 32, false)
			return p
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			assert6(t, "ipv6", out[0], want6{src: serverZ6, dst: hostX, hop: 49, nh: nat64.ProtoUDP, tc: 0xb8, frag: true, fragOff: 32, fragID: 0x4601, payloadLen: 8 + 16, sport: -1, dport: -1})
		},
	},
	{
		name:  "fragment_before_first_4to6",
		why:   "A later IPv4 UDP fragment whose first fragment has not come yet waits for it: nothing is sent yet.",
		setup: primeUDP,
		input: func() []byte {
			p := ipv4(serverZ, pool4, 50, nat64.ProtoUDP, 0x4999, false, pattern(16))
			setFrag4(p, 32, false)
			return p
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 0)
		},
	},
	{
		name: "fragmented_echo_6to4",
		why:  "The first fragment of an ICMPv6 echo is held for reassembly (its checksum covers the whole datagram): nothing is sent yet.",
		input: func() []byte {
			return frag6(hostX, serverZ6, nat64.ProtoICMPv6, 0, true, 5, echo(128, identX, 1, pattern(24)))
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 0)
		},
	},

	// MTU.
	{
		name:  "df_too_big_4to6",
		why:   "1500-byte IPv4 UDP with DF: 1520 bytes as IPv6 > MTU 1500, so ICMPv4 Fragmentation Needed with MTU 1500-20 = 1480, quoting 548 bytes.",
		setup: primeUDP, input: func() []byte { return udp4(1500-28, true) },
		masks: maskID4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.FragNeededSent, out, 1)
			assert4(t, "icmpv4", out[0], want4{src: pool4, dst: serverZ, ttl: 64, proto: nat64.ProtoICMPv4, totalLen: 576, sport: -1, dport: -1})
			assertICMP(t, "icmpv4", out[0][20:], 3, 4, 1480)
		},
	},
	{
		name:  "fragment_nodf_4to6",
		why:   "lowest_ipv6_mtu raised to the MTU, 1500: 1500-byte IPv4 UDP without DF is split into IPv6 fragments of at most 1500 bytes: 1448 + 32 payload bytes, id 0x4343.",
		mod:   func(in *testConfig) { in.LowestIPv6MTU = 1500 },
		setup: primeUDP, input: func() []byte { return udp4(1500-28, false) },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 2)
			w := wantUDP6
			w.frag, w.more, w.fragID, w.payloadLen = true, true, 0x4343, 8+1448
			assert6(t, "frag0", out[0], w)
			assert6(t, "frag1", out[1], want6{src: serverZ6, dst: hostX, hop: 49, nh: nat64.ProtoUDP, tc: 0xb8, frag: true, fragOff: 1448, fragID: 0x4343, payloadLen: 8 + 32, sport: -1, dport: -1})
			whole := append(append([]byte(nil), out[0][48:]...), out[1][48:]...)
			if ok, _ := l4ChecksumOK(append(append([]byte(nil), out[0][:40]...), whole...)); false && ok {
				t.Log("unreachable")
			}
			if refSum(whole, refPseudo6(hostX6(out[0]), out[0][24:40], nat64.ProtoUDP, len(whole))) != 0xffff {
				t.Errorf("reassembled UDP checksum invalid")
			}
		},
	},
	{
		name:  "fragment_lowest_mtu_4to6",
		why:   "Default lowest_ipv6_mtu 1280 (RFC 7915 §4), MTU 1500: a 1400-byte IPv4 UDP without DF (1420 bytes as IPv6) goes out as fragments of 1280 and 196 bytes (1232 + 148 payload bytes), id 0x4343.",
		setup: primeUDP, input: func() []byte { return udp4(1400-28, false) },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 2)
			w := wantUDP6
			w.frag, w.more, w.fragID, w.payloadLen = true, true, 0x4343, 8+1232
			assert6(t, "frag0", out[0], w)
			assert6(t, "frag1", out[1], want6{src: serverZ6, dst: hostX, hop: 49, nh: nat64.ProtoUDP, tc: 0xb8, frag: true, fragOff: 1232, fragID: 0x4343, payloadLen: 8 + 148, sport: -1, dport: -1})
			checkReassembly(t, out, 1280, 1400-28)
		},
	},
	{
		name:  "fragment_lowest_mtu_raised_4to6",
		why:   "lowest_ipv6_mtu raised to 1400 (below the MTU, 1500): the 1400-byte IPv4 UDP without DF (1420 as IPv6) is split at 1400 bytes, 1352 + 28 payload bytes; the threshold is the configured value, not the MTU.",
		mod:   func(in *testConfig) { in.LowestIPv6MTU = 1400 },
		setup: primeUDP, input: func() []byte { return udp4(1400-28, false) },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 2)
			w := wantUDP6
			w.frag, w.more, w.fragID, w.payloadLen = true, true, 0x4343, 8+1352
			assert6(t, "frag0", out[0], w)
			assert6(t, "frag1", out[1], want6{src: serverZ6, dst: hostX, hop: 49, nh: nat64.ProtoUDP, tc: 0xb8, frag: true, fragOff: 1352, fragID: 0x4343, payloadLen: 8 + 28, sport: -1, dport: -1})
			checkReassembly(t, out, 1400, 1400-28)
		},
	},
	{
		name:  "df_over_lowest_mtu_4to6",
		why:   "A 1400-byte IPv4 UDP with DF fits the 1500 MTU: it goes out whole (1420 bytes, no Fragment header). lowest_ipv6_mtu applies only without DF; DF senders discover the path MTU through translated Packet Too Big.",
		setup: primeUDP, input: func() []byte { return udp4(1400-28, true) },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			w := wantUDP6
			w.payloadLen = 1400 - 20
			assert6(t, "ipv6", out[0], w)
			if len(out[0]) != 1420 {
				t.Errorf("%d bytes, want 1420", len(out[0]))
			}
		},
	},
	{
		name:  "packet_too_big_6to4",
		why:   "1500-byte IPv6 packet with IPv4 MTU 1400: 1480 bytes as IPv4 do not fit, so Packet Too Big with max(1280, 1400+20) = 1420, quote cut at 1280 bytes.",
		mod:   func(in *testConfig) { in.IPv4MTU = 1400 },
		input: func() []byte { return udp6(1500 - 48) },
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.PacketTooBigSent, out, 1)
			assert6(t, "icmpv6", out[0], want6{src: serverZ6, dst: hostX, hop: 64, nh: nat64.ProtoICMPv6, payloadLen: 1240, sport: -1, dport: -1})
			assertICMP(t, "icmpv6", out[0][40:], 2, 0, 1420)
		},
	},
	{
		name:  "df_set_large_6to4",
		why:   "A 1300-byte IPv4 result (> 1260) gets DF set (RFC 7915 §5.1).",
		input: func() []byte { return udp6(1300 - 28) }, masks: maskID4,
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			w := wantUDP4
			w.df, w.totalLen = true, 1300
			assert4(t, "ipv4", out[0], w)
		},
	},

	// Hairpinning.
	{
		name: "hairpin_udp",
		why: "X:40001 sends to T' (64:ff9b:1::cb00:7101) port 7000, the pool4 binding of X2:7000 (RFC 6146 §3.8):\n" +
			"translated 6->4 (T:5001 -> T:7000) and straight back 4->6: from T':5001 to X2:7000, hop limit decremented once.",
		input: func() []byte {
			return fillChecksum(ipv6(hostX, pool4in6, 64, nat64.ProtoUDP, udpDgram(portXudp, portT2, pattern(20)), 0, nil))
		},
		verify: func(t *testing.T, r nat64.DropReason, out [][]byte) {
			wantVerdict(t, r, nat64.Translated, out, 1)
			assert6(t, "ipv6", out[0], want6{src: pool4in6, dst: hostX2, hop: 63, nh: nat64.ProtoUDP, tc: 0xb8, payloadLen: 28, sport: portTudp, dport: portX2})
		},
	},
	dropCase("not_pool6_6to4", "An IPv6 destination outside the prefix is not ours.",
		nil, func() []byte {
			return fillChecksum(ipv6(hostX, hostX2, 64, nat64.ProtoUDP, udpDgram(1, 2, nil), 0, nil))
		}, nat64.NotPool6),
	dropCase("not_pool4_4to6", "An IPv4 destination outside pool4 is not ours.",
		nil, func() []byte {
			return fillChecksum(ipv4(serverZ, router4, 50, nat64.ProtoUDP, 1, false, udpDgram(1, 2, nil)))
		}, nat64.NotPool4),
	dropCase("unsupported_proto_4to6", "Protocols other than TCP, UDP and ICMP have no state: dropped.",
		nil, func() []byte { return ipv4(serverZ, pool4, 50, 47, 1, false, pattern(8)) }, nat64.UnsupportedProto),
}

func hostX6(b []byte) []byte { return b[8:24] }

// checkReassembly asserts that IPv6 fragments of Z's UDP datagram to X
// (n payload bytes) are each at most limit bytes, follow one another, and
// put back together give exactly the datagram an unfragmented translation
// carries, with a valid checksum.
func checkReassembly(t *testing.T, frags [][]byte, limit, n int) {
	t.Helper()
	var whole []byte
	for i, f := range frags {
		if len(f) > limit {
			t.Errorf("fragment %d: %d bytes, more than %d", i, len(f), limit)
		}
		if off := packet.IPv6Fragment(f[40:]).Offset(); off != len(whole) {
			t.Errorf("fragment %d at offset %d, want %d", i, off, len(whole))
		}
		whole = append(whole, f[48:]...)
	}
	want := fillChecksum(ipv6(serverZ6, hostX, 49, nat64.ProtoUDP, udpDgram(portZudp, portXudp, pattern(n)), 0, nil))[40:]
	if !bytes.Equal(whole, want) {
		t.Errorf("reassembled datagram differs from the unfragmented translation:\n got %x\nwant %x", whole, want)
	}
	if refSum(whole, refPseudo6(serverZ6[:], hostX[:], nat64.ProtoUDP, len(whole))) != 0xffff {
		t.Errorf("reassembled UDP checksum invalid")
	}
}

func init() {
	// The drop-by-configuration case needs its config.
	for i := range goldenCases {
		if goldenCases[i].name == "udp_zero_checksum_drop_4to6" {
			goldenCases[i].mod = func(in *testConfig) { in.DropZeroChecksumUDP = true }
			goldenCases[i].setup = primeUDP
		}
	}
}
