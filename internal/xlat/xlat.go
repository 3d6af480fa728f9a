// Package xlat is the stateful NAT64 packet pipeline: RFC 7915 IP/ICMP
// translation joined to the RFC 6146 state table. Each packet goes through
// the steps Jool names, one function each: determine the incoming tuple,
// filter and update state (which computes the outgoing tuple), translate,
// and hand over for sending. One file per direction: 6to4.go and 4to6.go,
// with the ICMP-error halves in icmp6to4.go and icmp4to6.go, and the
// errors the translator originates itself in icmperr.go.
//
// A Translator belongs to one worker goroutine. Its shared mutable state is
// the *state.Table and the instance's *Fragments (one datagram's fragments
// may reach different workers); counters and identification generators
// are its own. Process allocates nothing.
package xlat

import (
	"math/rand/v2"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
	"github.com/nat64kit/nat64kit/internal/state"
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
	prefix      nat64.Prefix
	tbl         *state.Table
	mtu6        int // IPv6-side MTU (the TUN device's)
	lowMTU6     int // RFC 7915 §4 lowest-ipv6-mtu: the fragment size for non-DF IPv4
	mtu4        int // IPv4-side next-hop MTU
	dropZeroUDP bool
	ipID        uint16     // IPv4 identification generator
	frags       *Fragments // shared with the instance's other Translators
	// whole holds a reassembled datagram while it is translated: headroom,
	// its IP header, and up to reasmMaxL4 bytes of upper layer.
	whole     []byte
	wholeHdr  [40]byte
	wholeFrag uint32                     // the Fragment header identification of the datagram in whole
	pieces    [reasmMaxPieces]reasmPiece // the ranges of parked fragments being released
	errLimit  *ErrorLimit                // the ICMP errors the translator originates
	now       int64                      // the time Process (or PortUnreachable) was given
	x6        packet6to4                 // the packet from6 is working on
	x4        packet4to6                 // the packet from4 is working on

	// Counters are this Translator's statistics; the daemon aggregates them.
	Counters Counters
}

// Config is what a Translator needs to know of its instance; the daemon
// fills it from nat64.toml.
type Config struct {
	Prefix              nat64.Prefix // pool6
	MTU                 int          // the IPv6 side's (the TUN device's); 0: 1500, never below 1280
	IPv4MTU             int          // the IPv4 side's next-hop MTU; 0: 1500
	LowestIPv6MTU       int          // RFC 7915 §4 lowest-ipv6-mtu; 0: 1280; kept within 1280..MTU
	DropZeroChecksumUDP bool         // drop IPv4 UDP with checksum 0 instead of computing one (RFC 7915 §4.5)
	// ICMPErrorRate and ICMPErrorBurst limit the ICMP errors this
	// Translator originates (RFC 4443 §2.4(f), RFC 1812 §4.3.2.8): a token
	// bucket of ICMPErrorBurst tokens refilled at ICMPErrorRate a second.
	// 0 takes nat64.DefaultICMPErrorRate / DefaultICMPErrorBurst. Only
	// for a Translator that makes its own ErrorLimit.
	ICMPErrorRate  int
	ICMPErrorBurst int
	// ErrorLimit, when set, is the bucket every Translator made with this
	// Config shares, so the rate is the instance's. nil: each Translator
	// makes its own from ICMPErrorRate and ICMPErrorBurst.
	ErrorLimit *ErrorLimit
	// FragmentTimeout is how long fragments wait for the rest of their
	// datagram (reassembly of ICMP, and the fragment table that lets
	// later TCP and UDP fragments follow the first); 0: FragmentTimeout.
	// Only for a Translator that makes its own Fragments.
	FragmentTimeout time.Duration
	// Fragments, when set, is shared by every Translator made with this
	// Config (one per worker: the fragments of one datagram may reach
	// different workers). nil: each Translator makes its own.
	Fragments *Fragments
}

