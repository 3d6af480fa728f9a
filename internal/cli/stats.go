package cli

import (
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"
)

func statsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stats",
		Short: "translation counters, drops by reason, table sizes",
		Long: `stats prints a running translator's counters: packets and bytes translated per
direction and protocol, every drop under its reason, ICMP errors sent and those
the rate limit suppressed, hairpinned
packets, sessions and BIB entries per protocol, and pool4 use.`,
		Example: `  nat64ctl stats --instance nat64-a
  nat64ctl stats --control 127.0.0.1:9164 --json`,
		Args: noArgs,
	}
	sel := addInstanceFlags(cmd, true)
	asJSON := addJSON(cmd)
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := sel.client()
		if err != nil {
			return err
		}
		s, err := cl.Stats(c.Context())
		if err != nil {
			return problem("%v", err)
		}
		w := c.OutOrStdout()
		if *asJSON {
			return printJSON(w, s)
		}
		health := "healthy"
		if !s.Healthy {
			health = "NOT translating"
		}
		fmt.Fprintf(w, "instance %s: %s, up %s\n", s.Instance, health, s.Uptime.Duration().Round(time.Second))
		fmt.Fprintf(w, "pool4: %d of %d ports in use\n", s.Pool4PortsInUse, s.Pool4Ports)
		fmt.Fprintf(w, "ICMP errors sent: %d, suppressed by the rate limit: %d, hairpinned: %d\n", s.ICMPErrors, s.ICMPErrorsSuppressed, s.Hairpinned)
		fmt.Fprintf(w, "ICMP fragments held for reassembly: %d, datagrams reassembled: %d\n", s.FragmentsHeld, s.Reassembled)
		fp := s.FastPath
		switch {
		case fp == nil:
		case fp.Active:
			fmt.Fprintf(w, "fast path: attached (fastpath = %s), %d sessions in its maps, %d refused, %d packets dropped\n", fp.Mode, fp.Sessions, fp.InsertErrors, fp.Dropped)
		default:
			fmt.Fprintf(w, "fast path: not attached (fastpath = %s): %s\n", fp.Mode, fp.Reason)
		}
		fmt.Fprintln(w)
		if fp != nil && fp.Active {
			// The kernel's share of each row, so the split is visible.
			t := newTable(w, "TRAFFIC", "PACKETS", "BYTES", "FAST PATH PACKETS", "FAST PATH BYTES")
			for _, k := range sortedKeys(s.Packets) {
				t.row(k, fmt.Sprint(s.Packets[k]), fmt.Sprint(s.Bytes[k]), fmt.Sprint(fp.Packets[k]), fmt.Sprint(fp.Bytes[k]))
			}
			t.flush()
			if len(fp.Passed) > 0 {
				fmt.Fprintln(w)
				t = newTable(w, "LEFT TO USER SPACE", "PACKETS")
				for _, k := range sortedKeys(fp.Passed) {
					t.row(k, fmt.Sprint(fp.Passed[k]))
				}
				t.flush()
			}
		} else {
			t := newTable(w, "TRAFFIC", "PACKETS", "BYTES")
			for _, k := range sortedKeys(s.Packets) {
				t.row(k, fmt.Sprint(s.Packets[k]), fmt.Sprint(s.Bytes[k]))
			}
			t.flush()
		}
		fmt.Fprintln(w)
		t := newTable(w, "PROTO", "SESSIONS", "BIB ENTRIES")
		for _, p := range []string{"tcp", "udp", "icmp"} {
			t.row(p, fmt.Sprint(s.Sessions[p]), fmt.Sprint(s.BIBEntries[p]))
		}
		t.flush()
		if len(s.Drops) > 0 {
			fmt.Fprintln(w)
			t = newTable(w, "DROP REASON", "PACKETS")
			for _, k := range sortedKeys(s.Drops) {
				t.row(k, fmt.Sprint(s.Drops[k]))
			}
			t.flush()
		}
		return nil
	}
	return cmd
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
