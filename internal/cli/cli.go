// Package cli is nat64ctl's command tree, on cobra: one file per
// subcommand, the instance-selection flags in instance.go, and the exit
// statuses the README documents.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
)

// DefaultConfig is where nat64ctl looks for nat64.toml without -c.
const DefaultConfig = "/etc/nat64kit/nat64.toml"

// Exit statuses: 1 means the command ran and found a problem (a check
// failed, the translator refused), 2 that it could not run as asked.
const (
	exitProblem = 1
	exitUsage   = 2
)

// exitError carries an exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

func problem(format string, args ...any) error {
	return &exitError{exitProblem, fmt.Errorf(format, args...)}
}

// Execute runs the command line args (without the program name) and
// returns the exit status. Errors are printed once, here, prefixed by the
// command that failed.
func Execute(args []string, stdout, stderr io.Writer) int {
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", cmd.CommandPath(), err)
	var ee *exitError
	if errors.As(err, &ee) && ee.code == exitProblem {
		return exitProblem
	}
	// Everything else is a usage error: ours, or cobra's own (an unknown
	// command or flag).
	fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	return exitUsage
}

// noArgs and exactArgs check positional arguments as usage errors.
func noArgs(cmd *cobra.Command, args []string) error { return exactArgs(0)(cmd, args) }

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == n:
			return nil
		case len(args) == 0:
			return usageErr("want %d argument(s), got none", n)
		default:
			return usageErr("want %d argument(s), got %d: %s", n, len(args), strings.Join(args, " "))
		}
	}
}

// group is an inner node of the tree: it runs only to say that a
// subcommand is missing or unknown.
func group(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.AddCommand(subs...)
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		var names []string
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				names = append(names, s.Name())
			}
		}
		if len(args) > 0 {
			return usageErr("unknown command %q (want one of: %s)", args[0], strings.Join(names, ", "))
		}
		return usageErr("needs a subcommand: %s", strings.Join(names, ", "))
	}
	return cmd
}

// addJSON gives a command that prints data its --json switch.
func addJSON(cmd *cobra.Command) *bool {
	return cmd.Flags().Bool("json", false, "print the result as JSON")
}

// printJSON writes v as indented JSON: the typed output of --json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return problem("%v", err)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
