package dns64

import (
	"sync/atomic"

	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics, all under coredns_dns64_. The built-in's
// requests_translated_total is kept too (register.go), so dashboards
// survive the swap.
var (
	synthesized = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "synthesized_total",
		Help:      "Counter of synthesized answers, by NAT64 instance and prefix used.",
	}, []string{"server", "instance", "prefix"})

	passedThrough = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "passed_through_total",
		Help:      "Counter of intercepted AAAA queries answered with the real AAAA response.",
	}, []string{"server"})

	excludedAAAA = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "excluded_aaaa_total",
		Help:      "Counter of AAAA records treated as absent because they fall in an excluded range.",
	}, []string{"server"})

	ptrAnswered = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "ptr_answered_total",
		Help:      "Counter of ip6.arpa PTR queries inside a NAT64 prefix answered with a CNAME.",
	}, []string{"server"})

	fallbacks = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "fallback_all_total",
		Help:      "Counter of answers synthesized with all instances because none was healthy.",
	}, []string{"server"})

	instanceHealthy = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "instance_healthy",
		Help:      "1 when the NAT64 instance is in rotation (fewer than max_fails failed /healthz polls in a row), else 0.",
	}, []string{"instance", "prefix"})

	healthChecksFailed = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "health_checks_failed_total",
		Help:      "Counter of failed /healthz polls, by NAT64 instance.",
	}, []string{"instance"})

	cacheHits = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "answer_cache_hits_total",
		Help:      "Counter of AAAA queries answered from the answer cache.",
	}, []string{"server"})

	cacheMisses = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "answer_cache_misses_total",
		Help:      "Counter of AAAA queries the answer cache could not answer.",
	}, []string{"server"})

	cacheEvictions = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "answer_cache_evictions_total",
		Help:      "Counter of answers evicted from a full answer cache to make room.",
	}, []string{"server"})

	cacheEntries = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "answer_cache_entries",
		Help:      "Answers held in the answer cache.",
	}, []string{"server"})

	reloads = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: plugin.Namespace,
		Subsystem: pluginName,
		Name:      "reloads_total",
		Help:      "Counter of instances file reloads, by result (ok or error).",
	}, []string{"result"})
)

// counterCache remembers the last child of a CounterVec it returned:
// WithLabelValues hashes every label on each call, a quarter of the cost of
// a synthesized answer. A plugin instance almost always sees one server
// label, so one entry suffices; a miss just looks the child up again.
type counterCache struct {
	last atomic.Pointer[cachedCounter]
}

type cachedCounter struct {
	server string
	c      prometheus.Counter
}

func (cc *counterCache) get(server string, lookup func() prometheus.Counter) prometheus.Counter {
	if e := cc.last.Load(); e != nil && e.server == server {
		return e.c
	}
	c := lookup()
	cc.last.Store(&cachedCounter{server: server, c: c})
	return c
}
