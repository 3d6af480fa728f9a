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
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nat64kit/nat64kit/internal/nat64"

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
