package nat64conf

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/nat64kit/nat64kit/internal/nat64"
)

// The file's shape. Everything is decoded as TOML's own types first, so a
// type mismatch is the TOML library's error (with a position); meaning is
// given afterwards, by validate, which knows every key's line.
type fileConfig struct {
	Instance []fileInstance `toml:"instance"`
}

type fileInstance struct {
	Name                 string       `toml:"name"`
	Prefix               string       `toml:"prefix"`
	Pool4                []string     `toml:"pool4"`
	Weight               *int64       `toml:"weight"`
	Control              string       `toml:"control"`
	MTU                  *int64       `toml:"mtu"`
	IPv4MTU              *int64       `toml:"ipv4_mtu"`
	LowestIPv6MTU        *int64       `toml:"lowest_ipv6_mtu"`
	ICMPErrorRate        *int64       `toml:"icmp_error_rate"`
	ICMPErrorBurst       *int64       `toml:"icmp_error_burst"`
	Filtering            string       `toml:"filtering"`
	UDPZeroChecksum      string       `toml:"udp_zero_checksum"`
	FastPath             string       `toml:"fastpath"`
	MaxSessions          *int64       `toml:"max_sessions"`
	MaxSessionsPerSource *int64       `toml:"max_sessions_per_source"`
	Timeouts             fileTimeouts `toml:"timeouts"`
	Static               []fileStatic `toml:"static"`
}

type fileTimeouts struct {
	UDP            string `toml:"udp"`
	TCPEstablished string `toml:"tcp_established"`
	TCPTransitory  string `toml:"tcp_transitory"`
	ICMP           string `toml:"icmp"`
	Fragment       string `toml:"fragment"`
}

type fileStatic struct {
	Proto string `toml:"proto"`
	IPv6  string `toml:"ipv6"`
	IPv4  string `toml:"ipv4"`
}

// Load reads and validates a nat64.toml. It returns either a complete,
// valid Config or an error; never a partial config.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse is Load for bytes already read; file names them in messages.
func Parse(file string, data []byte) (*Config, error) {
	var fc fileConfig
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&fc); err != nil {
		return nil, tomlError(file, err)
	}
	lines := indexLines(data)
	v := validator{file: file, lines: lines}
	cfg := v.config(&fc)
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return cfg, nil
}

func keyPath(k toml.Key) string { return strings.Join(k, ".") }

type validator struct {
	file  string
	lines *lineIndex
	errs  Errors
}

func (v *validator) fail(line int, field, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) config(fc *fileConfig) *Config {
	cfg := &Config{File: v.file}
	if len(fc.Instance) == 0 {
		v.fail(0, "instance", "no [[instance]] defined")
		return cfg
	}
	for i := range fc.Instance {
		cfg.Instances = append(cfg.Instances, v.instance(i, &fc.Instance[i]))
	}
	v.crossInstance(cfg)
	return cfg
}

