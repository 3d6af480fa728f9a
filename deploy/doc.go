// Package deploy holds no code: it is where nat64kit's deployment files
// live (systemd units, the Grafana dashboard, Kubernetes manifests, the
// Debian package's sources; see docs/deploy.md), with the commands that
// build the package and the images (mkdeb, mkimage), and the tests that
// hold them to the real binaries: the units pass systemd-analyze verify,
// every metric the dashboard queries is one nat64ctl or our CoreDNS
// exports, the manifests decode strictly into Kubernetes API types and
// their configuration passes nat64ctl check, the package passes lintian
// and installs, upgrades and purges cleanly, and the images read back as
// built.
package deploy
