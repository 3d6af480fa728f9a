package dns64

import (
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nat64kit/nat64kit/internal/dns64conf"
)

// maxCachedAnswer is the largest packed answer kept (without OPT): the
// EDNS buffer size most resolvers advertise since DNS Flag Day 2020. Larger
// synthesized answers are rare, and over UDP most clients would get them
// truncated anyway. With an entry's bookkeeping it bounds the memory of one
// entry to about 2.3 KiB (TestAnswerCacheBound).
const maxCachedAnswer = 1232

// optLen is the size of the OPT record a hit appends: root name, type,
// class (UDP size), TTL (extended rcode, version, flags), empty rdata.
const optLen = 11

// answerCache keeps synthesized answers, packed, so a repeated query costs
// neither lookup nor synthesis. It is a fixed number of shards, each a map
// under its own lock with at most perShard entries; a full shard evicts a
// random entry (the first a map iteration gives), which costs no
// bookkeeping on a hit, unlike LRU (a hit takes only a read lock); a hot
// name evicted is stored again at its next miss.
type answerCache struct {
	shards   []cacheShard
	mask     uint64
	perShard int
	maxTTL   int64 // nanoseconds
	seed     uint64

	// now is the clock, in nanoseconds; tests replace it.
	now func() int64
	// epoch is bumped before every invalidation. An answer is stored only
	// if no invalidation began since its query read the instances, so an
	// answer built from a health state or instance set that has just been
	// replaced cannot slip in behind the purge.
	epoch atomic.Uint64
	count atomic.Int64

	// wire: hits patch a copy of the packed answer (the default); false
	// keeps a *dns.Msg and copies it per hit, the alternative measured in
	// BenchmarkServeDNSCacheHit.
	wire bool

	hitC, missC, evictC counterCache
	entriesG            atomic.Pointer[prometheus.Gauge]
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[uint64]*cacheEntry
	_  [40]byte // keep neighbouring shards' locks off one cache line
}

// cacheEntry is immutable once stored.
type cacheEntry struct {
	hash   uint64
	name   string // lower case
	qclass uint16
	flags  uint8
	view   uint64
	// used has bit i set when instance i's prefix is in the answer.
	used    uint64
	stored  int64 // now() when its query arrived
	expires int64

	wire   []byte   // packed, ID 0, no OPT
	qEnd   int      // end of the question's name in wire
	ttlOff []uint16 // offset of each record's TTL in wire
	ttls   []uint32 // and its value when stored

	msg *dns.Msg // when !wire
}

// Query flags that select an entry.
const (
	flagDO uint8 = 1 << iota
	flagCD
)

var cacheStart = time.Now()

func monotonicNow() int64 { return int64(time.Since(cacheStart)) }

func newAnswerCache(size int, maxTTL time.Duration) *answerCache {
	shards := 1
	for shards < 64 && shards*2 <= size/16 {
		shards *= 2
	}
	c := &answerCache{
		shards:   make([]cacheShard, shards),
		mask:     uint64(shards - 1),
		perShard: size / shards,
		maxTTL:   int64(maxTTL),
		seed:     mix64(uint64(time.Now().UnixNano())),
		now:      monotonicNow,
		wire:     true,
	}
	for i := range c.shards {
		c.shards[i].m = make(map[uint64]*cacheEntry, min(c.perShard, 1024))
	}
	return c
}

// cacheKey is what an answer depends on beyond the plugin's own config:
// the name, class, DO and CD, and view, the instances' part. For balance
// client and random, view is the chosen instance (index+1): the answer
// embeds only its prefix. For destination and all, every usable instance
// may appear, so view is the set of usable instances (bit 63 set to keep
// the two kinds apart). The clients decision needs no place in the key:
// refused clients never reach the cache, and mapped depends on the A
// records only, not on the client.
type cacheKey struct {
	hash  uint64
	name  string // as asked, any case
	class uint16
	flags uint8
	view  uint64
}

