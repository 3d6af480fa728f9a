package netns

// Wiring: links, addresses and routes, all through the namespace's own
// netlink handle.

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link returns the named link of the namespace.
func (ns *NS) Link(name string) netlink.Link {
	ns.t.Helper()
	l, err := ns.nl.LinkByName(name)
	if err != nil {
		ns.t.Fatalf("link %s in %s: %v", name, ns.Name, err)
	}
	return l
}

// LinkUp sets a link up.
func (ns *NS) LinkUp(name string) {
	ns.t.Helper()
	if err := ns.nl.LinkSetUp(ns.Link(name)); err != nil {
		ns.t.Fatalf("link %s up in %s: %v", name, ns.Name, err)
	}
}

// AddAddr assigns an address ("2001:db8:1::2/64", "198.51.100.2/24") to a
// link. IPv6 addresses skip duplicate address detection so they are usable
// at once instead of after DAD's delay.
func (ns *NS) AddAddr(link, cidr string) {
	ns.t.Helper()
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		ns.t.Fatalf("address %q: %v", cidr, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := ns.nl.AddrAdd(ns.Link(link), a); err != nil {
		ns.t.Fatalf("add %s to %s in %s: %v", cidr, link, ns.Name, err)
	}
	if p.Addr().Is6() {
		ns.awaitLocal(p.Addr())
	}
}

// awaitLocal waits until the kernel delivers packets for addr locally. An
// IPv6 address, even without DAD, gets its local route from addrconf's
// work queue some time after the netlink call returns; a packet in that
// window is treated as one to forward, and dropped.
func (ns *NS) awaitLocal(addr netip.Addr) {
	ns.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rs, err := ns.nl.RouteGet(addr.AsSlice())
		if err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL {
			return
		}
		if time.Now().After(deadline) {
			ns.t.Fatalf("address %v in %s never became local: %v %v", addr, ns.Name, rs, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// AddRoute adds a route to dst ("default" or a prefix) via a gateway
// address, or, when via is empty, directly through link.
func (ns *NS) AddRoute(dst, via, link string) {
	ns.t.Helper()
	r := &netlink.Route{}
	var family int
	if via != "" {
		gw, err := netip.ParseAddr(via)
		if err != nil {
			ns.t.Fatalf("gateway %q: %v", via, err)
		}
		r.Gw = gw.AsSlice()
		family = netlink.FAMILY_V4
		if gw.Is6() {
			family = netlink.FAMILY_V6
		}
	}
	if dst != "default" {
		p, err := netip.ParsePrefix(dst)
		if err != nil {
			ns.t.Fatalf("route destination %q: %v", dst, err)
		}
		p = p.Masked()
		r.Dst = &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		family = netlink.FAMILY_V4
		if p.Addr().Is6() {
			family = netlink.FAMILY_V6
		}
	} else if family == 0 {
		ns.t.Fatalf("default route needs a gateway to know its family")
	}
	r.Family = family
	if link != "" {
		r.LinkIndex = ns.Link(link).Attrs().Index
	}
	if via == "" {
		r.Scope = netlink.SCOPE_LINK
		if family == netlink.FAMILY_V6 {
			r.Scope = netlink.SCOPE_UNIVERSE
		}
	}
	if err := ns.nl.RouteAdd(r); err != nil {
		ns.t.Fatalf("route %s via %q dev %q in %s: %v", dst, via, link, ns.Name, err)
	}
}

// Veth connects two namespaces with a veth pair: aName in a, bName in b,
// both up. The pair disappears with either namespace.
func Veth(t testing.TB, a *NS, aName string, b *NS, bName string) {
	t.Helper()
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(int(b.handle)),
	}
	if err := a.nl.LinkAdd(v); err != nil {
		t.Fatalf("veth %s/%s between %s and %s: %v", aName, bName, a.Name, b.Name, err)
	}
	a.LinkUp(aName)
	b.LinkUp(bName)
}
