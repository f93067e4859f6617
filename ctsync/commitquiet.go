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
// The engine's Commit (the external cache into the kernel, on takeover or
// by request) always uses it. Direct inject uses it only while the node
// loads the peer's table: the answer to its own resync request (a rebooted
// or returning BACKUP) is being received and the batch is a backlog of at
// least quietInjectMin states. There the injector is the bottleneck, one
// thread (the kernel serialises ctnetlink writes), and building the events
// it would drop was a fifth of its time in the 1,000,000-flow reboot; the
// one reconciling dump after the answer costs about what the answer's
// events did, and runs after it, off the path of the returning node's
// readiness. In steady operation the injector never goes quiet: there a
// dump of the whole table after every burst would cost more than the
// burst's events.
//
// In the lab, where both firewalls share one kernel, the gain is smaller:
// the kernel decides whether to build an event from a bitmap of the groups
// any socket has joined, in any namespace (netlink_has_listeners), so the
// other firewall's daemon keeps it building them. Measured with batched
// creates of 100,000 entries: 693-711k/s with no listener, 381-397k/s with
// one listener in another namespace, 256-312k/s with one in the writer's.

import "context"

// quietInjectMin is the inject batch from which the injector writes out of
// the event groups while the peer's table loads: two injectChunks, so a
// backlog, never the few states a steady stream brings per take.
const quietInjectMin = 2 * injectChunk

// quietInjectLocked reports whether the injector writes a batch of n
// states out of the event groups (above). Callers hold e.mu.
func (e *Engine) quietInjectLocked(n int) bool {
	return n >= e.quietInjectMin && e.answerSeen != nil
}

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
