package xlat

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/packet"
)

// Reassembly bounds. The arena and the datagram slots are allocated once,
// in NewFragments; nothing grows afterwards, whatever arrives.
const (
	// reasmMaxDatagrams is how many datagrams may be in reassembly at once
	// (dropped ones included, until their timeout: see Fragments).
	reasmMaxDatagrams = 128
	// The arena is cut into blocks, so that small datagrams take little
	// of it: 1024 blocks of 2 KiB, 2 MiB for the whole instance (the
	// Linux kernel allows 4 MiB per family and namespace,
	// net.ipv4.ipfrag_high_thresh).
	reasmBlockSize   = 2048
	reasmArenaBlocks = 1024
	// reasmMaxL4 is the largest upper-layer datagram reassembled: what
	// fits an IPv4 packet (total length 65535 with a 20-byte header), the
	// form it takes on one side or the other. Its IPv6 form, 40 bytes of
	// header in front, then has a payload length below 65535 as well.
	reasmMaxL4             = packet.IPv4MaxTotLen - packet.IPv4MinHeader
	reasmBlocksPerDatagram = (reasmMaxL4 + reasmBlockSize - 1) / reasmBlockSize
	// reasmMaxPieces bounds the disjoint byte ranges of one datagram
	// (adjacent fragments merge into one range, so in-order arrival keeps
	// one): only fragments scattered on purpose reach it.
	reasmMaxPieces = 64
	noBlock        = 0xffff
	// wholeHeadroom is the room in front of a reassembled datagram in
	// Translator.whole: translation grows the header into it.
	wholeHeadroom = 64
)

type reasmSlotState uint8

const (
	slotFree reasmSlotState = iota
	slotOpen                // collecting fragments
	slotDead                // dropped: its other fragments are dropped too until it expires
)

type reasmPiece struct{ lo, hi int32 }

// reasmDatagram is one datagram being reassembled.
type reasmDatagram struct {
	key        fragKey
	expires    int64
	state      reasmSlotState
	deadReason nat64.DropReason
	first      bool     // the first fragment (offset 0) arrived: hdr is set
	hdr        [40]byte // its IP header: the fixed IPv6 header, or 20 bytes of IPv4
	total      int      // the upper-layer length; -1 until the last fragment arrived
	maxEnd     int      // the highest byte received, plus one
	have       int      // bytes received
	held       int      // fragments held: counted as drops if the datagram is
	npieces    int
	pieces     [reasmMaxPieces]reasmPiece
	blocks     [reasmBlocksPerDatagram]uint16 // arena block of each 2 KiB of the datagram, or noBlock
}

// Fragments is the fragment state of one instance: the table that lets
// later TCP and UDP fragments follow their first fragment's translation,
// and the reassembly of fragmented ICMP, whose checksum cannot be
// translated fragment by fragment (the ICMPv6 checksum covers a
// pseudo-header holding the whole datagram's length, and ICMPv4's covers
// none): the translator waits for every fragment, then translates the
// whole datagram and fragments the result again.
//
// It is shared by all the Translators of an instance, behind mutexes:
// the kernel does not promise that the fragments of one datagram reach one
// TUN queue (a queue is chosen by a flow table that the last writer of a
// hash updates, and fragments hash by addresses only, so another worker's
// write between two fragments moves the rest elsewhere). Fragments are a
// small share of traffic, so the locks cost nothing the other packets
// notice.
//
// Any overlap between fragments drops the whole datagram, and the
// fragments still to come are dropped as well until its timeout (RFC 5722
// for IPv6; the same rule for IPv4, where RFC 791 would let later data win
// and so lets a fragment rewrite what was already checked). Each fragment
// held and then dropped (timeout, overlap, no room, too big) counts under
// that reason, so every packet in still ends up counted once.
type Fragments struct {
	// tableMu guards table, the first fragments' translations.
	tableMu sync.Mutex
	table   fragTable

	// mu guards the reassembly.
	mu      sync.Mutex
	timeout int64
	dgrams  [reasmMaxDatagrams]reasmDatagram
	inUse   int
	arena   []byte
	free    []uint16 // stack of free arena blocks
	// earliest is the soonest expiry of a slot in use (0: none). Process
	// reads it without the lock, to take the lock only when one is due.
	earliest atomic.Int64
	// parked counts the slots of TCP and UDP datagrams (later fragments
	// waiting for their first), so that a first fragment looks for them
	// only when there are some.
	parked atomic.Int64
}

