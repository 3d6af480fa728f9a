package dns64

import (
	"sync/atomic"
	"time"
)

// v4onlySlots is the size of the memory of names without AAAA records:
// 4096 × 8 bytes. It only needs to hold the names synthesized often enough
// to matter; a name it lost costs one round trip more, nothing else.
const v4onlySlots = 1 << 12

// v4onlyNames remembers, for parallel_a auto, names recently answered by
// synthesis (no usable AAAA records): a direct-mapped table of name
// hashes. It is bounded, takes no lock and allocates nothing; a newer name
// in the same slot replaces an older one, which is what makes it "recent".
// A name found with AAAA records again is forgotten, so a name that gained
// IPv6 costs one wasted A query, once.
type v4onlyNames struct {
	seed  uint64
	slots [v4onlySlots]atomic.Uint64
}

func newV4onlyNames() *v4onlyNames {
	return &v4onlyNames{seed: mix64(uint64(time.Now().UnixNano()) ^ 0x9e3779b97f4a7c15)}
}

// hash of a name; never 0, the empty slot.
func (t *v4onlyNames) hash(name string) uint64 { return mix64(nameHash(t.seed, name)) | 1 }

func (t *v4onlyNames) slot(h uint64) *atomic.Uint64 { return &t.slots[h>>52] }

func (t *v4onlyNames) seen(h uint64) bool { return t.slot(h).Load() == h }

func (t *v4onlyNames) remember(h uint64) { t.slot(h).Store(h) }

func (t *v4onlyNames) forget(h uint64) { t.slot(h).CompareAndSwap(h, 0) }
