package state

import (
	"math/bits"
)

// hasher is a keyed multiply-fold hash (the wyhash construction). Both the
// IPv6 side and the IPv4 side of the tables hold remote-controlled bytes, so
// the key is a per-table secret: an outsider cannot aim packets at one chain.
type hasher struct{ k [4]uint64 }

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

// fmix is MurmurHash3's finalizer: every input bit reaches every output
// bit, so keys that differ only in a port spread over the whole table.
func fmix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func le64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func u32(a [4]byte) uint64 {
	return uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])
}

// key6 hashes the IPv6-side session key (proto, X, x, Z, z).
func (h *hasher) key6(proto uint8, src *[16]byte, sport uint16, dst [4]byte, dport uint16) uint64 {
	w2 := u32(dst) | uint64(sport)<<32 | uint64(dport)<<48
	a := mix(le64(src[0:8])^h.k[0], le64(src[8:16])^h.k[1])
	return fmix(mix(a^w2^h.k[2], uint64(proto)^h.k[3]))
}

// key4 hashes the IPv4-side session key (proto, Z, z, T, t).
func (h *hasher) key4(proto uint8, rem [4]byte, rport uint16, loc [4]byte, lport uint16) uint64 {
	w0 := u32(rem) | u32(loc)<<32
	w1 := uint64(rport) | uint64(lport)<<16 | uint64(proto)<<32
	return fmix(mix(w0^h.k[0], w1^h.k[1]))
}

// bib6 hashes the IPv6 side of a BIB entry (proto, X, x).
func (h *hasher) bib6(proto uint8, src *[16]byte, sport uint16) uint64 {
	a := mix(le64(src[0:8])^h.k[2], le64(src[8:16])^h.k[3])
	return fmix(mix(a^(uint64(sport)|uint64(proto)<<16), h.k[0]))
}

// bib4 hashes the IPv4 side of a BIB entry (proto, T, t).
func (h *hasher) bib4(proto uint8, addr [4]byte, port uint16) uint64 {
	return fmix(mix(u32(addr)^uint64(port)<<32^uint64(proto)<<48^h.k[1], h.k[2]))
}

// index is an open-addressing hash set of slab references, linear probing,
// backward-shift deletion (no tombstones). A slot holds the key's 32-bit
// hash in the high half and ref+1 in the low half (0 is empty), so probing,
// growing and deleting never touch the slab; only a lookup whose stored hash
// matches compares the real key. 8 bytes a slot at a load of 3/8..3/4.
type index struct {
	slots []uint64
	mask  uint32
	count uint32
}

const minIndexSize = 16

func newIndex(size int) index {
	n := minIndexSize
	for n < size {
		n <<= 1
	}
	return index{slots: make([]uint64, n), mask: uint32(n - 1)}
}

func (ix *index) insert(h uint32, ref uint32) {
	if ix.slots == nil {
		*ix = newIndex(minIndexSize)
	}
	if (ix.count+1)*4 > uint32(len(ix.slots))*3 {
		ix.resize(len(ix.slots) * 2)
	}
	ix.place(uint64(h)<<32 | uint64(ref+1))
	ix.count++
}

func (ix *index) place(e uint64) {
	i := uint32(e>>32) & ix.mask
	for ix.slots[i] != 0 {
		i = (i + 1) & ix.mask
	}
	ix.slots[i] = e
}

func (ix *index) resize(n int) {
	old := ix.slots
	ix.slots = make([]uint64, n)
	ix.mask = uint32(n - 1)
	for _, e := range old {
		if e != 0 {
			ix.place(e)
		}
	}
}

// remove deletes the entry (h, ref); it reports whether it was there.
func (ix *index) remove(h uint32, ref uint32) bool {
	if ix.slots == nil {
		return false
	}
	want := uint64(h)<<32 | uint64(ref+1)
	i := h & ix.mask
	for {
		e := ix.slots[i]
		if e == 0 {
			return false
		}
		if e == want {
			break
		}
		i = (i + 1) & ix.mask
	}
	// Backward shift: pull later members of the probe run into the hole
	// unless their home lies cyclically in (hole, j].
	j := i
	for {
		j = (j + 1) & ix.mask
		e := ix.slots[j]
		if e == 0 {
			break
		}
		home := uint32(e>>32) & ix.mask
		if (j-home)&ix.mask >= (j-i)&ix.mask {
			ix.slots[i] = e
			i = j
		}
	}
	ix.slots[i] = 0
	ix.count--
	if len(ix.slots) > minIndexSize && ix.count*8 < uint32(len(ix.slots)) {
		ix.resize(len(ix.slots) / 2)
	}
	return true
}

// probe walks the candidates for hash h: call first, then next until it
// returns ok=false. Each candidate is a ref whose stored hash equals h.
func (ix *index) first(h uint32) (pos uint32, ok bool) {
	if ix.slots == nil {
		return 0, false
	}
	return ix.scan(h, h&ix.mask)
}

func (ix *index) scan(h uint32, i uint32) (uint32, bool) {
	for {
		e := ix.slots[i]
		if e == 0 {
			return 0, false
		}
		if uint32(e>>32) == h {
			return i, true
		}
		i = (i + 1) & ix.mask
	}
}

func (ix *index) next(h uint32, pos uint32) (uint32, bool) {
	return ix.scan(h, (pos+1)&ix.mask)
}

func (ix *index) ref(pos uint32) uint32 { return uint32(ix.slots[pos]) - 1 }
