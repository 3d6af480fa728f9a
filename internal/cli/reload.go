package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func reloadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "make a running translator re-read nat64.toml (as SIGHUP does)",
		Long: `reload asks a running translator to re-read nat64.toml. pool4 and static BIB
changes apply without dropping sessions whose addresses stay valid; an invalid
file is refused with the reason and the running configuration is kept.`,
		Example: "  nat64ctl reload --instance nat64-a",
		Args:    noArgs,
	}
	sel := addInstanceFlags(cmd, true)
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := sel.client()
		if err != nil {
			return err
		}
		if err := cl.Reload(c.Context()); err != nil {
			return problem("%v", err)
		}
		fmt.Fprintln(c.OutOrStdout(), "reloaded")
		return nil
	}
	return cmd
}
