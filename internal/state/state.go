// Package state is the stateful NAT64 of RFC 6146: the Binding Information
// Bases and session tables for TCP, UDP and ICMP, pool4 port allocation,
// the TCP state machine of §3.5.2, filtering, and session expiry.
//
// Concurrency. Packet goroutines call Outbound, Inbound and the Lookup
// methods at once. Sessions are found through two indexes, one keyed by the
// IPv6-side tuple and one by the IPv4-side tuple, each split into shards
// with their own RWMutex. A packet of an existing session takes one shard's
// read lock and updates the session with atomics only (its TCP state and
// expiry share one word, changed by compare-and-swap). Everything that
// changes the structure (creating and deleting sessions and BIB entries,
// pool4, expiry, held SYNs) runs under one writer mutex, Table.mu, and takes
// a shard's write lock only around its own index edits. So: readers hold
// one shard lock and never wait while holding it; the writer holds mu and
// at most shard write locks; there is no lock-order cycle.
package state

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// Flow6 is a packet seen on the IPv6 side: host X:x to remote IPv4 Z:z (Z
// already extracted from the prefix). For ICMP queries SrcPort and DstPort
// are both the identifier.
type Flow6 struct {
	Proto   nat64.Transport
	Src     [16]byte
	SrcPort uint16
	Dst     [4]byte
	DstPort uint16
}

// Flow4 is a packet seen on the IPv4 side, inbound: remote Z:z to pool4
// T:t. For ICMP SrcPort and DstPort are both the identifier.
type Flow4 struct {
	Proto   nat64.Transport
	Src     [4]byte
	SrcPort uint16
	Dst     [4]byte
	DstPort uint16
}

// Options are knobs that nat64conf does not carry. The zero value gives
// the defaults.
type Options struct {
	// Shards per session index, rounded up to a power of two
	// (default 64).
	Shards int
	// MaxHeldSYNs bounds the IPv4 SYNs stored for simultaneous open
	// (default 256); HeldSYNBytes is the room kept for each (default 548,
	// what an ICMPv4 error may quote: 576 - 28). Longer packets are
	// stored truncated. The store is allocated once, in New.
	MaxHeldSYNs  int
	HeldSYNBytes int
	// IncomingSYNTimeout is TCP_INCOMING_SYN: how long a held SYN and a
	// session in V4 INIT live (default and RFC 6146 minimum 6 s).
	IncomingSYNTimeout time.Duration
	// ExpireBudget bounds the sessions one Expire call examines, so a
	// mass expiry cannot stall session creation (default 262144); the
	// rest waits for the next call.
	ExpireBudget int
	// Secret keys the hashes and port randomisation; zero means random.
	Secret [32]byte
	// OnMapping, when set, is called for every BIB entry and session
	// created or removed (RFC 6888 mapping logs), synchronously, with the
	// table's writer lock held: it must be quick and must not call the
	// Table. The event is only valid during the call.
	OnMapping func(*MappingEvent)
}

// The defaults of Options.
const (
	DefaultShards             = 64
	DefaultMaxHeldSYNs        = 256
	DefaultHeldSYNBytes       = 576 - 28
	DefaultIncomingSYNTimeout = 6 * time.Second
	DefaultExpireBudget       = 1 << 18

	// MaxCapacity is the most sessions a Table can be configured for.
	MaxCapacity = 1 << 26
)

// params are the settings the packet path reads; Reconfigure swaps them
// whole.
type params struct {
	udp, icmp, tcpEst, tcpTrans, tcpSyn int64
	eif                                 bool
	maxSessions, maxPerSource           int
	prefix                              nat64.Prefix
}

const (
	nilRef        = ^uint32(0)
	noSlot        = ^uint32(0)
	maxChunkShift = 12 // slabs grow by up to 4096 entries at a time
	minChunkShift = 5
	refreshSlop   = 1 << 20 // ns; a refresh moving expiry by less is not written
)

