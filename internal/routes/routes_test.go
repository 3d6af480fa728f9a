package routes

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/nat64conf"
	"github.com/nat64kit/nat64kit/test/netns"
	"golang.org/x/sys/unix"
)

func instance() *nat64conf.Instance {
	return &nat64conf.Instance{
		Name:   "nat64-a",
		Prefix: nat64.MustPrefix("2001:db8:64::/96"),
		Pool4: []nat64.Pool4Range{
			{Prefix: netip.MustParsePrefix("203.0.113.0/25"), FirstPort: 1024, LastPort: 65535},
			{Prefix: netip.MustParsePrefix("203.0.113.200/32"), FirstPort: 1024, LastPort: 2047},
			{Prefix: netip.MustParsePrefix("203.0.113.200/32"), FirstPort: 4096, LastPort: 8191},
		},
		MTU: 1400,
	}
}

func prefixes(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

func TestDesiredFor(t *testing.T) {
	d, err := DesiredFor(instance(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// One route per distinct pool4 prefix, sorted IPv4 before IPv6.
	if want := prefixes("203.0.113.0/25", "203.0.113.200/32", "2001:db8:64::/96"); !slices.Equal(d.Routes, want) {
		t.Fatalf("routes %v, want %v", d.Routes, want)
	}
	if d.Device != "nat64-a" || d.MTU != 1400 || len(d.Addresses) != 0 || d.Forwarding {
		t.Fatalf("desired %+v", d)
	}
	if d.ICMPSource4 != netip.MustParseAddr("203.0.113.0") || d.ICMPSource6 != netip.MustParseAddr("2001:db8:64::1") {
		t.Fatalf("ICMP sources %v %v", d.ICMPSource4, d.ICMPSource6)
	}
	// The ICMP sources are routed into the TUN by the desired routes.
	for _, a := range []netip.Addr{d.ICMPSource4, d.ICMPSource6} {
		if !slices.ContainsFunc(d.Routes, func(p netip.Prefix) bool { return p.Contains(a) }) {
			t.Fatalf("ICMP source %v is not routed into the device", a)
		}
	}

	d, err = DesiredFor(instance(), Options{Device: "tun9", Addresses: prefixes("192.0.2.1/32", "192.0.2.1/32"), Forwarding: true})
	if err != nil || d.Device != "tun9" || len(d.Addresses) != 1 || !d.Forwarding {
		t.Fatalf("with options: %+v, %v", d, err)
	}

	bad := instance()
	bad.Pool4 = nil
	if _, err := DesiredFor(bad, Options{}); err == nil {
		t.Fatal("instance without pool4 accepted")
	}
	bad = instance()
	bad.Name = "a-name-longer-than-ifnamsiz"
	if _, err := DesiredFor(bad, Options{}); err == nil {
		t.Fatal("device name longer than IFNAMSIZ accepted")
	}
}

// setup makes a namespace with a TUN device named like the instance, and a
// manager bound to the namespace.
func setup(t *testing.T) (*netns.NS, *Manager, Desired) {
	t.Helper()
	ns := netns.New(t, "routes")
	ns.MustExec("ip", "tuntap", "add", "dev", "nat64-a", "mode", "tun", "multi_queue", "vnet_hdr")
	d, err := DesiredFor(instance(), Options{Addresses: prefixes("192.0.2.64/32", "2001:db8:ffff::1/128")})
	if err != nil {
		t.Fatal(err)
	}
	return ns, NewManager(ns.Handle()), d
}

// ipRoutes lists routes of the namespace as `ip` prints them, one per line.
func ipRoutes(ns *netns.NS, args ...string) string {
	return ns.MustExec(append([]string{"ip", "route", "show"}, args...)...) +
		ns.MustExec(append([]string{"ip", "-6", "route", "show"}, args...)...)
}

// ipString prints a prefix as iproute2 does (host routes without /32).
func ipString(p netip.Prefix) string {
	if p.IsSingleIP() && p.Addr().Is4() {
		return p.Addr().String()
	}
	return p.String()
}

func TestReconcileInstallsAndIsIdempotent(t *testing.T) {
	ns, m, d := setup(t)
	diff, err := m.Reconcile(d)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(diff.AddedRoutes, d.Routes) || !slices.Equal(diff.AddedAddresses, d.Addresses) {
		t.Fatalf("diff %v", diff)
	}
	if !slices.Contains(diff.Link, "up") || !slices.Contains(diff.Link, "mtu 1500 -> 1400") {
		t.Fatalf("link changes %v", diff.Link)
	}
	// What the kernel now holds, read with iproute2 rather than our code.
	ours := ipRoutes(ns, "proto", "64")
	for _, p := range d.Routes {
		if !strings.Contains(ours, ipString(p)+" dev nat64-a") {
			t.Fatalf("route %v missing from `ip route show proto 64`:\n%s", p, ours)
		}
	}
	if strings.Count(strings.TrimSpace(ours), "\n")+1 != len(d.Routes) {
		t.Fatalf("unexpected routes with proto 64:\n%s", ours)
	}
	link := ns.MustExec("ip", "addr", "show", "dev", "nat64-a")
	for _, want := range []string{"mtu 1400", ",UP", "192.0.2.64/32", "2001:db8:ffff::1/128", "noprefixroute"} {
		if !strings.Contains(link, want) {
			t.Fatalf("link lacks %q:\n%s", want, link)
		}
	}

	diff, err = m.Reconcile(d)
	if err != nil || !diff.Empty() {
		t.Fatalf("second Reconcile changed %v, %v", diff, err)
	}
	st, err := m.Show(d)
	if err != nil {
		t.Fatal(err)
	}
	if !st.InSync || !st.Up || st.MTU != 1400 || len(st.Routes) != 3 || len(st.Addresses) != 2 || len(st.Foreign) != 0 {
		t.Fatalf("status %+v", st)
	}
	js, err := json.Marshal(st)
	if err != nil || !strings.Contains(string(js), `"prefix":"2001:db8:64::/96","installed":true,"desired":true`) {
		t.Fatalf("JSON %s, %v", js, err)
	}
}

// TestCrashLeftovers: a previous run installed routes and an address that
// the config no longer has; other owners have routes for the same prefixes
// and an address on the same device. Reconcile removes exactly ours.
func TestCrashLeftovers(t *testing.T) {
	ns, m, d := setup(t)
	if _, err := m.Reconcile(d); err != nil {
		t.Fatal(err)
	}
	// Leftovers of ours for prefixes no longer configured.
	ns.MustExec("ip", "route", "add", "198.51.100.128/25", "dev", "nat64-a", "proto", "64", "metric", "10")
	ns.MustExec("ip", "-6", "route", "add", "64:ff9b:1::/96", "dev", "nat64-a", "proto", "64", "metric", "10")
	ns.MustExec("ip", "addr", "add", "192.0.2.99/32", "dev", "nat64-a", "noprefixroute")
	// Other owners, same prefixes, same device.
	ns.MustExec("ip", "route", "add", "198.51.100.128/25", "dev", "nat64-a", "proto", "static", "metric", "20")
	ns.MustExec("ip", "-6", "route", "add", "64:ff9b:1::/96", "dev", "nat64-a", "proto", "static", "metric", "20")
	ns.MustExec("ip", "route", "add", "203.0.113.0/25", "dev", "nat64-a", "proto", "static", "metric", "30")
	ns.MustExec("ip", "addr", "add", "192.0.2.100/32", "dev", "nat64-a")

	st, err := m.Show(d)
	if err != nil {
		t.Fatal(err)
	}
	if st.InSync {
		t.Fatal("Show reports in sync with leftovers installed")
	}
	stale := 0
	for _, r := range st.Routes {
		if r.Installed && !r.Desired {
			stale++
		}
	}
	if stale != 2 || len(st.Foreign) != 1 || st.Foreign[0].Protocol != unix.RTPROT_STATIC {
		t.Fatalf("status routes %+v foreign %+v", st.Routes, st.Foreign)
	}

	diff, err := m.Reconcile(d)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(diff.RemovedRoutes, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	if want := prefixes("198.51.100.128/25", "64:ff9b:1::/96"); !slices.Equal(diff.RemovedRoutes, want) ||
		!slices.Equal(diff.RemovedAddresses, prefixes("192.0.2.99/32")) || len(diff.AddedRoutes) != 0 {
		t.Fatalf("diff %v", diff)
	}
	all := ipRoutes(ns)
	for _, survivor := range []string{
		"198.51.100.128/25 dev nat64-a proto static",
		"64:ff9b:1::/96 dev nat64-a proto static",
		"203.0.113.0/25 dev nat64-a proto static",
		"203.0.113.0/25 dev nat64-a proto 64",
	} {
		if !strings.Contains(all, survivor) {
			t.Fatalf("route %q gone:\n%s", survivor, all)
		}
	}
	if strings.Contains(all, "proto 64 metric 10 ") || strings.Contains(all, "proto 64 scope link metric 10 ") {
		t.Fatalf("stale route of ours survived:\n%s", all)
	}
	if addrs := ns.MustExec("ip", "addr", "show", "dev", "nat64-a"); !strings.Contains(addrs, "192.0.2.100/32") || strings.Contains(addrs, "192.0.2.99/32") {
		t.Fatalf("address ownership wrong:\n%s", addrs)
	}
}

func TestFlushRemovesOnlyOurs(t *testing.T) {
	ns, m, d := setup(t)
	if _, err := m.Reconcile(d); err != nil {
		t.Fatal(err)
	}
	// Another instance's device with our protocol, and another owner's
	// route for our prefix.
	ns.MustExec("ip", "tuntap", "add", "dev", "nat64-b", "mode", "tun")
	ns.MustExec("ip", "link", "set", "nat64-b", "up")
	ns.MustExec("ip", "-6", "route", "add", "2001:db8:65::/96", "dev", "nat64-b", "proto", "64")
	ns.MustExec("ip", "-6", "route", "add", "2001:db8:64::/96", "dev", "nat64-b", "proto", "static", "metric", "5")
	ns.MustExec("ip", "addr", "add", "192.0.2.100/32", "dev", "nat64-a")

	diff, err := m.Flush("nat64-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(diff.RemovedRoutes) != len(d.Routes) || len(diff.RemovedAddresses) != len(d.Addresses) {
		t.Fatalf("flush diff %v", diff)
	}
	all := ipRoutes(ns)
	if strings.Contains(all, "dev nat64-a proto 64") {
		t.Fatalf("our routes survived Flush:\n%s", all)
	}
	for _, survivor := range []string{"2001:db8:65::/96 dev nat64-b proto 64", "2001:db8:64::/96 dev nat64-b proto static"} {
		if !strings.Contains(all, survivor) {
			t.Fatalf("Flush removed %q:\n%s", survivor, all)
		}
	}
	if addrs := ns.MustExec("ip", "addr", "show", "dev", "nat64-a"); !strings.Contains(addrs, "192.0.2.100/32") || strings.Contains(addrs, "192.0.2.64") {
		t.Fatalf("Flush address handling wrong:\n%s", addrs)
	}
	// Flushing a device that is gone is a no-op.
	if diff, err := m.Flush("nat64-zz"); err != nil || !diff.Empty() {
		t.Fatalf("flush of a missing device: %v, %v", diff, err)
	}
}

func TestConflictWithForeignRouteIsReported(t *testing.T) {
	ns, m, d := setup(t)
	ns.MustExec("ip", "link", "set", "nat64-a", "up")
	// Same prefix, same (default) metric: the kernel refuses a second one.
	ns.MustExec("ip", "route", "add", "203.0.113.200/32", "dev", "nat64-a", "proto", "static")
	diff, err := m.Reconcile(d)
	if err == nil || !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "another owner") {
		t.Fatalf("Reconcile error %v", err)
	}
	// The other routes were still installed, and the foreign one kept.
	if len(diff.AddedRoutes) != len(d.Routes)-1 {
		t.Fatalf("added %v", diff.AddedRoutes)
	}
	if !strings.Contains(ipRoutes(ns), "203.0.113.200 dev nat64-a proto static") {
		t.Fatal("foreign route replaced")
	}
	// With a metric of our own both coexist.
	d.Metric = 50
	if diff, err = m.Reconcile(d); err != nil || !slices.Contains(diff.AddedRoutes, netip.MustParsePrefix("203.0.113.200/32")) {
		t.Fatalf("with metric: %v, %v", diff, err)
	}
}

func TestForwardingSysctls(t *testing.T) {
	ns, m, d := setup(t)
	d.Forwarding = true
	// Sysctls are per namespace and read through the calling thread.
	var diff Diff
	err := ns.Do(func() (err error) { diff, err = m.Reconcile(d); return err })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(diff.Sysctls, []string{"net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"}) {
		t.Fatalf("sysctls written %v", diff.Sysctls)
	}
	if ns.ReadSysctl("net.ipv4.ip_forward") != "1" || ns.ReadSysctl("net.ipv6.conf.all.forwarding") != "1" {
		t.Fatal("forwarding not on in the namespace")
	}
	var st Status
	err = ns.Do(func() (err error) {
		if diff, err = m.Reconcile(d); err != nil {
			return err
		}
		st, err = m.Show(d)
		return err
	})
	if err != nil || !diff.Empty() || !st.InSync || !st.IPv4Forwarding || !st.IPv6Forwarding {
		t.Fatalf("second pass diff %v status %+v err %v", diff, st, err)
	}
}

func TestMissingDevice(t *testing.T) {
	ns := netns.New(t, "routes")
	d, _ := DesiredFor(instance(), Options{})
	m := NewManager(ns.Handle())
	if _, err := m.Reconcile(d); err == nil {
		t.Fatal("Reconcile without the device succeeded")
	}
	st, err := m.Show(d)
	if err != nil || st.DeviceExists || st.InSync || len(st.Routes) != len(d.Routes) {
		t.Fatalf("Show without device: %+v, %v", st, err)
	}
}

func TestDiffString(t *testing.T) {
	if s := (Diff{}).String(); s != "no change" {
		t.Fatalf("empty diff %q", s)
	}
	d := Diff{Link: []string{"up"}, AddedRoutes: prefixes("2001:db8:64::/96"), RemovedRoutes: prefixes("203.0.113.0/25"), Sysctls: []string{"net.ipv4.ip_forward=1"}}
	want := "up\n+route 2001:db8:64::/96\n-route 203.0.113.0/25\nnet.ipv4.ip_forward=1"
	if s := d.String(); s != want {
		t.Fatalf("String() = %q, want %q", s, want)
	}
}
