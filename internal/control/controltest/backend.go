// Package controltest has a stand-in translator behind the control API,
// for the tests of the API and of the CLI.
package controltest

import (
	"errors"
	"net/netip"
	"sync"

	"github.com/nat64kit/nat64kit/internal/control"
)

// Backend stands in for the translator so the HTTP layer and the CLI can
// be tested on their own; the daemon's tests run the real translator
// behind the same server.
// The zero value is a healthy translator whose reloads fail.
type Backend struct {
	mu       sync.Mutex
	down     bool
	static   []control.StaticEntry
	reloadOK bool
	reloads  int
}

// SetHealthy makes /healthz answer 200 (true) or 503.
func (f *Backend) SetHealthy(ok bool) { f.mu.Lock(); defer f.mu.Unlock(); f.down = !ok }

// SetReloadOK makes reloads succeed (true) or fail with a config error.
func (f *Backend) SetReloadOK(ok bool) { f.mu.Lock(); defer f.mu.Unlock(); f.reloadOK = ok }

// Reloads counts the reloads asked for.
func (f *Backend) Reloads() int { f.mu.Lock(); defer f.mu.Unlock(); return f.reloads }

// StaticCount is how many static entries were added and not removed.
func (f *Backend) StaticCount() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.static) }

// Healthy implements control.Backend.
func (f *Backend) Healthy() bool { f.mu.Lock(); defer f.mu.Unlock(); return !f.down }

func (f *Backend) Sessions(proto string) []control.Session {
	all := []control.Session{
		{Proto: "tcp", IPv6Src: netip.MustParseAddrPort("[2001:db8::1]:40000"), IPv6Dst: netip.MustParseAddrPort("[64:ff9b:1::c633:6402]:80"),
			IPv4Src: netip.MustParseAddrPort("203.0.113.1:40000"), IPv4Dst: netip.MustParseAddrPort("198.51.100.2:80"), State: "ESTABLISHED", ExpiresIn: 7440},
		{Proto: "udp", IPv6Src: netip.MustParseAddrPort("[2001:db8::1]:5353"), IPv6Dst: netip.MustParseAddrPort("[64:ff9b:1::c633:6402]:53"),
			IPv4Src: netip.MustParseAddrPort("203.0.113.1:5353"), IPv4Dst: netip.MustParseAddrPort("198.51.100.2:53"), ExpiresIn: 300},
	}
	var out []control.Session
	for _, s := range all {
		if proto == "" || s.Proto == proto {
			out = append(out, s)
		}
	}
	return out
}

func (f *Backend) BIB(string) []control.BIBEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []control.BIBEntry
	for _, s := range f.static {
		out = append(out, control.BIBEntry{Proto: s.Proto, IPv6: s.IPv6, IPv4: s.IPv4, Static: true})
	}
	return out
}

func (f *Backend) Stats() control.Stats {
	return control.Stats{
		Instance: "nat64-a", Healthy: f.Healthy(),
		Packets:     map[string]uint64{"6to4/tcp": 10, "4to6/tcp": 9},
		Bytes:       map[string]uint64{"6to4/tcp": 1000, "4to6/tcp": 900},
		Drops:       map[string]uint64{"no_binding": 3},
		Sessions:    map[string]int{"tcp": 1, "udp": 1},
		BIBEntries:  map[string]int{"tcp": 1},
		Pool4Ports:  64512,
		BatchBounds: []int{1, 8, 128}, TUNBatches: []uint64{5, 2, 1},

		ICMPErrors:           4,
		ICMPErrorsSuppressed: 2,
		FragmentsHeld:        3,
		Reassembled:          1,
		// 7 of the 9 4to6/tcp packets went through the kernel fast path.
		FastPath: &control.FastPathStats{
			Mode: "auto", Active: true, Sessions: 1,
			Packets: map[string]uint64{"6to4/tcp": 0, "4to6/tcp": 7},
			Bytes:   map[string]uint64{"6to4/tcp": 0, "4to6/tcp": 700},
			Passed:  map[string]uint64{"tcp_control": 2, "no_session": 1},
		},
	}
}

func (f *Backend) AddStatic(e control.StaticEntry) error {
	if e.Proto != "tcp" && e.Proto != "udp" && e.Proto != "icmp" {
		return errors.New("bad proto")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.static = append(f.static, e)
	return nil
}

func (f *Backend) RemoveStatic(e control.StaticEntry) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, s := range f.static {
		if s == e {
			f.static = append(f.static[:i], f.static[i+1:]...)
			return nil
		}
	}
	return control.ErrNotFound
}

func (f *Backend) Reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reloads++
	if !f.reloadOK {
		return errors.New("nat64.toml:3: instance[0].prefix: bad")
	}
	return nil
}
