//go:build dns64_builtin

package dns64

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Built with the dns64_builtin tag only, for the test that compares this
// plugin with CoreDNS's built-in dns64: the built-in registers the name
// "dns64" and the metric requests_translated_total, so this build registers
// neither (see register.go).
var translated = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dns64_requests_translated_unregistered"}, []string{"server"})
