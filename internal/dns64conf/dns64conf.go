// Package dns64conf reads the Corefile's dns64 directive: the one parser
// that both the CoreDNS plugin's setup and `nat64ctl check` use, so the
// check reports exactly the prefixes the running plugin synthesizes with.
//
// It depends only on caddyfile parsing and nat64conf.
package dns64conf

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coredns/caddy/caddyfile"
	"github.com/miekg/dns"

	"github.com/nat64kit/nat64kit/internal/nat64"
	"github.com/nat64kit/nat64kit/nat64conf"
)

// Defaults of the block options.
const (
	DefaultReload         = 5 * time.Second
	DefaultHealthInterval = 5 * time.Second
	DefaultHealthTimeout  = 1 * time.Second
	// DefaultParallelDelay is the hedge delay of `parallel_a on`: longer
	// than answers from memory (cache, file) take, even on a loaded server,
	// so those cost no goroutine and no extra A query; shorter than any
	// network round trip worth saving.
	DefaultParallelDelay = 250 * time.Microsecond
	// DefaultMaxFails is how many consecutive failed health probes take an
	// instance out of rotation, as in CoreDNS's forward: one lost probe
	// (a restart, a dropped packet) must not move every client away.
	DefaultMaxFails = 2
	// DefaultAnswerCacheSize bounds the answer cache in entries. A
	// synthesized answer packs to about 100-250 bytes and is kept only up
	// to 1232, so with its bookkeeping the default costs 2-5 MiB in
	// practice and at most about 19 MiB; it is of the order of CoreDNS
	// cache's 9984 entries per kind, so it holds the popular IPv4-only
	// names a resolver sees.
	DefaultAnswerCacheSize = 8192
	// DefaultAnswerCacheMaxTTL caps how long an answer is kept, as cache's
	// default success TTL cap does.
	DefaultAnswerCacheMaxTTL = time.Hour
	// MaxAnswerCacheSize keeps a typo from reserving gigabytes.
	MaxAnswerCacheSize = 1 << 22
)

// DefaultExclude is the IPv4-mapped range RFC 6147 §5.1.4 says to treat as
// absent from AAAA answers.
var DefaultExclude = netip.MustParsePrefix("::ffff:0:0/96")

// Balance says how a prefix is chosen for an answer.
type Balance uint8

const (
	// BalanceClient hashes the client address: a client sticks to one
	// NAT64, so its sessions and its view of the world stay on one
	// translator.
	BalanceClient Balance = iota
	// BalanceDestination hashes each IPv4 destination: every client reaches
	// a given server through the same NAT64.
	BalanceDestination
	// BalanceRandom picks at random, weighted, per answer.
	BalanceRandom
	// BalanceAll gives one AAAA per active prefix.
	BalanceAll
)

var balanceNames = [...]string{"client", "destination", "random", "all"}

func (b Balance) String() string { return balanceNames[b] }

// ParallelA is the parallel_a setting.
type ParallelA uint8

const (
	// ParallelOn starts the A lookup beside the AAAA lookup when that has
	// not answered within the delay (at once when the delay is 0).
	ParallelOn ParallelA = iota
	// ParallelOff starts the A lookup after an empty AAAA answer, as the
	// built-in does.
	ParallelOff
	// ParallelAuto (the default) starts the A lookup together with the
	// AAAA lookup for names recently seen without AAAA records, and after
	// the AAAA answer for all others: synthesized names cost one round
	// trip, dual-stack names one upstream query.
	ParallelAuto
)

// Prefix is a NAT64 prefix written in the Corefile, with its line.
type Prefix struct {
	nat64.Prefix
	Line int
}

// Config is one server block's dns64 configuration: every dns64 directive
// of the block, read in order.
type Config struct {
	File string // the Corefile, as named to the parser
	Line int    // the first dns64 directive

	// Prefixes are the prefixes written in the Corefile, as arguments or
	// with `prefix`; a later one replaces an earlier one, as with the
	// built-in. Empty when Instances is set or when the default applies
	// (DefaultPrefix).
	Prefixes []Prefix
	// DefaultPrefix: no prefix and no instances were written, so the
	// plugin synthesizes with the Well-Known Prefix, as the built-in does.
	DefaultPrefix bool
	// InstancesFile is the `instances` file, resolved against the block's
	// root as CoreDNS resolves it; Instances is that file, loaded.
	InstancesFile string
	InstancesLine int
	Instances     *nat64conf.Config

	TranslateAll   bool
	AllowIPv4      bool
	Reload         time.Duration
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	Balance        Balance
	Exclude        []netip.Prefix
	IgnoreAAAA     []string // lower-case FQDNs
	Clients        ACL
	Mapped         ACL
	ParallelA      ParallelA
	// ParallelDelay is how long, with parallel_a on, the AAAA lookup may
	// take before the A lookup is started beside it.
	ParallelDelay time.Duration
	// MaxFails is the number of consecutive failed health probes after
	// which an instance leaves the rotation; 0 never takes it out.
	MaxFails int
	// AnswerCacheSize is the answer cache's bound in entries; 0 means
	// `answer_cache off`.
	AnswerCacheSize int
	// AnswerCacheMaxTTL caps how long a cached answer lives.
	AnswerCacheMaxTTL time.Duration
}

