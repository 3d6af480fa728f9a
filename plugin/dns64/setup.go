package dns64

import (
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	clog "github.com/coredns/coredns/plugin/pkg/log"

	"github.com/nat64kit/nat64kit/internal/dns64conf"
)

const pluginName = "dns64"

var log = clog.NewWithPlugin(pluginName)

func setup(c *caddy.Controller) error {
	d, err := parse(c)
	if err != nil {
		return plugin.Error(pluginName, err)
	}
	c.OnStartup(d.OnStartup)
	c.OnShutdown(d.OnShutdown)
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		d.Next = next
		return d
	})
	return nil
}

// parse reads every dns64 directive of a server block with the parser
// `nat64ctl check` uses too (internal/dns64conf), so the check and the
// running plugin can never read a Corefile differently.
func parse(c *caddy.Controller) (*DNS64, error) {
	cfg, err := dns64conf.Parse(&c.Dispenser, dnsserver.GetConfig(c).Root)
	if err != nil {
		return nil, err
	}
	return newDNS64(cfg)
}
