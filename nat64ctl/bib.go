package main

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/nat64kit/nat64kit/internal/control"
)

func bibCmd() *command {
	fs := newFlags("show")
	tgt := addTarget(fs)
	proto := fs.String("proto", "", "only tcp, udp or icmp entries")
	show := &command{
		name:    "show",
		usage:   "nat64ctl bib show [--proto tcp|udp|icmp] [--instance NAME] [--json]",
		short:   "the binding information base: IPv6 transport addresses and their pool4 ones",
		flags:   fs,
		maxArgs: 0,
	}
	show.exec = func(e *env, _ []string) error {
		return showList(e, tgt, *proto, (*control.Client).BIB, printBIB)
	}
	return &command{
		name:  "bib",
		usage: "nat64ctl bib show|add|remove [flags]",
		short: "inspect the BIB; add and remove static entries",
		sub:   []*command{show.withJSON(), staticCmd("add"), staticCmd("remove")},
	}
}

func printBIB(e *env, bib []control.BIBEntry) {
	t := newTable(e.stdout, "PROTO", "IPV6", "IPV4", "KIND", "SESSIONS")
	for _, b := range bib {
		kind := "dynamic"
		if b.Static {
			kind = "static"
		}
		t.row(b.Proto, b.IPv6.String(), b.IPv4.String(), kind, fmt.Sprint(b.Sessions))
	}
	t.flush()
	fmt.Fprintln(e.stdout, plural(len(bib), "entry", "entries"))
}

// staticCmd is `bib add` or `bib remove`: a static entry of a running
// translator. It does not edit nat64.toml; a reload restores the file's set.
func staticCmd(verb string) *command {
	fs := newFlags(verb)
	tgt := addTarget(fs)
	short := "add a static BIB entry to the running translator"
	if verb == "remove" {
		short = "remove a static BIB entry from the running translator"
	}
	c := &command{
		name:  verb,
		usage: "nat64ctl bib " + verb + " tcp|udp|icmp [IPV6]:PORT IPV4:PORT [--instance NAME]",
		short: short,
		long: short + `. The entry lets IPv4 hosts open connections to the
IPv6 transport address through the pool4 one. It lasts until the translator
restarts or reloads; put it in nat64.toml ([[instance.static]]) to keep it.`,
		flags:   fs,
		minArgs: 3,
		maxArgs: 3,
	}
	c.exec = func(e *env, args []string) error {
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
		cl, err := tgt.client()
		if err != nil {
			return err
		}
		if verb == "add" {
			err = cl.AddStatic(context.Background(), entry)
		} else {
			err = cl.RemoveStatic(context.Background(), entry)
		}
		if err != nil {
			return problem("%v", err)
		}
		fmt.Fprintf(e.stdout, "%s %s %s %s\n", verb, entry.Proto, entry.IPv6, entry.IPv4)
		return nil
	}
	return c
}
