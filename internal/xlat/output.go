package xlat

import (
	"github.com/nat64kit/nat64kit/internal/packet"
)

// MaxPackets is how many packets one Process call can emit: IPv6 fragments
// of one IPv4 packet (65535 / 1232 < 54) or an ICMP error.
const MaxPackets = 64

// arenaSize holds the fragments of the largest IPv4 datagram plus their
// headers, and the ICMP errors.
const arenaSize = 65535 + MaxPackets*48 + 2*packet.ICMPv6ErrorMax

// Output is where Process puts the packets to send, all toward the TUN
// device (the kernel routes each by its version). A packet lies either in
// the caller's buffer (the translated packet, rewritten in place) or in the
// Output's own arena, and Output records which: InPlace tells. Both stay
// valid until the next Process with this Output. Make one per worker with
// NewOutput and reuse it.
type Output struct {
	Packets [MaxPackets][]byte
	N       int
	// start[i] is where Packets[i] begins in the buffer given to Process,
	// or -1 when it lies in the arena.
	start [MaxPackets]int
	arena []byte
	used  int
}

// NewOutput allocates an Output with its arena.
func NewOutput() *Output { return &Output{arena: make([]byte, arenaSize)} }

// List returns the packets to send.
func (o *Output) List() [][]byte { return o.Packets[:o.N] }

// InPlace reports whether packet i was translated in place, and if so
// where it starts in the buffer given to Process; its end is start plus
// its length.
func (o *Output) InPlace(i int) (start int, ok bool) {
	return o.start[i], o.start[i] >= 0
}

// Reset forgets the previous packets.
func (o *Output) Reset() { o.N, o.used = 0, 0 }

// alloc returns n bytes of arena, or nil when full.
func (o *Output) alloc(n int) []byte {
	if o.used+n > len(o.arena) || o.N >= MaxPackets {
		return nil
	}
	b := o.arena[o.used : o.used+n : o.used+n]
	o.used += n
	return b
}

// push queues b, a packet of the arena.
func (o *Output) push(b []byte) bool { return o.pushAt(b, -1) }

// pushInPlace queues buf[start:end], a packet rewritten in place.
func (o *Output) pushInPlace(buf []byte, start, end int) bool {
	return o.pushAt(buf[start:end], start)
}

func (o *Output) pushAt(b []byte, start int) bool {
	if o.N >= MaxPackets {
		return false
	}
	o.Packets[o.N] = b
	o.start[o.N] = start
	o.N++
	return true
}

// detach moves the packets translated in place into the arena: those of a
// reassembled datagram lie in the Translator's own buffer, not the
// caller's, so InPlace must not report them.
func (o *Output) detach() bool {
	for i := 0; i < o.N; i++ {
		if o.start[i] < 0 {
			continue
		}
		p := o.Packets[i]
		if o.used+len(p) > len(o.arena) {
			o.Reset()
			return false
		}
		b := o.arena[o.used : o.used+len(p) : o.used+len(p)]
		o.used += len(p)
		copy(b, p)
		o.Packets[i], o.start[i] = b, -1
	}
	return true
}
