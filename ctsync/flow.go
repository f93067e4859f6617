package ctsync

import (
	"context"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
)

// The conntrack model is defined in ctsync/ctnetlink, the leaf package that
// reads and writes it from and to the kernel; these are its public names in
// ctsync, the ones the engine, the caches, the wire codec and the callers
// of the engine use. See ctnetlink for the documentation of each type.
type (
	// Tuple is the original-direction tuple of a connection.
	Tuple = ctnetlink.Tuple
	// Key identifies a flow in the caches: the original tuple and the zone.
	Key = ctnetlink.Key
	// NAT is one NAT binding as conntrackd replicates it.
	NAT = ctnetlink.NAT
	// SeqAdj is one direction of the NAT sequence adjustment.
	SeqAdj = ctnetlink.SeqAdj
	// Flow is the replicated state of one conntrack entry.
	Flow = ctnetlink.Flow
	// EventType says what happened to a flow in the kernel.
	EventType = ctnetlink.EventType
	// Event is one conntrack event from the kernel.
	Event = ctnetlink.Event
	// CommitResult reports a batched write into the kernel.
	CommitResult = ctnetlink.CommitResult
	// ExpectKey identifies an expectation: its expected tuple and its
	// master's original tuple.
	ExpectKey = ctnetlink.ExpectKey
	// ExpectNAT is the NAT binding of an expected connection.
	ExpectNAT = ctnetlink.ExpectNAT
	// Expect is the replicated state of one conntrack expectation.
	Expect = ctnetlink.Expect
	// ExpectEvent is one expectation event from the kernel.
	ExpectEvent = ctnetlink.ExpectEvent
)

// Event types (ctnetlink.EventNew, ...).
const (
	EventNew     = ctnetlink.EventNew
	EventUpdate  = ctnetlink.EventUpdate
	EventDestroy = ctnetlink.EventDestroy
	EventOverrun = ctnetlink.EventOverrun
	EventGap     = ctnetlink.EventGap
)

// Kernel is the sync engine's view of the local conntrack table. The Linux
// implementation is ctnetlink.LinuxKernel; tests use an in-memory table.
type Kernel interface {
	// DumpEach reads every entry of the table (resync, refresh) and hands
	// them to fn in batches; fn must not keep the slice. An error from fn
	// ends the dump and is returned.
	DumpEach(ctx context.Context, fn func([]Flow) error) error
	// Commit writes flows into the table in batches: a missing entry is
	// created, an existing one is updated to the given state.
	Commit(ctx context.Context, flows []Flow) (CommitResult, error)
	// Delete removes entries by key; missing entries are not an error.
	Delete(ctx context.Context, keys []Key) (CommitResult, error)
	// Events delivers kernel NEW/UPDATE/DESTROY events until ctx ends.
	// Overrun is reported through EventOverrun so the engine can resync.
	// The sink must not keep the slice after it returns.
	Events(ctx context.Context, sink func([]Event)) error
	Close() error
}