func (c *answerCache) key(q *dns.Question, flags uint8, view uint64) cacheKey {
	// Collisions only cost a miss, as an entry is checked against the
	// name it holds.
	h := mix64(nameHash(c.seed, q.Name) ^ uint64(q.Qclass)<<8 ^ uint64(flags))
	h = mix64(h ^ view)
	return cacheKey{hash: h, name: q.Name, class: q.Qclass, flags: flags, view: view}
}

// nameHash is FNV-1a over the lower-cased name, seeded.
func nameHash(seed uint64, name string) uint64 {
	h := seed ^ 0xcbf29ce484222325
	for i := 0; i < len(name); i++ {
		b := name[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		h = (h ^ uint64(b)) * 0x100000001b3
	}
	return h
}

func (c *answerCache) shard(h uint64) *cacheShard { return &c.shards[h&c.mask] }

// get returns the live entry for k, or nil.
func (c *answerCache) get(k cacheKey, now int64) *cacheEntry {
	s := c.shard(k.hash)
	s.mu.RLock()
	e := s.m[k.hash]
	s.mu.RUnlock()
	if e == nil || now >= e.expires || e.qclass != k.class || e.flags != k.flags || e.view != k.view || !equalFoldASCII(e.name, k.name) {
		return nil
	}
	return e
}

// put stores e unless an invalidation began after epoch or set is no
// longer the current one (check is called under the shard lock).
func (c *answerCache) put(e *cacheEntry, epoch uint64, check func() bool) (evicted bool) {
	s := c.shard(e.hash)
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.epoch.Load() != epoch || !check() {
		return false
	}
	if _, ok := s.m[e.hash]; !ok {
		if len(s.m) >= c.perShard {
			for h := range s.m { // random: map iteration starts anywhere
				delete(s.m, h)
				break
			}
			evicted = true
		} else {
			c.count.Add(1)
		}
	}
	s.m[e.hash] = e
	return evicted
}

// purge removes the entries drop selects; it returns how many.
func (c *answerCache) purge(drop func(*cacheEntry) bool) int {
	c.epoch.Add(1)
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for h, e := range s.m {
			if drop(e) {
				delete(s.m, h)
				n++
			}
		}
		s.mu.Unlock()
	}
	c.count.Add(int64(-n))
	c.setGauge()
	return n
}

// entries counts the stored entries, live or expired.
func (c *answerCache) entries() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}

func (c *answerCache) setGauge() {
	if g := c.entriesG.Load(); g != nil {
		(*g).Set(float64(c.count.Load()))
	}
}

// newCacheEntry packs out for the cache. It returns nil for an answer that
// cannot be kept: too large, or with a TTL of 0.
func (c *answerCache) newCacheEntry(k cacheKey, out *dns.Msg, used uint64, now int64) *cacheEntry {
	m := *out // shallow: only the header and the section slices change
	m.Id = 0
	m.Compress = true
	m.Extra = nil
	for _, rr := range out.Extra {
		if rr.Header().Rrtype != dns.TypeOPT { // a hit writes the client's
			m.Extra = append(m.Extra, rr)
		}
	}
	wire, err := m.Pack()
	if err != nil || len(wire) > maxCachedAnswer {
		return nil
	}
	qEnd, offs, ttls, ok := ttlOffsets(wire)
	if !ok {
		return nil
	}
	minTTL := uint32(0)
	for i, t := range ttls {
		if i == 0 || t < minTTL {
			minTTL = t
		}
	}
	life := min(int64(minTTL)*int64(time.Second), c.maxTTL)
	if len(ttls) == 0 || life <= 0 {
		return nil
	}
	e := &cacheEntry{
		hash: k.hash, name: strings.ToLower(k.name), qclass: k.class, flags: k.flags, view: k.view,
		used: used, stored: now, expires: now + life,
	}
	if c.wire {
		e.wire, e.qEnd, e.ttlOff, e.ttls = wire, qEnd, offs, ttls
	} else {
		e.msg = m.Copy()
	}
	return e
}

