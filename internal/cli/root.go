package cli

import (
	"github.com/spf13/cobra"
)

// NewRoot builds the whole command tree. Each call returns a fresh tree,
// so tests and the man-page generator never share flag state.
func NewRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "nat64ctl",
		Short: "NAT64 translator and tools",
		Long: `nat64ctl runs and inspects nat64kit's stateful NAT64 translator. Its
prefixes come from the same nat64.toml that the CoreDNS dns64 plugin reads
(see "nat64ctl check").

Exit status: 0 on success, 1 when the command ran and found a problem,
2 on a usage error.`,
		Example: `  nat64ctl check -c /etc/nat64kit/nat64.toml --corefile /etc/coredns/Corefile
  nat64ctl run --instance nat64-a
  nat64ctl stats --instance nat64-a`,
		SilenceErrors:     true, // Execute prints them once, with the exit status
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr("%v", err) })
	root.SetHelpCommand(helpCmd())
	root.InitDefaultHelpCmd() // so the tree, its tests and the man pages include help
	group(root,
		runCmd(),
		checkCmd(),
		routeCmd(),
		sessionCmd(),
		bibCmd(),
		statsCmd(),
		reloadCmd(),
		addrCmd(),
		completionCmd(),
	)
	return root
}

// helpCmd is `nat64ctl help [COMMAND]`, the same as COMMAND --help.
func helpCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "help [COMMAND]",
		Short:   "help about any command",
		Example: "  nat64ctl help route sync",
		RunE: func(c *cobra.Command, args []string) error {
			cmd, _, err := c.Root().Find(args)
			if err != nil || cmd == nil {
				return usageErr("unknown command %q", args)
			}
			return cmd.Help()
		},
		ValidArgsFunction: func(c *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := c.Root().Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []cobra.Completion
			for _, s := range cmd.Commands() {
				if s.IsAvailableCommand() {
					names = append(names, cobra.CompletionWithDesc(s.Name(), s.Short))
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
	}
}
