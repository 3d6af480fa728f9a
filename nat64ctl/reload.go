package main

import (
	"context"
	"fmt"
)

func reloadCmd() *command {
	fs := newFlags("reload")
	tgt := addTarget(fs)
	c := &command{
		name:  "reload",
		usage: "nat64ctl reload [--instance NAME]",
		short: "make a running translator re-read nat64.toml (as SIGHUP does)",
		long: `reload asks a running translator to re-read nat64.toml. pool4 and static BIB
changes apply without dropping sessions whose addresses stay valid; an invalid
file is refused with the reason and the running configuration is kept.`,
		flags:   fs,
		maxArgs: 0,
	}
	c.exec = func(e *env, _ []string) error {
		cl, err := tgt.client()
		if err != nil {
			return err
		}
		if err := cl.Reload(context.Background()); err != nil {
			return problem("%v", err)
		}
		fmt.Fprintln(e.stdout, "reloaded")
		return nil
	}
	return c
}