// ttlOffsets walks a packed message: the end of its one question's name,
// and the offset and value of every record's TTL (OPT has none here).
func ttlOffsets(b []byte) (qEnd int, offs []uint16, ttls []uint32, ok bool) {
	if len(b) < 12 || binary.BigEndian.Uint16(b[4:]) != 1 {
		return 0, nil, nil, false
	}
	n := int(binary.BigEndian.Uint16(b[6:])) + int(binary.BigEndian.Uint16(b[8:])) + int(binary.BigEndian.Uint16(b[10:]))
	off, ok := skipName(b, 12)
	if !ok {
		return 0, nil, nil, false
	}
	qEnd = off
	off += 4
	offs, ttls = make([]uint16, 0, n), make([]uint32, 0, n)
	for i := 0; i < n; i++ {
		if off, ok = skipName(b, off); !ok || off+10 > len(b) {
			return 0, nil, nil, false
		}
		offs = append(offs, uint16(off+4))
		ttls = append(ttls, binary.BigEndian.Uint32(b[off+4:]))
		off += 10 + int(binary.BigEndian.Uint16(b[off+8:]))
	}
	return qEnd, offs, ttls, off == len(b)
}

// skipName returns the offset after the (possibly compressed) name at off.
func skipName(b []byte, off int) (int, bool) {
	for off < len(b) {
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1, true
		case l&0xc0 == 0xc0:
			return off + 2, off+2 <= len(b)
		case l&0xc0 != 0:
			return 0, false
		}
		off += 1 + l
	}
	return 0, false
}

// wireBufs hold the patched copies of cached answers, so a hit allocates
// nothing: ResponseWriter.Write, like io.Writer, does not keep the slice.
var wireBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, maxCachedAnswer+optLen)
	return &b
}}

// serveCached answers r from e; it reports false (nothing written) when
// the answer does not fit the client's buffer, so the query takes the
// ordinary path and the server truncates it.
func (c *answerCache) serveCached(w dns.ResponseWriter, r *dns.Msg, e *cacheEntry, now int64, udp bool) bool {
	opt := r.IsEdns0()
	elapsed := uint32((now - e.stored) / int64(time.Second))
	if !c.wire {
		return c.serveCachedMsg(w, r, e, opt, elapsed, udp)
	}
	size := len(e.wire)
	if opt != nil {
		size += optLen
	}
	if udp && size > udpLimit(opt) {
		return false
	}
	bp := wireBufs.Get().(*[]byte)
	defer wireBufs.Put(bp)
	b := append((*bp)[:0], e.wire...)
	binary.BigEndian.PutUint16(b, r.Id)
	b[2] &^= 1 // RD, echoed from the query
	if r.RecursionDesired {
		b[2] |= 1
	}
	// The question as the client wrote it (same name, maybe other case).
	if end, err := dns.PackDomainName(r.Question[0].Name, b, 12, nil, false); err != nil || end != e.qEnd {
		return false
	}
	for i, off := range e.ttlOff {
		binary.BigEndian.PutUint32(b[off:], e.ttls[i]-elapsed)
	}
	if opt != nil {
		// As CoreDNS's SizeAndDo would: the client's UDP size and DO, no
		// options (those of the upstream answer were for another client).
		var flags byte
		if opt.Do() {
			flags = 0x80
		}
		b = append(b, 0, 0, byte(dns.TypeOPT), byte(opt.UDPSize()>>8), byte(opt.UDPSize()), 0, 0, flags, 0, 0, 0)
		binary.BigEndian.PutUint16(b[10:], binary.BigEndian.Uint16(b[10:])+1)
	}
	*bp = b
	_, err := w.Write(b)
	return err == nil
}

