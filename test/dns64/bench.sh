#!/usr/bin/env bash
# DNS64 throughput and latency, side by side in one run, printed as markdown:
#
#   1. nat64kit's coredns against stock CoreDNS (same version, built-in
#      dns64): same Corefile (dns64 + file in one server block), same zone.
#   2. The resolver role: Unbound's dns64 module (Debian's unbound) against
#      our coredns (dns64 + forward, and dns64 + cache + forward), both in
#      front of the same plain authoritative server (stock CoreDNS, file, no
#      dns64); cache misses and cache hits kept apart.
#   3. Latency with an upstream that delays every answer by 50 ms
#      (BenchmarkUpstreamDelay in plugin/coredns), and the allocations of one
#      synthesized answer in ServeDNS (BenchmarkServeDNSSynth).
#
#   test/dns64/bench.sh [SECONDS_PER_RUN] [ROUNDS]     (default 3 5: ~5.5 min)
#
# Noise control, for a machine with 2 CPUs:
# - Every server under test runs pinned to CPU 1 (taskset), dnsperf to CPU 0,
#   so the load generator never takes CPU time from the server it measures.
#   The authoritative server of part 2 is pinned to CPU 0 too: it stands for
#   the rest of the network, and CPU 1 stays the measured server's alone.
# - GOMAXPROCS is left at Go's default, which follows the CPU affinity mask:
#   1 for a server pinned to one CPU. Each server thus has one CPU and one
#   scheduler thread for Go code, like Unbound with num-threads 1; a larger
#   GOMAXPROCS on one CPU would only add thread switches.
# - Runs are interleaved round by round and each figure is the median of the
#   rounds, so load from other processes hits every peer alike.
#
# Cache control in part 2: each round queries names never asked before
# (<n>.r<round>.w.example.org, matched by the wildcard *.w.example.org, A
# only), so every query misses Unbound's cache and needs two upstream
# queries (AAAA, then A). The authoritative server's query counter
# (prometheus) is read around each run: "upstream queries per client query"
# shows 2.00 for a miss, 0 for a hit. The cache-hit rows repeat 500 names.
#
# Needs: go, dnsperf, dig, taskset (util-linux), and unbound for the Unbound
# rows (skipped with a message without it): apt-get install -y dnsperf
# dnsutils util-linux unbound. Loopback only; ports 15301-15315 and 15390.
set -euo pipefail

secs=${1:-3}
rounds=${2:-5}
server_cpu=1 # the server under test
load_cpu=0   # dnsperf and the authoritative server
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/dns64-bench.XXXXXX)
declare -A pid
cleanup() {
	for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { echo "$1 missing: apt-get install -y $2" >&2; exit 1; }; }
need dnsperf dnsperf
need dig dnsutils
need taskset util-linux
if [ "$(nproc)" -lt 2 ]; then
	echo "needs 2 CPUs (server on CPU $server_cpu, dnsperf on CPU $load_cpu), have $(nproc)" >&2
	exit 1
fi
unbound=1
if ! command -v unbound >/dev/null; then
	unbound=0
	echo "unbound missing (apt-get install -y unbound): the Unbound rows are skipped" >&2
fi

echo "building binaries..." >&2
(cd "$root" && go build -o "$work/coredns-ours" ./plugin/coredns)
(cd "$root" && go build -o "$work/coredns-stock" github.com/coredns/coredns)

# 500 names with only A (every AAAA query needs synthesis), 500 with both,
# and two wildcards for never-seen names: *.w (A only), *.ds (A and AAAA).
zone=$work/db.example.org
{
	# shellcheck disable=SC2016 # a literal $ORIGIN
	echo '$ORIGIN example.org.'
	echo '@ 3600 IN SOA ns.example.org. host.example.org. 1 7200 3600 1209600 300'
	echo '@ 3600 IN NS ns'
	echo 'ns 3600 IN A 198.51.100.1'
	echo '*.w 3600 IN A 198.51.100.7'
	echo '*.ds 3600 IN A 198.51.100.8'
	echo '*.ds 3600 IN AAAA 2001:db8:5::8'
	for i in $(seq 0 499); do
		echo "n$i 3600 IN A 198.51.100.$((i % 250 + 2))"
		echo "d$i 3600 IN A 198.51.100.$((i % 250 + 2))"
		echo "d$i 3600 IN AAAA 2001:db8:5::$((i + 1))"
	done
} >"$zone"
for i in $(seq 0 499); do echo "n$i.example.org AAAA"; done >"$work/aaaa.txt"
for i in $(seq 0 499); do echo "n$i.example.org A"; done >"$work/a.txt"
for i in $(seq 0 499); do echo "d$i.example.org AAAA"; done >"$work/dual.txt"