func (v *validator) instance(i int, fi *fileInstance) Instance {
	at := v.lines.instance(i)
	in := Instance{Line: at.header, fieldLines: at.keys}
	field := func(key string) string { return fmt.Sprintf("instance[%d].%s", i, key) }
	line := in.LineOf

	in.Name = fi.Name
	switch {
	case fi.Name == "":
		v.fail(in.Line, field("name"), "missing: every instance needs a name (it is also the TUN device name)")
	case !validInterfaceName(fi.Name):
		v.fail(line("name"), field("name"), "%q is not a usable interface name (1-15 characters of letters, digits, '-', '_', '.')", fi.Name)
	}

	if fi.Prefix == "" {
		v.fail(in.Line, field("prefix"), "missing: the NAT64 prefix (pool6), e.g. \"64:ff9b:1::/96\"")
	} else if p, err := nat64.ParsePrefix(fi.Prefix); err != nil {
		v.fail(line("prefix"), field("prefix"), "%s", strings.TrimPrefix(err.Error(), nat64.ErrPrefix.Error()+": "))
	} else {
		in.Prefix = p
	}

	if len(fi.Pool4) == 0 {
		v.fail(in.Line, field("pool4"), "missing: at least one IPv4 range, e.g. [\"203.0.113.1/32\"]")
	}
	for j, s := range fi.Pool4 {
		r, err := ParsePool4Range(s)
		if err != nil {
			v.fail(line("pool4"), fmt.Sprintf("instance[%d].pool4[%d]", i, j), "%v", err)
			continue
		}
		in.Pool4 = append(in.Pool4, r)
	}
	for a := range in.Pool4 {
		for b := a + 1; b < len(in.Pool4); b++ {
			if in.Pool4[a].Overlaps(in.Pool4[b]) {
				v.fail(line("pool4"), field("pool4"), "%s overlaps %s", in.Pool4[b], in.Pool4[a])
			}
		}
	}

	in.Weight = int(v.intField(fi.Weight, 1, 1, 1<<16, line("weight"), field("weight")))
	in.MTU = int(v.intField(fi.MTU, nat64.DefaultMTU, nat64.MinIPv6MTU, 65535, line("mtu"), field("mtu")))
	in.IPv4MTU = int(v.intField(fi.IPv4MTU, int64(in.MTU), 68, 65535, line("ipv4_mtu"), field("ipv4_mtu")))
	in.LowestIPv6MTU = nat64.DefaultLowestIPv6MTU
	if p := fi.LowestIPv6MTU; p != nil {
		// RFC 7915 §4: 1280 unless the operator knows better; more than
		// the TUN device's own MTU could never be sent.
		if *p < nat64.MinIPv6MTU || *p > int64(in.MTU) {
			v.fail(line("lowest_ipv6_mtu"), field("lowest_ipv6_mtu"), "%d is out of range %d-%d (the instance's mtu)", *p, nat64.MinIPv6MTU, in.MTU)
		} else {
			in.LowestIPv6MTU = int(*p)
		}
	}
	in.ICMPErrorRate = int(v.intField(fi.ICMPErrorRate, nat64.DefaultICMPErrorRate, 1, nat64.MaxICMPErrorRate, line("icmp_error_rate"), field("icmp_error_rate")))
	in.ICMPErrorBurst = int(v.intField(fi.ICMPErrorBurst, nat64.DefaultICMPErrorBurst, 1, nat64.MaxICMPErrorRate, line("icmp_error_burst"), field("icmp_error_burst")))
	in.MaxSessions = int(v.intField(fi.MaxSessions, nat64.DefaultMaxSessions, 1, 1<<28, line("max_sessions"), field("max_sessions")))
	in.MaxSessionsPerSource = int(v.intField(fi.MaxSessionsPerSource, nat64.DefaultMaxSessionsPerSource, 1, 1<<28, line("max_sessions_per_source"), field("max_sessions_per_source")))

	if fi.Control != "" {
		if err := checkHostPort(fi.Control); err != nil {
			v.fail(line("control"), field("control"), "%v", err)
		}
		in.Control = fi.Control
	}

	switch fi.Filtering {
	case "", "address-dependent":
	case "endpoint-independent":
		in.EndpointIndependentFiltering = true
	default:
		v.fail(line("filtering"), field("filtering"), "%q: want \"address-dependent\" or \"endpoint-independent\"", fi.Filtering)
	}
	switch fi.UDPZeroChecksum {
	case "", "compute":
	case "drop":
		in.DropZeroChecksumUDP = true
	default:
		v.fail(line("udp_zero_checksum"), field("udp_zero_checksum"), "%q: want \"compute\" or \"drop\"", fi.UDPZeroChecksum)
	}

	if m, err := ParseFastPathMode(fi.FastPath); err != nil {
		v.fail(line("fastpath"), field("fastpath"), "%v", err)
	} else {
		in.FastPath = m
	}

	t := &fi.Timeouts
	in.Timeouts = nat64.Timeouts{
		UDP:            v.duration(t.UDP, nat64.DefaultUDPTimeout, nat64.MinUDPTimeout, line("timeouts.udp"), field("timeouts.udp")),
		TCPEstablished: v.duration(t.TCPEstablished, nat64.DefaultTCPEstablishedTimeout, nat64.MinTCPEstablishedTimeout, line("timeouts.tcp_established"), field("timeouts.tcp_established")),
		TCPTransitory:  v.duration(t.TCPTransitory, nat64.DefaultTCPTransitoryTimeout, nat64.MinTCPTransitoryTimeout, line("timeouts.tcp_transitory"), field("timeouts.tcp_transitory")),
		ICMP:           v.duration(t.ICMP, nat64.DefaultICMPTimeout, nat64.MinICMPTimeout, line("timeouts.icmp"), field("timeouts.icmp")),
	}
	// Fragments wait at least RFC 6146's 2 s, and no longer than the end
	// hosts themselves would (RFC 8200's 60 s).
	in.FragmentTimeout = v.duration(t.Fragment, nat64.DefaultFragmentTimeout, nat64.MinFragmentTimeout, line("timeouts.fragment"), field("timeouts.fragment"))
	if in.FragmentTimeout > nat64.MaxFragmentTimeout {
		v.fail(line("timeouts.fragment"), field("timeouts.fragment"), "%s is above RFC 8200's reassembly time of %s", in.FragmentTimeout, nat64.MaxFragmentTimeout)
		in.FragmentTimeout = nat64.DefaultFragmentTimeout
	}

	for j := range fi.Static {
		if s, ok := v.static(i, j, &fi.Static[j], &in); ok {
			in.Static = append(in.Static, s)
		}
	}
	return in
}

