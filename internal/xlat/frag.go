package xlat

import (
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// FragmentTimeout is how long a first fragment's translation is remembered
// for the later fragments of its datagram (RFC 6146 §4: at least 2 s).
const FragmentTimeout = 2 * time.Second

// fragTableSize bounds the fragment table (a power of two); beyond it the
// oldest entry of a probe window is overwritten, so memory never grows.
const fragTableSize = 4096

// fragProbe is how many slots a key may occupy past its home slot.
const fragProbe = 8

// fragKey names one datagram: (src, dst, protocol, identification), with
// IPv4 addresses in the first 4 bytes of src and dst.
type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    nat64.Proto
	v6       bool
}

type fragEntry struct {
	key     fragKey
	addr    [16]byte // the translated address the later fragments need
	expires int64
}

// fragTable lets later fragments (which carry no ports) follow the first
// fragment's translation without reassembly. It is per Translator, so it
// needs no lock; fragments of one datagram reach one worker because the
// TUN queue hash of a fragment depends on its addresses only.
type fragTable struct {
	entries [fragTableSize]fragEntry
}

func (k *fragKey) hash() uint64 {
	// FNV-1a over the key; it need not resist attack, since a collision
	// only costs a probe and the table is bounded anyway.
	h := uint64(14695981039346656037)
	for _, b := range k.src {
		h = (h ^ uint64(b)) * 1099511628211
	}
	for _, b := range k.dst {
		h = (h ^ uint64(b)) * 1099511628211
	}
	h = (h ^ uint64(k.id)) * 1099511628211
	h = (h ^ uint64(k.proto)) * 1099511628211
	if k.v6 {
		h = (h ^ 1) * 1099511628211
	}
	return h ^ h>>29
}

func (t *fragTable) put(k *fragKey, addr *[16]byte, now int64) {
	home := k.hash()
	victim := -1
	for i := uint64(0); i < fragProbe; i++ {
		j := int((home + i) & (fragTableSize - 1))
		e := &t.entries[j]
		if e.expires != 0 && e.key == *k {
			victim = j
			break
		}
		if e.expires <= now {
			if victim < 0 || t.entries[victim].expires > now {
				victim = j
			}
			continue
		}
		if victim < 0 || (t.entries[victim].expires > now && e.expires < t.entries[victim].expires) {
			victim = j
		}
	}
	e := &t.entries[victim]
	e.key = *k
	e.addr = *addr
	e.expires = now + int64(FragmentTimeout)
	if e.expires == 0 {
		e.expires = 1
	}
}

func (t *fragTable) get(k *fragKey, now int64) (addr *[16]byte, ok bool) {
	home := k.hash()
	for i := uint64(0); i < fragProbe; i++ {
		e := &t.entries[(home+i)&(fragTableSize-1)]
		if e.expires > now && e.key == *k {
			return &e.addr, true
		}
	}
	return nil, false
}
