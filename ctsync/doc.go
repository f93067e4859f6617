// Package ctsync replicates the Linux conntrack table between the two nodes
// of a firewall pair, wire-compatible with conntrackd 1.4.7 (FTFW and
// NOTRACK over UDP unicast or multicast).
//
// # Layers
//
//		kernel (Kernel = ctnetlink.LinuxKernel: events, dump, batched commit)
//		   │ events                      ▲ Commit / inject
//		   ▼                             │
//		internal cache ──► Session ──► Channel (UDP, ≤4 links) ══► peer
//		                  (FTFW/NOTRACK)                      ◄══
//		external cache ◄── Session ◄── Channel
//
//	  - wire.go: the version-1 codec (pure). NextMessage splits datagrams,
//	    WireOptions.AppendCT/DecodeFlow map Flow to and from the TLVs.
//	  - session.go, notrack.go: Session, the pure protocol: takes now, returns
//	    datagrams and the next deadline.
//	  - cache.go: Cache, compact tables keyed by original tuple and zone.
//	  - channel.go, channel_linux.go: Channel, UDP links and an in-memory one.
//	  - engine.go: Engine, goroutines and timers around all of the above.
//	  - package ctsync/ctnetlink: the conntrack model and the Kernel and
//	    ExpectKernel adapters over ctnetlink (raw netlink on the hot paths).
//
// # Goroutines and owners
//
// Run owns every goroutine of the engine (an errgroup: the first fatal
// error or the end of ctx stops them all, and Run returns after the last):
//
//	goroutine        runs                    takes e.mu for
//	event reader     Kernel.Events→onEvents  one netlink batch: cache, queue to the peer
//	recvLoop ×links  Channel.Recv→handleDatagram  one datagram: FTFW receive, apply/queue
//	                                         (then waits while the inject queue is past its mark)
//	txLoop           Session.Poll→sendAll    ≤512 messages per hold, sends without it
//	injectLoop       injectQ→Kernel.Commit   taking the queue; decoding its payloads and the
//	                                         writes (4096 at a time) run without it
//	  its recorder   one written chunk       recording it in the internal cache (a walk), while
//	                                         the next chunk is written; the inject call that
//	                                         starts it waits for it (eventfilter.go)
//	maintLoop        every 100 ms            timers: overrun resync, purge, link failover,
//	                                         bounds (limits.go), convergence (converge.go)
//	bulkLoop         peer-requested bulks    a walk (see below), ≤1 per second
//	refreshLoop      refresh passes          walks; the kernel dump runs without it
//	digestLoop       MASTER digests          O(1): digests are kept per change
//	expEventsLoop    expectation events      one batch (only with an ExpectKernel)
//	start-up         initial resync, RESYNC  a walk; then closes Ready (the dump waits for
//	                                         the event subscription, Subscribed)
//
// The API (Commit, Flush, SetMaster, SetFilter, Resync, BulkSend,
// RequestResync, SchedulePurge, AdoptPeer, Status, Stats, Entries,
// PeerState, Consistency) runs on the caller's goroutine under the same
// rules. State: what New sets is immutable; the active link and Run's flag
// are atomics; the last reject log time and per-link reject counts belong
// to maintLoop; commitMu serialises Commit and resyncMu the kernel dumps
// (neither is held with e.mu); everything else (both caches, the Session,
// counters, the inject queue, timers, the filter, the convergence,
// digest, readiness and expectation state) is guarded by e.mu.
//
// Every hold of e.mu is bounded: the hot paths above handle one batch,
// one datagram or 512 messages. The O(n) work (the resync merge of a
// kernel dump, bulk send, commit snapshot, a RESYNC request's convergence
// round, refresh and convergence passes, the consistency check's repairs,
// purge, Entries, AdoptPeer, the injector's cache update) walks in chunks
// of 1024 entries and releases e.mu between two chunks (walk.go), so a
// kernel event batch waits for at most one chunk (a median of 0.2-0.8 ms
// at 100,000 entries on the 2-core lab machine) whatever the table size,
// and the event reader never waits for a whole walk
// (TestIntakeDuringWalks). Kernel writes and dumps, and socket sends,
// never run under e.mu. Still O(n) under one hold, bounded by the resend
// queue (ResendQueueSize, 131,072 by default): the Session's re-queueing
// of every un-ACKed state when the peer restarts (HELLO) and the answer
// to a NACK reaching into states the full queue dropped.
//
// # Wire format (conntrackd 1.4.7, version 1)
//
// A datagram carries one or more messages, each 4-byte aligned, packed
// while the datagram stays strictly below MTU-28 bytes:
//
//	 0        1        2        3
//	+--------+--------+--------+--------+
//	|ver|type| flags  |   len (BE16)    |   ver = 1; len includes the header
//	+--------+--------+--------+--------+
//	|           seq (BE32)              |
//	+--------+--------+--------+--------+
//	| from (BE32), to (BE32)            |   ACK, NACK, RESYNC only
//	+-----------------------------------+
//	| TLVs: len (BE16, unpadded), type (BE16), payload, zero pad
//
// Data messages (CT_NEW, CT_UPD, CT_DEL) carry the original tuple and the
// state: status, L4 protocol, ports, TCP/SCTP/DCCP state, window scales,
// SCTP vtags, DCCP role, ICMP type/code/id, timeout, mark, SNAT/DNAT
// address and port, sequence adjustment, helper, labels and zone.
// NTA_SPAT_PORT, NTA_DPAT_PORT and NTA_ICMP_ID are in the sender's native
// byte order (little-endian from x86); WireOptions has knobs for big-endian
// peers, for the reversed IPv4 NAT addresses of <= 1.4.6 and for older
// peers' highest attribute number. Malformed input is rejected with a
// counted Reason, never a panic. Expectations travel as EXP_NEW/UPD/DEL
// with the NTA_EXP_* attributes (wire_exp.go, expect.go) when an
// ExpectKernel is given (sync.expectations); without one, received ones
// are counted as "expectation" and dropped. A kernel UPDATE event that leaves out labels or
// protocol info keeps the cached ones (eventmerge.go), so labels reach a
// conntrackd peer with every state.
//
// # Reliability (FTFW)
//
// Every message consumes a sequence number, seeded from Unix time. The
// receiver ACKs every ACKWindow (300) in-order messages and after 1 s of
// idle transmission, NACKs gaps [expected, seq-1], and drops old
// messages. The sender keeps sent states and control messages in a bounded
// resend queue until ACKed; a NACK re-queues them, and states are rebuilt
// from the current internal cache at transmission, so a retransmission
// never resurrects an old state. HELLO/HELLO_BACK handle restarts: a
// restarted node's new sequence is accepted and it asks for a RESYNC, which
// the peer answers with its whole internal cache. ALIVE keeps the link
// busy, so a lost last message is always detected. NOTRACK sends each
// state once and only counts losses.
//
// Flow control, with nothing new on the wire: a receiver whose inject
// queue is near its bound stops reading its socket (limits.go,
// waitInjectRoom), so it stops ACKing; a sender whose peer acknowledges
// keeps at most its send window (32,768 states, within the resend queue)
// un-ACKed and waits (session.go, "Flow control"). So a burst faster than
// the peer's kernel neither overflows the resend queue nor turns a NACK
// into a whole-table bulk. A peer that stops ACKing stalls the sender at
// most 3 s. In NOTRACK the inject queue drops at its bound instead, and
// schedules a resync.
//
// # Resync semantics
//
// Resync dumps the kernel into the internal cache and sends nothing
// (conntrackd -R; BulkSend follows it on a new master). After a netlink
// overrun the engine runs the same dump and also queues every difference
// to the peer (new, changed and gone entries), since events were lost.
// The dump is merged as it is read (Kernel.DumpEach, one batch per hold
// of e.mu); an entry it has is marked in its cache slot (cfSeen), and a
// sweep at the end removes the unmarked ones and clears the marks, so a
// resync never holds the table twice (at 1,000,000 entries, a dump as
// one slice and its map of seen keys were 660 MB).
// It runs OverrunResyncDelay after the last overrun, so a storm gets one
// dump, but no later than ten delays after the first, so a storm that
// never pauses still gets one.
// Commit writes the external cache to
// the kernel in one batched Kernel.Commit with the remaining timeouts.
// Kernel events flagged Own (the daemon's own writes) update the internal
// cache but are not sent to the peer. The Linux adapter drops its own NEW
// and UPDATE events in the kernel with a socket filter (only own DESTROY
// events arrive); the injector then records what it wrote itself
// (eventfilter.go, ctnetlink/ownfilter_linux.go), and the engine's Commit leaves
// the NEW and UPDATE groups while it writes, then reconciles with a dump
// (commitquiet.go).
//
// # Which flows are replicated (filter.go)
//
// Every flow the node forwards, whatever address it was sent to; not the
// flows that terminate on the node or were opened by it. Filter.Local
// decides from the NAT'd tuples against the node's addresses and every
// VIP of the pair (both nodes hold them at different times): the reply
// tuple's source is the host that really answers, so a port forward to a
// VIP (reply source: the inside host) is forwarded and SSH to the VIP
// (reply source: the VIP) is local; the original source is the opener, so
// masquerade to a VIP is forwarded and the node's own BGP session is local.
//
// # Freshness of long-lived flows (refresh.go)
//
// The kernel extends a flow's timeout on every packet without an event, so
// the peer's copy (injected with the timeout it was sent with, or cached
// with it in commit mode) runs down while the flow lives on here. A
// refresh pass re-sends, as CT_UPD with the current state and timeout, each
// internal-cache entry whose peer copy has used half of its life and whose
// kernel entry outlives that copy. Why the sender, not the receiver: only
// the node that sees the traffic knows the flow is alive; a receiver that
// extended its copies on its own would keep dead flows (and their NAT
// bindings) forever, which is the opposite failure. Cost, bounded and
// measured (TestRefreshKeepsLongLivedFlows): a live flow is re-sent at most
// once per half of its timeout, about 61 bytes on the wire, so 10,000 UDP
// flows at the 120 s stream timeout cost about 10 KB/s and 10,000
// established TCP flows (5 days) a few bytes/s; an idle flow is never
// re-sent and expires on both nodes. A pass dumps the kernel only when an
// entry is due (at most every second, at least every RefreshInterval), and
// re-sends at most RefreshBurst states; an entry looked at and found not
// fresher is looked at again half-way to its copy's end, so the injected
// copies on a backup (never fresher than what was sent) cost a logarithmic
// number of looks and nothing on the wire.
//
// # A returning node converges (converge.go)
//
// In direct-inject mode a BACKUP that asks the peer for its table (at
// start, on becoming BACKUP) treats the entries it holds as unconfirmed;
// each state the peer sends confirms its key, and once the answer is
// complete (request sent, peer alive, no state for 3 s, or 15 s when the
// peer sent nothing) the unconfirmed entries are deleted from the kernel:
// flows closed while the node was away do not come back with their stale
// NAT bindings, nor get bulk-sent back to the peer on the next takeover.
// Becoming MASTER first abandons the round.
//
// # Continuous consistency check (digest.go, cache_digest.go)
//
// A fwpair extension, off unless ConsistencyInterval is set (the appliance
// leaves it off with a conntrackd peer): the MASTER sends per-bucket
// digests of its table, kept incrementally on every cache change; the
// BACKUP asks for buckets that differ twice in a row, the MASTER re-sends
// them through the reliable session, and entries of such a bucket the
// MASTER did not re-send are deleted. A bucket that does not converge is
// asked for with exponential backoff. Measured: an entry deleted on the
// BACKUP is back within about 2-3 s at a 2 s period.
//
// # File map
//
//	engine.go           Engine: Run and its loops, Commit, Flush, status
//	walk.go             whole-table walks in chunks that release the engine lock
//	session.go          the FTFW session (sequence, ACK/NACK, resend queue;
//	                    the TX queue's marks live in the cache's slots)
//	notrack.go          the NOTRACK session
//	seqsanity.go        FTFW receive-sequence sanity (restarts, replays)
//	wire.go             the conntrackd 1.4.7 message codec
//	validate.go         checks on received states (the sync segment is not trusted)
//	limits.go           bounds on what a peer can make the engine hold or do
//	auth.go             optional HMAC on every datagram
//	channel.go          Channel, MemChannel (tests); channel_linux.go: UDP
//	cache.go            the internal and external caches
//	flow.go             the conntrack model's names (aliases) and the Kernel interface
//	filter.go           which flows are replicated
//	filter_addrset.go   the filter's address sets (no Prefix.Contains per flow)
//	eventmerge.go       merging partial kernel UPDATE events into full states
//	wire_exp.go, expect.go  expectations: codec, engine
//	refresh.go          keeping replicated entries alive on the peer
//	converge.go         a returning BACKUP deletes what the peer no longer has
//	digest.go, cache_digest.go  the optional consistency check
//	eventfilter.go      the injector records what it wrote (instead of the echo),
//	                    a chunk at a time while it writes the next
//	injectqueue.go      the direct-inject queue: wire payloads, no pointers
//	commitquiet.go      Commit, and a returning node's inject backlog, without their
//	                    own events; EventGap reconciles
//	adapters_linux.go   the ctnetlink adapters implement the engine's interfaces
//
// The kernel side lives in ctsync/ctnetlink, a leaf package: the conntrack
// model (Flow, Key, Event, Expect, ...; flow.go gives them their ctsync
// names), the ctnetlink codec, the raw netlink sockets, LinuxKernel (the
// Kernel: batched commit, dump, events, the own-event socket filter,
// CommitQuiet) and LinuxExpect (the ExpectKernel). Its test fixtures
// (flow builders, a kernel in a lab namespace, conntrack(8) as an oracle)
// are in ctsync/ctnetlink/ctnetlinktest. The engine's test fakes (an
// in-memory conntrack table, with ageing, quiet-commit and own-event
// variants, and an expectation table) are in ctsync/ctsynctest, which
// imports only ctnetlink so that ctsync's own tests share them;
// harness_test.go runs engines on them over MemNetwork links.
//
// # Limitations
//
//   - NTA_SYNPROXY is received and ignored; window scales are sent only when known (conntrackd sends them only
//     with TCPWindowTracking). conntrackd always sends NTA_SYNPROXY for
//     entries created through ctnetlink; the golden test strips it.
//   - Expectations are sent as they appear and disappear, not in bulk
//     sends, resyncs or the consistency check (they live minutes); the
//     kernel reports no event when a helper's NAT changes a master's
//     sequence adjustment (an FTP PORT rewritten to the VIP), so the
//     master is read again (a kernel-filtered dump, not a GET, which got
//     no answer) on each expectation NEW and sent ahead of it: a mangling
//     that lands after that read is caught only by a later UPDATE.
//   - As in conntrackd, FTFW assumes one peer (one receive sequence), so
//     multicast with more than two nodes mixes the loss accounting.
//   - A duplicate of an old HELLO message delayed past the end of the
//     handshake is taken for a peer restart (as in conntrackd); the only
//     cost here is a retransmission of the un-ACKed messages.
//   - States dropped from a full resend queue are remembered by key (at
//     least 65536 keys) so a NACK can still be answered; beyond that the
//     whole internal cache is sent, which cannot carry deletions.
package ctsync