// NewFragments makes the fragment state of one instance, with its arena;
// fragments wait timeout (0: FragmentTimeout) for the rest of their
// datagram.
func NewFragments(timeout time.Duration) *Fragments {
	if timeout <= 0 {
		timeout = FragmentTimeout
	}
	ra := &Fragments{
		timeout: int64(timeout),
		arena:   make([]byte, reasmArenaBlocks*reasmBlockSize),
		free:    make([]uint16, reasmArenaBlocks),
	}
	for i := range ra.free {
		ra.free[i] = uint16(reasmArenaBlocks - 1 - i)
	}
	return ra
}

// remember records the translated address of a first fragment's datagram.
func (ra *Fragments) remember(k *fragKey, addr *[16]byte, now int64) {
	ra.tableMu.Lock()
	ra.table.put(k, addr, now, ra.timeout)
	ra.tableMu.Unlock()
}

// lookup finds the translated address of a later fragment's datagram.
func (ra *Fragments) lookup(k *fragKey, now int64, addr *[16]byte) bool {
	ra.tableMu.Lock()
	a, ok := ra.table.get(k, now)
	if ok {
		*addr = *a
	}
	ra.tableMu.Unlock()
	return ok
}

// fragment is one fragment as add takes it.
type fragment struct {
	key  *fragKey
	hdr  []byte // the fragment's IP header (at least 20 or 40 bytes)
	data []byte // its share of the upper-layer datagram
	off  int    // where that share starts
	more bool   // more fragments follow
}

// due reports whether a datagram's timeout has passed (no lock).
func (ra *Fragments) due(now int64) bool {
	e := ra.earliest.Load()
	return e != 0 && now >= e
}

// expire drops the datagrams whose timeout passed, counting their held
// fragments in c.
func (ra *Fragments) expire(now int64, c *Counters) {
	ra.mu.Lock()
	ra.expireLocked(now, c)
	ra.mu.Unlock()
}

func (ra *Fragments) expireLocked(now int64, c *Counters) {
	earliest := int64(0)
	for i := range ra.dgrams {
		d := &ra.dgrams[i]
		if d.state == slotFree {
			continue
		}
		if d.expires <= now {
			if d.state == slotOpen {
				reason := nat64.ReassemblyTimeout
				if parkable(d.key.proto) {
					reason = nat64.FragmentNoState // its first fragment never came
				}
				c.Drops[reason] += uint64(d.held)
			}
			ra.release(d)
			continue
		}
		if earliest == 0 || d.expires < earliest {
			earliest = d.expires
		}
	}
	ra.earliest.Store(earliest)
}

// release gives d's blocks back and frees its slot.
func (ra *Fragments) release(d *reasmDatagram) {
	ra.freeBlocks(d)
	if parkable(d.key.proto) {
		ra.parked.Add(-1)
	}
	d.state = slotFree
	ra.inUse--
}

// parkable reports whether fragments of proto are translated one by one,
// so that a later fragment arriving before its first waits in a slot
// (parked) rather than being reassembled.
func parkable(proto nat64.Proto) bool {
	return proto == nat64.ProtoTCP || proto == nat64.ProtoUDP
}

