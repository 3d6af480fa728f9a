package main

func routeCmd() *command {
	leaf := func(name, short string) *command {
		fs := newFlags(name)
		fs.String("c", defaultConfig, "nat64.toml")
		fs.String("instance", "", "the instance (default: the only one in the file)")
		c := &command{name: name, usage: "nat64ctl route " + name + " [-c nat64.toml] [--instance NAME]", short: short, flags: fs, maxArgs: 0}
		c.exec = func(*env, []string) error { return errNotImplemented }
		return c
	}
	return &command{
		name:  "route",
		usage: "nat64ctl route show|sync|flush [flags]",
		short: "the netlink-managed routes and addresses",
		sub: []*command{
			leaf("show", "installed versus configured routes and addresses").withJSON(),
			leaf("sync", "install what is missing, remove our stale entries"),
			leaf("flush", "remove every route and address nat64ctl installed"),
		},
	}
}