// session is one session table entry, 64 bytes. The tuple fields never
// change while the session is indexed; word is the only field the packet
// path writes; the rest belong to the writer.
type session struct {
	src6  [16]byte // X
	rem4  [4]byte  // Z
	pool4 [4]byte  // T
	sport uint16   // x
	rport uint16   // z; 0 for ICMP (the identifier is x on one side, t on the other)
	pport uint16   // t
	proto nat64.Transport
	// mirrored: the Mirror has it (writer only).
	mirrored bool
	word     atomic.Uint64 // expiry rounded up to 16 ns, TCP state in the low 4 bits
	bib      uint32
	wprev    uint32 // timer wheel list
	wnext    uint32
	bprev    uint32 // the BIB entry's session list
	bnext    uint32
	wslot    uint32
}

// bibEntry is one BIB entry (RFC 6146 §3.1).
type bibEntry struct {
	src6   [16]byte
	pool4  [4]byte
	sport  uint16
	pport  uint16
	proto  nat64.Transport
	static bool
	head   uint32 // first session; next free entry when unused
	nsess  uint32
}

// source is what the table knows of one IPv6 host.
type source struct {
	sessions int32
	bibs     int32
	addr     [4]byte // the paired pool4 address
	paired   bool
}

// shard is one lock domain of a session index, padded to its own cache
// lines so packet goroutines on different shards do not share them.
type shard struct {
	mu sync.RWMutex
	ix index
	_  [72]byte
}

// Table is the NAT64 state of one instance.
type Table struct {
	hash    hasher
	params  atomic.Pointer[params]
	pool    atomic.Pointer[pool]
	shard6  []shard
	shard4  []shard
	shShift uint
	// sessDir is read by packet goroutines; only replaced with every shard
	// write-locked, and its elements only set before the sessions in that
	// chunk are published in an index.
	sessDir [][]session
	cshift  uint32 // slab chunk: 1<<cshift entries
	cmask   uint32

	// The fields above are read on every packet; keep the writer's lock
	// word off their cache line.
	_ [64]byte

	mu         sync.Mutex // the writer; guards everything below
	sessNext   uint32     // next never-used session ref
	sessFree   uint32     // free list through wnext
	nsess      int
	perProto   [3]protoCounts
	bibDir     [][]bibEntry
	bibNext    uint32
	bibFree    uint32
	bib6       index
	bib4       index
	srcs       map[[16]byte]source
	ports      [3]map[uint32]*portmap
	portsUsed  [3]int
	alg3       [256]uint16
	wheel      wheel
	held       heldStore
	budget     int
	onMapping  func(*MappingEvent)
	event      MappingEvent
	lastNow    int64 // the latest clock reading seen, for events without one
	mirror     Mirror
	mirrorSess MirrorSession // the argument of mirror calls, reused
	// mirrorOn tells the packet path, which never reads mirror, whether a
	// TCP state change needs the writer to resync the mirror.
	mirrorOn atomic.Bool

	expireMu sync.Mutex // one Expire at a time
}

type protoCounts struct {
	sessions, bibs, statics int
}

// protoIndex is p as an index into per-transport arrays, or -1 for a
// value that is no transport.
func protoIndex(p nat64.Transport) int {
	if p.Valid() {
		return p.Index()
	}
	return -1
}

// Config is what the table needs to know of its instance. The daemon fills
// it from nat64.toml; the table never reads configuration files itself.
type Config struct {
	Prefix                       nat64.Prefix // pool6
	Pool4                        []nat64.Pool4Range
	Timeouts                     nat64.Timeouts // zero fields take RFC 6146's defaults
	EndpointIndependentFiltering bool
	MaxSessions                  int // across all protocols; 0: the default
	MaxSessionsPerSource         int // per IPv6 source address; 0: the default
	Static                       []nat64.StaticBIB
}

