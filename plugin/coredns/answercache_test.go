package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestAnswerCacheRealServer: through a running CoreDNS and its writers,
// a repeated synthesized answer comes from dns64's answer cache (no
// upstream query) over UDP and TCP, with the client's ID, spelling of the
// name and EDNS buffer size; and, with parallel_a auto, a dual-stack name
// costs one upstream query.
func TestAnswerCacheRealServer(t *testing.T) {
	up := newSlowUpstream(t, 0)
	port := freePort(t)
	addr := startCoreDNS(t, binary(t), t.TempDir(), fmt.Sprintf(`.:%d {
    bind 127.0.0.1
    dns64 {
        prefix 2001:db8:64::/96
        allow_ipv4
    }
    forward . %s
}
`, port, up.addr), port)
	up.queries.Store(0) // the readiness query

	ask := func(net, name string, edns uint16) *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeAAAA)
		if edns > 0 {
			m.SetEdns0(edns, false)
		}
		c := &dns.Client{Net: net, Timeout: 2 * time.Second}
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != m.Id || r.Question[0].Name != name {
			t.Fatalf("id %d name %s, asked %d %s", r.Id, r.Question[0].Name, m.Id, name)
		}
		return r
	}
	aaaa := func(m *dns.Msg) []string {
		var out []string
		for _, rr := range m.Answer {
			if a, ok := rr.(*dns.AAAA); ok {
				out = append(out, a.AAAA.String())
			}
		}
		return out
	}

	first := ask("udp", "n1.test.", 0)
	if got := aaaa(first); !slices.Equal(got, []string{"2001:db8:64::c633:6402"}) {
		t.Fatalf("synthesis: %v", first)
	}
	if n := up.queries.Load(); n != 2 {
		t.Fatalf("%d upstream queries for the first answer, want 2", n)
	}
	for _, tc := range []struct {
		net, name string
		edns      uint16
	}{{"udp", "N1.Test.", 0}, {"udp", "n1.TEST.", 1400}, {"tcp", "n1.test.", 0}} {
		m := ask(tc.net, tc.name, tc.edns)
		if !slices.Equal(aaaa(m), aaaa(first)) {
			t.Fatalf("%s %s: %v", tc.net, tc.name, m)
		}
		if opt := m.IsEdns0(); (opt != nil) != (tc.edns > 0) || (opt != nil && opt.UDPSize() != tc.edns) {
			t.Errorf("%s %s: OPT %v, asked with buffer %d", tc.net, tc.name, opt, tc.edns)
		}
	}
	if n := up.queries.Load(); n != 2 {
		t.Fatalf("%d upstream queries after 3 more answers, want 2 (from the cache)", n)
	}

	up.queries.Store(0)
	for i := 0; i < 5; i++ {
		if m := ask("udp", fmt.Sprintf("d%d.test.", i), 0); !slices.Equal(aaaa(m), []string{"2001:db8:5::1"}) {
			t.Fatalf("dual-stack: %v", m)
		}
	}
	if n := up.queries.Load(); n != 5 {
		t.Errorf("%d upstream queries for 5 dual-stack answers, want 5", n)
	}
}
