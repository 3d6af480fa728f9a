#!/usr/bin/env bash
# make bench: every side-by-side benchmark in one run, written to
# docs/benchmarks.md (figures, ratios, the commands) with a plot.
#   DNS: our coredns vs the stock build's built-in dns64 and vs Unbound's
#        dns64 (test/dns64/bench.sh)
#   translator: kernel forwarding, TAYGA, nat64ctl (test/bench, iperf3)
#   Go micro-benchmarks of the packet path, the state table and ServeDNS
set -euo pipefail
cd "$(dirname "$0")/../.."
out=docs/benchmarks.md
mkdir -p docs

./scripts/deps.sh bench

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Measurements made by hand for one change (before/after runs) sit below
# this marker and survive a new run.
marker='<!-- kept by make bench: before/after measurements -->'
if [ -f "$out" ]; then awk -v m="$marker" '$0 == m { keep = 1 } keep' "$out" > "$tmp/kept.md"; fi

echo "== Go benchmarks" >&2
go test -run '^$' -bench . -benchmem -benchtime 1s ./nat64conf/... ./internal/packet/ ./internal/xlat/ ./internal/state/ ./plugin/dns64/ \
  | grep -E '^(Benchmark|ok|pkg:)' > "$tmp/go.txt"

echo "== translator side by side" >&2
NAT64_BENCH=1 BENCH_OUT="$tmp/translator.md" BENCH_SVG="$PWD/docs/translator-bench.svg" \
  go test -count 1 -timeout 30m -run TestTranslatorSideBySide ./test/bench/ >&2

echo "== dns64 side by side" >&2
./test/dns64/bench.sh > "$tmp/dns64.md"

{
  echo "# nat64kit benchmarks"
  echo
  echo "Written by \`make bench\` on $(date -u +%Y-%m-%d): $(nproc) CPUs, $(free -g | awk '/^Mem:/{print $2}') GiB,"
  echo "$(uname -sr), $(go version | cut -d' ' -f3). Every comparison ran side by side in one run;"
  echo "ratios are the way to read them (the machine is shared and noisy)."
  echo
  cat "$tmp/translator.md"
  echo
  echo "![translator throughput per peer](translator-bench.svg)"
  echo
  echo "## DNS64, side by side"
  echo
  cat "$tmp/dns64.md"
  echo
  echo "Command: \`test/dns64/bench.sh\`"
  echo
  echo "## Go benchmarks"
  echo
  echo '```'
  cat "$tmp/go.txt"
  echo '```'
  echo
  echo "Command: \`go test -run '^\$' -bench . -benchmem ./nat64conf/... ./internal/packet/ ./internal/xlat/ ./internal/state/ ./plugin/dns64/\`"
  if [ -s "$tmp/kept.md" ]; then
    echo
    cat "$tmp/kept.md"
  fi
} > "$out"
echo "wrote $out" >&2
