// Package dns64 is a CoreDNS plugin doing DNS64 (RFC 6147): it synthesizes
// AAAA records from A records with the NAT64 prefixes of nat64.toml, a drop-in
// superset of CoreDNS's built-in dns64.
package dns64

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/coredns/plugin"
	"github.com/coredns/coredns/plugin/metrics"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// DNS64 is the plugin. Fields other than Next are set by setup and read-only
// afterwards, except set, which a reload swaps.
type DNS64 struct {
	Next plugin.Handler

	translateAll bool
	allowIPv4    bool
	parallelA    parallelMode
	// aaaaLatency is a moving average of the AAAA lookup time in ns, for
	// parallel_a auto.
	aaaaLatency atomic.Int64

	translatedC, passedC counterCache
	balance              balanceMode
	exclude              []netip.Prefix
	ignoreAAAA           []string // lower-case FQDNs
	clients              acl
	mapped               acl

	instancesFile  string
	reload         time.Duration
	healthInterval time.Duration
	healthTimeout  time.Duration

	set       atomic.Pointer[instanceSet]
	fileStamp fileStamp
	ready     atomic.Bool

	stop      chan struct{}
	healthNow chan struct{}
	wg        sync.WaitGroup
}

func newDNS64() *DNS64 {
	return &DNS64{
		parallelA:      parallelAuto,
		exclude:        []netip.Prefix{defaultExclude},
		reload:         defaultReload,
		healthInterval: defaultHealthInterval,
		healthTimeout:  defaultHealthTimeout,
	}
}

// Name implements plugin.Handler.
func (d *DNS64) Name() string { return pluginName }

// ServeDNS implements plugin.Handler.
func (d *DNS64) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if len(r.Question) != 1 || r.Question[0].Qclass != dns.ClassINET || r.Opcode != dns.OpcodeQuery {
		return plugin.NextOrFailure(pluginName, d.Next, ctx, w, r)
	}
	qtype := r.Question[0].Qtype
	if qtype != dns.TypeAAAA && qtype != dns.TypePTR {
		return plugin.NextOrFailure(pluginName, d.Next, ctx, w, r)
	}
	client, ok := d.clientAllowed(w)
	if !ok {
		return plugin.NextOrFailure(pluginName, d.Next, ctx, w, r)
	}
	if qtype == dns.TypePTR {
		return d.servePTR(ctx, w, r)
	}
	// RFC 6147 §5.5: a validating client (DO and CD) must see the real,
	// signed answer; synthesis would fail its validation.
	if r.CheckingDisabled {
		if opt := r.IsEdns0(); opt != nil && opt.Do() {
			return plugin.NextOrFailure(pluginName, d.Next, ctx, w, r)
		}
	}
	if isIPv4OnlyArpa(r.Question[0].Name) {
		return d.serveIPv4OnlyArpa(ctx, w, r)
	}
	return d.serveAAAA(ctx, w, r, client)
}

// clientAllowed applies allow_ipv4 and the clients ACL. The client address
// is returned unmapped; it is invalid when the transport has none.
func (d *DNS64) clientAllowed(w dns.ResponseWriter) (netip.Addr, bool) {
	var client netip.Addr
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		client = a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		client = a.AddrPort().Addr().Unmap()
	}
	if client.Is4() && !d.allowIPv4 {
		return client, false
	}
	if len(d.clients) > 0 && !d.clients.allows(client.WithZone("")) {
		return client, false
	}
	return client, true
}