auth_port=15310
prom_port=15390
fixed_qps=3000 # the moderate load of the dual-stack rows with -Q

wait_up() { # NAME PORT [QTYPE PATTERN]: until it answers n0.example.org
	for _ in $(seq 100); do
		if dig +short +tries=1 +time=1 @::1 -p "$2" n0.example.org "${3:-AAAA}" | grep -q "${4:-2001:db8:64::}"; then return; fi
		sleep 0.1
	done
	echo "$1 did not start" >&2
	cat "$work/$1.log" >&2
	exit 1
}

# start NAME BINARY PORT DNS64-OPTION BACKEND...: a coredns on the server CPU.
start() {
	local name=$1 bin=$2 port=$3 opt=$4
	shift 4
	{
		echo ".:$port {"
		echo "    bind ::1"
		echo "    dns64 {"
		echo "        prefix 2001:db8:64::/96"
		echo "        $opt"
		echo "    }"
		printf '    %s\n' "$@"
		echo "}"
	} >"$work/Corefile.$name"
	taskset -c "$server_cpu" "$bin" -conf "$work/Corefile.$name" -quiet >"$work/$name.log" 2>&1 &
	pid[$name]=$!
	wait_up "$name" "$port"
}

# The authoritative server of the resolver role: stock CoreDNS, file only.
# multisocket spreads the upstream queries over 4 receive buffers; one
# default-sized buffer overflows under 200 outstanding client queries and the
# dropped upstream queries would measure forward's 2 s timeout.
cat >"$work/Corefile.auth" <<EOC
.:$auth_port {
    bind ::1
    multisocket 4
    prometheus 127.0.0.1:$prom_port
    file $zone example.org
}
EOC
taskset -c "$load_cpu" "$work/coredns-stock" -conf "$work/Corefile.auth" -quiet >"$work/auth.log" 2>&1 &
pid[auth]=$!
wait_up auth "$auth_port" A 198.51.100.2

file="file $zone example.org"
fwd="forward . [::1]:$auth_port"
# Part 1 compares synthesis: without dns64's answer cache, which would answer
# the 500 repeated names from memory (the cache-hit row of part 2 has it).
start ours "$work/coredns-ours" 15301 "answer_cache off" "$file"
start ours_off "$work/coredns-ours" 15302 $'parallel_a off\n        answer_cache off' "$file"
start stock "$work/coredns-stock" 15303 "" "$file"
# The same with nat64kit's defaults, answer cache included: the repeated
# names are answered from it.
start ours_ac "$work/coredns-ours" 15304 "" "$file"
pid[stock_ac]=${pid[stock]} # the built-in again, paired with ours_ac
start ours_fwd "$work/coredns-ours" 15311 "" "$fwd"
start ours_fwd_off "$work/coredns-ours" 15312 "parallel_a off" "$fwd"
start stock_fwd "$work/coredns-stock" 15313 "" "$fwd"
start ours_cache "$work/coredns-ours" 15314 "" cache "$fwd"

if [ "$unbound" = 1 ]; then
	# Unbound as a DNS64 recursor whose only source is the same
	# authoritative server. QNAME minimisation is off so that, like
	# forward, it asks the full name: two upstream queries per miss.
	cat >"$work/unbound.conf" <<EOC
server:
    interface: ::1@15315
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
    access-control: 127.0.0.1 allow
    module-config: "dns64 iterator"
    dns64-prefix: 2001:db8:64::/96
stub-zone:
    name: "example.org"
    stub-addr: ::1@$auth_port
