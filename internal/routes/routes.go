// Package routes installs and repairs, over netlink, what a translator
// instance needs from the kernel: its TUN link up with the configured MTU,
// a route for pool6 (the NAT64 prefix) and for every pool4 prefix through
// the TUN, optional addresses on the TUN, and IP forwarding.
//
// # Ownership
//
// Every route it installs carries the route protocol number Protocol (64,
// "nat64kit"; `ip route show proto 64` lists them). Reconcile and Flush
// touch only routes that carry it AND go through the instance's own device,
// in the main table: routes of other owners (static, kernel, a routing
// daemon) are never changed, even for an identical prefix, and several
// instances in one namespace do not remove each other's routes. The kernel
// is asked to delete with the protocol set, so it matches only ours.
//
// Netlink has no owner field for addresses. An address is ours when it is
// on the instance's own TUN device and carries IFA_F_NOPREFIXROUTE, which
// Reconcile always sets (the TUN gets no kernel subnet route behind our
// back); an address an operator adds by hand to the TUN without
// `noprefixroute` is left alone.
//
// # What the kernel needs (and what it does not)
//
// The kernel forwards into and out of a device that has no address, so by
// default no address is installed: IPv6 packets for pool6 and IPv4 packets
// for pool4 reach the translator through the two routes, and packets the
// translator writes are forwarded by the kernel like any router's. The
// translator's own ICMP errors need source addresses that the receivers'
// replies and reverse-path filters route back into the TUN, which no
// kernel address provides better than addresses inside the routed ranges:
// Desired.ICMPSource4 is the first pool4 address and Desired.ICMPSource6 is
// pool6 with 0.0.0.1 embedded (0.0.0.0/8 is never a destination, so the
// address cannot collide with a synthesized one). Both are the
// translator's, not the kernel's; nothing is assigned for them. With
// strict rp_filter the pool4 route also makes IPv4 packets written by the
// translator pass the reverse-path check.
//
// Forwarding (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding) is written
// through /proc/sys of the calling thread's network namespace when
// Desired.Forwarding is set; the daemon runs in the namespace it serves.
package routes

