package main

import (
	"fmt"
	"strings"

	"github.com/nat64kit/nat64kit/internal/routes"
	"github.com/nat64kit/nat64kit/nat64conf"
)

func routeCmd() *command {
	return &command{
		name:  "route",
		usage: "nat64ctl route show|sync|flush [flags]",
		short: "the netlink-managed routes and addresses",
		long: `route inspects and repairs, in the current network namespace, what "nat64ctl
run" installs for an instance: its TUN link up with the instance's MTU, routes
for pool6 and pool4 into the TUN carrying route protocol 64 ("nat64kit"), and IP
forwarding. Routes of other owners are never touched.`,
		sub: []*command{routeShowCmd(), routeSyncCmd(), routeFlushCmd()},
	}
}

// instanceFlags are the flags of commands that act on one instance of
// nat64.toml in this namespace.
type instanceFlags struct{ config, instance *string }

func addInstanceFlags(c *command) instanceFlags {
	return instanceFlags{
		config:   c.flags.String("c", defaultConfig, "nat64.toml"),
		instance: c.flags.String("instance", "", "the instance (default: the only one in nat64.toml)"),
	}
}

func (f instanceFlags) load() (*nat64conf.Instance, error) {
	cfg, err := nat64conf.Load(*f.config)
	if err != nil {
		return nil, problem("%v", err)
	}
	return pickInstance(cfg, *f.instance)
}

func (f instanceFlags) desired() (routes.Desired, error) {
	in, err := f.load()
	if err != nil {
		return routes.Desired{}, err
	}
	d, err := routes.ForTranslator(in)
	if err != nil {
		return d, problem("%v", err)
	}
	return d, nil
}

func routeShowCmd() *command {
	c := &command{
		name:    "show",
		usage:   "nat64ctl route show [-c nat64.toml] [--instance NAME] [--json]",
		short:   "installed versus configured routes and addresses",
		flags:   newFlags("show"),
		maxArgs: 0,
	}
	f := addInstanceFlags(c)
	c.exec = func(e *env, _ []string) error {
		d, err := f.desired()
		if err != nil {
			return err
		}
		st, err := routes.NewManager(nil).Show(d)
		if err != nil {
			return problem("%v", err)
		}
		if e.json {
			return printJSON(e.stdout, st)
		}
		printRouteStatus(e, &st)
		return nil
	}
	return c.withJSON()
}

func printRouteStatus(e *env, st *routes.Status) {
	link := "missing"
	if st.DeviceExists {
		link = fmt.Sprintf("mtu %d (want %d)", st.MTU, st.DesiredMTU)
		if st.Up {
			link = "up, " + link
		} else {
			link = "DOWN, " + link
		}
	}
	fmt.Fprintf(e.stdout, "device %s: %s\n", st.Device, link)
	fmt.Fprintf(e.stdout, "forwarding: ipv4 %v, ipv6 %v (want %v)\n", st.IPv4Forwarding, st.IPv6Forwarding, st.WantsForwarding)
	t := newTable(e.stdout, "KIND", "PREFIX", "STATE")
	for _, kind := range []struct {
		name string
		list []routes.PrefixState
	}{{"route", st.Routes}, {"address", st.Addresses}} {
		for _, p := range kind.list {
			t.row(kind.name, p.Prefix.String(), prefixState(p))
		}
	}
	t.flush()
	for _, f := range st.Foreign {
		fmt.Fprintf(e.stdout, "foreign route: %s dev %s proto %d metric %d (not ours; left alone)\n", f.Prefix, f.Device, f.Protocol, f.Metric)
	}
	if st.InSync {
		fmt.Fprintln(e.stdout, "in sync")
	} else {
		fmt.Fprintln(e.stdout, "out of sync: `nat64ctl route sync` repairs it")
	}
}

func prefixState(p routes.PrefixState) string {
	switch {
	case p.Installed && p.Desired:
		return "installed"
	case p.Desired:
		return "MISSING"
	default:
		return "LEFTOVER (ours, no longer configured)"
	}
}

func routeSyncCmd() *command {
	c := &command{
		name:  "sync",
		usage: "nat64ctl route sync [-c nat64.toml] [--instance NAME]",
		short: "install what is missing, remove our stale entries",
		long: `sync makes the kernel match the instance's configuration, as "nat64ctl run"
does at start: missing routes are added, routes of ours that the configuration
no longer asks for (the leftovers of a crash or an older file) are removed.
The TUN device must exist; "nat64ctl run" creates it.`,
		flags:   newFlags("sync"),
		maxArgs: 0,
	}
	f := addInstanceFlags(c)
	c.exec = func(e *env, _ []string) error {
		d, err := f.desired()
		if err != nil {
			return err
		}
		diff, err := routes.NewManager(nil).Reconcile(d)
		printDiff(e, d.Device, diff)
		if err != nil {
			return problem("%v", err)
		}
		return nil
	}
	return c
}

func routeFlushCmd() *command {
	c := &command{
		name:    "flush",
		usage:   "nat64ctl route flush [-c nat64.toml] [--instance NAME]",
		short:   "remove every route and address nat64ctl installed on the instance's device",
		flags:   newFlags("flush"),
		maxArgs: 0,
	}
	f := addInstanceFlags(c)
	c.exec = func(e *env, _ []string) error {
		in, err := f.load()
		if err != nil {
			return err
		}
		diff, err := routes.NewManager(nil).Flush(in.Name)
		printDiff(e, in.Name, diff)
		if err != nil {
			return problem("%v", err)
		}
		return nil
	}
	return c
}

func printDiff(e *env, device string, d routes.Diff) {
	if d.Empty() {
		fmt.Fprintf(e.stdout, "%s: nothing to change\n", device)
		return
	}
	for _, s := range strings.Split(strings.TrimSpace(d.String()), "\n") {
		fmt.Fprintf(e.stdout, "%s: %s\n", device, s)
	}
}