// serveCachedMsg is the *dns.Msg variant: a deep copy per hit.
func (c *answerCache) serveCachedMsg(w dns.ResponseWriter, r *dns.Msg, e *cacheEntry, opt *dns.OPT, elapsed uint32, udp bool) bool {
	m := e.msg.Copy()
	m.Id = r.Id
	m.RecursionDesired = r.RecursionDesired
	m.Question[0].Name = r.Question[0].Name
	for _, sec := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range sec {
			rr.Header().Ttl -= elapsed
		}
	}
	if opt != nil {
		m.SetEdns0(opt.UDPSize(), opt.Do())
	}
	if udp && m.Len() > udpLimit(opt) {
		return false
	}
	return w.WriteMsg(m) == nil
}

// udpLimit is the client's UDP buffer, as CoreDNS's request.Size computes it.
func udpLimit(opt *dns.OPT) int {
	if opt == nil {
		return dns.MinMsgSize
	}
	return max(int(opt.UDPSize()), dns.MinMsgSize)
}

// choice is the instance part of an answer, decided once per query so the
// cache key and the synthesized answer agree.
type choice struct {
	fallback bool
	chosen   *instance // balance client and random
	idx      int       // chosen's index in the set
}

func (d *DNS64) choose(set *instanceSet, client [16]byte) choice {
	ch := choice{fallback: !set.anyHealthy()}
	switch d.balance {
	case dns64conf.BalanceClient:
		ch.chosen = set.rendezvous(client, ch.fallback)
	case dns64conf.BalanceRandom:
		ch.chosen = set.weightedRandom(ch.fallback)
	}
	if ch.chosen != nil {
		ch.idx = set.index(ch.chosen)
	}
	return ch
}

// view is the key part of ch (see cacheKey); ok is false when the answer
// cannot be keyed (more than 63 instances: the cache is not used).
func (d *DNS64) view(set *instanceSet, ch choice) (uint64, bool) {
	if len(set.all) > 63 {
		return 0, false // the bit masks of entries hold 63 instances
	}
	if ch.chosen != nil {
		return uint64(ch.idx) + 1, true
	}
	v := uint64(1) << 63
	for i, in := range set.all {
		if usable(in, ch.fallback) {
			v |= 1 << uint(i)
		}
	}
	return v, true
}

// cacheFlags are the query bits that select an entry.
func cacheFlags(r *dns.Msg) uint8 {
	var f uint8
	if r.CheckingDisabled {
		f |= flagCD
	}
	if opt := r.IsEdns0(); opt != nil && opt.Do() {
		f |= flagDO
	}
	return f
}

// isUDP tells whether the client asked over UDP, where its buffer size
// limits the answer.
func isUDP(w dns.ResponseWriter) bool {
	_, tcp := w.RemoteAddr().(*net.TCPAddr)
	return !tcp
}

// invalidateInstance drops the answers that instance i's health change
// makes wrong: for balance client and random, those embedding its prefix
// (clients that now choose another instance look up another key); for
// destination and all, every answer, as each depends on the whole set.
func (d *DNS64) invalidateInstance(i int) {
	c := d.cache
	if c == nil {
		return
	}
	if d.balance == dns64conf.BalanceDestination || d.balance == dns64conf.BalanceAll || i >= 64 {
		c.purge(func(*cacheEntry) bool { return true })
		return
	}
	bit := uint64(1) << uint(i)
	c.purge(func(e *cacheEntry) bool { return e.used&bit != 0 })
}

// invalidateReload drops, after a reload from old to new, the answers of
// the instances whose prefix changed (or that are gone), for balance
// client and random; everything for destination and all.
func (d *DNS64) invalidateReload(old, new *instanceSet) {
	c := d.cache
	if c == nil {
		return
	}
	if d.balance == dns64conf.BalanceDestination || d.balance == dns64conf.BalanceAll || len(old.all) > 64 || len(new.all) > 64 {
		c.purge(func(*cacheEntry) bool { return true })
		return
	}
	var changed uint64
	for i, o := range old.all {
		if i >= len(new.all) || new.all[i].prefix != o.prefix {
			changed |= 1 << uint(i)
		}
	}
	if changed != 0 {
		c.purge(func(e *cacheEntry) bool { return e.used&changed != 0 })
	}
}
