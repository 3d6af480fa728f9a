package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/nat64conf"
)

// target is how a command finds a running translator: --control directly,
// or the control address of an instance in nat64.toml.
type target struct {
	config, instance, control *string
}

func addTarget(fs *flag.FlagSet) target {
	return target{
		config:   fs.String("c", defaultConfig, "nat64.toml (gives the instance's control address)"),
		instance: fs.String("instance", "", "the instance to ask (default: the only one in nat64.toml)"),
		control:  fs.String("control", "", "the control address HOST:PORT, instead of nat64.toml"),
	}
}

func (t target) client() (*control.Client, error) {
	if *t.control != "" {
		return control.NewClient(*t.control), nil
	}
	cfg, err := nat64conf.Load(*t.config)
	if err != nil {
		return nil, problem("%v (or give --control)", err)
	}
	in, err := pickInstance(cfg, *t.instance)
	if err != nil {
		return nil, err
	}
	if in.Control == "" {
		return nil, problem("instance %q has no control address in %s (set control = \"127.0.0.1:PORT\")", in.Name, cfg.File)
	}
	return control.NewClient(in.Control), nil
}

// pickInstance returns the named instance, or the only one.
func pickInstance(cfg *nat64conf.Config, name string) (*nat64conf.Instance, error) {
	if name == "" {
		if len(cfg.Instances) == 1 {
			return &cfg.Instances[0], nil
		}
		return nil, usageErr("%s has %d instances: say which with --instance", cfg.File, len(cfg.Instances))
	}
	in, ok := cfg.Instance(name)
	if !ok {
		return nil, usageErr("no instance %q in %s", name, cfg.File)
	}
	return in, nil
}

// showList is the body of the `show` commands: one list read from the
// control API, printed as JSON or as the command's table.
func showList[T any](e *env, tgt target, proto string, get func(*control.Client, context.Context, string) ([]T, error), print func(*env, []T)) error {
	if err := checkProto(proto); err != nil {
		return err
	}
	c, err := tgt.client()
	if err != nil {
		return err
	}
	list, err := get(c, context.Background(), proto)
	if err != nil {
		return problem("%v", err)
	}
	if e.json {
		return printJSON(e.stdout, list)
	}
	print(e, list)
	return nil
}

func checkProto(p string) error {
	switch p {
	case "", "tcp", "udp", "icmp":
		return nil
	}
	return usageErr("--proto %q: want tcp, udp or icmp", p)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
