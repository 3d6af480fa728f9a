//go:build dns64_builtin

package dns64

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"

	builtin "github.com/coredns/coredns/plugin/dns64"
	"github.com/coredns/coredns/plugin/pkg/nonwriter"
	"github.com/coredns/coredns/request"
	"github.com/miekg/dns"
)

// zoneUpstream is the built-in's A lookup against the fake zone.
type zoneUpstream struct{ z *fakeZone }

func (u zoneUpstream) Lookup(ctx context.Context, state request.Request, name string, typ uint16) (*dns.Msg, error) {
	r := new(dns.Msg)
	r.SetQuestion(name, typ)
	nw := nonwriter.New(state.W)
	u.z.ServeDNS(ctx, nw, r)
	return nw.Msg, nil
}

// TestBuiltinEquivalence checks that, for the built-in's own option set,
// this plugin answers what CoreDNS's built-in dns64 answers. The built-in's
// struct is built directly; its setup is never called.
func TestBuiltinEquivalence(t *testing.T) {
	configs := []struct {
		corefile string
		prefix   string
		all, v4  bool
	}{
		{"dns64", "64:ff9b::/96", false, false},
		{"dns64 2001:db8:64::/96", "2001:db8:64::/96", false, false},
		{"dns64 {\nprefix 2001:db8:64::/64\ntranslate_all\n}", "2001:db8:64::/64", true, false},
		{"dns64 2001:db8:64::/40 {\nallow_ipv4\n}", "2001:db8::/40", false, true},
		{"dns64 {\nprefix 2001:db8:64::/32\nallow_ipv4\ntranslate_all\n}", "2001:db8::/32", true, true},
	}
	names := []string{"v4", "short", "both", "www", "txt", "nope", "global"}
	compared := 0
	for _, cfg := range configs {
		z := newFakeZone(t, zoneRecords...)
		// The built-in caps TTLs with the SOA TTL only; RFC 6147 §5.1.7 via
		// RFC 2308 also uses MINIMUM. Equal here, so both rules agree.
		z.soa.Minttl = z.soa.Hdr.Ttl
		ours := newPlugin(t, cfg.corefile, z)
		_, ipnet, _ := net.ParseCIDR(cfg.prefix)
		theirs := &builtin.DNS64{Next: z, Prefix: ipnet, TranslateAll: cfg.all, AllowIPv4: cfg.v4, Upstream: zoneUpstream{z}}
		for _, client := range []string{client6, client4} {
			for _, name := range names {
				for _, qtype := range []uint16{dns.TypeAAAA, dns.TypeA} {
					if cfg.prefix == "64:ff9b::/96" && name != "global" && name != "both" {
						continue // RFC 6052 §3.1: we refuse what the built-in maps
					}
					q := name + ".example.org."
					r := new(dns.Msg)
					r.SetQuestion(q, qtype)
					w1, w2 := newWriter(client), newWriter(client)
					rc1, _ := ours.ServeDNS(context.Background(), w1, r.Copy())
					rc2, _ := theirs.ServeDNS(context.Background(), w2, r.Copy())
					what := cfg.corefile + " " + client + " " + q + " " + dns.TypeToString[qtype]
					if (w1.msg == nil) != (w2.msg == nil) || rc1 != rc2 && w1.msg == nil {
						t.Errorf("%s: ours wrote %v rc %d, built-in wrote %v rc %d", what, w1.msg != nil, rc1, w2.msg != nil, rc2)
						continue
					}
					if w1.msg == nil {
						continue
					}
					if w1.msg.Rcode != w2.msg.Rcode {
						t.Errorf("%s: rcode %s, built-in %s", what, dns.RcodeToString[w1.msg.Rcode], dns.RcodeToString[w2.msg.Rcode])
					}
					if a, b := rrStrings(w1.msg.Answer), rrStrings(w2.msg.Answer); !slices.Equal(a, b) {
						t.Errorf("%s: answer\n%s\nbuilt-in\n%s", what, strings.Join(a, "\n"), strings.Join(b, "\n"))
					}
					if a, b := rrStrings(w1.msg.Ns), rrStrings(w2.msg.Ns); !slices.Equal(a, b) {
						t.Errorf("%s: authority %v, built-in %v", what, a, b)
					}
					compared++
				}
			}
		}
	}
	if compared < 100 {
		t.Errorf("only %d answers compared", compared)
	}
}

func rrStrings(rrs []dns.RR) []string {
	out := make([]string, 0, len(rrs))
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	slices.Sort(out)
	return out
}

// staticLookup is the built-in's A lookup answered from a prebuilt message.
type staticLookup struct{ up *staticUpstream }

func (s staticLookup) Lookup(ctx context.Context, state request.Request, name string, typ uint16) (*dns.Msg, error) {
	return s.up.a, nil
}

// BenchmarkBuiltinSynth is BenchmarkServeDNSSynth for the built-in, with
// the same prebuilt upstream answers: CPU and allocations per synthesized
// answer, side by side (go test -tags dns64_builtin -bench Synth).
func BenchmarkBuiltinSynth(b *testing.B) {
	up := newStaticUpstream(b)
	_, ipnet, _ := net.ParseCIDR("2001:db8:64::/96")
	d := &builtin.DNS64{Next: up, Prefix: ipnet, Upstream: staticLookup{up}}
	r := new(dns.Msg)
	r.SetQuestion("v4.example.org.", dns.TypeAAAA)
	w := newWriter(client6)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d.ServeDNS(context.Background(), w, r)
	}
	if len(aaaaStrings(w.msg)) != 1 {
		b.Fatal("no synthesis")
	}
}
