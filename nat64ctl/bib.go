package main

func bibCmd() *command {
	leaf := func(name, usage, short string, args int) *command {
		fs := newFlags(name)
		fs.String("c", defaultConfig, "nat64.toml (gives the control address)")
		fs.String("instance", "", "the instance to ask")
		c := &command{name: name, usage: usage, short: short, flags: fs, minArgs: args, maxArgs: args}
		c.exec = func(*env, []string) error { return errNotImplemented }
		return c
	}
	show := leaf("show", "nat64ctl bib show [--proto tcp|udp|icmp] [--instance NAME] [--json]", "the binding information base", 0)
	show.flags.String("proto", "", "only tcp, udp or icmp entries")
	return &command{
		name:  "bib",
		usage: "nat64ctl bib show|add|remove [flags]",
		short: "inspect and change the BIB (static entries)",
		sub: []*command{
			show.withJSON(),
			leaf("add", "nat64ctl bib add PROTO [IPV6]:PORT IPV4:PORT [--instance NAME]", "add a static BIB entry", 3),
			leaf("remove", "nat64ctl bib remove PROTO [IPV6]:PORT IPV4:PORT [--instance NAME]", "remove a static BIB entry", 3),
		},
	}
}
