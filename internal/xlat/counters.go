package xlat

import (
	"github.com/nat64kit/nat64kit/internal/nat64"
)

// Direction of translation, an index into Counters.
type Direction uint8

const (
	SixToFour Direction = iota // IPv6 -> IPv4 (outbound)
	FourToSix                  // IPv4 -> IPv6 (inbound)
	NumDirections
)

func (d Direction) String() string {
	if d == SixToFour {
		return "6to4"
	}
	return "4to6"
}

// Counters are one Translator's statistics: plain integers written only by
// its worker goroutine. The daemon sums them across workers (reading them
// from another goroutine is a benign race on monotonic counters; copy them
// under the worker's own synchronization if exact values matter).
type Counters struct {
	Drops   [nat64.NumDropReasons]uint64
	Packets [NumDirections][nat64.NumTransports]uint64 // by Transport.Index; translated packets (each emitted fragment counts)
	Bytes   [NumDirections][nat64.NumTransports]uint64 // translated bytes as emitted
	// ICMPErrors counts ICMP errors the translator generated itself (Time
	// Exceeded, Packet Too Big, Fragmentation Needed, Parameter Problem,
	// Port Unreachable for held SYNs).
	ICMPErrors uint64
	// ICMPErrorsSuppressed counts the errors of that kind the rate limit
	// refused (RFC 4443 §2.4(f)); translated errors are never limited.
	ICMPErrorsSuppressed uint64
	Hairpinned           uint64
	// FragmentsHeld counts ICMP fragments taken into reassembly (Process
	// returned Translated with nothing to send); Reassembled the datagrams
	// completed, each then translated (or dropped) as one packet.
	FragmentsHeld uint64
	Reassembled   uint64
}

// Add adds o into c (for the daemon's aggregation).
func (c *Counters) Add(o *Counters) {
	for i := range c.Drops {
		c.Drops[i] += o.Drops[i]
	}
	for d := range c.Packets {
		for p := range c.Packets[d] {
			c.Packets[d][p] += o.Packets[d][p]
			c.Bytes[d][p] += o.Bytes[d][p]
		}
	}
	c.ICMPErrors += o.ICMPErrors
	c.ICMPErrorsSuppressed += o.ICMPErrorsSuppressed
	c.Hairpinned += o.Hairpinned
	c.FragmentsHeld += o.FragmentsHeld
	c.Reassembled += o.Reassembled
}
