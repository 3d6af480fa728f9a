// Package fastpath is the kernel fast path of a NAT64 instance: a tc BPF
// program (fastpath.c) attached with tcx to the egress of the instance's
// TUN device, which translates the packets of established sessions itself
// and sends them back into the stack through the device's ingress. The Go
// translator stays the slow path for everything else, and its state table
// the only source of truth: it inserts into the program's maps the
// sessions the fast path may carry and deletes them when they end.
//
// README.md states the contract between the two paths.
package fastpath

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// Config is what the program needs to know of its instance. The MTUs are
// the translator's, already resolved (xlat.Config.Resolved).
type Config struct {
	Ifindex       int // the instance's TUN device
	MaxSessions   int // sizes the session maps
	MTU           int // the IPv6 side's
	IPv4MTU       int // the IPv4 side's next hop
	LowestIPv6MTU int // RFC 7915 §4 lowest-ipv6-mtu

	// l3Offset is where the IP header starts in the packets the program
	// sees: 0 on a TUN device; the tests set 14 for BPF_PROG_TEST_RUN,
	// which always builds an Ethernet frame.
	l3Offset uint32
}

// Session is one session as the maps hold it: both tuples. For ICMP echo
// both IPv6-side ports are the IPv6 identifier and both IPv4-side ports
// the IPv4 one.
type Session struct {
	Proto    nat64.Transport
	Src6     [16]byte // X
	Src6Port uint16
	Dst6     [16]byte // Y: Z in the prefix
	Dst6Port uint16
	Src4     [4]byte // T, a pool4 address
	Src4Port uint16
	Dst4     [4]byte // Z
	Dst4Port uint16
}

// FastPath is a loaded program with its maps. Insert, Delete and Idle are
// not safe for concurrent use (the state table calls them under its lock);
// Stats is.
type FastPath struct {
	objs    fastpathObjects
	ifindex int
	link    link.Link

	// Scratch keys and values, so that Insert and Delete allocate nothing.
	k6 fastpathKey6
	k4 fastpathKey4
	v4 fastpathTo4
	v6 fastpathTo6
}

// Load loads the program and creates its maps, sized for c.MaxSessions.
// Its error is one line saying why the kernel refused (no CAP_BPF, a
// verifier error, ...), fit for a log.
func Load(c Config) (*FastPath, error) {
	spec, err := loadFastpath()
	if err != nil {
		return nil, fmt.Errorf("reading the BPF object: %w", err)
	}
	if c.MaxSessions < 1 {
		return nil, fmt.Errorf("max sessions %d", c.MaxSessions)
	}
	for _, m := range []string{fastpathMapSessions6, fastpathMapSessions4} {
		// Not preallocated: memory follows the sessions really carried,
		// not max_sessions.
		spec.Maps[m].MaxEntries = uint32(c.MaxSessions)
		spec.Maps[m].Flags |= unix.BPF_F_NO_PREALLOC
	}
	for name, v := range map[string]uint32{
		fastpathVarL3Offset: c.l3Offset,
		fastpathVarMtu6:     uint32(c.MTU),
		fastpathVarMtu4:     uint32(c.IPv4MTU),
		fastpathVarLowMtu6:  uint32(c.LowestIPv6MTU),
	} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("setting %s: %w", name, err)
		}
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	_ = rlimit.RemoveMemlock()
	f := &FastPath{ifindex: c.Ifindex}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		return nil, loadError(err)
	}
	return f, nil
}

// loadError turns what the kernel said into one line.
func loadError(err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		last := ""
		if n := len(ve.Log); n > 0 {
			last = ": " + strings.TrimSpace(ve.Log[n-1])
		}
		return fmt.Errorf("the BPF verifier rejected the program (%v%s)", ve.Cause, last)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("loading a BPF program is not permitted (CAP_BPF and CAP_NET_ADMIN are needed): %v", firstLine(err))
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("the kernel does not support the program: %v", firstLine(err))
	}
	return fmt.Errorf("loading the BPF program: %v", firstLine(err))
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// Attach attaches the program to the device's egress with tcx. The link
// is not pinned: it goes with the process, so a nat64ctl killed with -9
// leaves nothing behind to break the next start.
func (f *FastPath) Attach() error {
	l, err := link.AttachTCX(link.TCXOptions{
		Interface: f.ifindex,
		Program:   f.objs.Translate,
		Attach:    ebpf.AttachTCXEgress,
	})
	if err != nil {
		if errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("tcx is not supported by this kernel: %v", firstLine(err))
		}
		return fmt.Errorf("attaching to the TUN device's egress (tcx): %v", firstLine(err))
	}
	f.link = l
	return nil
}

// Close detaches the program and frees the maps.
func (f *FastPath) Close() error {
	var err error
	if f.link != nil {
		err = f.link.Close()
		f.link = nil
	}
	return errors.Join(err, f.objs.Close())
}

