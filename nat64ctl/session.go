package main

func sessionCmd() *command {
	fs := newFlags("show")
	fs.String("c", defaultConfig, "nat64.toml (gives the control address)")
	fs.String("instance", "", "the instance to ask")
	fs.String("proto", "", "only tcp, udp or icmp sessions")
	show := &command{
		name:    "show",
		usage:   "nat64ctl session show [--proto tcp|udp|icmp] [--instance NAME] [--json]",
		short:   "the translator's sessions (RFC 6146 session table)",
		flags:   fs,
		maxArgs: 0,
	}
	show.exec = func(*env, []string) error { return errNotImplemented }
	return &command{
		name:  "session",
		usage: "nat64ctl session show [flags]",
		short: "inspect the session table",
		sub:   []*command{show.withJSON()},
	}
}