func (v *validator) static(i, j int, fs *fileStatic, in *Instance) (nat64.StaticBIB, bool) {
	sl := v.lines.static(i, j)
	field := func(key string) string { return fmt.Sprintf("instance[%d].static[%d].%s", i, j, key) }
	lineOf := func(key string) int {
		if l, ok := sl.keys[key]; ok {
			return l
		}
		return sl.header
	}
	s := nat64.StaticBIB{Line: sl.header}
	ok := true
	proto, known := nat64.ParseTransport(fs.Proto)
	if !known {
		v.fail(lineOf("proto"), field("proto"), "%q: want \"tcp\", \"udp\" or \"icmp\"", fs.Proto)
		ok = false
	}
	s.Proto = proto
	v6, err := netip.ParseAddrPort(fs.IPv6)
	if err != nil || !v6.Addr().Is6() || v6.Addr().Is4In6() || v6.Addr().Zone() != "" {
		v.fail(lineOf("ipv6"), field("ipv6"), "%q: want an IPv6 transport address such as \"[2001:db8::80]:80\"", fs.IPv6)
		ok = false
	} else if in.Prefix.IsValid() && in.Prefix.Contains(v6.Addr().As16()) {
		v.fail(lineOf("ipv6"), field("ipv6"), "%s is inside the instance's own prefix %s: a static entry maps a real IPv6 host", v6.Addr(), in.Prefix)
		ok = false
	}
	v4, err := netip.ParseAddrPort(fs.IPv4)
	if err != nil || !v4.Addr().Is4() {
		v.fail(lineOf("ipv4"), field("ipv4"), "%q: want an IPv4 transport address such as \"203.0.113.1:8080\"", fs.IPv4)
		ok = false
	} else if len(in.Pool4) > 0 && !in.Pool4Contains(v4) {
		v.fail(lineOf("ipv4"), field("ipv4"), "%s is outside the instance's pool4 (%s): static entries must use a pool4 address and port", v4, pool4List(in.Pool4))
		ok = false
	}
	s.IPv6, s.IPv4 = v6, v4
	if ok {
		for _, prev := range in.Static {
			if prev.Proto != s.Proto {
				continue
			}
			if prev.IPv4 == s.IPv4 {
				v.fail(lineOf("ipv4"), field("ipv4"), "%s %s is already bound by the static entry on line %d", s.Proto, s.IPv4, prev.Line)
				ok = false
			} else if prev.IPv6 == s.IPv6 {
				v.fail(lineOf("ipv6"), field("ipv6"), "%s %s is already bound by the static entry on line %d (mappings are endpoint-independent: one IPv4 side per IPv6 side)", s.Proto, s.IPv6, prev.Line)
				ok = false
			}
		}
	}
	return s, ok
}

