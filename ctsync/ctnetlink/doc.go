// Package ctnetlink reads and writes the Linux conntrack table for the sync
// engine (ctsync) and defines the conntrack model both share: Flow (one
// entry as conntrackd replicates it), its Key and Tuple, NAT and SeqAdj,
// Event, CommitResult and the expectation types (Expect, ExpectEvent).
// ctsync uses these types under the same names (type aliases). The package
// is a leaf: it imports no other package of the module.
//
// # What it encodes
//
// ctnetlink messages (NFNL_SUBSYS_CTNETLINK) with the kernel's uapi
// vocabulary (netlink.go): conntrack requests, built by appending to a
// caller-owned buffer so that a batch of about a thousand is encoded
// without allocation and sent in one write (encode.go: create, update,
// delete, flush, dump), and conntrack messages decoded into a Flow without
// allocating, except for labels and a helper name (decode.go: dump replies
// and events, the NAT bindings derived from the reply tuple as conntrackd
// does). The encoder applies the kernel's rules for creating and updating
// entries (docs/kernel-notes.md): a create carries a timeout and the plain
// inverse of the original as its reply tuple, with the NAT binding in
// CTA_NAT_SRC/DST for the kernel to translate; the status always has
// CONFIRMED and never a bit the kernel refuses to change; an update
// carries no NAT and no helper. What the kernel would refuse with EINVAL
// is refused before a byte is written, so one bad flow never spoils a
// batch. Expectations (NFNL_SUBSYS_CTNETLINK_EXP) are few: they are
// encoded with mdlayher/netlink's attribute encoder and decoded with
// ti-mo/conntrack (expect_linux.go). Malformed kernel input gives an
// error, never a panic (fuzzed).
//
// # Which sockets
//
// LinuxKernel (kernel_linux.go) opens three raw NETLINK_NETFILTER sockets,
// in the current network namespace or in KernelOptions.NetNS, registered
// with Go's poller (socket_linux.go):
//
//   - the writer: Commit, CommitQuiet, Delete, Flush, in batches of
//     KernelOptions.BatchSize requests per write in errors-only mode (only
//     the last request of a batch asks for an ACK);
//   - the dump socket: Dump, every family and zone;
//   - the event socket: Events, subscribed to the NEW, UPDATE and DESTROY
//     groups only while Events runs, drained with recvmmsg(2); on ENOBUFS
//     its buffer grows and an EventOverrun tells the caller to dump again.
//
// LinuxExpect (expect_linux.go) has its own sockets for expectation writes,
// master reads and expectation events.
//
// # Own events
//
// The kernel stamps an event with the netlink port id of the socket whose
// request caused it (0 for traffic and timeouts). Events stamped with the
// writer's port id are marked Event.Own: the sync engine does not echo
// them to the peer. Unless KernelOptions.OwnUpdateEvents is set, a classic
// BPF program on the event socket drops the writer's own NEW and UPDATE
// events in the kernel, before they are queued (ownfilter_linux.go), so a
// node that injects what its peer sends does not read back every entry it
// wrote; a caller that needs to know what was written uses CommitReport.
// Own DESTROY events always arrive. CommitQuiet goes further for a large
// commit: the event socket leaves the NEW and UPDATE groups while it
// writes, so that the kernel does not even build those events, and an
// EventGap then tells the caller that traffic events of that window may be
// missing.
//
// # Tests
//
// Codec tests are pure (golden bytes captured from the kernel, fuzzing);
// the adapters are tested against a real conntrack table in a namespace
// the test builds, with conntrack(8) as an independent oracle
// (ctnetlinktest holds those fixtures).
package ctnetlink
