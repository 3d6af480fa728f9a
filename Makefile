# nat64kit: `make demo` runs the whole flow, `make test` what CI runs.

GO    ?= go
BIN   := bin
# Go tools live here, built at the versions scripts/deps.sh pins.
TOOLS := $(BIN)/tools
DEPS  := ./scripts/deps.sh

# The release version: the top entry of deploy/debian/changelog.
VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' deploy/debian/changelog)

.PHONY: all build man generate deb image demo test fresh-check deps-test fmt vet staticcheck unit fuzz bench soak clean

all: build

build:
	$(GO) build -o $(BIN)/nat64ctl ./nat64ctl
	$(GO) build -o $(BIN)/coredns ./plugin/coredns
	$(GO) build -o $(BIN)/demoserver ./test/demoserver

## man: one man page per nat64ctl command, from the command tree, into docs/man/.
man:
	$(GO) run ./internal/cli/genman docs/man

## generate: rebuild the fast path's BPF object and Go bindings from
## internal/fastpath/bpf/fastpath.c (bpf2go), installing clang, llvm and
## libbpf-dev first when missing. The results are committed.
generate:
	$(DEPS) generate
	$(GO) generate ./internal/fastpath

## deb: bin/nat64kit_$(VERSION)_amd64.deb (dpkg-deb): both binaries built as
## released (static, stripped), the units, /etc/nat64kit's conffiles, man pages.
deb:
	$(GO) run ./deploy/mkdeb -o $(BIN)

## image: bin/nat64kit-coredns_$(VERSION).tar and bin/nat64kit-nat64ctl_$(VERSION).tar,
## OCI images built without a daemon, for docker load, podman load or kind.
image:
	$(GO) run ./deploy/mkimage -o $(BIN)

## demo: the whole DNS64 + NAT64 flow in network namespaces (root), on
## corefile-examples/.
demo: build
	./test/demo.sh

## test: gofmt, vet, staticcheck, and every test with the race detector. Tests that
## need root (namespaces, TUN, netlink) skip without it and say so. -count=1:
## the end-to-end tests build binaries the test cache cannot see.
test: deps-test fmt vet staticcheck unit

deps-test:
	$(DEPS) test

## fresh-check: `make test` in a clean clone of HEAD with empty Go caches, as
## on a new machine; prints how long it took.
fresh-check:
	./test/fresh-check.sh

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck: deps-test
	$(TOOLS)/staticcheck ./...

unit:
	$(GO) test -race -count=1 -timeout 25m ./...

## fuzz: a short run of every fuzz target (their seeds run in `make test`);
## FUZZTIME=2m for longer.
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## bench: every side-by-side benchmark in one run (root), written to
## docs/benchmarks.md.
bench: build
	./test/bench/run.sh

## soak: SOAK_DURATION (default 10m) of mixed traffic through the whole flow
## in namespaces (root), with translators and CoreDNS built with -race;
## written to docs/soak.md and docs/soak.svg. `make test` runs a 60 s one.
SOAK_DURATION ?= 10m
soak:
	SOAK_DURATION=$(SOAK_DURATION) SOAK_REPORT=$(CURDIR)/docs/soak.md \
	  $(GO) test -count=1 -timeout 60m -run '^TestSoak$$' -v ./test/e2e/

clean:
	rm -rf $(BIN)
