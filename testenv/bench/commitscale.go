package bench

import "time"

// Commit is a scale with only the kernel limit and the commit on takeover
// at 100,000 flows (BENCH_SCALE=commit): two graceful strict failovers of
// fwpaird with direct_inject=false and of each stack, and three of the
// kernel's batched create rate with and without a listener, for the
// "commit rate as % of the kernel limit" row without the whole benchmark.
var Commit = Scale{
	Name: "commit", Flows: 100_000, Sessions: 100,
	Reps: 2, KernelReps: 3,
	Modes: []Mode{Strict}, Faults: []Fault{Term},
	KeptWait: 8 * time.Second, SyncWait: 30 * time.Second, ReplWait: 40 * time.Second, ReplStall: 5 * time.Second,
	Budget: 5 * time.Minute,
}
