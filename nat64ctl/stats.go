package main

import (
	"context"
	"fmt"
	"sort"
	"time"
)

func statsCmd() *command {
	fs := newFlags("stats")
	tgt := addTarget(fs)
	c := &command{
		name:  "stats",
		usage: "nat64ctl stats [--instance NAME] [--json]",
		short: "translation counters, drops by reason, table sizes",
		long: `stats prints a running translator's counters: packets and bytes translated per
direction and protocol, every drop under its reason, sessions and BIB entries
per protocol, and pool4 use.`,
		flags:   fs,
		maxArgs: 0,
	}
	c.exec = func(e *env, _ []string) error {
		cl, err := tgt.client()
		if err != nil {
			return err
		}
		s, err := cl.Stats(context.Background())
		if err != nil {
			return problem("%v", err)
		}
		if e.json {
			return printJSON(e.stdout, s)
		}
		health := "healthy"
		if !s.Healthy {
			health = "NOT translating"
		}
		fmt.Fprintf(e.stdout, "instance %s: %s, up %s\n", s.Instance, health, s.Uptime.Duration().Round(time.Second))
		fmt.Fprintf(e.stdout, "pool4: %d of %d ports in use\n\n", s.Pool4PortsInUse, s.Pool4Ports)
		t := newTable(e.stdout, "TRAFFIC", "PACKETS", "BYTES")
		for _, k := range sortedKeys(s.Packets) {
			t.row(k, fmt.Sprint(s.Packets[k]), fmt.Sprint(s.Bytes[k]))
		}
		t.flush()
		fmt.Fprintln(e.stdout)
		t = newTable(e.stdout, "PROTO", "SESSIONS", "BIB ENTRIES")
		for _, p := range []string{"tcp", "udp", "icmp"} {
			t.row(p, fmt.Sprint(s.Sessions[p]), fmt.Sprint(s.BIBEntries[p]))
		}
		t.flush()
		if len(s.Drops) > 0 {
			fmt.Fprintln(e.stdout)
			t = newTable(e.stdout, "DROP REASON", "PACKETS")
			for _, k := range sortedKeys(s.Drops) {
				t.row(k, fmt.Sprint(s.Drops[k]))
			}
			t.flush()
		}
		return nil
	}
	return c.withJSON()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
