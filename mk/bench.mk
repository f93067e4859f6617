# The benchmark (testenv/bench): fwpaird against keepalived + conntrackd in
# the namespace lab, side by side. Included from the Makefile.
#   make bench                    full run (100,000 flows, 1,000 sessions; under 10 minutes)
#   make bench BENCH_SCALE=small  the quick version make test runs once
#   make bench BENCH_SCALE=repl   only the replication bursts (100,000 flows; incl. keyed sync)
BENCH_SCALE ?= full

.PHONY: bench

bench: deps build ## fwpair vs keepalived+conntrackd: table on stdout, results/bench-*.json, results/failover-gap.svg (BENCH_SCALE=small|full)
	BENCH_SCALE=$(BENCH_SCALE) FWPAIR_BIN=$(CURDIR)/bin $(GO) run ./testenv/bench/cmd/fwpair-bench
