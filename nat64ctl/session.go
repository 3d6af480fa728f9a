package main

import (
	"fmt"
	"time"

	"github.com/nat64kit/nat64kit/internal/control"
)

func sessionCmd() *command {
	fs := newFlags("show")
	tgt := addTarget(fs)
	proto := fs.String("proto", "", "only tcp, udp or icmp sessions")
	show := &command{
		name:  "show",
		usage: "nat64ctl session show [--proto tcp|udp|icmp] [--instance NAME] [--json]",
		short: "the translator's sessions (RFC 6146 session table)",
		long: `show lists the sessions of a running translator: each flow's IPv6 side
(client, synthesized destination) and IPv4 side (pool4 address, server),
with the TCP state and the time left before it expires.`,
		flags:   fs,
		maxArgs: 0,
	}
	show.exec = func(e *env, _ []string) error {
		return showList(e, tgt, *proto, (*control.Client).Sessions, printSessions)
	}
	return &command{
		name:  "session",
		usage: "nat64ctl session show [flags]",
		short: "inspect the session table",
		sub:   []*command{show.withJSON()},
	}
}

func printSessions(e *env, ss []control.Session) {
	t := newTable(e.stdout, "PROTO", "IPV6 SOURCE", "IPV6 DESTINATION", "IPV4 SOURCE", "IPV4 DESTINATION", "STATE", "EXPIRES")
	for _, s := range ss {
		t.row(s.Proto, s.IPv6Src.String(), s.IPv6Dst.String(), s.IPv4Src.String(), s.IPv4Dst.String(), orDash(s.State),
			s.ExpiresIn.Duration().Round(time.Second).String())
	}
	t.flush()
	fmt.Fprintln(e.stdout, plural(len(ss), "session", "sessions"))
}