// claim takes the parked later fragments of k's datagram, once its first
// fragment is translated: their bytes are copied into data at their
// offsets, their ranges into pieces; total is the datagram's length when
// its last fragment is among them (else -1), and hdr the IP header of the
// first one parked. ok is false when none wait.
func (ra *Fragments) claim(k *fragKey, data []byte, pieces *[reasmMaxPieces]reasmPiece, hdr *[40]byte) (n, total int, ok bool) {
	if ra.parked.Load() == 0 {
		return 0, 0, false
	}
	ra.mu.Lock()
	defer ra.mu.Unlock()
	d := ra.find(k)
	if d == nil || d.state != slotOpen || d.held == 0 {
		return 0, 0, false
	}
	n, total, *hdr = d.npieces, d.total, d.hdr
	*pieces = d.pieces
	for i := 0; i < n; i++ {
		p := d.pieces[i]
		for pos := int(p.lo); pos < int(p.hi); {
			in := pos % reasmBlockSize
			blk := ra.arena[int(d.blocks[pos/reasmBlockSize])*reasmBlockSize:][:reasmBlockSize]
			pos += copy(data[pos:int(p.hi)], blk[in:])
		}
	}
	ra.release(d)
	return n, total, true
}

func (ra *Fragments) freeBlocks(d *reasmDatagram) {
	for i, b := range d.blocks {
		if b != noBlock {
			ra.free = append(ra.free, b) // within its capacity: never allocates
			d.blocks[i] = noBlock
		}
	}
}

// kill drops d: its held fragments count under reason, its blocks go back,
// and its slot stays taken until its timeout so that the fragments still
// to come are dropped too (RFC 5722: "including those not yet received").
func (ra *Fragments) kill(d *reasmDatagram, reason nat64.DropReason, c *Counters) nat64.DropReason {
	c.Drops[reason] += uint64(d.held)
	d.held = 0
	ra.freeBlocks(d)
	d.state, d.deadReason = slotDead, reason
	return reason
}

func (ra *Fragments) find(k *fragKey) *reasmDatagram {
	for i := range ra.dgrams {
		d := &ra.dgrams[i]
		if d.state != slotFree && d.key == *k {
			return d
		}
	}
	return nil
}

func (ra *Fragments) open(k *fragKey, now int64) *reasmDatagram {
	if ra.inUse == reasmMaxDatagrams {
		return nil
	}
	for i := range ra.dgrams {
		d := &ra.dgrams[i]
		if d.state != slotFree {
			continue
		}
		d.key, d.state = *k, slotOpen
		if parkable(k.proto) {
			ra.parked.Add(1)
		}
		d.expires = now + ra.timeout
		d.first, d.total, d.maxEnd, d.have, d.held, d.npieces = false, -1, 0, 0, 0, 0
		for j := range d.blocks {
			d.blocks[j] = noBlock
		}
		ra.inUse++
		if e := ra.earliest.Load(); e == 0 || d.expires < e {
			ra.earliest.Store(d.expires)
		}
		return d
	}
	return nil
}

