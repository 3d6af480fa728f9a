package main

func runCmd() *command {
	fs := newFlags("run")
	fs.String("c", defaultConfig, "nat64.toml")
	fs.String("instance", "", "the instance to run (default: the only one in the file)")
	fs.Bool("keep-routes", false, "leave routes and addresses in place on exit")
	c := &command{
		name:  "run",
		usage: "nat64ctl run [-c nat64.toml] [--instance NAME] [--keep-routes]",
		short: "run the translator daemon: TUN device, netlink routes, translation",
		long: `run creates (or adopts) the instance's TUN device, installs its routes through
netlink and translates packets between the IPv6 and IPv4 sides (RFC 6146 +
RFC 7915) until SIGTERM or SIGINT. SIGHUP reloads nat64.toml.`,
		flags:   fs,
		maxArgs: 0,
	}
	c.exec = func(*env, []string) error { return errNotImplemented }
	return c
}
