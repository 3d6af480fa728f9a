package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/nat64kit/nat64kit/internal/control"
)

func sessionCmd() *cobra.Command {
	show := &cobra.Command{
		Use:   "show",
		Short: "the translator's sessions (RFC 6146 session table)",
		Long: `show lists the sessions of a running translator: each flow's IPv6 side
(client, synthesized destination) and IPv4 side (pool4 address, server),
with the TCP state and the time left before it expires.`,
		Example: `  nat64ctl session show --instance nat64-a
  nat64ctl session show --proto tcp --json`,
		Args: noArgs,
	}
	showList(show, "sessions", (*control.Client).Sessions, printSessions)
	return group(&cobra.Command{
		Use:     "session",
		Short:   "inspect the session table",
		Example: "  nat64ctl session show --instance nat64-a",
	}, show)
}

func printSessions(w io.Writer, ss []control.Session) {
	t := newTable(w, "PROTO", "IPV6 SOURCE", "IPV6 DESTINATION", "IPV4 SOURCE", "IPV4 DESTINATION", "STATE", "EXPIRES")
	for _, s := range ss {
		t.row(s.Proto, s.IPv6Src.String(), s.IPv6Dst.String(), s.IPv4Src.String(), s.IPv4Dst.String(), orDash(s.State),
			s.ExpiresIn.Duration().Round(time.Second).String())
	}
	t.flush()
	fmt.Fprintln(w, plural(len(ss), "session", "sessions"))
}

// showList makes cmd a `show` command: one list read from a running
// translator's control API, filtered by --proto, printed as JSON or as a
// table.
func showList[T any](cmd *cobra.Command, what string, get func(*control.Client, context.Context, string) ([]T, error), print func(io.Writer, []T)) {
	sel := addInstanceFlags(cmd, true)
	proto := addProtoFlag(cmd, what)
	asJSON := addJSON(cmd)
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		if err := checkProto(*proto); err != nil {
			return err
		}
		cl, err := sel.client()
		if err != nil {
			return err
		}
		list, err := get(cl, c.Context(), *proto)
		if err != nil {
			return problem("%v", err)
		}
		if *asJSON {
			return printJSON(c.OutOrStdout(), list)
		}
		print(c.OutOrStdout(), list)
		return nil
	}
}
