package main

func reloadCmd() *command {
	fs := newFlags("reload")
	fs.String("c", defaultConfig, "nat64.toml (gives the control address)")
	fs.String("instance", "", "the instance to reload")
	c := &command{
		name:    "reload",
		usage:   "nat64ctl reload [--instance NAME]",
		short:   "make a running translator re-read nat64.toml (as SIGHUP does)",
		flags:   fs,
		maxArgs: 0,
	}
	c.exec = func(*env, []string) error { return errNotImplemented }
	return c
}