// crossInstance checks what no single instance can: names, prefixes and
// pool4 ranges must be distinct across the whole file.
func (v *validator) crossInstance(cfg *Config) {
	ins := cfg.Instances
	for a := range ins {
		for b := a + 1; b < len(ins); b++ {
			x, y := &ins[a], &ins[b]
			if x.Name != "" && x.Name == y.Name {
				v.fail(y.LineOf("name"), fmt.Sprintf("instance[%d].name", b), "duplicate instance name %q (first on line %d)", y.Name, x.LineOf("name"))
			}
			if x.Prefix.IsValid() && y.Prefix.IsValid() && x.Prefix.Overlaps(y.Prefix) {
				what := "overlaps"
				if x.Prefix == y.Prefix {
					what = "duplicates"
				}
				v.fail(y.LineOf("prefix"), fmt.Sprintf("instance[%d].prefix", b), "%s %s the prefix %s of instance %q (line %d): each NAT64 instance needs its own prefix", y.Prefix, what, x.Prefix, x.Name, x.LineOf("prefix"))
			}
			for _, rx := range x.Pool4 {
				for _, ry := range y.Pool4 {
					if rx.Overlaps(ry) {
						v.fail(y.LineOf("pool4"), fmt.Sprintf("instance[%d].pool4", b), "%s overlaps %s of instance %q (line %d): two translators cannot own the same IPv4 ports", ry, rx, x.Name, x.LineOf("pool4"))
					}
				}
			}
		}
	}
}

func (v *validator) intField(p *int64, def, lo, hi int64, line int, field string) int64 {
	if p == nil {
		return def
	}
	if *p < lo || *p > hi {
		v.fail(line, field, "%d is out of range %d-%d", *p, lo, hi)
		return def
	}
	return *p
}

func (v *validator) duration(s string, def, floor time.Duration, line int, field string) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		v.fail(line, field, "%q is not a duration such as \"5m\" or \"2h4m\"", s)
		return def
	}
	if d < floor {
		v.fail(line, field, "%s is below the RFC 6146 minimum of %s", d, floor)
		return def
	}
	return d
}

// ParsePool4Range parses "ADDR/LEN" or "ADDR/LEN LO-HI".
func ParsePool4Range(s string) (nat64.Pool4Range, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 2 {
		return nat64.Pool4Range{}, fmt.Errorf("%q: want \"ADDR/LEN\" or \"ADDR/LEN FIRST-LAST\"", s)
	}
	p, err := netip.ParsePrefix(fields[0])
	if err != nil || !p.Addr().Is4() {
		return nat64.Pool4Range{}, fmt.Errorf("%q: %q is not an IPv4 prefix", s, fields[0])
	}
	if p.Masked() != p {
		return nat64.Pool4Range{}, fmt.Errorf("%q: %s has bits set after /%d (did you mean %s?)", s, p, p.Bits(), p.Masked())
	}
	if p.Bits() < 16 {
		return nat64.Pool4Range{}, fmt.Errorf("%q: /%d is larger than a pool4 needs (the limit is /16)", s, p.Bits())
	}
	r := nat64.Pool4Range{Prefix: p, FirstPort: nat64.DefaultFirstPort, LastPort: nat64.DefaultLastPort}
	if len(fields) == 2 {
		lo, hi, ok := strings.Cut(fields[1], "-")
		first, err1 := strconv.ParseUint(lo, 10, 16)
		last, err2 := strconv.ParseUint(hi, 10, 16)
		if !ok || err1 != nil || err2 != nil || first == 0 || first > last {
			return nat64.Pool4Range{}, fmt.Errorf("%q: port range %q: want FIRST-LAST with 1 <= FIRST <= LAST <= 65535", s, fields[1])
		}
		r.FirstPort, r.LastPort = uint16(first), uint16(last)
	}
	return r, nil
}

func pool4List(rs []nat64.Pool4Range) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = r.String()
	}
	return strings.Join(s, ", ")
}

func validInterfaceName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want HOST:PORT, e.g. \"127.0.0.1:9164\"", s)
	}
	if _, err := netip.ParseAddr(host); err != nil && host != "localhost" {
		return fmt.Errorf("%q: host must be an IP address or localhost", s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("%q: port must be 1-65535", s)
	}
	return nil
}
