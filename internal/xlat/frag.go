package xlat

import (
	"hash/maphash"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// FragmentTimeout is the default of how long fragments wait for the rest
// of their datagram, and how long a first fragment's translation is
// remembered for the later ones (nat64.toml timeouts.fragment). RFC 6146
// §4 asks a NAT64 to keep fragments at least 2 s; 2 s is also Jool's
// default time for fragments to arrive in (FRAGMENT_MIN). Longer waits (RFC 8200's 60 s, the Linux kernel's
// ipfrag_time of 30 s) are for end hosts, whose memory an attacker cannot
// fill with other people's traffic: here a lost fragment would hold its
// slot of a bounded table that long, and nothing retransmits a fragment.
const FragmentTimeout = nat64.DefaultFragmentTimeout

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
// fragment's translation without reassembly. It lives in Fragments, one
// per instance behind a lock, since the kernel may hand one datagram's
// fragments to different TUN queues and so workers.
//
// Slots are chosen by a keyed hash (hash/maphash, a random seed per
// table): the key is chosen by whoever sends the fragments, and with a
// hash anyone can compute, a sender could aim many datagrams at one probe
// window and push out the entries of other flows, whose later fragments
// would then be dropped. With a secret seed per table (so per instance and
// per run) the slot of a key cannot be predicted from outside.
type fragTable struct {
	entries [fragTableSize]fragEntry
	seed    maphash.Seed // zero until first use
}

// fragKeyLen is the bytes of a fragKey as hashed: src, dst, id, proto, v6.
const fragKeyLen = 16 + 16 + 4 + 1 + 1

func (t *fragTable) hash(k *fragKey) uint64 {
	if t.seed == (maphash.Seed{}) {
		t.seed = maphash.MakeSeed()
	}
	// The key laid out in bytes on the stack: maphash.Bytes does not keep
	// it, so this allocates nothing (TestFragmentTableZeroAllocs).
	var b [fragKeyLen]byte
	copy(b[0:16], k.src[:])
	copy(b[16:32], k.dst[:])
	b[32], b[33], b[34], b[35] = byte(k.id>>24), byte(k.id>>16), byte(k.id>>8), byte(k.id)
	b[36] = byte(k.proto)
	if k.v6 {
		b[37] = 1
	}
	return maphash.Bytes(t.seed, b[:])
}

func (t *fragTable) put(k *fragKey, addr *[16]byte, now, timeout int64) {
	home := t.hash(k)
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
	e.expires = now + timeout
	if e.expires == 0 {
		e.expires = 1
	}
}

func (t *fragTable) get(k *fragKey, now int64) (addr *[16]byte, ok bool) {
	home := t.hash(k)
	for i := uint64(0); i < fragProbe; i++ {
		e := &t.entries[(home+i)&(fragTableSize-1)]
		if e.expires > now && e.key == *k {
			return &e.addr, true
		}
	}
	return nil, false
}
