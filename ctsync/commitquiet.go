package ctsync

// A commit that does not pay for its own events.
//
// While a ctnetlink listener is subscribed to NFNLGRP_CONNTRACK_NEW, the
// kernel builds and broadcasts a NEW event for every entry a commit creates,
// inside the writer's sendmsg: with one listener the batched create rate
// falls to about 40% (docs/kernel-notes.md; the bench's kernel rows). The
// kernel skips that work only when no socket of the namespace is in the
// group; the socket filter of the event socket (ctnetlink/ownfilter_linux.go)
// drops the events but only after they are built.
//
// So a kernel that can (quietCommitter: ctnetlink.LinuxKernel.CommitQuiet) takes its
// event socket out of the NEW and UPDATE groups for the duration of the
// commit and joins them again afterwards. The DESTROY group stays joined,
// so no DESTROY is missed. The NEW and UPDATE events of traffic inside that
// window are missed, and the kernel then delivers EventGap: the engine
// answers it as it answers an overrun, with a dump of the table after
// OverrunResyncDelay that puts every difference into the internal cache and
// queues it to the peer. Nothing is lost, only delayed by the delay plus
// the dump. On a takeover the new MASTER's follow-up (resync, bulk send)
// usually runs before it, so the reconciling dump then finds the
// committed entries already in the internal cache and sends only what
// traffic changed in the window.
//
// Only the engine's Commit (the external cache into the kernel, on
// takeover or by request) uses it: direct inject runs all the time and
// must not leave the groups.

import "context"

// quietCommitter is a Kernel that can commit without subscribing to the
// events of the commit (see above).
type quietCommitter interface {
	CommitQuiet(ctx context.Context, flows []Flow) (CommitResult, error)
}

// commitQuiet commits through CommitQuiet when the kernel has it.
func commitQuiet(ctx context.Context, k Kernel, flows []Flow) (CommitResult, error) {
	if q, ok := k.(quietCommitter); ok {
		return q.CommitQuiet(ctx, flows)
	}
	return k.Commit(ctx, flows)
}
