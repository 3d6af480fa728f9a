package routes

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Status is installed versus desired state, for `nat64ctl route show`.
type Status struct {
	Device       string `json:"device"`
	DeviceExists bool   `json:"device_exists"`
	Up           bool   `json:"up"`
	MTU          int    `json:"mtu"`
	DesiredMTU   int    `json:"desired_mtu"`

	Routes    []PrefixState `json:"routes"`
	Addresses []PrefixState `json:"addresses"`
	// Foreign lists routes of other owners for a desired prefix: the
	// usual reason a route of ours cannot be added.
	Foreign []ForeignRoute `json:"foreign,omitempty"`

	IPv4Forwarding   bool `json:"ipv4_forwarding"`
	IPv6Forwarding   bool `json:"ipv6_forwarding"`
	WantsForwarding  bool `json:"wants_forwarding"`
	ForwardingUnread bool `json:"forwarding_unread,omitempty"` // /proc/sys was not readable

	ICMPSource4 netip.Addr `json:"icmp_source4"`
	ICMPSource6 netip.Addr `json:"icmp_source6"`

	// InSync is true when Reconcile would change nothing.
	InSync bool `json:"in_sync"`
}

// PrefixState is one route or address: whether it is installed (ours) and
// whether it is desired. Installed but not desired is a leftover Reconcile
// removes; desired but not installed is missing.
type PrefixState struct {
	Prefix    netip.Prefix `json:"prefix"`
	Installed bool         `json:"installed"`
	Desired   bool         `json:"desired"`
}

// ForeignRoute is a route for a desired prefix that another owner made.
type ForeignRoute struct {
	Prefix   netip.Prefix `json:"prefix"`
	Device   string       `json:"device"`
	Protocol int          `json:"protocol"`
	Metric   int          `json:"metric"`
}

// Show reports the installed state of d's device against d.
func (m *Manager) Show(d Desired) (Status, error) {
	st := Status{
		Device:          d.Device,
		DesiredMTU:      d.MTU,
		WantsForwarding: d.Forwarding,
		ICMPSource4:     d.ICMPSource4,
		ICMPSource6:     d.ICMPSource6,
	}
	var installedRoutes, installedAddrs []netip.Prefix
	link, err := m.h.LinkByName(d.Device)
	switch {
	case err == nil:
		st.DeviceExists = true
		st.Up = link.Attrs().Flags&net.FlagUp != 0
		st.MTU = link.Attrs().MTU
		rs, err := m.ownedRoutes(link.Attrs().Index)
		if err != nil {
			return st, err
		}
		for _, r := range rs {
			if p, ok := routePrefix(r); ok {
				installedRoutes = append(installedRoutes, p)
			}
		}
		as, err := m.ownedAddrs(link)
		if err != nil {
			return st, err
		}
		for _, a := range as {
			installedAddrs = append(installedAddrs, addrPrefix(a))
		}
	case errors.As(err, new(netlink.LinkNotFoundError)):
	default:
		return st, fmt.Errorf("routes: device %s: %w", d.Device, err)
	}
	st.Routes = merge(installedRoutes, d.Routes)
	st.Addresses = merge(installedAddrs, d.Addresses)

	foreign, err := m.foreign(d, link)
	if err != nil {
		return st, err
	}
	st.Foreign = foreign

	v4, err4 := m.sysctlOn(sysctlIPv4Forward)
	v6, err6 := m.sysctlOn(sysctlIPv6Forward)
	st.IPv4Forwarding, st.IPv6Forwarding = v4, v6
	st.ForwardingUnread = err4 != nil || err6 != nil

	st.InSync = st.DeviceExists && st.Up && st.MTU == d.MTU &&
		(!d.Forwarding || (v4 && v6))
	for _, ps := range append(append([]PrefixState(nil), st.Routes...), st.Addresses...) {
		if ps.Installed != ps.Desired {
			st.InSync = false
		}
	}
	return st, nil
}

// foreign lists main-table routes of other owners for desired prefixes.
func (m *Manager) foreign(d Desired, ours netlink.Link) ([]ForeignRoute, error) {
	var out []ForeignRoute
	for _, p := range d.Routes {
		filter := &netlink.Route{Dst: ipNet(p), Table: unix.RT_TABLE_MAIN}
		family := netlink.FAMILY_V6
		if p.Addr().Is4() {
			family = netlink.FAMILY_V4
		}
		rs, err := m.h.RouteListFiltered(family, filter, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
		if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
			return nil, fmt.Errorf("routes: list %v: %w", p, err)
		}
		for _, r := range rs {
			if r.Protocol == Protocol && ours != nil && r.LinkIndex == ours.Attrs().Index {
				continue
			}
			dev := ""
			if l, err := m.h.LinkByIndex(r.LinkIndex); err == nil {
				dev = l.Attrs().Name
			}
			out = append(out, ForeignRoute{Prefix: p, Device: dev, Protocol: int(r.Protocol), Metric: r.Priority})
		}
	}
	return out, nil
}

func merge(installed, desired []netip.Prefix) []PrefixState {
	idx := map[netip.Prefix]int{}
	var out []PrefixState
	for _, p := range desired {
		idx[p] = len(out)
		out = append(out, PrefixState{Prefix: p, Desired: true})
	}
	for _, p := range installed {
		if i, ok := idx[p]; ok {
			out[i].Installed = true
			continue
		}
		idx[p] = len(out)
		out = append(out, PrefixState{Prefix: p, Installed: true})
	}
	return out
}
