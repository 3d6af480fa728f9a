#!/usr/bin/env bash
# make demo: the whole DNS64 + NAT64 flow in network namespaces, step by
# step, on the files of corefile-examples/ (needs root; scripts/deps.sh installs
# iproute2, ping, dig and curl when they are missing).
#
#   client (IPv6 only)  ---  router: CoreDNS + dns64, nat64ctl nat64-a, nat64-b  ---  server (IPv4 only)
#   2001:db8:1::2            2001:db8:1::1 | 198.51.100.1                               198.51.100.2
set -euo pipefail
cd "$(dirname "$0")/.."
ex=$PWD/corefile-examples
bin=$PWD/bin
id=nat64demo-$$
client=$id-client router=$id-router server=$id-server
pids=()

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for ns in "$client" "$router" "$server"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "/etc/netns/$client" "$tmp"
}
tmp=$(mktemp -d)
trap cleanup EXIT

if [ "$(id -u)" != 0 ]; then echo "make demo needs root (network namespaces)" >&2; exit 1; fi
./scripts/deps.sh demo

bold "1. One prefix config for both halves: nat64ctl proves the Corefile agrees with nat64.toml"
run "$bin/nat64ctl" check -c "$ex/nat64.toml" --corefile "$ex/Corefile"

bold "2. The topology: an IPv6-only client, a router running DNS64 and two NAT64 translators, an IPv4-only server"
for ns in "$client" "$router" "$server"; do ip netns add "$ns"; in_ns "$ns" ip link set lo up; done
ip link add c0 netns "$client" type veth peer name r0 netns "$router"
ip link add s0 netns "$server" type veth peer name r1 netns "$router"
in_ns "$client" ip link set c0 up; in_ns "$router" ip link set r0 up
in_ns "$router" ip link set r1 up; in_ns "$server" ip link set s0 up
in_ns "$client" ip addr add 2001:db8:1::2/64 dev c0 nodad
in_ns "$router" ip addr add 2001:db8:1::1/64 dev r0 nodad
in_ns "$router" ip addr add 198.51.100.1/24 dev r1
in_ns "$server" ip addr add 198.51.100.2/24 dev s0
in_ns "$client" ip -6 route add default via 2001:db8:1::1
in_ns "$server" ip route add 203.0.113.0/24 via 198.51.100.1
in_ns "$server" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
mkdir -p "/etc/netns/$client" && echo "nameserver 2001:db8:1::1" > "/etc/netns/$client/resolv.conf"
echo "client $client, router $router, server $server"

ip netns exec "$server" "$bin/demoserver" -listen 0.0.0.0:80 & pids+=($!)

bold "3. Two translators, one per instance of nat64.toml: TUN device, netlink routes, control API"
for inst in nat64-a nat64-b; do
  ip netns exec "$router" "$bin/nat64ctl" run -c "$ex/nat64.toml" --instance "$inst" 2> "$tmp/$inst.log" & pids+=($!)
done
for inst in nat64-a nat64-b; do
  for _ in $(seq 50); do in_ns "$router" "$bin/nat64ctl" stats -c "$ex/nat64.toml" --instance "$inst" >/dev/null 2>&1 && break; sleep 0.1; done
  sed 's/^/  /' "$tmp/$inst.log"
done
run ip netns exec "$router" ip -6 route show proto 64
run ip netns exec "$router" ip route show proto 64

bold "4. CoreDNS with our dns64 plugin (instances nat64.toml)"
(cd "$ex" && exec ip netns exec "$router" "$bin/coredns" -conf Corefile -dns.port 53 -quiet) > "$tmp/coredns.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do in_ns "$client" dig +short +time=1 +tries=1 www.example A >/dev/null 2>&1 && break; sleep 0.1; done

bold "5. The IPv6-only client asks for www.example's AAAA: there is none, so DNS64 synthesizes one"
run ip netns exec "$client" dig +noall +answer www.example A
run ip netns exec "$client" dig +noall +answer www.example AAAA
aaaa=$(in_ns "$client" dig +short www.example AAAA)
run "$bin/nat64ctl" addr extract "$aaaa" -c "$ex/nat64.toml" --json

bold "6. The client fetches the page over IPv6; the server sees the translator's pool4 address"
run ip netns exec "$client" curl -sS --max-time 10 http://www.example/

inst=nat64-b; case "$aaaa" in 64:ff9b:1:*) inst=nat64-a;; esac
bold "7. The flow in $inst's session table"
run ip netns exec "$router" "$bin/nat64ctl" session show -c "$ex/nat64.toml" --instance "$inst"

bold "8. Its metrics: all it translated, and the kernel fast path's share"
port=9165; [ "$inst" = nat64-a ] && port=9164
in_ns "$router" curl -s "http://127.0.0.1:$port/metrics" | grep -E '^nat64ctl_((fastpath_)?packets_translated_total|fastpath_packets_total|sessions)\{|^nat64ctl_fastpath_active ' | grep -v ' 0$'

bold "9. Teardown: on SIGTERM the translators remove the routes they installed"
kill "${pids[1]}" "${pids[2]}"; wait "${pids[1]}" "${pids[2]}" 2>/dev/null || true
run ip netns exec "$router" ip -6 route show proto 64
run ip netns exec "$router" ip route show proto 64
echo "(none left)"
cleanup; trap - EXIT
echo "demo done"
