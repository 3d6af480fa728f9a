package cli

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/nat64kit/nat64kit/internal/control"
)

func bibCmd() *cobra.Command {
	show := &cobra.Command{
		Use:   "show",
		Short: "the binding information base: IPv6 transport addresses and their pool4 ones",
		Example: `  nat64ctl bib show --instance nat64-a
  nat64ctl bib show --proto udp --json`,
		Args: noArgs,
	}
	showList(show, "entries", (*control.Client).BIB, printBIB)
	return group(&cobra.Command{
		Use:     "bib",
		Short:   "inspect the BIB; add and remove static entries",
		Example: "  nat64ctl bib show --instance nat64-a",
	}, show, staticCmd("add"), staticCmd("remove"))
}

func printBIB(w io.Writer, bib []control.BIBEntry) {
	t := newTable(w, "PROTO", "IPV6", "IPV4", "KIND", "SESSIONS")
	for _, b := range bib {
		kind := "dynamic"
		if b.Static {
			kind = "static"
		}
		t.row(b.Proto, b.IPv6.String(), b.IPv4.String(), kind, fmt.Sprint(b.Sessions))
	}
	t.flush()
	fmt.Fprintln(w, plural(len(bib), "entry", "entries"))
}

// staticCmd is `bib add` or `bib remove`: a static entry of a running
// translator. It does not edit nat64.toml; a reload restores the file's set.
func staticCmd(verb string) *cobra.Command {
	short := "add a static BIB entry to the running translator"
	if verb == "remove" {
		short = "remove a static BIB entry from the running translator"
	}
	cmd := &cobra.Command{
		Use:   verb + " tcp|udp|icmp [IPV6]:PORT IPV4:PORT",
		Short: short,
		Long: short + `. The entry lets IPv4 hosts open connections to the
IPv6 transport address through the pool4 one. It lasts until the translator
restarts or reloads; put it in nat64.toml ([[instance.static]]) to keep it.`,
		Example:   "  nat64ctl bib " + verb + " tcp [2001:db8:1::80]:80 203.0.113.1:8080 --instance nat64-a",
		Args:      exactArgs(3),
		ValidArgs: []cobra.Completion{"tcp", "udp", "icmp"},
	}
	sel := addInstanceFlags(cmd, true)
	cmd.RunE = func(c *cobra.Command, args []string) error {
		entry := control.StaticEntry{Proto: args[0]}
		if err := checkProto(entry.Proto); err != nil || entry.Proto == "" {
			return usageErr("%q: want tcp, udp or icmp", args[0])
		}
		var err error
		if entry.IPv6, err = netip.ParseAddrPort(args[1]); err != nil || !entry.IPv6.Addr().Is6() {
			return usageErr("%q is not an IPv6 transport address such as [2001:db8::80]:80", args[1])
		}
		if entry.IPv4, err = netip.ParseAddrPort(args[2]); err != nil || !entry.IPv4.Addr().Is4() {
			return usageErr("%q is not an IPv4 transport address such as 203.0.113.1:8080", args[2])
		}
		cl, err := sel.client()
		if err != nil {
			return err
		}
		if verb == "add" {
			err = cl.AddStatic(c.Context(), entry)
		} else {
			err = cl.RemoveStatic(c.Context(), entry)
		}
		if err != nil {
			return problem("%v", err)
		}
		fmt.Fprintf(c.OutOrStdout(), "%s %s %s %s\n", verb, entry.Proto, entry.IPv6, entry.IPv4)
		return nil
	}
	return cmd
}
