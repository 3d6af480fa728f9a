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

	"github.com/nat64kit/nat64kit/internal/dns64conf"
)

// DNS64 is the plugin. Fields other than Next are set by setup and read-only
// afterwards, except set, which a reload swaps.
type DNS64 struct {
	Next plugin.Handler

	translateAll bool
	allowIPv4    bool
	parallelA    dns64conf.ParallelA
	// parallelDelay is how long, with parallel_a on, the AAAA lookup may
	// take before the A lookup is started beside it; 0 starts both at once.
	parallelDelay time.Duration

	translatedC, passedC counterCache
	balance              dns64conf.Balance
	exclude              []netip.Prefix
	ignoreAAAA           []string // lower-case FQDNs
	clients              dns64conf.ACL
	mapped               dns64conf.ACL

	instancesFile  string
	reload         time.Duration
	healthInterval time.Duration
	healthTimeout  time.Duration
	maxFails       int
	// prober replaces the HTTP health probe in tests; roundDone, when
	// set, is called after each health round.
	prober    prober
	roundDone func()

	// cache holds synthesized answers; nil with answer_cache off.
	cache *answerCache
	// v4only: with parallel_a auto, the names recently synthesized.
	v4only *v4onlyNames

	set       atomic.Pointer[instanceSet]
	fileStamp fileStamp
	ready     atomic.Bool

	stop      chan struct{}
	healthNow chan struct{}
	wg        sync.WaitGroup
}

// newDNS64 makes the plugin of one server block from its parsed
// directives.
func newDNS64(cfg *dns64conf.Config) (*DNS64, error) {
	d := &DNS64{
		translateAll:   cfg.TranslateAll,
		allowIPv4:      cfg.AllowIPv4,
		parallelA:      cfg.ParallelA,
		parallelDelay:  cfg.ParallelDelay,
		balance:        cfg.Balance,
		exclude:        cfg.Exclude,
		ignoreAAAA:     cfg.IgnoreAAAA,
		clients:        cfg.Clients,
		mapped:         cfg.Mapped,
		instancesFile:  cfg.InstancesFile,
		reload:         cfg.Reload,
		healthInterval: cfg.HealthInterval,
		healthTimeout:  cfg.HealthTimeout,
		maxFails:       cfg.MaxFails,
	}
	if cfg.AnswerCacheSize > 0 {
		d.cache = newAnswerCache(cfg.AnswerCacheSize, cfg.AnswerCacheMaxTTL)
	}
	if cfg.ParallelA == dns64conf.ParallelAuto {
		d.v4only = newV4onlyNames()
	}
	if cfg.Instances == nil {
		d.set.Store(setFromPrefixes(cfg.SynthesisPrefixes()))
		return d, nil
	}
	set, err := newInstanceSet(cfg.Instances)
	if err != nil {
		return nil, err
	}
	d.set.Store(set)
	d.fileStamp = statFile(d.instancesFile)
	return d, nil
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
	var q query
	if d.cache != nil && d.serveFromCache(ctx, w, r, client, &q) {
		return dns.RcodeSuccess, nil
	}
	growStack()
	return d.serveAAAA(ctx, w, r, client, &q)
}

// serveFromCache answers r from the answer cache if it can. Otherwise it
// leaves in q what storing the answer will need.
func (d *DNS64) serveFromCache(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, client netip.Addr, q *query) bool {
	// The epoch is read before the instances, see answerCache.epoch.
	q.epoch = d.cache.epoch.Load()
	q.set = d.set.Load()
	q.choice = d.choose(q.set, client.As16())
	view, ok := d.view(q.set, q.choice)
	if !ok {
		return false
	}
	q.cached = true
	q.key = d.cache.key(&r.Question[0], cacheFlags(r), view)
	// The query's arrival, not the answer's: a stored answer's countdown
	// starts early, never late.
	q.now = d.cache.now()
	if e := d.cache.get(q.key, q.now); e != nil && d.cache.serveCached(w, r, e, q.now, isUDP(w)) {
		d.cacheHit(ctx, *q, e)
		return true
	}
	server := metrics.WithServer(ctx)
	d.cache.missC.get(server, func() prometheus.Counter { return cacheMisses.WithLabelValues(server) }).Inc()
	return false
}

// query is what ServeDNS decided for the answer cache before the lookups.
type query struct {
	cached bool // the answer may be stored under key
	key    cacheKey
	now    int64
	epoch  uint64
	set    *instanceSet // the instances choice was made from
	choice choice
}

// cacheHit counts an answer served from the cache as a synthesized one.
func (d *DNS64) cacheHit(ctx context.Context, q query, e *cacheEntry) {
	server := metrics.WithServer(ctx)
	d.cache.hitC.get(server, func() prometheus.Counter { return cacheHits.WithLabelValues(server) }).Inc()
	d.translatedC.get(server, func() prometheus.Counter { return translated.WithLabelValues(server) }).Inc()
	if q.choice.fallback {
		fallbacks.WithLabelValues(server).Inc()
	}
	d.countSynthesized(q.set, e.used, server)
}

// growStack makes the goroutine's stack big enough, here where it is
// still shallow, for the two lookups below. The server starts a goroutine
// per query with a small stack; the backend's deep frames (file's Lookup
// alone takes 2 KiB) would otherwise grow it deep down the chain, where
// doubling it means copying and adjusting many frames: 15-18 % of the CPU
// of a server with dns64 + file under dnsperf, ours and the built-in
// alike. Growing it once here, with few frames to copy, gave about 10 %
// more synthesized answers per CPU second (both servers loaded at once, as
// in test/dns64/bench.sh); 4 to 12 KiB did alike, 16 and 32 KiB less well.
//
//go:noinline
func growStack() {
	var b [growStackBytes]byte
	keepStack(&b)
}

