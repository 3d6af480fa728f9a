#!/usr/bin/env bash
# deps.sh PURPOSE... — install what a make target needs, from the one list
# below. PURPOSE is demo, test, bench, generate or ci (everything test needs,
# with the Go tools installed afresh).
#
# Debian packages come from apt-get and need root: without it, a missing
# package stops the run with one line naming it and the command to install
# it. Go tools are built at the pinned versions into bin/tools/ inside the
# project and always run from there, so a binary left elsewhere on the
# machine can never stand in for a missing install step.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- the one list -----------------------------------------------------------
# Debian packages, by purpose. "test" is what `make test` drives: namespaces
# and links (iproute2), the clients the end-to-end tests and the demo use
# (ping, dig, curl), ethtool for the TUN offload checks, systemd for
# `systemd-analyze verify` of the units in deploy/systemd, bird2 for the BGP
# test of corefile-examples/bird.conf, lintian for the Debian package of
# `make deb` (dpkg-deb comes with dpkg), podman, which loads the images of
# `make image` as a real loader would; clang, llvm and libbpf-dev let a test
# rebuild the fast path's BPF object and compare it with the committed one.
declare -A APT=(
  [demo]="iproute2 iputils-ping dnsutils curl"
  [test]="iproute2 iputils-ping dnsutils curl ethtool systemd bird2 lintian podman clang llvm libbpf-dev"
  [bench]="iproute2 iputils-ping dnsutils curl iperf3 tayga dnsperf unbound"
  [generate]="clang llvm libbpf-dev"
)
# Go tools, by purpose: PACKAGE@VERSION. The module proxy serves staticcheck
# under its semver tags only (v0.8.2 is the 2026.2.2 release).
declare -A GOTOOLS=(
  [test]="honnef.co/go/tools/cmd/staticcheck@v0.8.2"
)
# ----------------------------------------------------------------------------

TOOLS_DIR="$PWD/bin/tools"
fresh=0
purposes=()
for p in "$@"; do
  case "$p" in
    ci) purposes+=(test); fresh=1 ;;
    demo|test|bench|generate) purposes+=("$p") ;;
    *) echo "deps.sh: unknown purpose $p (want demo, test, bench, generate or ci)" >&2; exit 2 ;;
  esac
done
[ "${#purposes[@]}" -gt 0 ] || { echo "usage: scripts/deps.sh demo|test|bench|generate|ci ..." >&2; exit 2; }

# Debian packages.
want=()
for p in "${purposes[@]}"; do
  for pkg in ${APT[$p]:-}; do want+=("$pkg"); done
done
missing=()
for pkg in $(printf '%s\n' "${want[@]}" | sort -u); do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian package(s): ${missing[*]}; install them as root: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "deps: installing Debian package(s) as root: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    echo "deps: apt-get could not install ${missing[*]}; try by hand: apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# Go tools. A tool is rebuilt when its binary is missing or was built from
# another version (go version -m reads the version the binary records).
[ "$fresh" = 1 ] && rm -rf "$TOOLS_DIR"
for p in "${purposes[@]}"; do
  for spec in ${GOTOOLS[$p]:-}; do
    pkg=${spec%@*} ver=${spec#*@} name=${pkg##*/}
    if [ -x "$TOOLS_DIR/$name" ] && go version -m "$TOOLS_DIR/$name" 2>/dev/null | grep -qE "^[[:space:]]+mod[[:space:]].*[[:space:]]$ver([[:space:]]|\$)"; then
      continue
    fi
    echo "deps: building $spec into bin/tools/" >&2
    if ! GOBIN="$TOOLS_DIR" GOFLAGS= go install "$spec"; then
      echo "deps: the Go module proxy refused $spec; check what it serves: go list -m -versions ${pkg%/cmd/*}" >&2
      exit 1
    fi
  done
done
