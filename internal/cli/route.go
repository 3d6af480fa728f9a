package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nat64kit/nat64kit/internal/routes"
)

func routeCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:   "route",
		Short: "the netlink-managed routes and addresses",
		Long: `route inspects and repairs, in the current network namespace, what "nat64ctl
run" installs for an instance: its TUN link up with the instance's MTU, routes
for pool6 and pool4 into the TUN carrying route protocol 64 ("nat64kit"), and IP
forwarding. Routes of other owners are never touched.`,
		Example: `  nat64ctl route show --instance nat64-a
  nat64ctl route sync --instance nat64-a`,
	}, routeShowCmd(), routeSyncCmd(), routeFlushCmd())
}

// translatorRoutes is what `nat64ctl run` would install for the chosen instance.
func translatorRoutes(sel *instanceFlags) (routes.Desired, error) {
	in, err := sel.pick()
	if err != nil {
		return routes.Desired{}, err
	}
	d, err := routes.ForTranslator(in)
	if err != nil {
		return d, problem("%v", err)
	}
	return d, nil
}

func routeShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "show",
		Short:   "installed versus configured routes and addresses",
		Example: "  nat64ctl route show --instance nat64-a --json",
		Args:    noArgs,
	}
	sel := addInstanceFlags(cmd, false)
	asJSON := addJSON(cmd)
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		d, err := translatorRoutes(sel)
		if err != nil {
			return err
		}
		st, err := routes.NewManager(nil).Show(d)
		if err != nil {
			return problem("%v", err)
		}
		if *asJSON {
			return printJSON(c.OutOrStdout(), st)
		}
		printRouteStatus(c.OutOrStdout(), &st)
		return nil
	}
	return cmd
}

func printRouteStatus(w io.Writer, st *routes.Status) {
	link := "missing"
	if st.DeviceExists {
		link = fmt.Sprintf("mtu %d (want %d)", st.MTU, st.DesiredMTU)
		if st.Up {
			link = "up, " + link
		} else {
			link = "DOWN, " + link
		}
	}
	fmt.Fprintf(w, "device %s: %s\n", st.Device, link)
	fmt.Fprintf(w, "forwarding: ipv4 %v, ipv6 %v (want %v)\n", st.IPv4Forwarding, st.IPv6Forwarding, st.WantsForwarding)
	t := newTable(w, "KIND", "PREFIX", "STATE")
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
		fmt.Fprintf(w, "foreign route: %s dev %s proto %d metric %d (not ours; left alone)\n", f.Prefix, f.Device, f.Protocol, f.Metric)
	}
	if st.InSync {
		fmt.Fprintln(w, "in sync")
	} else {
		fmt.Fprintln(w, "out of sync: `nat64ctl route sync` repairs it")
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

func routeSyncCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "install what is missing, remove our stale entries",
		Long: `sync makes the kernel match the instance's configuration, as "nat64ctl run"
does at start: missing routes are added, routes of ours that the configuration
no longer asks for (the leftovers of a crash or an older file) are removed.
The TUN device must exist; "nat64ctl run" creates it.`,
		Example: "  nat64ctl route sync -c /etc/nat64kit/nat64.toml --instance nat64-a",
		Args:    noArgs,
	}
	sel := addInstanceFlags(cmd, false)
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		d, err := translatorRoutes(sel)
		if err != nil {
			return err
		}
		diff, err := routes.NewManager(nil).Reconcile(d)
		printDiff(c.OutOrStdout(), d.Device, diff)
		if err != nil {
			return problem("%v", err)
		}
		return nil
	}
	return cmd
}

func routeFlushCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "flush",
		Short:   "remove every route and address nat64ctl installed on the instance's device",
		Example: "  nat64ctl route flush --instance nat64-a",
		Args:    noArgs,
	}
	sel := addInstanceFlags(cmd, false)
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		in, err := sel.pick()
		if err != nil {
			return err
		}
		diff, err := routes.NewManager(nil).Flush(in.Name)
		printDiff(c.OutOrStdout(), in.Name, diff)
		if err != nil {
			return problem("%v", err)
		}
		return nil
	}
	return cmd
}

func printDiff(w io.Writer, device string, d routes.Diff) {
	if d.Empty() {
		fmt.Fprintf(w, "%s: nothing to change\n", device)
		return
	}
	for _, s := range strings.Split(strings.TrimSpace(d.String()), "\n") {
		fmt.Fprintf(w, "%s: %s\n", device, s)
	}
}