EOC
	taskset -c "$server_cpu" unbound -d -c "$work/unbound.conf" >"$work/unbound.log" 2>&1 &
	pid[unbound]=$!
	wait_up unbound 15315
fi

# The authoritative server's query count.
authq() {
	local n
	exec 3<>"/dev/tcp/127.0.0.1/$prom_port"
	printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
	n=$(awk '/^coredns_dns_requests_total/ {s += $2} END {printf "%d", s}' <&3)
	exec 3<&-
	echo "$n"
}
cputicks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime
hz=$(getconf CLK_TCK)

# measure ROW PID PORT FILE [DNSPERF-OPTION...]: one dnsperf run; appends
# "QPS upstream-queries/answer CPU% failed% CPU-µs/answer" to $work/res.ROW.
measure() {
	local row=$1 p=$2 port=$3 data=$4 a0 c0 out
	shift 4
	a0=$(authq)
	c0=$(cputicks "$p")
	out=$(taskset -c "$load_cpu" dnsperf -s ::1 -p "$port" -d "$data" -c 4 -l "$secs" -q 200 -t 1 "$@" 2>&1)
	echo "$out" | awk -v a="$(($(authq) - a0))" -v c="$(($(cputicks "$p") - c0))" -v hz="$hz" '
		/Queries sent/ {sent = $3}
		/Queries completed/ {done = $3}
		/Response codes/ {for (i = 3; i <= NF; i++) if ($i == "NOERROR") ok = $(i + 1)}
		/Run time/ {t = $4}
		/Queries per second/ {qps = $4}
		END {
			if (!done) {print "0 0 0 100 0"; exit}
			printf "%.0f %.2f %.0f %.2f %.1f\n", qps, a / done, 100 * c / hz / t, 100 * (sent - ok) / sent, 1e6 * c / hz / done
		}' >>"$work/res.$row"
}

# pair ROW-A ROW-B PORT-A PORT-B FILE: both servers loaded at once, each by
# its own dnsperf: they share CPU $server_cpu, so a slower machine slows both
# alike and the CPU time per answer compares them closely. Appends "QPS 0
# CPU% failed% CPU-µs/answer" to $work/res.ROW-A.pair and res.ROW-B.pair.
pair() {
	local a=$1 b=$2 ca cb d x row c
	ca=$(cputicks "${pid[$a]}")
	cb=$(cputicks "${pid[$b]}")
	taskset -c "$load_cpu" dnsperf -s ::1 -p "$3" -d "$5" -c 4 -l "$secs" -q 200 -t 1 >"$work/pair.$a" 2>&1 &
	d=$!
	taskset -c "$load_cpu" dnsperf -s ::1 -p "$4" -d "$5" -c 4 -l "$secs" -q 200 -t 1 >"$work/pair.$b" 2>&1
	wait "$d"
	ca=$(($(cputicks "${pid[$a]}") - ca))
	cb=$(($(cputicks "${pid[$b]}") - cb))
	for x in "$a $ca" "$b $cb"; do
		read -r row c <<<"$x"
		awk -v c="$c" -v hz="$hz" '
			/Queries sent/ {sent = $3}
			/Queries completed/ {done = $3}
			/Response codes/ {for (i = 3; i <= NF; i++) if ($i == "NOERROR") ok = $(i + 1)}
			/Run time/ {t = $4}
			/Queries per second/ {qps = $4}
			END {printf "%.0f 0 %.0f %.2f %.1f\n", qps, 100 * c / hz / t, 100 * (sent - ok) / sent, 1e6 * c / hz / done}' \
			"$work/pair.$row" >>"$work/res.$row.pair"
	done
}