import (
	"errors"
	"fmt"
	"github.com/nat64kit/nat64kit/internal/nat64"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nat64kit/nat64kit/nat64conf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Protocol is the rtm_protocol of every route nat64kit installs. 64 is
// unassigned in the kernel's RTPROT_* list (include/uapi/linux/rtnetlink.h)
// and in iproute2's rt_protos; an operator may name it with a line
// "64 nat64kit" in /etc/iproute2/rt_protos.d/nat64kit.conf.
const Protocol netlink.RouteProtocol = 64

// ProtocolName is the name documented for Protocol.
const ProtocolName = "nat64kit"

// The sysctls Forwarding writes, relative to /proc/sys.
const (
	sysctlIPv4Forward = "net/ipv4/ip_forward"
	sysctlIPv6Forward = "net/ipv6/conf/all/forwarding"
)

// Desired is the kernel state one translator instance wants.
type Desired struct {
	Device string `json:"device"`
	MTU    int    `json:"mtu"`
	// Routes go through Device with Protocol, in the main table.
	Routes []netip.Prefix `json:"routes"`
	// Addresses are assigned to Device with IFA_F_NOPREFIXROUTE; empty by
	// default (see the package comment).
	Addresses []netip.Prefix `json:"addresses"`
	// Forwarding enables IPv4 and IPv6 forwarding in the namespace.
	Forwarding bool `json:"forwarding"`
	// Metric is the route priority; 0 is the kernel default (IPv6: 1024).
	Metric int `json:"metric,omitempty"`

	// The source addresses of the ICMP errors the translator itself
	// emits; informational (routed into the TUN by Routes, not assigned).
	ICMPSource4 netip.Addr `json:"icmp_source4"`
	ICMPSource6 netip.Addr `json:"icmp_source6"`
}

// Options adjust what DesiredFor derives from an instance.
type Options struct {
	Device     string         // TUN device; default the instance's name
	Addresses  []netip.Prefix // addresses to own on the device
	Forwarding bool
	Metric     int
}

// ForTranslator is what a running translator for inst needs from the
// kernel: its prefix and pool4 routed into its TUN, and forwarding on.
// `nat64ctl run` installs it and `nat64ctl route` reconciles against it.
func ForTranslator(inst *nat64conf.Instance) (Desired, error) {
	return DesiredFor(inst, Options{Forwarding: true})
}

// DesiredFor computes an instance's desired state: its pool6 and pool4
// prefixes routed into its TUN device, with the instance's MTU.
func DesiredFor(inst *nat64conf.Instance, opts Options) (Desired, error) {
	d := Desired{
		Device:     opts.Device,
		MTU:        inst.MTU,
		Forwarding: opts.Forwarding,
		Metric:     opts.Metric,
	}
	if d.Device == "" {
		d.Device = inst.Name
	}
	if d.MTU == 0 {
		d.MTU = nat64.DefaultMTU
	}
	if !inst.Prefix.IsValid() {
		return Desired{}, fmt.Errorf("routes: instance %q has no prefix", inst.Name)
	}
	if len(inst.Pool4) == 0 {
		return Desired{}, fmt.Errorf("routes: instance %q has no pool4", inst.Name)
	}
	d.Routes = append(d.Routes, inst.Prefix.Netip().Masked())
	for _, r := range inst.Pool4 {
		p := r.Prefix.Masked()
		if !slices.Contains(d.Routes, p) {
			d.Routes = append(d.Routes, p)
		}
	}
	for _, a := range opts.Addresses {
		if !slices.Contains(d.Addresses, a) {
			d.Addresses = append(d.Addresses, a)
		}
	}
	d.ICMPSource4 = inst.Pool4[0].Prefix.Masked().Addr()
	d.ICMPSource6 = inst.Prefix.EmbedAddr(netip.AddrFrom4([4]byte{0, 0, 0, 1}))
	sortPrefixes(d.Routes)
	sortPrefixes(d.Addresses)
	return d, d.validate()
}

func (d Desired) validate() error {
	if d.Device == "" || len(d.Device) >= unix.IFNAMSIZ {
		return fmt.Errorf("routes: device name %q: need 1 to %d bytes", d.Device, unix.IFNAMSIZ-1)
	}
	if d.MTU < 68 {
		return fmt.Errorf("routes: MTU %d too small", d.MTU)
	}
	for _, r := range d.Routes {
		if !r.IsValid() || r != r.Masked() {
			return fmt.Errorf("routes: route %v is not a network prefix", r)
		}
	}
	for _, a := range d.Addresses {
		if !a.IsValid() {
			return fmt.Errorf("routes: invalid address %v", a)
		}
	}
	return nil
}

// Diff is what a Reconcile or Flush changed.
type Diff struct {
	Link             []string       `json:"link,omitempty"` // e.g. "mtu 1500 -> 1400", "up"
	AddedRoutes      []netip.Prefix `json:"added_routes,omitempty"`
	RemovedRoutes    []netip.Prefix `json:"removed_routes,omitempty"`
	AddedAddresses   []netip.Prefix `json:"added_addresses,omitempty"`
	RemovedAddresses []netip.Prefix `json:"removed_addresses,omitempty"`
	Sysctls          []string       `json:"sysctls,omitempty"` // written, "key=value"
}

// Empty reports whether nothing changed.
func (d Diff) Empty() bool {
	return len(d.Link)+len(d.AddedRoutes)+len(d.RemovedRoutes)+len(d.AddedAddresses)+
		len(d.RemovedAddresses)+len(d.Sysctls) == 0
}

// String lists the changes one per line ("+route 2001:db8:64::/96").
func (d Diff) String() string {
	if d.Empty() {
		return "no change"
	}
	var parts []string
	add := func(verb string, ps []netip.Prefix) {
		for _, p := range ps {
			parts = append(parts, verb+" "+p.String())
		}
	}
	parts = append(parts, d.Link...)
	add("+route", d.AddedRoutes)
	add("-route", d.RemovedRoutes)
	add("+addr", d.AddedAddresses)
	add("-addr", d.RemovedAddresses)
	parts = append(parts, d.Sysctls...)
	return strings.Join(parts, "\n")
}

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
