package dns64conf

// Directives are the Corefile directives nat64kit's CoreDNS build knows, in
// its plugin order: CoreDNS's stock list, dns64 in its slot (ours replaces
// the in-tree one under the same name). A name outside it is the "Unknown
// directive" error CoreDNS gives at start-up. plugin/coredns tests that this
// list is the one the build runs with.
var Directives = []string{
	"root", "metadata", "geoip", "cancel", "proxyproto", "quic", "grpc_server",
	"https", "https3", "timeouts", "multisocket", "reload", "nsid", "bufsize",
	"bind", "debug", "trace", "ready", "health", "pprof", "shed", "prometheus",
	"errors", "log", "dnstap", "local", "dns64", "siit", "any", "chaos",
	"loadbalance", "tsig", "rewrite", "autopath", "acl", "cache", "header",
	"dnssec", "tls", "minimal", "template", "transfer", "dynupdate", "hosts",
	"route53", "azure", "clouddns", "k8s_external", "kubernetes", "file", "auto",
	"secondary", "etcd", "loop", "forward", "grpc", "erratic", "whoami", "on",
	"sign", "view", "nomad",
}