// keys fills f.k6 and f.k4 from s.
func (f *FastPath) keys(s *Session) {
	f.k6 = fastpathKey6{
		Src: s.Src6, Dst: s.Dst6,
		Sport: hton16(s.Src6Port), Dport: hton16(s.Dst6Port),
		Proto: uint8(proto6(s.Proto)),
	}
	f.k4 = fastpathKey4{
		Src: addr4(s.Dst4), Dst: addr4(s.Src4),
		Sport: hton16(s.Dst4Port), Dport: hton16(s.Src4Port),
		Proto: uint8(proto4(s.Proto)),
	}
}

// Insert hands the fast path a session: from now on it may translate the
// session's packets both ways.
func (f *FastPath) Insert(s *Session) error {
	f.keys(s)
	f.v4 = fastpathTo4{
		Src: addr4(s.Src4), Dst: addr4(s.Dst4),
		Sport: hton16(s.Src4Port), Dport: hton16(s.Dst4Port),
	}
	f.v6 = fastpathTo6{
		Src: s.Dst6, Dst: s.Src6,
		Sport: hton16(s.Dst6Port), Dport: hton16(s.Src6Port),
	}
	if err := f.objs.Sessions6.Update(&f.k6, &f.v4, ebpf.UpdateAny); err != nil {
		return err
	}
	if err := f.objs.Sessions4.Update(&f.k4, &f.v6, ebpf.UpdateAny); err != nil {
		_ = f.objs.Sessions6.Delete(&f.k6)
		return err
	}
	return nil
}

// Delete takes a session back: its next packet goes to the slow path.
func (f *FastPath) Delete(s *Session) error {
	f.keys(s)
	return errors.Join(f.objs.Sessions6.Delete(&f.k6), f.objs.Sessions4.Delete(&f.k4))
}

// Idle is how long ago the fast path last translated a packet of s, in
// either direction; false when it holds s but has carried nothing of it,
// or does not hold it.
func (f *FastPath) Idle(s *Session) (time.Duration, bool) {
	f.keys(s)
	var last uint64
	if f.objs.Sessions6.Lookup(&f.k6, &f.v4) == nil {
		last = f.v4.LastSeen
	}
	if f.objs.Sessions4.Lookup(&f.k4, &f.v6) == nil {
		last = max(last, f.v6.LastSeen)
	}
	if last == 0 {
		return 0, false
	}
	// bpf_ktime_get_ns is CLOCK_MONOTONIC.
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0, false
	}
	now := uint64(ts.Nano())
	if last >= now {
		return 0, true
	}
	return time.Duration(now - last), true
}

// Sessions is how many sessions the IPv6-side map holds.
func (f *FastPath) Sessions() int {
	n := 0
	it := f.objs.Sessions6.Iterate()
	var k fastpathKey6
	var v fastpathTo4
	for it.Next(&k, &v) {
		n++
	}
	return n
}

// Stats are the program's counters, summed over the CPUs.
type Stats struct {
	// Packets and bytes translated, by direction (0: 6to4, 1: 4to6) and
	// nat64.Transport.Index(). A GSO packet counts as its segments.
	Packets, Bytes [2][nat64.NumTransports]uint64
	// Passed counts the packets left to the slow path, by reason.
	Passed map[string]uint64
	// Dropped counts packets lost because a rewrite failed half way.
	Dropped uint64
}

// passReasons names the program's enum pass_reason, in order.
var passReasons = [...]string{
	"other", "malformed", "options", "fragment", "hop_limit", "protocol", "icmp",
	"tcp_control", "udp_zero_checksum", "no_session", "too_big", "gso", "change_proto",
}

// Stats reads the counters.
func (f *FastPath) Stats() (Stats, error) {
	var st Stats
	var counts []fastpathCount
	for d := range 2 {
		for tr := range nat64.NumTransports {
			if err := f.objs.Traffic.Lookup(uint32(d*nat64.NumTransports+tr), &counts); err != nil {
				return st, err
			}
			for _, c := range counts {
				st.Packets[d][tr] += c.Packets
				st.Bytes[d][tr] += c.Bytes
			}
		}
	}
	st.Passed = make(map[string]uint64, len(passReasons))
	var n []uint64
	for i := range len(passReasons) + 1 {
		if err := f.objs.Passed.Lookup(uint32(i), &n); err != nil {
			return st, err
		}
		var sum uint64
		for _, v := range n {
			sum += v
		}
		if i == len(passReasons) {
			st.Dropped = sum
		} else if sum != 0 {
			st.Passed[passReasons[i]] = sum
		}
	}
	return st, nil
}

// proto6 and proto4 are the IP protocols of a transport on each side.
func proto6(t nat64.Transport) nat64.Proto {
	if t == nat64.ICMP {
		return nat64.ProtoICMPv6
	}
	return proto4(t)
}

func proto4(t nat64.Transport) nat64.Proto {
	switch t {
	case nat64.TCP:
		return nat64.ProtoTCP
	case nat64.UDP:
		return nat64.ProtoUDP
	}
	return nat64.ProtoICMPv4
}

// The maps hold addresses and ports as the packet does, in network order;
// the generated types read them as host-order integers.
func hton16(v uint16) uint16 { return v<<8 | v>>8 }

func addr4(a [4]byte) uint32 {
	return uint32(a[0]) | uint32(a[1])<<8 | uint32(a[2])<<16 | uint32(a[3])<<24
}