# ROW:SERVER PORT QUERIES [DNSPERF-OPTION...]; SERVER defaults to ROW.
runs=(
	"ours 15301 aaaa" "stock 15303 aaaa" "ours_a:ours 15301 a" "stock_a:stock 15303 a"
	"ours_ac 15304 aaaa" "ours_ac_a:ours_ac 15304 a"
	"ours_off 15302 aaaa" "ours_dual:ours 15301 dual" "ours_off_dual:ours_off 15302 dual" "stock_dual:stock 15303 dual"
	"ours_fwd 15311 miss" "stock_fwd 15313 miss"
	"ours_fwd_dual:ours_fwd 15311 missdual" "ours_fwd_off_dual:ours_fwd_off 15312 missdual"
	"ours_fwd_dual_q:ours_fwd 15311 missdual -Q $fixed_qps" "ours_fwd_off_dual_q:ours_fwd_off 15312 missdual -Q $fixed_qps"
	"ours_cache 15314 aaaa" "ours_cache_a:ours_cache 15314 a"
)
if [ "$unbound" = 1 ]; then
	runs+=("unbound_miss:unbound 15315 miss" "unbound_hit:unbound 15315 aaaa")
fi
for r in $(seq "$rounds"); do
	# Names never asked before, more than any server answers in $secs s;
	# each run takes its own part of them.
	seq "$((secs * 40000))" | awk -v r="$r" '{print $1 ".r" r ".w.example.org AAAA"}' >"$work/miss.txt"
	pair ours stock 15301 15303 "$work/aaaa.txt"
	echo "$(date +%T) round $r ours|stock at once: $(tail -1 "$work/res.ours.pair") | $(tail -1 "$work/res.stock.pair") (QPS - CPU% failed% CPU-µs/answer)" >&2
	pair ours_ac stock_ac 15304 15303 "$work/aaaa.txt"
	echo "$(date +%T) round $r ours_ac|stock at once: $(tail -1 "$work/res.ours_ac.pair") | $(tail -1 "$work/res.stock_ac.pair") (QPS - CPU% failed% CPU-µs/answer)" >&2
	for run in "${runs[@]}"; do
		read -r label port data opts <<<"$run"
		row=${label%%:*}
		if [ "$data" = missdual ]; then # a fresh set for each run
			seq "$((secs * 40000))" | awk -v t="$row.r$r" '{print $1 "." t ".ds.example.org AAAA"}' | tr _ - >"$work/missdual.txt"
		fi
		# shellcheck disable=SC2086 # opts: dnsperf options, split on purpose
		measure "$row" "${pid[${label#*:}]}" "$port" "$work/$data.txt" $opts
		echo "$(date +%T) round $r $row: $(tail -1 "$work/res.$row") (QPS upstream/answer CPU% failed% CPU-µs/answer)" >&2
	done
done

# med ROW [COLUMN]: median of the rounds (1 QPS, 2 upstream queries per
# client query, 3 server CPU %, 4 failed %, 5 server CPU µs per answer).
median() {
	sort -g | awk -v f="$1" '{v[NR] = $1} END {printf f, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
med() {
	local c=${2:-1} f=%.2f
	[ -s "$work/res.$1" ] || { echo "n/a"; return; }
	case $c in 1 | 3) f=%.0f ;; 5) f=%.1f ;; esac
	awk -v c="$c" '{print $c}' "$work/res.$1" | median "$f"
}
# ratio A B: median over the rounds of A/B (QPS), each round's pair measured
# back to back; steadier than the ratio of two medians on a noisy machine.
ratio() {
	if [ ! -s "$work/res.$1" ] || [ ! -s "$work/res.$2" ]; then
		echo "n/a"
		return
	fi
	paste -d ' ' "$work/res.$1" "$work/res.$2" | awk '{print $1 / $6}' | median %.3f
}
# cpuratio A B: median over the rounds of B's CPU µs per answer / A's: how
# many more answers A gives per CPU second.
cpuratio() {
	paste -d ' ' "$work/res.$1" "$work/res.$2" | awk '{print $10 / $5}' | median %.3f
}
row2() { # ROW LABEL REFERENCE
	echo "| $2 | $(med "$1") | $(ratio "$1" "$3") | $(med "$1" 2) | $(med "$1" 3) | $(med "$1" 5) | $(med "$1" 4) |"
}

echo "building the latency benchmark..." >&2
lat=$(cd "$root" && COREDNS_OURS="$work/coredns-ours" COREDNS_STOCK="$work/coredns-stock" \
	go test -run '^$' -bench UpstreamDelay -benchtime 20x ./plugin/coredns 2>/dev/null | grep ms/answer)
