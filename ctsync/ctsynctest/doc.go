// Package ctsynctest provides in-memory fakes for testing code that runs
// the ctsync engine, without root and under testing/synctest: a conntrack
// table (Kernel) that reports its changes as the kernel does (traffic as
// plain events, the daemon's writes as Own events), optionally with entries
// that age like the kernel's, a commit that leaves the event groups
// (QuietKernel) or a filter of the daemon's own events (RecordingKernel);
// and an expectation table (ExpectKernel). Links are ctsync.MemNetwork.
//
// It imports only ctsync/ctnetlink (the conntrack model), so ctsync's own
// tests use it as well as the packages above ctsync. Everything is safe
// for concurrent use.
package ctsynctest
