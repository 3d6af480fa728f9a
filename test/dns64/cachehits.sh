#!/usr/bin/env bash
# The cache-hit row of bench.sh alone, with dns64's answer cache on and off:
# Unbound (dns64 iterator) against nat64kit's coredns (dns64 + cache +
# forward, default options, then answer_cache off), all in front of the
# same authoritative server, 500 names asked again and again (every cache
# warm). Pinning as in bench.sh: servers on CPU 1, dnsperf and the
# authoritative server on CPU 0. Prints QPS per round, servers interleaved.
#
#   test/dns64/cachehits.sh [SECONDS_PER_RUN] [ROUNDS]   (default 3 5)
#
# Needs go, dnsperf, dig, taskset, unbound (scripts/deps.sh bench).
# Loopback only; ports 15330-15333.
set -euo pipefail
secs=${1:-3}
rounds=${2:-5}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/dns64-cachehits.XXXXXX)
declare -A pid
cleanup() {
	for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
(cd "$root" && go build -o "$work/coredns-ours" ./plugin/coredns && go build -o "$work/coredns-stock" github.com/coredns/coredns)
zone=$work/db.example.org
{
	echo '$ORIGIN example.org.'
	echo '@ 3600 IN SOA ns.example.org. host.example.org. 1 7200 3600 1209600 300'
	echo '@ 3600 IN NS ns'
	echo 'ns 3600 IN A 198.51.100.1'
	for i in $(seq 0 499); do echo "n$i 3600 IN A 198.51.100.$((i % 250 + 2))"; done
} >"$zone"
for i in $(seq 0 499); do echo "n$i.example.org AAAA"; done >"$work/aaaa.txt"
auth=15330
printf '.:%s {\n    bind ::1\n    multisocket 4\n    file %s example.org\n}\n' $auth "$zone" >"$work/Corefile.auth"
taskset -c 0 "$work/coredns-stock" -conf "$work/Corefile.auth" -quiet >"$work/auth.log" 2>&1 & pid[auth]=$!
start() { # name port dns64-option
	printf '.:%s {\n    bind ::1\n    dns64 {\n        prefix 2001:db8:64::/96\n        %s\n    }\n    cache\n    forward . [::1]:%s\n}\n' "$2" "$3" $auth >"$work/Corefile.$1"
	taskset -c 1 "$work/coredns-ours" -conf "$work/Corefile.$1" -quiet >"$work/$1.log" 2>&1 & pid[$1]=$!
}
start on 15331 ""
start off 15332 "answer_cache off"
cat >"$work/unbound.conf" <<EOC
server:
    interface: ::1@15333
    do-daemonize: no
    chroot: ""
    username: ""
    directory: "$work"
    pidfile: ""
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 1
    do-not-query-localhost: no
    qname-minimisation: no
    access-control: ::1 allow
    module-config: "dns64 iterator"
    dns64-prefix: 2001:db8:64::/96
stub-zone:
    name: "example.org"
    stub-addr: ::1@$auth
EOC
taskset -c 1 unbound -d -c "$work/unbound.conf" >"$work/unbound.log" 2>&1 & pid[unbound]=$!
for port in 15331 15332 15333; do
	for _ in $(seq 100); do
		if dig +short +tries=1 +time=1 @::1 -p $port n0.example.org AAAA | grep -q 2001:db8:64::; then break; fi
		sleep 0.1
	done
done
qps() { taskset -c 0 dnsperf -s ::1 -p "$1" -d "$work/aaaa.txt" -c 4 -l "${2:-$secs}" -q 200 -t 1 2>&1 | awk '/Queries per second/ {printf "%.0f", $4}'; }
for port in 15331 15332 15333; do qps $port 1 >/dev/null; done # warm every cache
for r in $(seq "$rounds"); do
	echo "round $r: unbound $(qps 15333) answer_cache-on $(qps 15331) answer_cache-off $(qps 15332)"
done
