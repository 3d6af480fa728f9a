# nat64kit: `make demo` runs the whole flow, `make test` what CI runs.

GO    ?= go
BIN   := bin
# Go tools live here, built at the versions scripts/deps.sh pins.
TOOLS := $(BIN)/tools
DEPS  := ./scripts/deps.sh

# The release version: the top entry of deploy/debian/changelog.
VERSION := $(shell sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' deploy/debian/changelog)

.PHONY: all build man deb image demo test fresh-check deps-test fmt vet staticcheck unit fuzz bench clean

all: build

build:
	$(GO) build -o $(BIN)/nat64ctl ./nat64ctl
	$(GO) build -o $(BIN)/coredns ./plugin/coredns
	$(GO) build -o $(BIN)/demoserver ./test/demoserver

## man: one man page per nat64ctl command, from the command tree, into docs/man/.
man:
	$(GO) run ./internal/cli/genman docs/man

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

## fuzz: a short run of every fuzz target (their seeds run in `make test`).
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run XXX -fuzz "^$$f$$" -fuzztime 20s $$pkg || exit 1; \
	  done; \
	done

## bench: every side-by-side benchmark in one run (root), written to
## docs/benchmarks.md.
bench: build
	./test/bench/run.sh

clean:
	rm -rf $(BIN)
