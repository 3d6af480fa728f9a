package cli

import (
	"github.com/spf13/cobra"
)

// completionCmd prints a shell's completion script; cobra writes the
// scripts, and flags such as --instance complete from nat64.toml.
func completionCmd() *cobra.Command {
	shell := func(name, example string, gen func(*cobra.Command) error) *cobra.Command {
		return &cobra.Command{
			Use:     name,
			Short:   "the completion script for " + name,
			Example: example,
			Args:    noArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				if err := gen(c.Root()); err != nil {
					return problem("%v", err)
				}
				return nil
			},
		}
	}
	return group(&cobra.Command{
		Use:   "completion",
		Short: "shell completion scripts for bash, zsh and fish",
		Long: `completion prints the script that teaches a shell nat64ctl's commands and
flags; --instance completes from the instances of nat64.toml.`,
		Example: `  nat64ctl completion bash > /etc/bash_completion.d/nat64ctl
  nat64ctl completion zsh > "${fpath[1]}/_nat64ctl"
  nat64ctl completion fish > ~/.config/fish/completions/nat64ctl.fish`,
	},
		shell("bash", "  source <(nat64ctl completion bash)", func(r *cobra.Command) error {
			return r.GenBashCompletionV2(r.OutOrStdout(), true)
		}),
		shell("zsh", "  nat64ctl completion zsh > \"${fpath[1]}/_nat64ctl\"", func(r *cobra.Command) error {
			return r.GenZshCompletion(r.OutOrStdout())
		}),
		shell("fish", "  nat64ctl completion fish | source", func(r *cobra.Command) error {
			return r.GenFishCompletion(r.OutOrStdout(), true)
		}),
	)
}