allocs=$(cd "$root" && go test -run '^$' -bench 'ServeDNSSynth' -benchmem ./plugin/dns64 2>/dev/null | grep allocs/op)
metric() { # BUILD UNIT
	echo "$lat" | awk -v n="$1" -v u="$2" '$1 ~ "/"n"-[0-9]+$" {for (i = 1; i <= NF; i++) if ($(i+1) == u) print $i}'
}
al() { echo "$allocs" | awk -v n="$1" '$1 ~ n"-[0-9]+$" {for (i = 1; i <= NF; i++) if ($(i+1) == "allocs/op") print $i}'; }
skip=""
[ "$unbound" = 1 ] || skip=" (Unbound rows skipped: unbound is not installed)"

cat <<EOT

dnsperf -c 4 -q 200 -t 1 -l $secs over ::1, $rounds interleaved rounds: figures are medians of the rounds, ratios medians of the per-round ratios. Every server pinned to CPU $server_cpu, dnsperf (and the authoritative server of the resolver role) to CPU $load_cpu, of $(nproc); GOMAXPROCS follows the pinning (1).$skip

One server block, dns64 + file, 500 names; nat64kit with its defaults (parallel_a auto) but answer_cache off, so every answer is synthesized, unless a row says otherwise:

| measurement | nat64kit dns64 | built-in dns64 | ratio |
| --- | ---: | ---: | ---: |
| AAAA needing synthesis, both servers loaded at once (QPS each) | $(med ours.pair) | $(med stock.pair) | $(ratio ours.pair stock.pair) |
| same, server CPU µs per answer | $(med ours.pair 5) | $(med stock.pair 5) | $(cpuratio ours.pair stock.pair) |
| AAAA needing synthesis, one server at a time (QPS) | $(med ours) | $(med stock) | $(ratio ours stock) |
| plain A, same server (QPS, ceiling) | $(med ours_a) | $(med stock_a) | $(ratio ours_a stock_a) |
| synthesized / plain A | $(ratio ours ours_a) | $(ratio stock stock_a) | |
| AAAA synthesis, parallel_a off (QPS) | $(med ours_off) | | $(ratio ours_off stock) |
| with the answer cache (the default), both servers loaded at once (QPS each) | $(med ours_ac.pair) | $(med stock_ac.pair) | $(ratio ours_ac.pair stock_ac.pair) |
| with the answer cache, one server at a time (QPS) | $(med ours_ac) | | $(ratio ours_ac stock) |
| with the answer cache: synthesized / plain A | $(ratio ours_ac ours_ac_a) | | |
| AAAA of dual-stack names (QPS) | $(med ours_dual) | $(med stock_dual) | $(ratio ours_dual stock_dual) |
| AAAA of dual-stack names, parallel_a off (QPS) | $(med ours_off_dual) | | $(ratio ours_off_dual stock_dual) |
| synthesized answer, upstream +50 ms (ms) | $(metric ours ms/answer) | $(metric builtin ms/answer) | |
| same, parallel_a on (ms) | $(metric ours-parallel_a_on ms/answer) | | |
| same, parallel_a off (ms) | $(metric ours-parallel_a_off ms/answer) | | |
| an A-only name asked again once its cache entry has expired (ms) | $(metric ours-answer_cache_off ms/repeat-answer) | $(metric builtin ms/repeat-answer) | |
| upstream queries per dual-stack AAAA query, upstream +50 ms | $(metric ours upstream-queries/dual-stack-AAAA) | $(metric builtin upstream-queries/dual-stack-AAAA) | |
| same, parallel_a on | $(metric ours-parallel_a_on upstream-queries/dual-stack-AAAA) | | |
| same, parallel_a off | $(metric ours-parallel_a_off upstream-queries/dual-stack-AAAA) | | |
| allocations per synthesized answer in ServeDNS | auto $(al parallel_a=auto), on $(al parallel_a=on), on 0 $(al parallel_a=on_0), off $(al parallel_a=off) | | |

* Rows 1-2, the comparison to read: AAAA queries for A-only names (every answer synthesized) sent
  to both servers at the same time, one dnsperf each. They share CPU $server_cpu, so the machine's
  speed, which drifts by ±15 % from one run to the next here, is the same for both. Ratios: ours
  to the built-in in QPS, and the built-in's CPU time per answer over ours (how many more answers
  ours gives per CPU second).