// Resolved is c with the MTUs the translator really uses: defaults for
// zeros, and each kept within what its family allows. The kernel fast path
// takes these too, so both paths draw the same lines.
func (c Config) Resolved() Config {
	if c.MTU == 0 {
		c.MTU = nat64.DefaultMTU
	}
	c.MTU = max(c.MTU, packet.IPv6MinMTU)
	if c.LowestIPv6MTU == 0 {
		c.LowestIPv6MTU = nat64.DefaultLowestIPv6MTU
	}
	c.LowestIPv6MTU = min(max(c.LowestIPv6MTU, packet.IPv6MinMTU), c.MTU)
	if c.IPv4MTU == 0 {
		c.IPv4MTU = nat64.DefaultMTU
	}
	c.IPv4MTU = max(c.IPv4MTU, packet.IPv4MinMTU)
	return c
}

// New makes a Translator for the instance, sharing the state table tbl.
func New(in *Config, tbl *state.Table) *Translator {
	c := in.Resolved()
	t := &Translator{
		prefix:      c.Prefix,
		tbl:         tbl,
		mtu6:        c.MTU,
		mtu4:        c.IPv4MTU,
		lowMTU6:     c.LowestIPv6MTU,
		dropZeroUDP: c.DropZeroChecksumUDP,
	}
	t.errLimit = c.ErrorLimit
	if t.errLimit == nil {
		t.errLimit = NewErrorLimit(c.ICMPErrorRate, c.ICMPErrorBurst)
	}
	t.frags = c.Fragments
	if t.frags == nil {
		t.frags = NewFragments(c.FragmentTimeout)
	}
	t.whole = make([]byte, wholeHeadroom+packet.IPv6HeaderLen+reasmMaxL4)
	// Start identifications somewhere that differs between workers and
	// restarts; uniqueness within the reassembly timeout is what matters.
	t.ipID = uint16(rand.Uint32())
	return t
}

// Process translates the packet at buf[off:off+n] (IPv6 toward IPv4, or
// IPv4 toward IPv6, chosen by its version). buf[:off] is free headroom, at
// least MinHeadroom bytes, so IPv4->IPv6 growth happens in place; the packet
// bytes are rewritten. now is a monotonic time in nanoseconds. out is reset
// and receives what to send: the translated packet (or its fragments) and/or
// an ICMP error toward the sender. The return value is nat64.Translated or why the
// packet was dropped (already counted in t.Counters); some drops come with
// an ICMP error in out (Time Exceeded, Parameter Problem, Packet Too Big,
// Fragmentation Needed, Address, Host or Port Unreachable), so always send
// out.List().
func (t *Translator) Process(buf []byte, off, n int, now int64, out *Output) nat64.DropReason {
	out.Reset()
	t.now = now
	if t.frags.due(now) {
		t.frags.expire(now, &t.Counters)
	}
	var r nat64.DropReason
	if n <= 0 || off < 0 || off+n > len(buf) {
		r = nat64.UnknownVersion
	} else {
		switch buf[off] >> 4 {
		case 6:
			r = t.from6(buf, off, n, now, out, false)
		case 4:
			r = t.from4(buf, off, n, now, out, false)
		default:
			r = nat64.UnknownVersion
		}
	}
	if r != nat64.Translated {
		t.Counters.Drops[r]++
	}
	return r
}

// ExpireFragments drops the fragmented datagrams whose timeout has passed
// (counted as reassembly_timeout in t.Counters). Process does it too, on
// the first packet after a timeout; the daemon also calls it once a
// second, so that the counter moves while no packet comes.
func (t *Translator) ExpireFragments(now int64) {
	if t.frags.due(now) {
		t.frags.expire(now, &t.Counters)
	}
}

// count counts a translated packet of IP protocol proto (always TCP, UDP
// or ICMP here).
func (t *Translator) count(d Direction, proto nat64.Proto, b []byte) {
	tr, _ := nat64.TransportOf(proto)
	i := tr.Index()
	t.Counters.Packets[d][i]++
	t.Counters.Bytes[d][i] += uint64(len(b))
}

func (t *Translator) nextID() uint16 {
	t.ipID++
	return t.ipID
}