// SynthesisPrefixes are the prefixes the plugin synthesizes with, in
// order: the written ones, the instances' ones, or the Well-Known Prefix.
func (c *Config) SynthesisPrefixes() []nat64.Prefix {
	switch {
	case c.Instances != nil:
		out := make([]nat64.Prefix, len(c.Instances.Instances))
		for i := range c.Instances.Instances {
			out[i] = c.Instances.Instances[i].Prefix
		}
		return out
	case c.DefaultPrefix:
		return []nat64.Prefix{WellKnownPrefix()}
	}
	out := make([]nat64.Prefix, len(c.Prefixes))
	for i, p := range c.Prefixes {
		out[i] = p.Prefix
	}
	return out
}

// WellKnownPrefix is 64:ff9b::/96 (RFC 6052 §2.1), the default.
func WellKnownPrefix() nat64.Prefix {
	p, _ := nat64.NewPrefix(nat64.WellKnownPrefix)
	return p
}

// Parse reads every dns64 directive in d, which holds one server block's
// dns64 tokens as CoreDNS hands them to a plugin's setup. root is the
// block's `root` ("" for the working directory): relative `instances`
// paths are joined to it, as CoreDNS does. Errors come from the
// dispenser, so they carry the file and line in CoreDNS's own words.
func Parse(d *caddyfile.Dispenser, root string) (*Config, error) {
	c := &Config{
		ParallelA:      ParallelAuto,
		ParallelDelay:  DefaultParallelDelay,
		Exclude:        []netip.Prefix{DefaultExclude},
		Reload:         DefaultReload,
		HealthInterval: DefaultHealthInterval,
		HealthTimeout:  DefaultHealthTimeout,
		MaxFails:       DefaultMaxFails,

		AnswerCacheSize:   DefaultAnswerCacheSize,
		AnswerCacheMaxTTL: DefaultAnswerCacheMaxTTL,
	}
	var prefixes []Prefix
	excludeSet := false
	for d.Next() {
		if c.Line == 0 {
			c.File, c.Line = d.File(), d.Line()
		}
		if args := d.RemainingArgs(); len(args) > 0 {
			ps, err := parsePrefixes(d, args)
			if err != nil {
				return nil, err
			}
			prefixes = ps
		}
		for d.NextBlock() {
			opt := d.Val()
			args := d.RemainingArgs()
			switch opt {
			case "prefix":
				if len(args) == 0 {
					return nil, d.ArgErr()
				}
				ps, err := parsePrefixes(d, args)
				if err != nil {
					return nil, err
				}
				prefixes = ps
			case "translate_all":
				if len(args) != 0 {
					return nil, d.ArgErr()
				}
				c.TranslateAll = true
			case "allow_ipv4":
				if len(args) != 0 {
					return nil, d.ArgErr()
				}
				c.AllowIPv4 = true
			case "instances":
				if len(args) != 1 {
					return nil, d.ArgErr()
				}
				c.InstancesFile, c.InstancesLine = args[0], d.Line()
				if !filepath.IsAbs(c.InstancesFile) {
					c.InstancesFile = filepath.Join(root, c.InstancesFile)
				}
			case "reload":
				dur, err := parseDuration(d, args, true)
				if err != nil {
					return nil, err
				}
				c.Reload = dur
			case "health_interval":
				dur, err := parseDuration(d, args, false)
				if err != nil {
					return nil, err
				}
				c.HealthInterval = dur
			case "health_timeout":
				dur, err := parseDuration(d, args, false)
				if err != nil {
					return nil, err
				}
				c.HealthTimeout = dur
			case "balance":
				if len(args) != 1 {
					return nil, d.ArgErr()
				}
				b, ok := parseBalance(args[0])
				if !ok {
					return nil, d.Errf("balance: unknown mode %q (want client, destination, random or all)", args[0])
				}
				c.Balance = b
			case "exclude":
				if len(args) == 0 {
					return nil, d.ArgErr()
				}
				if !excludeSet {
					c.Exclude = c.Exclude[:0]
					excludeSet = true
				}
				for _, a := range args {
					p, err := netip.ParsePrefix(a)
					if err != nil || !p.Addr().Is6() || p.Addr().Zone() != "" {
						return nil, d.Errf("exclude: %q is not an IPv6 prefix", a)
					}
					c.Exclude = append(c.Exclude, p.Masked())
				}
			case "ignore_aaaa":
				if len(args) == 0 {
					return nil, d.ArgErr()
				}
				for _, a := range args {
					if _, ok := dns.IsDomainName(a); !ok {
						return nil, d.Errf("ignore_aaaa: %q is not a domain name", a)
					}
					c.IgnoreAAAA = append(c.IgnoreAAAA, strings.ToLower(dns.Fqdn(a)))
				}
			case "clients":
				if len(args) == 0 {
					return nil, d.ArgErr()
				}
				acl, err := parseACL(args, false)
				if err != nil {
					return nil, d.Errf("clients: %v", err)
				}
				c.Clients = append(c.Clients, acl...)
			case "mapped":
				if len(args) == 0 {
					return nil, d.ArgErr()
				}
				acl, err := parseACL(args, true)
				if err != nil {
					return nil, d.Errf("mapped: %v", err)
				}
				c.Mapped = append(c.Mapped, acl...)
			case "parallel_a":
				if err := c.parseParallelA(d, args); err != nil {
					return nil, err
				}
			case "max_fails":
				if len(args) != 1 {
					return nil, d.Errf("max_fails: want one number, not %q", strings.Join(args, " "))
				}
				n, err := strconv.Atoi(args[0])
				if err != nil || n < 0 {
					return nil, d.Errf("max_fails: %q is not a number of probes (0 or more)", args[0])
				}
				c.MaxFails = n
			case "answer_cache":
				if err := c.parseAnswerCache(d, args); err != nil {
					return nil, err
				}
			default:
				return nil, d.Errf("unknown property '%s'", opt)
			}
		}
	}

	if c.HealthTimeout > c.HealthInterval {
		return nil, d.Errf("health_timeout %s is longer than health_interval %s", c.HealthTimeout, c.HealthInterval)
	}
	if c.InstancesFile != "" {
		if prefixes != nil {
			// Named at the instances line, in the dispenser's own form.
			return nil, fmt.Errorf("%s:%d - Error during parsing: prefix and instances cannot be used together: the prefixes come from %s",
				c.File, c.InstancesLine, c.InstancesFile)
		}
		cfg, err := LoadInstances(c.InstancesFile)
		if err != nil {
			return nil, d.Errf("instances: %v", err)
		}
		c.Instances = cfg
		return c, nil
	}
	c.Prefixes = prefixes
	c.DefaultPrefix = prefixes == nil
	return c, nil
}

