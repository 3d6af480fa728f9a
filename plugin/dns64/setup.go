package dns64

import (
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/miekg/dns"

	"github.com/nat64kit/nat64kit/nat64conf"
)

const pluginName = "dns64"

var log = clog.NewWithPlugin(pluginName)

// Defaults of the block options.
const (
	defaultReload         = 5 * time.Second
	defaultHealthInterval = 5 * time.Second
	defaultHealthTimeout  = 1 * time.Second
)

// defaultExclude is the IPv4-mapped range RFC 6147 §5.1.4 says to treat as
// absent from AAAA answers.
var defaultExclude = netip.MustParsePrefix("::ffff:0:0/96")

func setup(c *caddy.Controller) error {
	d, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	c.OnStartup(d.OnStartup)
	c.OnShutdown(d.OnShutdown)
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		d.Next = next
		return d
	})
	return nil
}

// parse reads every dns64 directive of a server block. Like the built-in, a
// later prefix (argument or `prefix` line) replaces an earlier one, so a
// Corefile written for the built-in means the same here.
func parse(c *caddy.Controller) (*DNS64, error) {
	d := newDNS64()
	var prefixes []nat64conf.Prefix
	excludeSet := false
	for c.Next() {
		if args := c.RemainingArgs(); len(args) > 0 {
			ps, err := parsePrefixes(c, args)
			if err != nil {
				return nil, err
			}
			prefixes = ps
		}
		for c.NextBlock() {
			opt := c.Val()
			args := c.RemainingArgs()
			switch opt {
			case "prefix":
				if len(args) == 0 {
					return nil, c.ArgErr()
				}
				ps, err := parsePrefixes(c, args)
				if err != nil {
					return nil, err
				}
				prefixes = ps
			case "translate_all":
				if len(args) != 0 {
					return nil, c.ArgErr()
				}
				d.translateAll = true
			case "allow_ipv4":
				if len(args) != 0 {
					return nil, c.ArgErr()
				}
				d.allowIPv4 = true
			case "instances":
				if len(args) != 1 {
					return nil, c.ArgErr()
				}
				d.instancesFile = args[0]
				if !filepath.IsAbs(d.instancesFile) {
					d.instancesFile = filepath.Join(dnsserver.GetConfig(c).Root, d.instancesFile)
				}
			case "reload":
				dur, err := parseDuration(c, args, true)
				if err != nil {
					return nil, err
				}
				d.reload = dur
			case "health_interval":
				dur, err := parseDuration(c, args, false)
				if err != nil {
					return nil, err
				}
				d.healthInterval = dur
			case "health_timeout":
				dur, err := parseDuration(c, args, false)
				if err != nil {
					return nil, err
				}
				d.healthTimeout = dur
			case "balance":
				if len(args) != 1 {
					return nil, c.ArgErr()
				}
				m, ok := parseBalance(args[0])
				if !ok {
					return nil, c.Errf("balance: unknown mode %q (want client, destination, random or all)", args[0])
				}
				d.balance = m
			case "exclude":
				if len(args) == 0 {
					return nil, c.ArgErr()
				}
				if !excludeSet {
					d.exclude = d.exclude[:0]
					excludeSet = true
				}
				for _, a := range args {
					p, err := netip.ParsePrefix(a)
					if err != nil || !p.Addr().Is6() || p.Addr().Zone() != "" {
						return nil, c.Errf("exclude: %q is not an IPv6 prefix", a)
					}
					d.exclude = append(d.exclude, p.Masked())
				}
			case "ignore_aaaa":
				if len(args) == 0 {
					return nil, c.ArgErr()
				}
				for _, a := range args {
					if _, ok := dns.IsDomainName(a); !ok {
						return nil, c.Errf("ignore_aaaa: %q is not a domain name", a)
					}
					d.ignoreAAAA = append(d.ignoreAAAA, strings.ToLower(dns.Fqdn(a)))
				}
			case "clients":
				if len(args) == 0 {
					return nil, c.ArgErr()
				}
				acl, err := parseACL(args, false)
				if err != nil {
					return nil, c.Errf("clients: %v", err)
				}
				d.clients = append(d.clients, acl...)
			case "mapped":
				if len(args) == 0 {
					return nil, c.ArgErr()
				}
				acl, err := parseACL(args, true)
				if err != nil {
					return nil, c.Errf("mapped: %v", err)
				}
				d.mapped = append(d.mapped, acl...)
			case "parallel_a":
				if err := d.parseParallelA(c, args); err != nil {
					return nil, err
				}
			default:
				return nil, c.Errf("unknown property '%s'", opt)
			}
		}
	}

	if d.healthTimeout > d.healthInterval {
		return nil, c.Errf("health_timeout %s is longer than health_interval %s", d.healthTimeout, d.healthInterval)
	}
	if d.instancesFile != "" {
		if prefixes != nil {
			return nil, c.Errf("prefix and instances cannot be used together: the prefixes come from %s", d.instancesFile)
		}
		cfg, err := nat64conf.Load(d.instancesFile)
		if err != nil {
			return nil, c.Errf("instances: %v", err)
		}
		set, err := newInstanceSet(cfg)
		if err != nil {
			return nil, c.Errf("instances: %v", err)
		}
		d.set.Store(set)
		d.fileStamp = statFile(d.instancesFile)
		return d, nil
	}
	if prefixes == nil {
		prefixes = []nat64conf.Prefix{nat64conf.MustPrefix(nat64conf.WellKnownPrefix.String())}
	}
	d.set.Store(setFromPrefixes(prefixes))
	return d, nil
}