// serveAAAA runs the AAAA lookup and, when it comes back without usable
// AAAA records, synthesizes from the A lookup (RFC 6147 §5.1).
func (d *DNS64) serveAAAA(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, client netip.Addr) (int, error) {
	var a *aLookup
	if d.parallelA == parallelOn || d.parallelA == parallelAuto && d.upstreamSlow() {
		// Start the A lookup now so a slow upstream costs one round trip.
		a = newALookup(w, r)
		a.refs.Store(2)
		a.ctx, a.next = ctx, d.Next
		go a.run()
	}

	var start time.Time
	if d.parallelA == parallelAuto {
		start = time.Now()
	}
	cw := getCapture(w)
	rc, err := plugin.NextOrFailure(pluginName, d.Next, ctx, cw, r)
	aaaa := cw.msg
	putCapture(cw)
	if d.parallelA == parallelAuto {
		d.observe(time.Since(start))
	}
	// When the asynchronous A lookup has not begun yet (a fast AAAA
	// answer: cache, local zone), take it over: it runs here if needed and
	// costs neither a goroutine switch nor, for dual-stack names, an
	// upstream query.
	claimed := a != nil && a.claim()

	server := metrics.WithServer(ctx)
	if aaaa == nil && plugin.ClientWrite(rc) {
		// A plugin claims to have answered but nothing reached us: pass its
		// verdict on. Without an answer and with an error rcode (SERVFAIL,
		// REFUSED, a timeout) the AAAA set counts as empty (§5.1.2-5.1.3).
		if a != nil {
			a.release()
		}
		return rc, err
	}

	set := d.set.Load()
	synth, filtered := d.needsSynthesis(r, aaaa, server)
	if !synth {
		if a != nil {
			a.release()
		}
		d.passed(server).Inc()
		if filtered != nil {
			aaaa = filtered
		}
		w.WriteMsg(aaaa)
		return rc, err
	}

	// Synthesis: take the A result (started in parallel, or now).
	switch {
	case a == nil:
		a = newALookup(w, r)
		a.refs.Store(1)
		a.lookup(ctx, d.Next)
	case claimed:
		a.lookup(ctx, d.Next)
	default:
		<-a.done
	}
	aResp, aRc, aErr := a.cw.msg, a.rc, a.err
	a.release()
	if aResp == nil {
		// The A lookup failed without an answer: the client gets its
		// result (RFC 6147 §5.1.6), never an empty NOERROR.
		if aRc == dns.RcodeSuccess {
			aRc = dns.RcodeServerFailure
		}
		return aRc, aErr
	}

	out, n := d.synthesize(r, aaaa, aResp, client, set, server)
	if n == 0 && aResp.Rcode == dns.RcodeSuccess && aaaa != nil && aaaa.Rcode == dns.RcodeSuccess {
		// No A record either (or none may be mapped): the AAAA NODATA is
		// the true answer, with its own SOA for negative caching.
		d.passed(server).Inc()
		w.WriteMsg(aaaa)
		return dns.RcodeSuccess, nil
	}
	if n > 0 {
		d.translatedC.get(server, func() prometheus.Counter { return translated.WithLabelValues(server) }).Inc()
	}
	w.WriteMsg(out)
	return dns.RcodeSuccess, nil
}

func (d *DNS64) passed(server string) prometheus.Counter {
	return d.passedC.get(server, func() prometheus.Counter { return passedThrough.WithLabelValues(server) })
}

// Ready implements ready.Readiness: the config is loaded and the first
// health round has run.
func (d *DNS64) Ready() bool { return d.ready.Load() && d.set.Load() != nil }

// capture is a ResponseWriter that keeps the message instead of sending it.
type capture struct {
	dns.ResponseWriter
	msg *dns.Msg
}

func (c *capture) WriteMsg(m *dns.Msg) error {
	c.msg = m
	return nil
}

// Write keeps raw bytes a plugin wrote, unpacked, so they can be looked at.
func (c *capture) Write(b []byte) (int, error) {
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return 0, err
	}
	c.msg = m
	return len(b), nil
}

var capturePool = sync.Pool{New: func() any { return new(capture) }}

func getCapture(w dns.ResponseWriter) *capture {
	c := capturePool.Get().(*capture)
	c.ResponseWriter = w
	return c
}

func putCapture(c *capture) {
	*c = capture{}
	capturePool.Put(c)
}

// aLookup is one A query sent down the chain, possibly in its own goroutine.
// It is shared by the goroutine and the handler; refs counts the owners
// still holding it, the last returns it to the pool.
type aLookup struct {
	req   dns.Msg
	q     [1]dns.Question
	opt   dns.OPT
	extra [1]dns.RR
	cw    capture
	rc    int
	err   error
	done  chan struct{}
	refs  atomic.Int32

	// For the goroutine.
	ctx  context.Context
	next plugin.Handler
	// state: lookupWaiting until the goroutine (lookupStarted) or the
	// handler (lookupClaimed) takes the lookup; exactly one does it.
	state atomic.Int32
}