// New builds the table for an instance: pool4, timeouts, filtering,
// limits and static BIB entries come from in.
func New(in *Config, opts Options) (*Table, error) {
	if opts.Shards <= 0 {
		opts.Shards = DefaultShards
	}
	nsh := 1
	for nsh < opts.Shards {
		nsh <<= 1
	}
	if nsh > 1<<16 {
		return nil, errors.New("state: too many shards")
	}
	if opts.MaxHeldSYNs <= 0 {
		opts.MaxHeldSYNs = DefaultMaxHeldSYNs
	}
	if opts.HeldSYNBytes <= 0 {
		opts.HeldSYNBytes = DefaultHeldSYNBytes
	}
	if opts.IncomingSYNTimeout <= 0 {
		opts.IncomingSYNTimeout = DefaultIncomingSYNTimeout
	}
	if opts.ExpireBudget <= 0 {
		opts.ExpireBudget = DefaultExpireBudget
	}
	if opts.Secret == ([32]byte{}) {
		if _, err := rand.Read(opts.Secret[:]); err != nil {
			return nil, fmt.Errorf("state: secret: %w", err)
		}
	}
	t := &Table{
		shard6:    make([]shard, nsh),
		shard4:    make([]shard, nsh),
		shShift:   uint(64 - log2(nsh)),
		sessFree:  nilRef,
		bibFree:   nilRef,
		srcs:      make(map[[16]byte]source),
		budget:    opts.ExpireBudget,
		onMapping: opts.OnMapping,
	}
	for i := range t.hash.k {
		t.hash.k[i] = binary.LittleEndian.Uint64(opts.Secret[i*8:]) | 1
	}
	for i := range t.ports {
		t.ports[i] = make(map[uint32]*portmap)
	}
	t.held.init(opts.MaxHeldSYNs, opts.HeldSYNBytes, int64(opts.IncomingSYNTimeout))
	t.wheel.init()
	p, pl, err := t.compile(in, int64(opts.IncomingSYNTimeout))
	if err != nil {
		return nil, err
	}
	t.params.Store(p)
	t.pool.Store(pl)
	// Small tables get small slab chunks, big ones 4096-entry chunks.
	t.cshift = uint32(min(max(log2(p.maxSessions)-3, minChunkShift), maxChunkShift))
	t.cmask = 1<<t.cshift - 1
	t.sessDir = make([][]session, t.chunksFor(p.maxSessions))
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range in.Static {
		if err := t.addStaticLocked(s); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func log2(n int) int {
	k := 0
	for 1<<k < n {
		k++
	}
	return k
}

func (t *Table) chunksFor(sessions int) int { return (sessions + int(t.cmask)) >> t.cshift }

// compile checks an instance and turns it into the table's settings.
func (t *Table) compile(in *Config, synTimeout int64) (*params, *pool, error) {
	if in == nil {
		return nil, nil, errors.New("state: nil instance")
	}
	pl, err := newPool(in.Pool4)
	if err != nil {
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	to := in.Timeouts
	p := &params{
		udp:          int64(orDefault(to.UDP, nat64.DefaultUDPTimeout)),
		icmp:         int64(orDefault(to.ICMP, nat64.DefaultICMPTimeout)),
		tcpEst:       int64(orDefault(to.TCPEstablished, nat64.DefaultTCPEstablishedTimeout)),
		tcpTrans:     int64(orDefault(to.TCPTransitory, nat64.DefaultTCPTransitoryTimeout)),
		tcpSyn:       synTimeout,
		eif:          in.EndpointIndependentFiltering,
		maxSessions:  in.MaxSessions,
		maxPerSource: in.MaxSessionsPerSource,
		prefix:       in.Prefix,
	}
	if p.maxSessions <= 0 {
		p.maxSessions = nat64.DefaultMaxSessions
	}
	if p.maxSessions > MaxCapacity {
		return nil, nil, fmt.Errorf("state: max sessions %d above %d", p.maxSessions, MaxCapacity)
	}
	if p.maxPerSource <= 0 {
		p.maxPerSource = nat64.DefaultMaxSessionsPerSource
	}
	return p, pl, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
