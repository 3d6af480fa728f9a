package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/nat64kit/nat64kit/internal/control"
	"github.com/nat64kit/nat64kit/nat64conf"
)

// instanceFlags choose one instance of nat64.toml: -c and --instance, and,
// on commands that talk to a running translator, --control instead of both.
// Every command that acts on an instance takes them from here.
type instanceFlags struct {
	config, instance, control string
	withControl               bool
}

// addInstanceFlags adds -c and --instance, and --control when the command
// can reach a running translator directly.
func addInstanceFlags(cmd *cobra.Command, withControl bool) *instanceFlags {
	f := &instanceFlags{withControl: withControl}
	cmd.Flags().StringVarP(&f.config, "config", "c", DefaultConfig, "nat64.toml")
	cmd.Flags().StringVar(&f.instance, "instance", "", "the instance (default: the only one in nat64.toml)")
	_ = cmd.RegisterFlagCompletionFunc("instance", f.completeInstance)
	if withControl {
		cmd.Flags().StringVar(&f.control, "control", "", "the translator's control address HOST:PORT, instead of nat64.toml")
	}
	return f
}

// load reads nat64.toml; a bad file is a problem, named with file and line.
func (f *instanceFlags) load() (*nat64conf.Config, error) {
	cfg, err := nat64conf.Load(f.config)
	if err != nil {
		if f.withControl {
			return nil, problem("%v (or give --control)", err)
		}
		return nil, problem("%v", err)
	}
	return cfg, nil
}

// pick returns the chosen instance: the one named, or the only one.
func (f *instanceFlags) pick() (*nat64conf.Instance, error) {
	cfg, err := f.load()
	if err != nil {
		return nil, err
	}
	in, err := cfg.Pick(f.instance)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return in, nil
}

// client reaches the chosen instance's running translator: at --control,
// or at the control address nat64.toml gives it.
func (f *instanceFlags) client() (*control.Client, error) {
	if f.control != "" {
		return control.NewClient(f.control), nil
	}
	in, err := f.pick()
	if err != nil {
		return nil, err
	}
	if in.Control == "" {
		return nil, problem("instance %q has no control address in %s (set control = \"127.0.0.1:PORT\")", in.Name, f.config)
	}
	return control.NewClient(in.Control), nil
}

// completeInstance offers the instance names of the nat64.toml given so far.
func (f *instanceFlags) completeInstance(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	cfg, err := nat64conf.Load(f.config)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []cobra.Completion
	for _, in := range cfg.Instances {
		if strings.HasPrefix(in.Name, toComplete) {
			names = append(names, cobra.CompletionWithDesc(in.Name, in.Prefix.String()))
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// addProtoFlag is the --proto filter of the show commands.
func addProtoFlag(cmd *cobra.Command, what string) *string {
	p := cmd.Flags().String("proto", "", "only tcp, udp or icmp "+what)
	_ = cmd.RegisterFlagCompletionFunc("proto", cobra.FixedCompletions([]cobra.Completion{"tcp", "udp", "icmp"}, cobra.ShellCompDirectiveNoFileComp))
	return p
}

func checkProto(p string) error {
	switch p {
	case "", "tcp", "udp", "icmp":
		return nil
	}
	return usageErr("--proto %q: want tcp, udp or icmp", p)
}
