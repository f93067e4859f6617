// Package bench is fwpair's side-by-side benchmark (`make bench`): fwpaird
// against the classic stack of Debian's keepalived and conntrackd 1.4.7
// glued by conntrackd's own primary-backup.sh, in the reference lab of
// package testenv, under identical conditions and in the same run.
//
// Every measurement is taken the same way for both stacks, from outside:
// VIP ownership is read from the firewalls' interfaces, traffic continuity
// from a 10 ms UDP probe and long-lived TCP sessions on the client, cache
// sizes from each daemon's own control socket, memory and CPU from
// /proc. Only the commit timings come from the daemons themselves (fwpaird's
// last transition, conntrackd's log and a timing wrapper around its
// client).
//
// Memory is RSS growth per entry over a replication burst, for both
// stacks at the run's scale: fwpaird's sender (internal cache) and
// receiver (external cache with direct_inject = false, kernel only as
// shipped) next to conntrackd's.
//
// BENCH_SCALE=1m (Million) runs at 1,000,000 flows: the kernel limit, the
// replication bursts, and MillionRun's scenario on fwpaird (replicate,
// bulk-resync to a rebooted peer within RebootTarget, fail over keeping
// every flow, judged by the kernel tables). It raises the kernel's global
// nf_conntrack_max and nf_conntrack_buckets for the run and restores them
// afterwards, on failure and interrupt too, and says so in its output and
// the results' note.
//
// Runs alternate between the stacks, each in a freshly built lab so no run
// inherits state from another. Run drives everything and returns Results;
// Table, WriteJSON and WriteSVG present them.
package bench
