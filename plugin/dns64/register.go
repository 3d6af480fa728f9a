//go:build !dns64_builtin

package dns64

import (
	"github.com/coredns/coredns/plugin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// The registration lives in its own file so that the comparison test
// (build tag dns64_builtin) can link CoreDNS's built-in dns64, which
// registers the same name; caddy panics on a second registration.
func init() { plugin.Register(pluginName, setup) }

// translated is the built-in's metric, same name, labels and help, so
// dashboards built for the built-in keep working.
var translated = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: plugin.Namespace,
	Subsystem: pluginName,
	Name:      "requests_translated_total",
	Help:      "Counter of DNS requests translated by dns64.",
}, []string{"server"})
