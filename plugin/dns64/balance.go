package dns64

import (
	"errors"
	"hash/maphash"
	"math"
	"math/rand/v2"
	"sync/atomic"

	"github.com/nat64kit/nat64kit/internal/dns64conf"
	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/nat64conf"
)

// instance is one NAT64 translator as dns64 sees it: a prefix to synthesize
// with, a weight, and where to ask whether it is alive.
type instance struct {
	name    string
	prefix  nat64.Prefix
	prefixS string // prefix in text form, a metric label
	weight  float64
	control string // host:port; "" means always healthy
	seed    uint64 // per-name hash seed for rendezvous hashing
	healthy atomic.Bool
	// fails counts consecutive failed probes; only the health loop
	// touches it, atomically because each probe runs in its own goroutine.
	fails  atomic.Int32
	synthC counterCache // synthesized_total child for this instance
}

// instanceSet is the immutable list of instances of one config generation;
// a reload swaps the whole set.
type instanceSet struct {
	all []*instance
}

// hashSeed makes the rendezvous hash stable within the process; it need not
// be stable across restarts, only across instances of one config.
var hashSeed = maphash.MakeSeed()

func newInstance(name string, p nat64.Prefix, weight int, control string) *instance {
	in := &instance{
		name:    name,
		prefix:  p,
		prefixS: p.String(),
		weight:  float64(weight),
		control: control,
		seed:    maphash.String(hashSeed, name),
	}
	in.healthy.Store(true)
	return in
}

func setFromPrefixes(ps []nat64.Prefix) *instanceSet {
	s := &instanceSet{all: make([]*instance, len(ps))}
	for i, p := range ps {
		s.all[i] = newInstance(p.String(), p, 1, "")
	}
	return s
}

func newInstanceSet(cfg *nat64conf.Config) (*instanceSet, error) {
	if err := dns64conf.CheckInstances(cfg); err != nil {
		return nil, err
	}
	s := &instanceSet{all: make([]*instance, 0, len(cfg.Instances))}
	for _, ci := range cfg.Instances {
		for _, o := range s.all {
			if o.prefix.Overlaps(ci.Prefix) {
				return nil, errors.New(cfg.File + ": prefix " + ci.Prefix.String() + " of " + ci.Name + " overlaps " + o.prefixS + " of " + o.name)
			}
		}
		w := ci.Weight
		if w < 1 {
			w = 1
		}
		s.all = append(s.all, newInstance(ci.Name, ci.Prefix, w, ci.Control))
	}
	return s, nil
}

// inheritHealth carries the health of unchanged instances over a reload, so
// a reload does not put a dead instance back into rotation until the next
// health round.
func (s *instanceSet) inheritHealth(old *instanceSet) {
	if old == nil {
		return
	}
	for _, n := range s.all {
		for _, o := range old.all {
			if o.name == n.name && o.control == n.control {
				n.healthy.Store(o.healthy.Load())
				n.fails.Store(o.fails.Load())
			}
		}
	}
}

// anyHealthy reports whether at least one instance is in rotation.
func (s *instanceSet) anyHealthy() bool {
	for _, in := range s.all {
		if in.healthy.Load() {
			return true
		}
	}
	return false
}

// usable reports whether in takes part in this answer: healthy ones do,
// and when none is healthy, all do (fallback).
func usable(in *instance, fallback bool) bool { return fallback || in.healthy.Load() }

// mix64 is the SplitMix64 finalizer: a cheap, well-distributed 64-bit mix.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// score is the weighted rendezvous score of key on in: -w/ln(u) with u the
// hash mapped into (0,1). The highest score wins; removing an instance
// moves only the keys it won (Schindelhauer & Schomaker's weighted HRW).
func (in *instance) score(key [16]byte) float64 {
	hi := uint64(key[0])<<56 | uint64(key[1])<<48 | uint64(key[2])<<40 | uint64(key[3])<<32 |
		uint64(key[4])<<24 | uint64(key[5])<<16 | uint64(key[6])<<8 | uint64(key[7])
	lo := uint64(key[8])<<56 | uint64(key[9])<<48 | uint64(key[10])<<40 | uint64(key[11])<<32 |
		uint64(key[12])<<24 | uint64(key[13])<<16 | uint64(key[14])<<8 | uint64(key[15])
	h := mix64(mix64(hi^in.seed) ^ lo)
	u := (float64(h>>11) + 0.5) / (1 << 53)
	return -in.weight / math.Log(u)
}

// rendezvous returns the usable instance with the highest score for key.
func (s *instanceSet) rendezvous(key [16]byte, fallback bool) *instance {
	if len(s.all) == 1 {
		return s.all[0] // nothing to choose; skip the logarithm
	}
	var best *instance
	bestScore := -1.0
	for _, in := range s.all {
		if !usable(in, fallback) {
			continue
		}
		if sc := in.score(key); sc > bestScore {
			best, bestScore = in, sc
		}
	}
	return best
}

// weightedRandom picks a usable instance with probability proportional to
// its weight.
func (s *instanceSet) weightedRandom(fallback bool) *instance {
	total := 0.0
	for _, in := range s.all {
		if usable(in, fallback) {
			total += in.weight
		}
	}
	r := rand.Float64() * total
	var last *instance
	for _, in := range s.all {
		if !usable(in, fallback) {
			continue
		}
		last = in
		if r < in.weight {
			return in
		}
		r -= in.weight
	}
	return last
}

// v4Key is the hash key of an IPv4 destination.
func v4Key(v4 [4]byte) [16]byte {
	return [16]byte{10: 0xff, 11: 0xff, 12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]}
}