// add files fragment f. While the datagram is incomplete it returns
// (0, Translated): f is held. The fragment that completes it gets the
// whole upper-layer datagram gathered into whole (which must hold
// reasmMaxL4 bytes) and the first fragment's IP header into hdr, and its
// length n. Otherwise it returns why f is dropped; fragments held before
// and dropped with it are counted in c here, f by the caller.
func (ra *Fragments) add(f *fragment, now int64, c *Counters, whole []byte, hdr *[40]byte) (n int, r nat64.DropReason) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if e := ra.earliest.Load(); e != 0 && now >= e {
		ra.expireLocked(now, c)
	}
	d := ra.find(f.key)
	if d == nil {
		if d = ra.open(f.key, now); d == nil {
			return 0, nat64.ReassemblyTooMany
		}
	}
	if d.state == slotDead {
		return 0, d.deadReason
	}
	lo, hi := f.off, f.off+len(f.data)
	if hi > reasmMaxL4 {
		return 0, ra.kill(d, nat64.ReassemblyTooBig, c)
	}
	// A last fragment fixes the length; nothing may lie beyond it, and
	// two last fragments must agree.
	if !f.more {
		if d.total >= 0 && d.total != hi || hi < d.maxEnd {
			return 0, ra.kill(d, nat64.ReassemblyOverlap, c)
		}
	} else if d.total >= 0 && hi > d.total {
		return 0, ra.kill(d, nat64.ReassemblyOverlap, c)
	}
	if r := insertPiece(d, lo, hi); r != nat64.Translated {
		return 0, ra.kill(d, r, c)
	}
	for pos := lo; pos < hi; {
		bi := pos / reasmBlockSize
		if d.blocks[bi] == noBlock {
			if len(ra.free) == 0 {
				return 0, ra.kill(d, nat64.ReassemblyTooMany, c)
			}
			d.blocks[bi] = ra.free[len(ra.free)-1]
			ra.free = ra.free[:len(ra.free)-1]
		}
		in := pos % reasmBlockSize
		blk := ra.arena[int(d.blocks[bi])*reasmBlockSize:][:reasmBlockSize]
		pos += copy(blk[in:], f.data[pos-lo:])
	}
	if !f.more {
		d.total = hi
	}
	d.maxEnd = max(d.maxEnd, hi)
	if lo == 0 {
		d.first = true
		copy(d.hdr[:], f.hdr)
	} else if d.held == 0 {
		copy(d.hdr[:], f.hdr) // until the first fragment's comes (parked: for good)
	}
	d.have += hi - lo
	d.held++
	if !d.first || d.total < 0 || d.have != d.total {
		return 0, nat64.Translated
	}
	// Complete: with no overlap, as many bytes as the length means every
	// byte is there.
	n = d.total
	for pos := 0; pos < n; pos += reasmBlockSize {
		copy(whole[pos:min(pos+reasmBlockSize, n)], ra.arena[int(d.blocks[pos/reasmBlockSize])*reasmBlockSize:])
	}
	*hdr = d.hdr
	ra.release(d)
	return n, nat64.Translated
}

// insertPiece records [lo, hi) as received, merged with the ranges it
// touches. It refuses an overlap, and a range that would be one more than
// reasmMaxPieces; d is dropped then, so a half-done merge does not matter.
func insertPiece(d *reasmDatagram, lo, hi int) nat64.DropReason {
	l, h := int32(lo), int32(hi)
	for i := 0; i < d.npieces; i++ {
		if p := d.pieces[i]; l < p.hi && p.lo < h {
			return nat64.ReassemblyOverlap
		}
	}
	// Merge with the ranges that end where this one starts or start where
	// it ends (at most one each: the ranges are disjoint and merged).
	for i := 0; i < d.npieces; {
		p := d.pieces[i]
		if p.hi == l || p.lo == h {
			l, h = min(l, p.lo), max(h, p.hi)
			d.npieces--
			d.pieces[i] = d.pieces[d.npieces]
			continue
		}
		i++
	}
	if d.npieces == reasmMaxPieces {
		return nat64.ReassemblyTooMany
	}
	d.pieces[d.npieces] = reasmPiece{l, h}
	d.npieces++
	return nat64.Translated
}

// usage reports the slots and arena blocks in use, checking that they
// agree with the free list (tests and fuzzing).
func (ra *Fragments) usage() (datagrams, blocks int, consistent bool) {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	var seen [reasmArenaBlocks]bool
	ok := true
	for i := range ra.dgrams {
		d := &ra.dgrams[i]
		if d.state == slotFree {
			continue
		}
		datagrams++
		for _, b := range d.blocks {
			if b == noBlock {
				continue
			}
			if seen[b] || d.state != slotOpen {
				ok = false
			}
			seen[b] = true
			blocks++
		}
	}
	for _, b := range ra.free {
		if seen[b] {
			ok = false
		}
		seen[b] = true
	}
	for _, s := range seen {
		ok = ok && s // every block either in use or free
	}
	ok = ok && datagrams == ra.inUse && datagrams <= reasmMaxDatagrams
	return datagrams, blocks, ok
}
