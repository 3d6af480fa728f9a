package cli

import (
	"fmt"
	"io"
	"net/netip"

	"github.com/spf13/cobra"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/nat64conf"
)

// AddrResult is one address translation, as `addr --json` prints it.
type AddrResult struct {
	IPv4     string `json:"ipv4"`
	IPv6     string `json:"ipv6"`
	Prefix   string `json:"prefix"`
	Instance string `json:"instance,omitempty"`
}

func addrCmd() *cobra.Command {
	return group(&cobra.Command{
		Use:     "addr",
		Short:   "RFC 6052 address arithmetic: embed or extract an IPv4 address",
		Example: "  nat64ctl addr synth 198.51.100.2 --prefix 2001:db8:64::/96",
	}, addrSynthCmd(), addrExtractCmd())
}

func addrSynthCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "synth IPV4",
		Short: "the IPv6 address DNS64 synthesizes for an IPv4 address",
		Long: `synth embeds IPV4 into a NAT64 prefix (RFC 6052 section 2.2) and prints the
IPv6 address in RFC 5952 form: with --prefix, that prefix; with --instance, that
instance's; otherwise one line per instance of nat64.toml. The Well-Known Prefix
64:ff9b::/96 is refused for non-global IPv4 addresses (RFC 6052 section 3.1).`,
		Example: `  nat64ctl addr synth 198.51.100.2 --prefix 2001:db8:64::/96
  nat64ctl addr synth 198.51.100.2 -c nat64.toml --json`,
		Args: exactArgs(1),
	}
	sel := addInstanceFlags(cmd, false)
	cmd.Flags().Lookup("instance").Usage = "use this instance's prefix (default: one line per instance)"
	prefix := cmd.Flags().String("prefix", "", "use this prefix instead of nat64.toml")
	asJSON := addJSON(cmd)
	cmd.RunE = func(c *cobra.Command, args []string) error {
		v4, err := netip.ParseAddr(args[0])
		if err != nil || !v4.Is4() {
			return usageErr("%q is not an IPv4 address", args[0])
		}
		if *prefix != "" && sel.instance != "" {
			return usageErr("give --prefix or --instance, not both")
		}
		targets, err := prefixTargets(sel.config, *prefix, sel.instance)
		if err != nil {
			return err
		}
		var results []AddrResult
		var refused []string
		for _, t := range targets {
			if !t.prefix.CanCarry(v4.As4()) {
				refused = append(refused, fmt.Sprintf("%s must not carry the non-global address %s (RFC 6052 section 3.1); use a network-specific prefix", t.prefix, v4))
				continue
			}
			results = append(results, AddrResult{IPv4: v4.String(), IPv6: t.prefix.EmbedAddr(v4).String(), Prefix: t.prefix.String(), Instance: t.instance})
		}
		if err := printAddrResults(c.OutOrStdout(), *asJSON, results, showIPv6, len(targets) > 1); err != nil {
			return err
		}
		for _, r := range refused {
			fmt.Fprintf(c.ErrOrStderr(), "refused: %s\n", r)
		}
		if len(refused) > 0 {
			return problem("%d of %d prefix(es) refused %s", len(refused), len(targets), v4)
		}
		return nil
	}
	return cmd
}

func addrExtractCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "extract IPV6",
		Short: "the IPv4 address embedded in a synthesized IPv6 address",
		Long: `extract finds the prefix the IPv6 address lies in (--prefix, or the instances of
nat64.toml, or the Well-Known Prefix 64:ff9b::/96) and prints the embedded IPv4
address.`,
		Example: `  nat64ctl addr extract 2001:db8:64::c633:6402
  nat64ctl addr extract 2001:db8:64::c633:6402 --prefix 2001:db8:64::/96 --json`,
		Args: exactArgs(1),
	}
	config := cmd.Flags().StringP("config", "c", DefaultConfig, "nat64.toml whose instances give the prefixes")
	prefix := cmd.Flags().String("prefix", "", "the prefix the address was synthesized with, instead of nat64.toml")
	asJSON := addJSON(cmd)
	cmd.RunE = func(c *cobra.Command, args []string) error {
		v6, err := netip.ParseAddr(args[0])
		if err != nil || !v6.Is6() || v6.Is4In6() {
			return usageErr("%q is not an IPv6 address", args[0])
		}
		var targets []prefixTarget
		if *prefix != "" || nat64.WellKnownPrefix.Contains(v6) {
			p := *prefix
			if p == "" {
				p = nat64.WellKnownPrefix.String()
			}
			targets, err = prefixTargets("", p, "")
		} else {
			targets, err = prefixTargets(*config, "", "")
		}
		if err != nil {
			return err
		}
		for _, t := range targets {
			if v4, ok := t.prefix.ExtractAddr(v6); ok {
				return printAddrResults(c.OutOrStdout(), *asJSON, []AddrResult{{IPv4: v4.String(), IPv6: v6.String(), Prefix: t.prefix.String(), Instance: t.instance}}, showIPv4, false)
			}
		}
		return problem("%s is not inside %s", v6, targetList(targets))
	}
	return cmd
}

type prefixTarget struct {
	prefix   nat64.Prefix
	instance string
}

// prefixTargets resolves --prefix / --instance / nat64.toml into prefixes.
func prefixTargets(config, prefix, instance string) ([]prefixTarget, error) {
	if prefix != "" {
		p, err := nat64.ParsePrefix(prefix)
		if err != nil {
			return nil, usageErr("--prefix: %v", err)
		}
		return []prefixTarget{{prefix: p}}, nil
	}
	cfg, err := nat64conf.Load(config)
	if err != nil {
		return nil, problem("%v (or give --prefix)", err)
	}
	var out []prefixTarget
	for i := range cfg.Instances {
		in := &cfg.Instances[i]
		if instance == "" || in.Name == instance {
			out = append(out, prefixTarget{prefix: in.Prefix, instance: in.Name})
		}
	}
	if len(out) == 0 {
		return nil, usageErr("no instance %q in %s", instance, config)
	}
	return out, nil
}

func targetList(ts []prefixTarget) string {
	s := ""
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += t.prefix.String()
	}
	return s
}

// printAddrResults prints the asked-for address alone on its line (for
// scripts), prefixed by the instance name when there are several.
func printAddrResults(w io.Writer, asJSON bool, rs []AddrResult, show func(AddrResult) string, named bool) error {
	if asJSON {
		if rs == nil {
			rs = []AddrResult{}
		}
		return printJSON(w, rs)
	}
	for _, r := range rs {
		if named {
			fmt.Fprintf(w, "%s\t%s\n", r.Instance, show(r))
		} else {
			fmt.Fprintln(w, show(r))
		}
	}
	return nil
}

func showIPv6(r AddrResult) string { return r.IPv6 }
func showIPv4(r AddrResult) string { return r.IPv4 }
