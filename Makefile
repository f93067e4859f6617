# fwpair — `make help` lists the targets.
SHELL       := /bin/bash
GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
PREFIX      ?= /usr
SYSCONFDIR  ?= /etc
UNITDIR     ?= /lib/systemd/system
FUZZTIME    ?= 10s
TEST_TIMEOUT ?= 14m
# Total flood time of the live sync fuzz test (keyed and unkeyed halves).
LIVE_FUZZ_TIME ?= 30s
# Debian packages the tests, the lab and the interop peers need.
DEB_PACKAGES := nftables conntrack iproute2 iputils-ping keepalived conntrackd tcpdump lintian

.DEFAULT_GOAL := help

# Targets contributed by the QEMU lab and the benchmark live in mk/.
-include $(wildcard mk/*.mk)
.PHONY: help deps build test test-unit lab lint check install fuzz clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

deps: ## install missing Debian packages (apt-get) and Go modules
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "need root to install$$missing" >&2; exit 1; fi; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@# The Debian packages ship units that would start the reference daemons
	@# in the root namespace; the tests start their own, in namespaces.
	@-systemctl disable --now keepalived conntrackd >/dev/null 2>&1 || true
	@$(GO) mod download

build: ## build bin/fwpaird and bin/fwpairctl with the version built in
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/fwpaird ./cmd/fwpaird
	$(GO) build -ldflags '$(LDFLAGS)' -o bin/fwpairctl ./cmd/fwpairctl

test: deps build ## every test: the QEMU lab once, the quick benchmark once, then go test (unit, simulated, privileged) with -race
	$(MAKE) --no-print-directory qemu-lab
	$(MAKE) --no-print-directory bench BENCH_SCALE=small
	FWPAIR_PRIVILEGED_TESTS=1 FWPAIR_BIN=$(CURDIR)/bin FWPAIR_LIVE_FUZZ_TIME=$(LIVE_FUZZ_TIME) $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

test-unit: ## unit and simulated tests only (no root needed)
	$(GO) test -race -count=1 ./...

lab: deps build ## the two-node namespace lab with a live failover demo
	FWPAIR_BIN=$(CURDIR)/bin $(GO) run ./testenv/cmd/fwpair-lab

lint: ## gofmt check, go vet, staticcheck (pinned as a go tool)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

check: lint test ## lint and every test

fuzz: ## run each fuzz target for FUZZTIME (default 10s)
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

install: build ## install binaries, configs and the systemd unit
	install -D -m 0755 bin/fwpaird $(DESTDIR)$(PREFIX)/sbin/fwpaird
	install -D -m 0755 bin/fwpairctl $(DESTDIR)$(PREFIX)/sbin/fwpairctl
	install -D -m 0644 etc/fwpaird.service $(DESTDIR)$(UNITDIR)/fwpaird.service
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/fwpair
	@[ -e $(DESTDIR)$(SYSCONFDIR)/fwpair/fwpair.toml ] || install -m 0640 etc/fwpair.toml $(DESTDIR)$(SYSCONFDIR)/fwpair/fwpair.toml
	install -D -m 0644 etc/fwpair.toml $(DESTDIR)$(PREFIX)/share/doc/fwpair/fwpair.toml.example
	install -D -m 0644 etc/node1.toml $(DESTDIR)$(PREFIX)/share/doc/fwpair/node1.toml
	install -D -m 0644 etc/node2.toml $(DESTDIR)$(PREFIX)/share/doc/fwpair/node2.toml
	install -D -m 0644 etc/fwpair.nft $(DESTDIR)$(PREFIX)/share/doc/fwpair/fwpair.nft
	install -D -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/fwpair/README.md

clean: ## remove build output
	rm -rf bin results build
