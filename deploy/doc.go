// Package deploy holds no code: it is where nat64kit's deployment files
// live (systemd units, the Grafana dashboard, Kubernetes manifests; see
// docs/deploy.md) and the tests that hold them to the real binaries: the
// units pass systemd-analyze verify, every metric the dashboard queries is
// one nat64ctl or our CoreDNS exports, and the manifests decode strictly
// into Kubernetes API types and their configuration passes nat64ctl check.
package deploy
