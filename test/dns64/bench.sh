#!/usr/bin/env bash
# DNS64 throughput and latency: nat64kit's coredns vs stock CoreDNS (same
# version, built-in dns64), same zone, same Corefile, same load generator,
# in one run. Prints a markdown table.
#
#   test/dns64/bench.sh [SECONDS_PER_RUN] [ROUNDS]
#
# The runs are interleaved round by round and each figure is the median of
# the rounds, so load from other processes hits both builds alike.
#
# Needs: go, dnsperf (apt-get install -y dnsperf). Loopback only.
set -euo pipefail

secs=${1:-3}
rounds=${2:-8}
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/dns64-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

command -v dnsperf >/dev/null || { echo "dnsperf missing: apt-get install -y dnsperf" >&2; exit 1; }

echo "building binaries..." >&2
(cd "$root" && go build -o "$work/coredns-ours" ./plugin/coredns)
(cd "$root" && go build -o "$work/coredns-stock" github.com/coredns/coredns)

# 500 names with only A (every AAAA query needs synthesis) and 500 with both.
{
	echo '$ORIGIN example.org.'
	echo '@ 3600 IN SOA ns.example.org. host.example.org. 1 7200 3600 1209600 300'
	echo '@ 3600 IN NS ns'
	echo 'ns 3600 IN A 198.51.100.1'
	for i in $(seq 0 499); do
		echo "n$i 3600 IN A 198.51.100.$((i % 250 + 2))"
		echo "d$i 3600 IN A 198.51.100.$((i % 250 + 2))"
		echo "d$i 3600 IN AAAA 2001:db8:5::$((i + 1))"
	done
} >"$work/db.example.org"
for i in $(seq 0 499); do echo "n$i.example.org AAAA"; done >"$work/aaaa.txt"
for i in $(seq 0 499); do echo "n$i.example.org A"; done >"$work/a.txt"
for i in $(seq 0 499); do echo "d$i.example.org AAAA"; done >"$work/dual.txt"

# One server block, dns64 + file; queries over IPv6 (::1) so the
# built-in's IPv6-only default applies to both.
start() { # name binary port extra-dns64-option
	cat >"$work/Corefile.$1" <<EOC
.:$3 {
    bind ::1
    dns64 {
        prefix 2001:db8:64::/96
        $4
    }
    file $work/db.example.org example.org
}
EOC
	"$2" -conf "$work/Corefile.$1" -quiet >"$work/$1.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		if dig +short +tries=1 +time=1 @::1 -p "$3" n0.example.org AAAA | grep -q 2001:db8:64::; then return; fi
		sleep 0.1
	done
	echo "$1 did not start" >&2; cat "$work/$1.log" >&2; exit 1
}
start ours "$work/coredns-ours" 15301 ""
start ours_off "$work/coredns-ours" 15302 "parallel_a off"
start stock "$work/coredns-stock" 15303 ""
start ours_on "$work/coredns-ours" 15304 "parallel_a on"

qps() { # port file -> QPS
	dnsperf -s ::1 -p "$1" -d "$2" -c 4 -l "$secs" -q 200 2>/dev/null |
		awk '/Queries per second/ {print $4}'
}

runs=(
	"ours_aaaa 15301 aaaa.txt" "stock_aaaa 15303 aaaa.txt"
	"ours_a 15301 a.txt" "stock_a 15303 a.txt"
	"ours_off_aaaa 15302 aaaa.txt" "ours_on_aaaa 15304 aaaa.txt"
	"ours_dual 15301 dual.txt" "ours_off_dual 15302 dual.txt" "ours_on_dual 15304 dual.txt" "stock_dual 15303 dual.txt"
)
for r in $(seq "$rounds"); do
	for run in "${runs[@]}"; do
		set -- $run
		q=$(qps "$2" "$work/$3")
		echo "round $r $1: $q QPS" >&2
		echo "$q" >>"$work/qps.$1"
	done
done
avg() { # median of the rounds
	sort -n "$work/qps.$1" | awk '{v[NR] = $1} END {printf "%.0f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
ratio() { awk -v a="$(avg "$1")" -v b="$(avg "$2")" 'BEGIN {printf "%.3f", a / b}'; }

echo "building the latency benchmark..." >&2
lat=$(cd "$root" && COREDNS_OURS="$work/coredns-ours" COREDNS_STOCK="$work/coredns-stock" \
	go test -run '^$' -bench UpstreamDelay -benchtime 20x ./plugin/coredns 2>/dev/null | grep ms/answer)
allocs=$(cd "$root" && go test -run '^$' -bench 'ServeDNSSynth' -benchmem ./plugin/dns64 2>/dev/null | grep allocs/op)
ms() { echo "$lat" | awk -v n="$1" '$1 ~ "/"n"-[0-9]+$" {for (i = 1; i <= NF; i++) if ($(i+1) == "ms/answer") print $i}'; }
al() { echo "$allocs" | awk -v n="$1" '$1 ~ n {for (i = 1; i <= NF; i++) if ($(i+1) == "allocs/op") print $i}'; }

cat <<EOT

dnsperf -c 4 -l $secs, 500 names, median of $rounds interleaved rounds, one server block (dns64 + file), queries over ::1; $(nproc) CPUs shared with the load generator.

| measurement | nat64kit dns64 | built-in dns64 | ratio |
| --- | ---: | ---: | ---: |
| AAAA needing synthesis, default parallel_a auto (QPS) | $(avg ours_aaaa) | $(avg stock_aaaa) | $(ratio ours_aaaa stock_aaaa) |
| plain A, same server (QPS, ceiling) | $(avg ours_a) | $(avg stock_a) | $(ratio ours_a stock_a) |
| synthesized / plain A | $(ratio ours_aaaa ours_a) | $(ratio stock_aaaa stock_a) | |
| AAAA synthesis, parallel_a off (QPS) | $(avg ours_off_aaaa) | | $(ratio ours_off_aaaa stock_aaaa) |
| AAAA synthesis, parallel_a on (QPS) | $(avg ours_on_aaaa) | | $(ratio ours_on_aaaa stock_aaaa) |
| AAAA of dual-stack names, parallel_a auto (QPS) | $(avg ours_dual) | $(avg stock_dual) | $(ratio ours_dual stock_dual) |
| AAAA of dual-stack names, parallel_a off (QPS) | $(avg ours_off_dual) | | $(ratio ours_off_dual stock_dual) |
| AAAA of dual-stack names, parallel_a on (QPS) | $(avg ours_on_dual) | | $(ratio ours_on_dual stock_dual) |
| synthesized answer, upstream +50 ms, parallel_a auto (ms) | $(ms ours) | $(ms builtin) | |
| same, parallel_a on (ms) | $(ms ours-parallel_a_on) | | |
| same, parallel_a off (ms) | $(ms ours-parallel_a_off) | | |
| allocations per synthesized answer in ServeDNS | auto $(al parallel_a=auto), on $(al parallel_a=on), off $(al parallel_a=off) | | |
EOT