// LoadInstances reads an instances file as dns64 uses it, at start-up and
// on every reload.
func LoadInstances(file string) (*nat64conf.Config, error) {
	cfg, err := nat64conf.Load(file)
	if err != nil {
		return nil, err
	}
	return cfg, CheckInstances(cfg)
}

// CheckInstances refuses an instances file dns64 cannot synthesize from.
func CheckInstances(cfg *nat64conf.Config) error {
	if len(cfg.Instances) == 0 {
		return errors.New(cfg.File + ": no [[instance]]")
	}
	return nil
}

// parsePrefixes validates NAT64 prefixes. Host bits are cleared as the
// built-in does (net.ParseCIDR), but RFC 6052's length and u-octet rules
// are enforced, and overlapping prefixes are refused: an address inside
// both could not be mapped back to one instance.
func parsePrefixes(d *caddyfile.Dispenser, args []string) ([]Prefix, error) {
	out := make([]Prefix, 0, len(args))
	for _, a := range args {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, d.Errf("invalid prefix %q: %v", a, err)
		}
		np, err := nat64.NewPrefix(p.Masked())
		if err != nil {
			return nil, d.Errf("%v", err)
		}
		for _, q := range out {
			if q.Overlaps(np) {
				return nil, d.Errf("prefix %s overlaps %s", np, q.Prefix)
			}
		}
		out = append(out, Prefix{Prefix: np, Line: d.Line()})
	}
	return out, nil
}

func parseBalance(s string) (Balance, bool) {
	for i, n := range balanceNames {
		if s == n {
			return Balance(i), true
		}
	}
	return 0, false
}

func parseDuration(d *caddyfile.Dispenser, args []string, zeroOK bool) (time.Duration, error) {
	if len(args) != 1 {
		return 0, d.ArgErr()
	}
	dur, err := time.ParseDuration(args[0])
	if err != nil {
		return 0, d.Errf("invalid duration %q", args[0])
	}
	if dur < 0 || (dur == 0 && !zeroOK) {
		return 0, d.Errf("duration %q must be positive", args[0])
	}
	return dur, nil
}

