package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/internal/state"
	"github.com/nat64kit/nat64kit/internal/xlat"
)

// backend is the Daemon as the control API sees it.
type backend struct{ d *Daemon }

var _ control.Backend = backend{}

func (b backend) Healthy() bool { return b.d.Healthy() }

func protoOf(s string) nat64.Transport {
	p, _ := nat64.ParseTransport(s) // "" gives 0: every protocol
	return p
}

func (b backend) Sessions(proto string) []control.Session {
	in := b.d.inst.Load()
	now := b.d.now()
	var out []control.Session
	b.d.table.WalkSessions(protoOf(proto), func(e *state.SessionEntry) bool {
		s := control.Session{
			Proto:     e.Proto.String(),
			IPv6Src:   e.Src6,
			IPv6Dst:   e.Dst6,
			IPv4Src:   e.Src4,
			IPv4Dst:   e.Dst4,
			ExpiresIn: control.SecondsOf(time.Duration(max(e.Expires-now, 0))),
		}
		if !s.IPv6Dst.IsValid() { // derive Y' from Z when the table does not keep it
			s.IPv6Dst = netip.AddrPortFrom(in.Prefix.EmbedAddr(e.Dst4.Addr()), e.Dst4.Port())
		}
		if e.Proto == nat64.TCP {
			s.State = e.State.String()
		}
		out = append(out, s)
		return true
	})
	return out
}

func (b backend) BIB(proto string) []control.BIBEntry {
	var out []control.BIBEntry
	b.d.table.WalkBIB(protoOf(proto), func(e *state.BIBEntry) bool {
		out = append(out, control.BIBEntry{Proto: e.Proto.String(), IPv6: e.IPv6, IPv4: e.IPv4, Static: e.Static, Sessions: e.Sessions})
		return true
	})
	return out
}

func (b backend) Stats() control.Stats {
	d := b.d
	var c xlat.Counters
	var batches [numBuckets]uint64
	for _, w := range d.workers {
		w.snapshot(&c, &batches)
	}
	d.expireMu.Lock()
	c.Add(&d.expirer.Counters)
	d.expireMu.Unlock()
	ts := d.table.Stats()
	in := d.inst.Load()
	s := control.Stats{
		Instance:    in.Name,
		Healthy:     d.Healthy(),
		Uptime:      control.SecondsOf(time.Since(d.started)),
		Packets:     map[string]uint64{},
		Bytes:       map[string]uint64{},
		Drops:       map[string]uint64{},
		Sessions:    map[string]int{},
		BIBEntries:  map[string]int{},
		BatchBounds: batchBounds[:],
		TUNBatches:  batches[:],
		ICMPErrors:  c.ICMPErrors,
		Hairpinned:  c.Hairpinned,

		ICMPErrorsSuppressed: c.ICMPErrorsSuppressed,
		FragmentsHeld:        c.FragmentsHeld,
		Reassembled:          c.Reassembled,
	}
	for dir := xlat.Direction(0); dir < xlat.NumDirections; dir++ {
		for _, p := range nat64.Transports {
			k := dir.String() + "/" + p.String()
			s.Packets[k] = c.Packets[dir][p.Index()]
			s.Bytes[k] = c.Bytes[dir][p.Index()]
		}
	}
	for r, n := range c.Drops {
		if n > 0 {
			s.Drops[nat64.DropReason(r).String()] = n
		}
	}
	for _, p := range nat64.Transports {
		ps := ts.Proto(p)
		s.Sessions[p.String()] = ps.Sessions
		s.BIBEntries[p.String()] = ps.BIB
		s.Pool4PortsInUse += ps.PortsInUse
	}
	for _, r := range in.Pool4 {
		s.Pool4Ports += r.Addresses() * r.Ports()
	}
	d.fast.addStats(&s)
	return s
}

func (b backend) static(e control.StaticEntry) (nat64.StaticBIB, error) {
	p, ok := nat64.ParseTransport(e.Proto)
	if !ok {
		return nat64.StaticBIB{}, fmt.Errorf("proto %q: want tcp, udp or icmp", e.Proto)
	}
	in := b.d.inst.Load()
	if !e.IPv6.Addr().Is6() || in.Prefix.Contains(e.IPv6.Addr().As16()) {
		return nat64.StaticBIB{}, fmt.Errorf("ipv6 %s: want a real IPv6 host's transport address", e.IPv6)
	}
	if !in.Pool4Contains(e.IPv4) {
		return nat64.StaticBIB{}, fmt.Errorf("ipv4 %s is outside the pool4 of instance %q", e.IPv4, in.Name)
	}
	return nat64.StaticBIB{Proto: p, IPv6: e.IPv6, IPv4: e.IPv4}, nil
}

func (b backend) AddStatic(e control.StaticEntry) error {
	s, err := b.static(e)
	if err != nil {
		return err
	}
	return b.d.table.AddStatic(s)
}

func (b backend) RemoveStatic(e control.StaticEntry) error {
	s, err := b.static(e)
	if err != nil {
		return err
	}
	if err := b.d.table.RemoveStatic(s); err != nil {
		if errors.Is(err, state.ErrNoStatic) {
			return fmt.Errorf("%w: %v", control.ErrNotFound, err)
		}
		return err
	}
	return nil
}

func (b backend) Reload() error { return b.d.Reload() }
