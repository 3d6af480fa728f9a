package dns64

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/coredns/caddy"
	"github.com/miekg/dns"
)

// fakeZone is the upstream of the handler tests: a tiny authoritative
// server behind the plugin (its Next), following in-zone CNAMEs like the
// file plugin does.
type fakeZone struct {
	t      testing.TB
	mu     sync.Mutex
	rrs    map[string][]dns.RR // key: name/TYPE, lower case
	names  map[string]bool
	soa    *dns.SOA
	rcode  map[string]int // name/TYPE: answer with this rcode (and SOA)
	silent map[string]int // name/TYPE: write nothing, return this rcode
	seen   []string       // name/TYPE of every query, in order
	hook   func(q dns.Question)
}

func newFakeZone(t testing.TB, records ...string) *fakeZone {
	z := &fakeZone{t: t, rrs: map[string][]dns.RR{}, names: map[string]bool{}, rcode: map[string]int{}, silent: map[string]int{}}
	z.soa = mustRR(t, "example.org. 3600 IN SOA ns.example.org. host.example.org. 1 7200 3600 1209600 300").(*dns.SOA)
	for _, s := range records {
		z.add(mustRR(t, s))
	}
	return z
}

func mustRR(t testing.TB, s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("bad RR %q: %v", s, err)
	}
	return rr
}

func key(name string, qtype uint16) string {
	return strings.ToLower(name) + "/" + dns.TypeToString[qtype]
}

func (z *fakeZone) add(rr dns.RR) {
	h := rr.Header()
	typ := h.Rrtype
	if sig, ok := rr.(*dns.RRSIG); ok {
		typ = sig.TypeCovered // kept beside the set it signs
	}
	k := key(h.Name, typ)
	z.rrs[k] = append(z.rrs[k], rr)
	z.names[strings.ToLower(h.Name)] = true
}

func (z *fakeZone) Name() string { return "fake" }

func (z *fakeZone) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	q := r.Question[0]
	z.mu.Lock()
	z.seen = append(z.seen, key(q.Name, q.Qtype))
	hook := z.hook
	z.mu.Unlock()
	if hook != nil {
		hook(q)
	}
	k := key(q.Name, q.Qtype)
	if rc, ok := z.silent[k]; ok {
		return rc, nil
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if rc, ok := z.rcode[k]; ok {
		m.Rcode = rc
		w.WriteMsg(m)
		return rc, nil
	}
	name := q.Name
	for hops := 0; hops < 8; hops++ {
		if set := z.rrs[key(name, q.Qtype)]; len(set) > 0 {
			m.Answer = append(m.Answer, set...)
			w.WriteMsg(m)
			return dns.RcodeSuccess, nil
		}
		cn := z.rrs[key(name, dns.TypeCNAME)]
		if len(cn) == 0 {
			break
		}
		m.Answer = append(m.Answer, cn...)
		name = cn[0].(*dns.CNAME).Target
	}
	if !z.names[strings.ToLower(name)] {
		m.Rcode = dns.RcodeNameError
	}
	m.Ns = []dns.RR{dns.Copy(z.soa)}
	w.WriteMsg(m)
	return m.Rcode, nil
}

func (z *fakeZone) queries() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]string(nil), z.seen...)
}

// writer is a ResponseWriter with a chosen client address, recording the
// message written.
type writer struct {
	remote net.Addr
	msg    *dns.Msg
	n      int
}

func newWriter(client string) *writer {
	return &writer{remote: &net.UDPAddr{IP: net.ParseIP(client), Port: 40000}}
}

func (w *writer) LocalAddr() net.Addr       { return &net.UDPAddr{IP: net.IPv6loopback, Port: 53} }
func (w *writer) RemoteAddr() net.Addr      { return w.remote }
func (w *writer) WriteMsg(m *dns.Msg) error { w.msg = m; w.n++; return nil }

// Write is how a cached answer arrives: it is unpacked so tests see it as
// any other.
func (w *writer) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	w.msg = m
	w.n++
	return len(b), nil
}
func (w *writer) Close() error        { return nil }
func (w *writer) TsigStatus() error   { return nil }
func (w *writer) TsigTimersOnly(bool) {}
func (w *writer) Hijack()             {}
func (w *writer) Network() string     { return "udp" }

