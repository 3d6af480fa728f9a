package cli

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nat64kit/nat64kit/internal/corefile"
	"github.com/nat64kit/nat64kit/nat64conf"
)

// CheckResult is what `check --json` prints.
type CheckResult struct {
	Config     string            `json:"config"`
	Corefile   string            `json:"corefile,omitempty"`
	OK         bool              `json:"ok"`
	Instances  []InstanceSummary `json:"instances,omitempty"`
	DNS64      []DNS64Summary    `json:"dns64,omitempty"`
	Errors     []string          `json:"errors,omitempty"`
	Mismatches []string          `json:"mismatches,omitempty"`
}

// InstanceSummary is one instance as check reports it.
type InstanceSummary struct {
	Name    string   `json:"name"`
	Prefix  string   `json:"prefix"`
	Pool4   []string `json:"pool4"`
	Weight  int      `json:"weight"`
	Control string   `json:"control,omitempty"`
	Static  int      `json:"static_bib_entries"`
}

// DNS64Summary is one dns64 directive of the Corefile.
type DNS64Summary struct {
	Where    string   `json:"where"`
	Zones    []string `json:"zones"`
	Prefixes []string `json:"prefixes"`
}

func checkCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check",
		Short: "validate nat64.toml; prove the dns64 and NAT64 prefixes agree",
		Long: `check validates nat64.toml and, with --corefile, reads the Corefile with the
dns64 plugin's own parser, so it sees per server block exactly the prefixes the
plugin will synthesize with (given inline, with "prefix", through "instances
FILE", or the default). It fails when DNS64 synthesizes with a prefix that no
NAT64 instance owns, or an instance's prefix is used by no dns64 block. Relative
"root" and "instances" paths resolve against --workdir, the directory CoreDNS
runs in; by default the Corefile's own. Exit status 0: all agree; 1: a problem
was found (each named with file and line); 2: usage error.`,
		Example: `  nat64ctl check -c /etc/nat64kit/nat64.toml
  nat64ctl check -c /etc/nat64kit/nat64.toml --corefile /etc/coredns/Corefile --json`,
		Args: noArgs,
	}
	config := cmd.Flags().StringP("config", "c", DefaultConfig, "nat64.toml to validate")
	core := cmd.Flags().String("corefile", "", "also check that this Corefile's dns64 prefixes and the instances' prefixes agree")
	workDir := cmd.Flags().String("workdir", "", "the directory CoreDNS runs in, against which relative root and instances paths resolve (default: the Corefile's directory)")
	asJSON := addJSON(cmd)
	cmd.RunE = func(c *cobra.Command, _ []string) error {
		res := CheckResult{Config: *config, Corefile: *core}
		cfg, err := nat64conf.Load(*config)
		if err != nil {
			res.Errors = errorLines(err)
		} else {
			for i := range cfg.Instances {
				res.Instances = append(res.Instances, summarize(&cfg.Instances[i]))
			}
		}
		if *core != "" && cfg != nil {
			wd := *workDir
			if wd == "" {
				wd = filepath.Dir(*core)
			}
			dirs, err := corefile.Read(*core, wd)
			if err != nil {
				res.Errors = append(res.Errors, errorLines(err)...)
			} else {
				for _, d := range dirs {
					s := DNS64Summary{Where: d.Where, Zones: d.Zones}
					for _, u := range d.Uses {
						s.Prefixes = append(s.Prefixes, u.Prefix.String())
					}
					res.DNS64 = append(res.DNS64, s)
				}
				for _, m := range corefile.Compare(cfg, *core, dirs) {
					res.Mismatches = append(res.Mismatches, m.Message)
				}
			}
		}
		res.OK = len(res.Errors) == 0 && len(res.Mismatches) == 0
		if *asJSON {
			if err := printJSON(c.OutOrStdout(), res); err != nil {
				return err
			}
		} else {
			printCheck(c.OutOrStdout(), c.ErrOrStderr(), &res)
		}
		if !res.OK {
			return problem("check failed: %d error(s), %d mismatch(es)", len(res.Errors), len(res.Mismatches))
		}
		return nil
	}
	return cmd
}

func printCheck(stdout, stderr io.Writer, res *CheckResult) {
	for _, s := range res.Errors {
		fmt.Fprintf(stderr, "error: %s\n", s)
	}
	for _, s := range res.Mismatches {
		fmt.Fprintf(stderr, "mismatch: %s\n", s)
	}
	if len(res.Instances) > 0 {
		fmt.Fprintf(stdout, "%s: %d instance(s)\n", res.Config, len(res.Instances))
		tw := newTable(stdout, "NAME", "PREFIX", "POOL4", "WEIGHT", "CONTROL")
		for _, in := range res.Instances {
			tw.row(in.Name, in.Prefix, strings.Join(in.Pool4, ","), fmt.Sprint(in.Weight), orDash(in.Control))
		}
		tw.flush()
	}
	for _, d := range res.DNS64 {
		fmt.Fprintf(stdout, "dns64 at %s (%s) synthesizes with %s\n", d.Where, strings.Join(d.Zones, " "), strings.Join(d.Prefixes, ", "))
	}
	if res.OK {
		if res.Corefile != "" {
			fmt.Fprintln(stdout, "ok: every dns64 prefix is owned by a NAT64 instance and every instance's prefix is in use")
		} else {
			fmt.Fprintln(stdout, "ok")
		}
	}
}

func summarize(in *nat64conf.Instance) InstanceSummary {
	s := InstanceSummary{Name: in.Name, Prefix: in.Prefix.String(), Weight: in.Weight, Control: in.Control, Static: len(in.Static)}
	for _, r := range in.Pool4 {
		s.Pool4 = append(s.Pool4, r.String())
	}
	return s
}

// errorLines splits a config error into one line per problem.
func errorLines(err error) []string {
	var es nat64conf.Errors
	if errors.As(err, &es) {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.Error()
		}
		return out
	}
	return []string{err.Error()}
}
