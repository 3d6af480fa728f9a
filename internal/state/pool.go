package state

import (
	"fmt"
	"math/bits"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// poolRange is one pool4 entry in integer form.
type poolRange struct {
	base        uint32 // first address
	count       uint64 // addresses in the range
	first, last uint16 // usable ports on each address
}

// pool is an immutable snapshot of pool4; Reconfigure swaps it whole, so
// OwnsIPv4 reads it without a lock.
type pool struct {
	ranges []poolRange
	addrs  uint64 // sum of the ranges' address counts
}

func addrU32(a [4]byte) uint32 {
	return uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
}

func u32Addr(v uint32) [4]byte { return [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

func newPool(rs []nat64.Pool4Range) (*pool, error) {
	p := &pool{}
	for _, r := range rs {
		if !r.Prefix.IsValid() || !r.Prefix.Addr().Is4() {
			return nil, fmt.Errorf("pool4 %v: not an IPv4 prefix", r.Prefix)
		}
		if r.FirstPort > r.LastPort {
			return nil, fmt.Errorf("pool4 %v: port range %d-%d is empty", r.Prefix, r.FirstPort, r.LastPort)
		}
		pr := r.Prefix.Masked()
		p.ranges = append(p.ranges, poolRange{
			base:  addrU32(pr.Addr().As4()),
			count: 1 << (32 - pr.Bits()),
			first: r.FirstPort,
			last:  r.LastPort,
		})
		p.addrs += 1 << (32 - pr.Bits())
	}
	return p, nil
}

func (r *poolRange) has(a uint32) bool { return uint64(a-r.base) < r.count && a >= r.base }

func (p *pool) hasAddr(a [4]byte) bool {
	v := addrU32(a)
	for i := range p.ranges {
		if p.ranges[i].has(v) {
			return true
		}
	}
	return false
}

func (p *pool) contains(a [4]byte, port uint16) bool {
	v := addrU32(a)
	for i := range p.ranges {
		r := &p.ranges[i]
		if r.has(v) && port >= r.first && port <= r.last {
			return true
		}
	}
	return false
}

// at maps a position in [0, addrs) to its range and address.
func (p *pool) at(i uint64) (*poolRange, uint32) {
	for k := range p.ranges {
		r := &p.ranges[k]
		if i < r.count {
			return r, r.base + uint32(i)
		}
		i -= r.count
	}
	panic("state: pool position out of range")
}

// portmap is the set of ports (or ICMP identifiers) in use on one pool4
// address for one protocol, dynamic and static alike.
type portmap struct {
	bits [1024]uint64
	used int
}

var emptyPortmap portmap

func (pm *portmap) isFree(port uint16) bool { return pm.bits[port>>6]&(1<<(port&63)) == 0 }
func (pm *portmap) set(port uint16)         { pm.bits[port>>6] |= 1 << (port & 63); pm.used++ }
func (pm *portmap) clear(port uint16)       { pm.bits[port>>6] &^= 1 << (port & 63); pm.used-- }

const (
	evenPorts = 0x5555555555555555
	oddPorts  = 0xaaaaaaaaaaaaaaaa
)

// scan finds the lowest free port in [lo, hi] with the given parity (0
// even, 1 odd, -1 either), a word of the bitmap at a time.
func (pm *portmap) scan(lo, hi int, parity int) (uint16, bool) {
	if lo > hi {
		return 0, false
	}
	for w := lo >> 6; w <= hi>>6; w++ {
		free := ^pm.bits[w]
		switch parity {
		case 0:
			free &= evenPorts
		case 1:
			free &= oddPorts
		}
		if w == lo>>6 {
			free &= ^uint64(0) << (lo & 63)
		}
		if w == hi>>6 {
			free &= ^uint64(0) >> (63 - hi&63)
		}
		if free != 0 {
			return uint16(w<<6 | bits.TrailingZeros64(free)), true
		}
	}
	return 0, false
}

// find probes linearly from start through hi, then wraps to lo.
func (pm *portmap) find(lo, hi, start int, parity int) (uint16, bool) {
	if p, ok := pm.scan(start, hi, parity); ok {
		return p, true
	}
	return pm.scan(lo, start-1, parity)
}

// pickPort chooses a port on addr within r for the IPv6 source port x:
// x itself when free (port preservation), else a port of x's parity and
// of x's class (well-known below 1024 or not) from an RFC 6056 algorithm 3
// start (secret-keyed per-source offset plus a per-bucket counter), probing
// linearly; relaxing parity, then class, only when those are full.
func (t *Table) pickPort(pm *portmap, r *poolRange, proto nat64.Transport, x uint16, srcHash uint64) (uint16, bool) {
	lo, hi := int(r.first), int(r.last)
	if proto != nat64.ICMP && lo == 0 {
		lo = 1 // port 0 is not a TCP or UDP port
	}
	if lo > hi {
		return 0, false
	}
	if int(x) >= lo && int(x) <= hi && pm.isFree(x) {
		return x, true
	}
	clo, chi := lo, hi
	if x < 1024 {
		chi = min(hi, 1023)
	} else {
		clo = max(lo, 1024)
	}
	if clo > chi {
		clo, chi = lo, hi
	}
	bucket := &t.alg3[srcHash&uint64(len(t.alg3)-1)]
	off := uint32(srcHash>>32) + uint32(*bucket)
	*bucket++
	start := clo + int(off%uint32(chi-clo+1))
	parity := int(x & 1)
	if p, ok := pm.find(clo, chi, start, parity); ok {
		return p, true
	}
	if p, ok := pm.find(clo, chi, start, -1); ok {
		return p, true
	}
	if clo != lo || chi != hi {
		s := lo + int(off%uint32(hi-lo+1))
		if p, ok := pm.find(lo, hi, s, parity); ok {
			return p, true
		}
		return pm.find(lo, hi, s, -1)
	}
	return 0, false
}

// allocate picks (T, t) for a new dynamic BIB entry of (proto, X, x): X's
// paired address first (every BIB entry of one IPv6 host on one IPv4
// address while it has room), then the pool's addresses from a
// secret-keyed start. Called with t.mu held.
func (t *Table) allocate(pi int, proto nat64.Transport, src *[16]byte, x uint16) ([4]byte, uint16, bool) {
	pl := t.pool.Load()
	if pl.addrs == 0 {
		return [4]byte{}, 0, false
	}
	srcHash := t.hash.bib6(uint8(proto)^0x80, src, 0)
	try := func(r *poolRange, a uint32) (uint16, bool) {
		pm := t.ports[pi][a]
		if pm == nil {
			pm = &emptyPortmap
		}
		return t.pickPort(pm, r, proto, x, srcHash)
	}
	if rec, ok := t.srcs[*src]; ok && rec.paired {
		a := addrU32(rec.addr)
		for k := range pl.ranges {
			if r := &pl.ranges[k]; r.has(a) {
				if port, ok := try(r, a); ok {
					return rec.addr, port, true
				}
			}
		}
	}
	start := srcHash % pl.addrs
	for i := uint64(0); i < pl.addrs; i++ {
		r, a := pl.at((start + i) % pl.addrs)
		if port, ok := try(r, a); ok {
			return u32Addr(a), port, true
		}
	}
	return [4]byte{}, 0, false
}

func (t *Table) markPort(pi int, a [4]byte, port uint16) {
	k := addrU32(a)
	pm := t.ports[pi][k]
	if pm == nil {
		pm = new(portmap)
		t.ports[pi][k] = pm
	}
	pm.set(port)
	t.portsUsed[pi]++
}

func (t *Table) releasePort(pi int, a [4]byte, port uint16) {
	k := addrU32(a)
	pm := t.ports[pi][k]
	if pm == nil || pm.isFree(port) {
		return
	}
	pm.clear(port)
	t.portsUsed[pi]--
	if pm.used == 0 {
		delete(t.ports[pi], k)
	}
}

func (t *Table) portTaken(pi int, a [4]byte, port uint16) bool {
	pm := t.ports[pi][addrU32(a)]
	return pm != nil && !pm.isFree(port)
}