const (
	client6 = "2001:db8:1::10"
	client4 = "192.0.2.10"
)

// newPlugin parses a Corefile snippet into a plugin in front of next.
func newPlugin(t testing.TB, corefile string, next *fakeZone) *DNS64 {
	t.Helper()
	c := caddy.NewTestController("dns", corefile)
	d, err := parse(c)
	if err != nil {
		t.Fatalf("parse %q: %v", corefile, err)
	}
	if answerCacheOff && !strings.Contains(corefile, "answer_cache") {
		d.cache = nil
	}
	d.Next = next
	return d
}

// ask sends one query from client through d and returns the reply.
func ask(t testing.TB, d *DNS64, client, name string, qtype uint16, tweak ...func(*dns.Msg)) *dns.Msg {
	t.Helper()
	r := new(dns.Msg)
	r.SetQuestion(dns.Fqdn(name), qtype)
	for _, f := range tweak {
		f(r)
	}
	w := newWriter(client)
	rc, err := d.ServeDNS(context.Background(), w, r)
	if w.msg == nil {
		// What the server would send for an rcode the chain did not write.
		m := new(dns.Msg)
		m.SetRcode(r, rc)
		_ = err
		return m
	}
	if w.n != 1 {
		t.Fatalf("%d messages written", w.n)
	}
	checkCached(t, d, client, r, w.msg)
	return w.msg
}

// checkCached: when the answer cache now holds an answer for r, it must be
// the answer just given. Served through serveCached, not ServeDNS, so no
// metric moves and no test sees an extra query.
func checkCached(t testing.TB, d *DNS64, client string, r, got *dns.Msg) {
	t.Helper()
	if d.cache == nil || len(r.Question) != 1 || r.Question[0].Qtype != dns.TypeAAAA || r.Question[0].Qclass != dns.ClassINET {
		return
	}
	if _, ok := d.clientAllowed(newWriter(client)); !ok {
		return
	}
	set := d.set.Load()
	addr, _ := netip.ParseAddr(client)
	view, ok := d.view(set, d.choose(set, addr.Unmap().As16()))
	if !ok {
		return
	}
	now := d.cache.now()
	e := d.cache.get(d.cache.key(&r.Question[0], cacheFlags(r), view), now)
	if e == nil {
		return
	}
	w := newWriter(client)
	if !d.cache.serveCached(w, r, e, now, true) {
		return // too big for the client's buffer: not served from the cache
	}
	if a, b := comparable(t, got), comparable(t, w.msg); a != b {
		t.Errorf("cached answer differs from the answer given:\n%s\ncached:\n%s", a, b)
	}
	if hasOPT, want := w.msg.IsEdns0() != nil, r.IsEdns0() != nil; hasOPT != want {
		t.Errorf("cached answer has OPT %v, the query %v", hasOPT, want)
	}
}

// comparable is m as the client would read it, without the OPT record
// (the server rewrites that per client) and with TTLs within a second
// (the cache counts whole seconds).
func comparable(t testing.TB, m *dns.Msg) string {
	s, ok := comparableOK(m)
	if !ok {
		t.Fatalf("answer does not pack and unpack: %v", m)
	}
	return s
}

func comparableOK(m *dns.Msg) (string, bool) {
	b, err := m.Pack()
	if err != nil {
		return "", false
	}
	var c dns.Msg
	if err := c.Unpack(b); err != nil {
		return "", false
	}
	var out strings.Builder
	fmt.Fprintf(&out, "%v\n", c.MsgHdr)
	for _, q := range c.Question {
		fmt.Fprintf(&out, "%s\n", q.String())
	}
	for _, sec := range [][]dns.RR{c.Answer, c.Ns, c.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			rr.Header().Ttl /= 2 // a second passed between the two is fine
			fmt.Fprintf(&out, "%s\n", rr.String())
		}
		out.WriteString("--\n")
	}
	return out.String(), true
}

func aaaaStrings(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.AAAA); ok {
			out = append(out, a.AAAA.String())
		}
	}
	return out
}
