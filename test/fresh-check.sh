#!/usr/bin/env bash
# fresh-check.sh — run `make test` as a newcomer would: in a clean clone of
# the committed HEAD, with an empty Go module cache, build cache and GOPATH,
# no GOBIN and a PATH without any Go tool directory, so that every Go
# module and tool has to come through the project's own install steps
# (scripts/deps.sh). Debian packages already on the machine cannot be
# hidden this way; a brand-new machine is the only test of those, and
# deps.sh installs them by name from its one list.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"

tmp="$(mktemp -d /tmp/nat64kit-fresh.XXXXXX)"
cleanup() { chmod -R u+w "$tmp" 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

git clone -q "$repo" "$tmp/src"
export GOPATH="$tmp/gopath" GOMODCACHE="$tmp/gopath/pkg/mod" GOCACHE="$tmp/gocache"
export GOFLAGS=-modcacherw
unset GOBIN
export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

cd "$tmp/src"
echo "fresh-check: $(git log --oneline -1) in $tmp/src, empty GOPATH, GOMODCACHE and GOCACHE"
start=$(date +%s)
status=0
make test || status=$?
echo "fresh-check: make test exited $status after $(( $(date +%s) - start ))s"
exit "$status"
