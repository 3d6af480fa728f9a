package routes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Manager applies desired state through one netlink handle.
type Manager struct {
	h *netlink.Handle
	// ProcSys is where sysctls are written; "/proc/sys" unless set.
	ProcSys string
}

// NewManager uses h, or the calling thread's namespace when h is nil. Tests
// pass a handle bound to their own namespace (netlink.NewHandleAt).
func NewManager(h *netlink.Handle) *Manager {
	if h == nil {
		h = &netlink.Handle{}
	}
	return &Manager{h: h, ProcSys: "/proc/sys"}
}

// ownedRoutes lists the routes that are ours on link: Protocol, main table.
func (m *Manager) ownedRoutes(linkIndex int) ([]netlink.Route, error) {
	filter := &netlink.Route{Protocol: Protocol, Table: unix.RT_TABLE_MAIN, LinkIndex: linkIndex}
	mask := netlink.RT_FILTER_PROTOCOL | netlink.RT_FILTER_TABLE
	if linkIndex != 0 {
		mask |= netlink.RT_FILTER_OIF
	}
	rs, err := m.h.RouteListFiltered(netlink.FAMILY_ALL, filter, mask)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("routes: list: %w", err)
	}
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		// The table changed mid-dump; one retry gets a consistent view.
		rs, err = m.h.RouteListFiltered(netlink.FAMILY_ALL, filter, mask)
		if err != nil {
			return nil, fmt.Errorf("routes: list: %w", err)
		}
	}
	return rs, nil
}

// ownedAddrs lists the addresses that are ours on link.
func (m *Manager) ownedAddrs(link netlink.Link) ([]netlink.Addr, error) {
	as, err := m.h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("routes: list addresses: %w", err)
	}
	var ours []netlink.Addr
	for _, a := range as {
		if a.Flags&unix.IFA_F_NOPREFIXROUTE != 0 && a.Scope == unix.RT_SCOPE_UNIVERSE {
			ours = append(ours, a)
		}
	}
	return ours, nil
}

// Reconcile makes the kernel match d: link up with d.MTU, every desired
// route present with Protocol, every other route of ours on the device
// removed (leftovers of a crash or of an older config), the same for
// addresses, and forwarding on when asked. It applies what it can and
// returns every failure joined, so one conflicting route does not keep the
// others out. The device must exist (tunio.Open creates it).
func (m *Manager) Reconcile(d Desired) (Diff, error) {
	var diff Diff
	if err := d.validate(); err != nil {
		return diff, err
	}
	link, err := m.h.LinkByName(d.Device)
	if err != nil {
		return diff, fmt.Errorf("routes: device %s: %w", d.Device, err)
	}
	var errs []error
	attrs := link.Attrs()
	if attrs.MTU != d.MTU {
		if err := m.h.LinkSetMTU(link, d.MTU); err != nil {
			errs = append(errs, fmt.Errorf("routes: set MTU of %s to %d: %w", d.Device, d.MTU, err))
		} else {
			diff.Link = append(diff.Link, fmt.Sprintf("mtu %d -> %d", attrs.MTU, d.MTU))
		}
	}
	if attrs.Flags&net.FlagUp == 0 {
		if err := m.h.LinkSetUp(link); err != nil {
			errs = append(errs, fmt.Errorf("routes: set %s up: %w", d.Device, err))
		} else {
			diff.Link = append(diff.Link, "up")
		}
	}

	installed, err := m.ownedRoutes(attrs.Index)
	if err != nil {
		return diff, errors.Join(append(errs, err)...)
	}
	have := map[netip.Prefix]bool{}
	for _, r := range installed {
		p, ok := routePrefix(r)
		if ok && slices.Contains(d.Routes, p) && !have[p] {
			have[p] = true
			continue
		}
		if err := m.h.RouteDel(&r); err != nil {
			errs = append(errs, fmt.Errorf("routes: remove stale %v: %w", r.Dst, err))
			continue
		}
		diff.RemovedRoutes = append(diff.RemovedRoutes, p)
	}
	for _, p := range d.Routes {
		if have[p] {
			continue
		}
		r := routeFor(p, attrs.Index, d.Metric)
		if err := m.h.RouteAdd(r); err != nil {
			if errors.Is(err, unix.EEXIST) {
				err = fmt.Errorf("%w (a route of another owner holds this prefix and metric; set a metric or remove it)", err)
			}
			errs = append(errs, fmt.Errorf("routes: add %v dev %s: %w", p, d.Device, err))
			continue
		}
		diff.AddedRoutes = append(diff.AddedRoutes, p)
	}

	addrs, err := m.ownedAddrs(link)
	if err != nil {
		return diff, errors.Join(append(errs, err)...)
	}
	haveAddr := map[netip.Prefix]bool{}
	for _, a := range addrs {
		p := addrPrefix(a)
		if slices.Contains(d.Addresses, p) {
			haveAddr[p] = true
			continue
		}
		if err := m.h.AddrDel(link, &a); err != nil {
			errs = append(errs, fmt.Errorf("routes: remove stale address %v: %w", p, err))
			continue
		}
		diff.RemovedAddresses = append(diff.RemovedAddresses, p)
	}
	for _, p := range d.Addresses {
		if haveAddr[p] {
			continue
		}
		a := &netlink.Addr{IPNet: ipNet(p), Flags: unix.IFA_F_NOPREFIXROUTE}
		if p.Addr().Is6() {
			a.Flags |= unix.IFA_F_NODAD
		}
		if err := m.h.AddrAdd(link, a); err != nil {
			errs = append(errs, fmt.Errorf("routes: add address %v to %s: %w", p, d.Device, err))
			continue
		}
		diff.AddedAddresses = append(diff.AddedAddresses, p)
	}

	if d.Forwarding {
		written, err := m.enableForwarding()
		diff.Sysctls = written
		if err != nil {
			errs = append(errs, err)
		}
	}
	return diff, errors.Join(errs...)
}