* Rows 3-5: the same queries, and A queries for the same names (the most a server answers from
  that zone), one server at a time; their quotient is what synthesis costs. Each server has the
  CPU to itself, but the runs are seconds apart and the drift between them shows: the plain-A row,
  where both servers run the same code (dns64 hands A queries on untouched), shows the spread of
  this method.
* Rows 6, 10-11: synthesis without the parallel A lookup; AAAA queries for names that have AAAA (no
  synthesis; parallel_a on would start an A lookup only for an AAAA lookup lasting 250 µs).
* Rows 7-9: the synthesis queries of rows 1-5 with nat64kit's defaults, its answer cache included,
  which answers the 500 repeated names from memory: row 7 paired with the built-in as rows 1-2
  are, row 9 over the same server's plain A.
* Rows 12-18: \`BenchmarkUpstreamDelay\` (plugin/coredns), unpinned: every answer of the upstream
  behind *forward* delayed 50 ms; one synthesized answer takes one delay or two, and a dual-stack
  AAAA query costs one upstream query or two. Row 15 asks an A-only name a second time with no
  cached answer (nat64kit with answer_cache off stands for an expired entry): ours remembers that
  the name had no AAAA and starts both lookups at once.
* Row 19: \`go test -bench ServeDNSSynth -benchmem ./plugin/dns64\`, upstream answers prebuilt.

The resolver role: each server gets its answers from the same authoritative server (stock CoreDNS,
file, no dns64) on another loopback port:

| measurement | QPS | QPS ratio | upstream queries per answer | server CPU % | server CPU µs per answer | failed % |
| --- | ---: | ---: | ---: | ---: | ---: | ---: |
$(row2 unbound_miss "cache misses: Unbound (dns64 iterator, stub-zone)" unbound_miss)
$(row2 ours_fwd "cache misses: nat64kit dns64 + forward" unbound_miss)
$(row2 stock_fwd "cache misses: built-in dns64 + forward" unbound_miss)
$(row2 unbound_hit "cache hits: Unbound" unbound_hit)
$(row2 ours_cache "cache hits: nat64kit dns64 + cache + forward" unbound_hit)
$(row2 ours_cache_a "cache hits, plain A of the same names: nat64kit dns64 + cache + forward" unbound_hit)
$(row2 ours_fwd_dual "dual-stack names, saturated: nat64kit dns64 + forward" ours_fwd_off_dual)
$(row2 ours_fwd_off_dual "dual-stack names, saturated: same, parallel_a off" ours_fwd_off_dual)
$(row2 ours_fwd_dual_q "dual-stack names at $fixed_qps QPS: nat64kit dns64 + forward" ours_fwd_off_dual_q)
$(row2 ours_fwd_off_dual_q "dual-stack names at $fixed_qps QPS: same, parallel_a off" ours_fwd_off_dual_q)

* Cache misses: AAAA queries for A-only names never asked before (a fresh set each round), so
  every answer needs an upstream AAAA and an upstream A query (2.00 upstream queries per answer).
  QPS ratio to Unbound.
* Cache hits: AAAA queries repeating 500 A-only names: Unbound answers from its cache, our dns64
  from its answer cache (the chain is dns64, cache, forward). The plain-A row asks A for the same
  names, answered by the *cache* plugin: our synthesized hits over it, $(ratio ours_cache ours_cache_a).
  QPS ratio to Unbound.
* Dual-stack names: AAAA queries for never-asked names that have AAAA records, as fast as the
  server answers (saturated) and at a fixed $fixed_qps QPS (dnsperf -Q). Upstream queries per
  answer above 1.00 are A lookups started because the AAAA answer took over 250 µs, the queueing
  inside a saturated server included: the price of parallel_a for dual-stack names. QPS ratio to
  parallel_a off.
* Server CPU: CPU time of the measured server over the run (100 % = CPU $server_cpu saturated), and
  per answer. Failed: queries without a NOERROR answer, lost ones included.
EOT