// parsePrefixes validates NAT64 prefixes. Host bits are cleared as the
// built-in does (net.ParseCIDR), but RFC 6052's length and u-octet rules are
// enforced, and overlapping prefixes are refused: an address inside both
// could not be mapped back to one instance.
func parsePrefixes(c *caddy.Controller, args []string) ([]nat64conf.Prefix, error) {
	out := make([]nat64conf.Prefix, 0, len(args))
	for _, a := range args {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, c.Errf("invalid prefix %q: %v", a, err)
		}
		np, err := nat64conf.NewPrefix(p.Masked())
		if err != nil {
			return nil, c.Errf("%v", err)
		}
		for _, q := range out {
			if q.Overlaps(np) {
				return nil, c.Errf("prefix %s overlaps %s", np, q)
			}
		}
		out = append(out, np)
	}
	return out, nil
}

func parseDuration(c *caddy.Controller, args []string, zeroOK bool) (time.Duration, error) {
	if len(args) != 1 {
		return 0, c.ArgErr()
	}
	dur, err := time.ParseDuration(args[0])
	if err != nil {
		return 0, c.Errf("invalid duration %q", args[0])
	}
	if dur < 0 || (dur == 0 && !zeroOK) {
		return 0, c.Errf("duration %q must be positive", args[0])
	}
	return dur, nil
}

// parseParallelA reads `parallel_a on [DELAY]` or `parallel_a off`. DELAY
// is a Go duration (250us, 2ms), 0 or more; a plain 0 needs no unit.
func (d *DNS64) parseParallelA(c *caddy.Controller, args []string) error {
	const want = "parallel_a: want on [DELAY] or off"
	if len(args) == 0 {
		return c.Err(want)
	}
	switch args[0] {
	case "off":
		if len(args) != 1 {
			return c.Errf("%s, not %q", want, strings.Join(args, " "))
		}
		d.parallelA = parallelOff
	case "on":
		d.parallelA, d.parallelDelay = parallelOn, defaultParallelDelay
		switch len(args) {
		case 1:
		case 2:
			dur, err := time.ParseDuration(args[1])
			if err != nil {
				return c.Errf("parallel_a: invalid delay %q", args[1])
			}
			if dur < 0 {
				return c.Errf("parallel_a: delay %q must not be negative", args[1])
			}
			d.parallelDelay = dur
		default:
			return c.Errf("%s, not %q", want, strings.Join(args, " "))
		}
	default:
		return c.Errf("%s, not %q", want, strings.Join(args, " "))
	}
	return nil
}

func parseACL(args []string, ipv4Only bool) (acl, error) {
	out := make(acl, 0, len(args))
	for _, a := range args {
		deny := strings.HasPrefix(a, "!")
		s := strings.TrimPrefix(a, "!")
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				return nil, errors.New("invalid range " + a)
			}
		} else {
			ad, err := netip.ParseAddr(s)
			if err != nil {
				return nil, errors.New("invalid address " + a)
			}
			p = netip.PrefixFrom(ad, ad.BitLen())
		}
		if p.Addr().Zone() != "" || (ipv4Only && !p.Addr().Is4()) {
			return nil, errors.New("not an IPv4 range: " + a)
		}
		out = append(out, aclEntry{prefix: p.Masked(), deny: deny})
	}
	return out, nil
}
