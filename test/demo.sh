#!/usr/bin/env bash
# make demo: the nat64kit flow, step by step, on corefile-examples/.
# The end-to-end namespace topology (issue "End to end") replaces the
# loopback-only steps here as its parts land.
set -euo pipefail
cd "$(dirname "$0")/.."
ex=corefile-examples
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. One prefix config for both halves: validate it and prove the Corefile agrees"
./bin/nat64ctl check -c $ex/nat64.toml --corefile $ex/Corefile

step "2. The misconfiguration it catches: a Corefile whose prefix no translator owns"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed 's#64:ff9b:1::/96#64:ff9b:2::/96#' $ex/Corefile.inline > "$tmp/Corefile"
if ./bin/nat64ctl check -c $ex/nat64.toml --corefile "$tmp/Corefile"; then
  echo "expected the check to fail" >&2; exit 1
fi

step "3. RFC 6052: the address DNS64 synthesizes for 198.51.100.2 under each instance"
./bin/nat64ctl addr synth 198.51.100.2 -c $ex/nat64.toml
./bin/nat64ctl addr extract 2001:db8:64::c633:6402 -c $ex/nat64.toml

if [ -x ./bin/coredns ]; then
  step "4. DNS64: our CoreDNS answers AAAA for an IPv4-only name (loopback)"
  (cd $ex && exec ../bin/coredns -conf Corefile -dns.port 1053) > "$tmp/coredns.log" 2>&1 &
  pid=$!
  trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
  for _ in $(seq 50); do
    dig +short +time=1 +tries=1 @127.0.0.1 -p 1053 ns.example A >/dev/null 2>&1 && break
    sleep 0.1
  done
  if command -v dig >/dev/null; then
    dig +noall +answer @127.0.0.1 -p 1053 www.example AAAA
  fi
fi
echo
echo "demo done"
