# The benchmark (testenv/bench): fwpaird against keepalived + conntrackd in
# the namespace lab, side by side. Included from the Makefile.
#   make bench                    full run (100,000 flows, 1,000 sessions; under 10 minutes)
#   make bench BENCH_SCALE=small  the quick version make test runs once
#   make bench BENCH_SCALE=repl   only the replication bursts (100,000 flows; incl. keyed sync)
#   make bench BENCH_SCALE=commit only the kernel limit and the commit on takeover (100,000 flows)
#   make bench BENCH_SCALE=1m     1,000,000 flows: kernel limit, replication bursts (RSS per entry),
#                                 then fwpaird replicates them, bulk-resyncs them to a rebooted peer
#                                 (target: all held again within 5 s) and fails over keeping every one
#                                 (kernel tables as the oracle). Raises the global nf_conntrack_max for
#                                 the run and restores it afterwards, also on failure or interrupt
#                                 (about 6 minutes, 3 GB of memory)
#   make profile                  the repl bursts with perf profiles of sender and receiver (BENCH_PROFILE=1)
BENCH_SCALE ?= full

.PHONY: bench

bench: deps build ## fwpair vs keepalived+conntrackd: table on stdout, results/bench-*.json, results/failover-gap.svg (BENCH_SCALE=small|full|repl|commit|1m)
	BENCH_SCALE=$(BENCH_SCALE) FWPAIR_BIN=$(CURDIR)/bin $(GO) run ./testenv/bench/cmd/fwpair-bench

# CPU profiles (perf, kernel stacks included) of sender and receiver during
# the replication bursts: results/profile/<stack>-<role>-rep<N>.perf.data
# and a text report (.txt) beside each. Not committed.
.PHONY: profile

profile: deps build ## perf profiles of sender and receiver during the 100k replication bursts (results/profile/)
	@command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf >/dev/null
	BENCH_SCALE=$(or $(filter-out full,$(BENCH_SCALE)),repl) BENCH_PROFILE=1 FWPAIR_BIN=$(CURDIR)/bin $(GO) run ./testenv/bench/cmd/fwpair-bench
