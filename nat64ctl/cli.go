package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one node of the CLI tree. Leaves have exec; inner nodes have
// subcommands. Each subcommand lives in its own file.
type command struct {
	name     string
	usage    string // "nat64ctl addr synth IPV4 [flags]"
	short    string // one line for the parent's list
	long     string // paragraph shown by --help
	flags    *flag.FlagSet
	sub      []*command
	parent   *command
	exec     func(env *env, args []string) error
	jsonFlag *bool // set when the command prints data and accepts --json
	minArgs  int
	maxArgs  int // -1: any
}

// env is what a command's exec gets: where to write, and the parsed
// --json switch. Tests give it buffers.
type env struct {
	stdout, stderr io.Writer
	json           bool
}

// Exit statuses: 1 means the command ran and found a problem (a check
// failed), 2 that it could not run as asked (usage, not implemented).
const (
	exitProblem = 1
	exitUsage   = 2
)

// exitError carries an exit status out of exec.
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

var errNotImplemented = &exitError{exitUsage, errors.New("not yet implemented")}

func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed once, by run
	return fs
}

// withJSON adds --json to a command that prints data.
func (c *command) withJSON() *command {
	if c.flags == nil {
		c.flags = newFlags(c.name)
	}
	c.jsonFlag = c.flags.Bool("json", false, "print the result as JSON")
	return c
}

// run dispatches args (without the program name) and returns the exit status.
func run(root *command, args []string, stdout, stderr io.Writer) int {
	cmd, rest, err := root.find(args)
	if err == nil {
		err = cmd.invoke(rest, stdout, stderr)
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		cmd.printHelp(stdout)
		return 0
	}
	if cmd != nil && cmd.parent != nil {
		fmt.Fprintf(stderr, "%s: %v\n", cmd.path(), err)
	} else {
		fmt.Fprintf(stderr, "nat64ctl: %v\n", err)
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.code == exitUsage && cmd != nil && ee != errNotImplemented {
			fmt.Fprintf(stderr, "usage: %s\n", cmd.usage)
		}
		return ee.code
	}
	return exitProblem
}

// find walks the tree along the leading words of args.
func (c *command) find(args []string) (*command, []string, error) {
	cur := c
	for len(args) > 0 && len(cur.sub) > 0 {
		a := args[0]
		if a == "-h" || a == "--help" || a == "help" {
			return cur, []string{"--help"}, nil
		}
		next := cur.child(a)
		if next == nil {
			return cur, nil, usageErr("%s: unknown command %q (try %s --help)", cur.path(), a, cur.path())
		}
		cur, args = next, args[1:]
	}
	if len(cur.sub) > 0 && cur.exec == nil {
		return cur, nil, usageErr("%s needs a subcommand: %s", cur.path(), strings.Join(cur.childNames(), ", "))
	}
	return cur, args, nil
}

func (c *command) child(name string) *command {
	for _, s := range c.sub {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (c *command) childNames() []string {
	names := make([]string, len(c.sub))
	for i, s := range c.sub {
		names[i] = s.name
	}
	return names
}

func (c *command) path() string {
	if c.parent == nil {
		return c.name
	}
	return c.parent.path() + " " + c.name
}

// link sets every node's parent; the tree is built from literals.
func (c *command) link() *command {
	for _, s := range c.sub {
		s.parent = c
		s.link()
	}
	return c
}

// invoke parses flags anywhere among the arguments (so `addr synth
// 192.0.2.33 --prefix P` works) and calls exec.
func (c *command) invoke(args []string, stdout, stderr io.Writer) error {
	fs := c.flags
	if fs == nil {
		fs = newFlags(c.name)
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return usageErr("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		if args[0] == "--" {
			positional = append(positional, args[1:]...)
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if len(positional) < c.minArgs || c.maxArgs >= 0 && len(positional) > c.maxArgs {
		return usageErr("%s: wrong number of arguments", c.path())
	}
	e := &env{stdout: stdout, stderr: stderr}
	if c.jsonFlag != nil {
		e.json = *c.jsonFlag
	}
	return c.exec(e, positional)
}

func (c *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s\n\n", c.usage)
	if c.long != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(c.long))
	} else if c.short != "" {
		fmt.Fprintf(w, "%s.\n\n", c.short)
	}
	if len(c.sub) > 0 {
		fmt.Fprintln(w, "Commands:")
		for _, s := range c.sub {
			fmt.Fprintf(w, "  %-10s %s\n", s.name, s.short)
		}
		fmt.Fprintln(w)
	}
	if c.flags != nil {
		fmt.Fprintln(w, "Flags:")
		c.flags.SetOutput(w)
		c.flags.PrintDefaults()
		c.flags.SetOutput(io.Discard)
	}
}

// printJSON writes v as indented JSON: the typed output of --json.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