// Flush removes every route and address of ours on device. A missing
// device has nothing left: its routes went with it.
func (m *Manager) Flush(device string) (Diff, error) {
	var diff Diff
	link, err := m.h.LinkByName(device)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return diff, nil
		}
		return diff, fmt.Errorf("routes: device %s: %w", device, err)
	}
	var errs []error
	rs, err := m.ownedRoutes(link.Attrs().Index)
	if err != nil {
		return diff, err
	}
	for _, r := range rs {
		p, _ := routePrefix(r)
		if err := m.h.RouteDel(&r); err != nil {
			errs = append(errs, fmt.Errorf("routes: remove %v: %w", r.Dst, err))
			continue
		}
		diff.RemovedRoutes = append(diff.RemovedRoutes, p)
	}
	as, err := m.ownedAddrs(link)
	if err != nil {
		return diff, errors.Join(append(errs, err)...)
	}
	for _, a := range as {
		if err := m.h.AddrDel(link, &a); err != nil {
			errs = append(errs, fmt.Errorf("routes: remove address %v: %w", a.IPNet, err))
			continue
		}
		diff.RemovedAddresses = append(diff.RemovedAddresses, addrPrefix(a))
	}
	return diff, errors.Join(errs...)
}

// enableForwarding writes the two forwarding sysctls that are not on yet.
func (m *Manager) enableForwarding() ([]string, error) {
	var written []string
	var errs []error
	for _, key := range []string{sysctlIPv4Forward, sysctlIPv6Forward} {
		on, err := m.sysctlOn(key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if on {
			continue
		}
		if err := os.WriteFile(filepath.Join(m.ProcSys, key), []byte("1"), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("routes: enable %s: %w", key, err))
			continue
		}
		written = append(written, strings.ReplaceAll(key, "/", ".")+"=1")
	}
	return written, errors.Join(errs...)
}

func (m *Manager) sysctlOn(key string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(m.ProcSys, key))
	if err != nil {
		return false, fmt.Errorf("routes: read %s: %w", key, err)
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

func routeFor(p netip.Prefix, linkIndex, metric int) *netlink.Route {
	r := &netlink.Route{
		LinkIndex: linkIndex,
		Dst:       ipNet(p),
		Protocol:  Protocol,
		Table:     unix.RT_TABLE_MAIN,
		Priority:  metric,
		Family:    netlink.FAMILY_V6,
	}
	if p.Addr().Is4() {
		r.Family = netlink.FAMILY_V4
		// A device route without a gateway is on-link, as `ip route add
		// PREFIX dev DEV` makes it.
		r.Scope = netlink.SCOPE_LINK
	}
	return r
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func routePrefix(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		// A default route reported without Dst.
		if r.Family == netlink.FAMILY_V4 {
			return netip.MustParsePrefix("0.0.0.0/0"), true
		}
		return netip.MustParsePrefix("::/0"), true
	}
	return ipNetPrefix(r.Dst)
}

func ipNetPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones), true
}

func addrPrefix(a netlink.Addr) netip.Prefix {
	p, _ := ipNetPrefix(a.IPNet)
	return p
}

func sortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
}