const (
	lookupWaiting int32 = iota
	lookupStarted
	lookupClaimed
)

var aLookupPool sync.Pool

// The pool's New is set here because run refers back to the pool.
func init() {
	aLookupPool.New = func() any {
		return &aLookup{done: make(chan struct{}, 1)}
	}
}

// newALookup prepares the A twin of r. The OPT record is copied because
// plugins below (cache) may flip its DO bit, and both queries are in flight
// at once.
func newALookup(w dns.ResponseWriter, r *dns.Msg) *aLookup {
	a := aLookupPool.Get().(*aLookup)
	a.req.MsgHdr = r.MsgHdr
	a.req.Compress = r.Compress
	a.q[0] = r.Question[0]
	a.q[0].Qtype = dns.TypeA
	a.req.Question = a.q[:]
	a.req.Answer, a.req.Ns = nil, nil
	switch {
	case len(r.Extra) == 0:
		a.req.Extra = nil
	case len(r.Extra) == 1 && r.Extra[0].Header().Rrtype == dns.TypeOPT:
		o := r.Extra[0].(*dns.OPT)
		a.opt.Hdr = o.Hdr
		a.opt.Option = o.Option
		a.extra[0] = &a.opt
		a.req.Extra = a.extra[:]
	default:
		a.req.Extra = append([]dns.RR(nil), r.Extra...)
	}
	a.cw.ResponseWriter = w
	return a
}

func (a *aLookup) lookup(ctx context.Context, next plugin.Handler) {
	a.rc, a.err = plugin.NextOrFailure(pluginName, next, ctx, &a.cw, &a.req)
}

// run is the asynchronous lookup, in its own goroutine. It does nothing when the handler claimed the lookup first.
func (a *aLookup) run() {
	if a.state.CompareAndSwap(lookupWaiting, lookupStarted) {
		a.lookup(a.ctx, a.next)
		a.done <- struct{}{}
	}
	a.release()
}

// claim takes the lookup over from the goroutine if it has not started;
// it reports whether it did.
func (a *aLookup) claim() bool {
	return a.state.CompareAndSwap(lookupWaiting, lookupClaimed)
}

func (a *aLookup) release() {
	if a.refs.Add(-1) != 0 {
		return
	}
	select { // a result nobody waited for
	case <-a.done:
	default:
	}
	a.cw = capture{}
	a.ctx, a.next = nil, nil
	a.state.Store(lookupWaiting)
	a.req.Extra = nil
	a.extra[0] = nil
	a.opt = dns.OPT{}
	a.err = nil
	aLookupPool.Put(a)
}

// parallelMode is the parallel_a setting.
type parallelMode uint8

const (
	// parallelAuto starts the A lookup with the AAAA lookup while the
	// upstream is slow (recent AAAA lookups took slowUpstream or more).
	// Answers from memory (cache, file) then cost no goroutine, whose
	// wake-up costs more than the lookup itself.
	parallelAuto parallelMode = iota
	// parallelOn always starts the A lookup with the AAAA lookup.
	parallelOn
	// parallelOff starts the A lookup after an empty AAAA answer, as the
	// built-in does.
	parallelOff
)

// slowUpstream is the AAAA lookup time from which parallel_a auto runs the
// A lookup in parallel: beyond what memory lookups take, below any network
// round trip worth saving.
const slowUpstream = int64(500 * time.Microsecond)

// upstreamSlow reports whether recent AAAA lookups were slow. Until the
// first measurement it says yes: a cold cache is a slow upstream.
func (d *DNS64) upstreamSlow() bool {
	l := d.aaaaLatency.Load()
	return l == 0 || l >= slowUpstream
}

// observe feeds one AAAA lookup time into the moving average (weight 1/8).
// Concurrent updates may lose a sample; the average stays meaningful.
func (d *DNS64) observe(took time.Duration) {
	old := d.aaaaLatency.Load()
	if old == 0 {
		d.aaaaLatency.Store(max(int64(took), 1))
		return
	}
	d.aaaaLatency.Store(max(old+(int64(took)-old)/8, 1))
}
