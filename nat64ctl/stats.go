package main

func statsCmd() *command {
	fs := newFlags("stats")
	fs.String("c", defaultConfig, "nat64.toml (gives the control address)")
	fs.String("instance", "", "the instance to ask")
	c := &command{
		name:    "stats",
		usage:   "nat64ctl stats [--instance NAME] [--json]",
		short:   "translation counters and drops by reason",
		flags:   fs,
		maxArgs: 0,
	}
	c.exec = func(*env, []string) error { return errNotImplemented }
	return c.withJSON()
}