const growStackBytes = 8 << 10

// keepStack keeps growStack's array, so its frame, from being optimized
// away.
//
//go:noinline
func keepStack(b *[growStackBytes]byte) { b[0] = 1 }

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
	if len(d.clients) > 0 && !d.clients.Allows(client.WithZone("")) {
		return client, false
	}
	return client, true
}

// serveAAAA runs the AAAA lookup and, when it comes back without usable
// AAAA records, synthesizes from the A lookup (RFC 6147 §5.1).
func (d *DNS64) serveAAAA(ctx context.Context, w dns.ResponseWriter, r *dns.Msg, client netip.Addr, q *query) (int, error) {
	var a *aLookup
	var nameH uint64
	switch d.parallelA {
	case dns64conf.ParallelAuto:
		// At once for a name last seen without AAAA records, which most
		// likely needs the A records again; after the AAAA answer for any
		// other, so a dual-stack name costs one upstream query.
		nameH = d.v4only.hash(r.Question[0].Name)
		if d.v4only.seen(nameH) {
			a = newALookup(w, r)
			a.refs.Store(2)
			a.ctx, a.next = ctx, d.Next
			go a.run()
		}
	case dns64conf.ParallelOn:
		// Hedge: the A lookup starts beside the AAAA lookup once that has
		// taken parallelDelay, so a slow upstream costs one round trip and
		// a fast one neither a goroutine nor, for dual-stack names, an A
		// query.
		a = newALookup(w, r)
		a.refs.Store(2)
		a.ctx, a.next = ctx, d.Next
		if d.parallelDelay == 0 {
			go a.run()
		} else {
			a.arm(d.parallelDelay)
		}
	}

	cw := getCapture(w)
	rc, err := plugin.NextOrFailure(pluginName, d.Next, ctx, cw, r)
	aaaa := cw.msg
	putCapture(cw)
	// An A lookup that has not begun yet (the timer did not fire, or its
	// goroutine has not reached the lookup) is taken over: it runs here if
	// needed, and a dual-stack name costs no A query.
	claimed := a != nil && a.takeOver()

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

	synth, filtered := d.needsSynthesis(r, aaaa, server)
	if !synth {
		if nameH != 0 {
			d.v4only.forget(nameH)
		}
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

	set, ch := q.set, q.choice
	if set == nil {
		set = d.set.Load()
		ch = d.choose(set, client.As16())
	}
	out, n, used := d.synthesize(r, aaaa, aResp, ch, set, server)
	if nameH != 0 {
		if n > 0 {
			d.v4only.remember(nameH)
		} else {
			d.v4only.forget(nameH)
		}
	}
	if n == 0 && aResp.Rcode == dns.RcodeSuccess && aaaa != nil && aaaa.Rcode == dns.RcodeSuccess {
		// No A record either (or none may be mapped): the AAAA NODATA is
		// the true answer, with its own SOA for negative caching.
		d.passed(server).Inc()
		w.WriteMsg(aaaa)
		return dns.RcodeSuccess, nil
	}
	if n > 0 {
		d.translatedC.get(server, func() prometheus.Counter { return translated.WithLabelValues(server) }).Inc()
		if q.cached && out.Rcode == dns.RcodeSuccess && !out.Truncated {
			// Packed before WriteMsg: the server's writer trims the message
			// to the client's buffer in place.
			d.store(server, q, out, used)
		}
	}
	w.WriteMsg(out)
	return dns.RcodeSuccess, nil
}

// store keeps a synthesized answer, unless the instances it was built from
// changed meanwhile.
func (d *DNS64) store(server string, q *query, out *dns.Msg, used uint64) {
	c := d.cache
	e := c.newCacheEntry(q.key, out, used, q.now)
	if e == nil {
		return
	}
	if c.entriesG.Load() == nil {
		g := cacheEntries.WithLabelValues(server)
		c.entriesG.CompareAndSwap(nil, &g)
		// The eviction count is exported from the first store on, at 0,
		// so that dashboards and alerts find the series.
		c.evictC.get(server, func() prometheus.Counter { return cacheEvictions.WithLabelValues(server) })
	}
	if c.put(e, q.epoch, func() bool { return d.set.Load() == q.set }) {
		c.evictC.get(server, func() prometheus.Counter { return cacheEvictions.WithLabelValues(server) }).Inc()
	}
	c.setGauge()
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
	// timer starts the goroutine (run) after the hedge delay. It is made
	// once per pooled lookup and re-armed for each use, so a hedged query
	// allocates nothing for it; armed says it was armed for this use.
	timer *time.Timer
	armed bool
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

// arm starts run after delay (> 0) in the timer's goroutine, unless
// takeOver stops the timer first.
func (a *aLookup) arm(delay time.Duration) {
	a.armed = true
	if a.timer == nil {
		a.timer = time.AfterFunc(delay, a.run)
		return
	}
	a.timer.Reset(delay)
}

// takeOver is called by the handler once the AAAA answer is in. It reports
// whether the handler now owns the A lookup (and runs it itself if
// needed): when the timer was stopped before firing, no goroutine exists
// and its reference is dropped here; when the goroutine exists but has
// not begun the lookup, the lookup is claimed. Otherwise the result comes
// through done.
func (a *aLookup) takeOver() bool {
	if a.armed && a.timer.Stop() {
		a.refs.Add(-1) // the goroutine's, which never was; ours remains
		return true
	}
	return a.claim()
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
	a.armed = false
	a.state.Store(lookupWaiting)
	a.req.Extra = nil
	a.extra[0] = nil
	a.opt = dns.OPT{}
	a.err = nil
	aLookupPool.Put(a)
}
