// Package release builds what nat64kit ships: the binaries as released
// (static, stripped), the Debian package (deploy/debian, dpkg-deb) and the
// OCI images (go-containerregistry, no daemon). deploy/mkdeb and
// deploy/mkimage are its commands; `make deb` and `make image` run them.
package release
