// Package nat64 is the vocabulary every part of nat64kit shares: IP
// protocol numbers, the transports NAT64 keeps state for, TCP flags, RFC
// 6052 prefixes and which IPv4 addresses are global. The config, the state
// table, the translator and the dns64 plugin all speak it; it imports
// nothing of ours.
package nat64

// Proto is an IP protocol number (IANA "Assigned Internet Protocol
// Numbers"): the IPv4 Protocol and IPv6 Next Header fields.
type Proto uint8

// The protocol numbers the translator reads or writes.
const (
	ProtoHopByHop Proto = 0
	ProtoICMPv4   Proto = 1
	ProtoTCP      Proto = 6
	ProtoUDP      Proto = 17
	ProtoRouting  Proto = 43
	ProtoFragment Proto = 44
	ProtoICMPv6   Proto = 58
	ProtoDestOpts Proto = 60
)

// Transport is a protocol NAT64 keeps state for (RFC 6146 §3): BIB
// entries, sessions and counters are kept per Transport. The zero
// Transport is none, so a zeroed entry holds no transport.
type Transport uint8

// The transports. ICMP is echo of either IP version, its identifier
// standing for the ports.
const (
	TCP Transport = iota + 1
	UDP
	ICMP
)

// NumTransports is how many transports there are; Index numbers them from
// 0 for arrays kept per transport.
const NumTransports = 3

// Transports lists the transports in Index order.
var Transports = [NumTransports]Transport{TCP, UDP, ICMP}

// Index is t's position in arrays kept per transport, 0 to
// NumTransports-1. Only for a Valid t.
func (t Transport) Index() int { return int(t) - 1 }

// Valid reports whether t is one of the transports.
func (t Transport) Valid() bool { return t >= TCP && t <= ICMP }

var transportNames = [NumTransports + 1]string{TCP: "tcp", UDP: "udp", ICMP: "icmp"}

func (t Transport) String() string {
	if t.Valid() {
		return transportNames[t]
	}
	return "unknown"
}

// ParseTransport accepts "tcp", "udp" or "icmp".
func ParseTransport(s string) (Transport, bool) {
	for _, t := range Transports {
		if s == transportNames[t] {
			return t, true
		}
	}
	return 0, false
}

// TransportOf returns the transport of an IP protocol: ICMPv4 and ICMPv6
// are both ICMP.
func TransportOf(p Proto) (Transport, bool) {
	switch p {
	case ProtoTCP:
		return TCP, true
	case ProtoUDP:
		return UDP, true
	case ProtoICMPv4, ProtoICMPv6:
		return ICMP, true
	}
	return 0, false
}

// TCP flag bits of the header's flags byte (RFC 9293 §3.1).
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
)