// parseParallelA reads `parallel_a auto`, `parallel_a on [DELAY]` or
// `parallel_a off`. DELAY is a Go duration (250us, 2ms), 0 or more; a
// plain 0 needs no unit.
func (c *Config) parseParallelA(d *caddyfile.Dispenser, args []string) error {
	const want = "parallel_a: want auto, on [DELAY] or off"
	if len(args) == 0 {
		return d.Err(want)
	}
	switch args[0] {
	case "auto":
		if len(args) != 1 {
			return d.Errf("%s, not %q", want, strings.Join(args, " "))
		}
		c.ParallelA = ParallelAuto
	case "off":
		if len(args) != 1 {
			return d.Errf("%s, not %q", want, strings.Join(args, " "))
		}
		c.ParallelA = ParallelOff
	case "on":
		c.ParallelA, c.ParallelDelay = ParallelOn, DefaultParallelDelay
		switch len(args) {
		case 1:
		case 2:
			dur, err := time.ParseDuration(args[1])
			if err != nil {
				return d.Errf("parallel_a: invalid delay %q", args[1])
			}
			if dur < 0 {
				return d.Errf("parallel_a: delay %q must not be negative", args[1])
			}
			c.ParallelDelay = dur
		default:
			return d.Errf("%s, not %q", want, strings.Join(args, " "))
		}
	default:
		return d.Errf("%s, not %q", want, strings.Join(args, " "))
	}
	return nil
}

// parseAnswerCache reads `answer_cache off` or `answer_cache [SIZE]
// [MAX_TTL]`; MAX_TTL is a duration (30m) or plain seconds (1800), as
// cache writes TTLs.
func (c *Config) parseAnswerCache(d *caddyfile.Dispenser, args []string) error {
	const want = "answer_cache: want [SIZE] [MAX_TTL] or off"
	if len(args) == 1 && args[0] == "off" {
		c.AnswerCacheSize = 0
		return nil
	}
	if len(args) > 2 {
		return d.Errf("%s, not %q", want, strings.Join(args, " "))
	}
	c.AnswerCacheSize, c.AnswerCacheMaxTTL = DefaultAnswerCacheSize, DefaultAnswerCacheMaxTTL
	if len(args) >= 1 {
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 || n > MaxAnswerCacheSize {
			return d.Errf("answer_cache: SIZE %q is not a number of entries from 1 to %d (%s)", args[0], MaxAnswerCacheSize, want)
		}
		c.AnswerCacheSize = n
	}
	if len(args) == 2 {
		dur, err := time.ParseDuration(args[1])
		if err != nil {
			secs, serr := strconv.Atoi(args[1])
			if serr != nil || secs > math.MaxInt32 {
				return d.Errf("answer_cache: MAX_TTL %q is neither a duration nor seconds", args[1])
			}
			dur = time.Duration(secs) * time.Second
		}
		if dur < time.Second {
			return d.Errf("answer_cache: MAX_TTL %q is below one second (use off to disable)", args[1])
		}
		c.AnswerCacheMaxTTL = dur
	}
	return nil
}

// ACLEntry is one address range of a clients or mapped list.
type ACLEntry struct {
	Prefix netip.Prefix
	Deny   bool
}

// ACL is an ordered list: the first entry containing the address decides;
// when none does, the address is allowed only if the list has no positive
// entry (so "!10.0.0.0/8" alone means "everything but 10/8").
type ACL []ACLEntry

// Allows applies the list to addr.
func (a ACL) Allows(addr netip.Addr) bool {
	if len(a) == 0 {
		return true
	}
	anyPositive := false
	for _, e := range a {
		if e.Prefix.Contains(addr) {
			return !e.Deny
		}
		anyPositive = anyPositive || !e.Deny
	}
	return !anyPositive
}

func parseACL(args []string, ipv4Only bool) (ACL, error) {
	out := make(ACL, 0, len(args))
	for _, a := range args {
		deny := strings.HasPrefix(a, "!")
		s := strings.TrimPrefix(a, "!")
		var p netip.Prefix
		if strings.Contains(s, "/") {
			var err error
			if p, err = netip.ParsePrefix(s); err != nil {
				return nil, fmt.Errorf("invalid range %s", a)
			}
		} else {
			ad, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("invalid address %s", a)
			}
			p = netip.PrefixFrom(ad, ad.BitLen())
		}
		if p.Addr().Zone() != "" || (ipv4Only && !p.Addr().Is4()) {
			return nil, fmt.Errorf("not an IPv4 range: %s", a)
		}
		out = append(out, ACLEntry{Prefix: p.Masked(), Deny: deny})
	}
	return out, nil
}
