// Package vrrp is fwpair's VRRP engine, version 2 (RFC 3768) and version 3
// (RFC 9568, over IPv4 and IPv6): it elects which node of the pair is
// MASTER, holds the virtual addresses (VIPs) there, and announces them
// with gratuitous ARP (IPv4) or unsolicited Neighbor Advertisements
// (IPv6). It replaces keepalived and interoperates with it (adverts are
// wire-compatible with keepalived 2.2.7 in vrrp_version 2, including its
// simple-password authentication, and in vrrp_version 3).
//
// # Layers
//
// The package has three layers, each testable on its own:
//
//  1. Pure protocol code, no I/O, no timers, no goroutines:
//     advert.go (v2 Advertisement codec: ParseAdvertisement, AppendBinary,
//     Checksum), advert_v3.go (AdvertisementV3: centisecond Max Adver
//     Int, checksum over the IPv4/IPv6 pseudo-header, no authentication;
//     SkewTimeV3, MasterDownIntervalV3), ndisc.go (the unsolicited
//     Neighbor Advertisement), validate.go and validate_v3.go (the §7.1
//     receive rules and the DiscardReason counters), timers.go (v2
//     Skew_Time, Master_Down_Interval),
//     fsm.go (Router: one instance's state machine) and syncgroup.go
//     (SyncGroup: the instances of a node moving together). Machines take
//     the current time and an Event and return Actions plus the next
//     deadline: Step(now, ev) ([]Action, time.Time).
//  2. The engine (group.go: Group and its API; engine.go: the event loop;
//     actuator.go: the actuator): Group owns one event loop, one
//     timer, a reader goroutine per socket, an actuator goroutine (hooks,
//     VIPs, GARP) and a link watcher, and talks to the system only through
//     the small interfaces Conn/Dialer, Addresser, Announcer and
//     LinkSource (adapters.go). vrrptest provides in-memory versions for
//     tests under testing/synctest.
//  3. Linux adapters (platform_linux.go, platform_ipv6_linux.go,
//     ndisc_linux.go): a raw IP protocol 112 socket per interface and
//     family (golang.org/x/net/ipv4 and ipv6; SO_BINDTODEVICE, 224.0.0.18
//     or ff02::12 joined on that interface only, TTL/hop limit 255,
//     multicast loop off, TTL/destination/interface control messages; the
//     IPv6 source is the interface's link-local address), VIPs through a
//     vishvananda/netlink
//     Handle bound to the namespace (idempotent add/remove with prefix and
//     label; IPv6 ones without duplicate address detection), gratuitous
//     ARP requests through AF_PACKET (mdlayher/packet, arp, ethernet),
//     Neighbor Advertisements (Router and Override flags, to ff02::1, hop
//     limit 255) through a raw ICMPv6 socket, and link state read through
//     that Handle whenever an
//     rtnetlink link notification arrives (plus a slow safety poll).
//
// # Using it
//
//	g, err := vrrp.New(cfg, vrrp.Options{
//		Logger: log,
//		NetNS:  "",  // or "/run/netns/fw1"; see below
//		Callbacks: vrrp.Callbacks{
//			BeforeMaster:    commitConntrack, // runs before the VIPs are added
//			AfterTransition: record,
//		},
//	})
//	go g.Run(ctx)    // cancel ctx for a graceful stop
//	<-g.Ready()      // sockets open, leftover VIPs removed
//	st := g.Status() // group and per-instance state, counters
//
// Run returns nil after a graceful stop (ctx cancelled: priority-0 adverts
// from every MASTER instance, VIPs removed, sockets closed) and ErrKilled
// after Kill (the network is left exactly as it is, as after SIGKILL; for
// tests and hand-overs). At start Run removes the configured VIPs from
// the interfaces, because a killed predecessor may have left them and
// only a MASTER may hold them.
//
// SetPriority changes an instance's priority in place (no restart, so no
// needless trip through BACKUP). Other settings need a new Group.
//
// # Network namespaces
//
// The Linux adapters work in one network namespace, fixed in New:
// Options.NetNS names it by path; empty means the namespace of the OS
// thread calling New. So a caller can either pass a path, or call New on a
// goroutine locked into the namespace (testenv's NS.Do). Every socket is
// then created on a throwaway OS thread switched into that namespace and
// every rtnetlink request goes through a Handle bound to it, so Run and
// all other methods may be called from any goroutine. Nothing here calls
// the package-level netlink functions or shells out.
//
// # The transition contract
//
// The group state is INIT, BACKUP, MASTER or FAULT. On every change the
// engine queues a Transition (old state, new state, reason, time) for the
// actuator goroutine, which handles them one at a time, in order:
//
//   - to MASTER: the state machine has already sent the first MASTER
//     advert and keeps advertising on schedule whatever happens next.
//     Callbacks.BeforeMaster runs (fwpair commits the replicated conntrack
//     cache here); then the VIPs are added on every instance and the first
//     gratuitous ARP round goes out; the rest of the burst (GARPConfig,
//     default 5 spaced 200 ms) and the optional periodic refresh follow in
//     the background. If the group leaves MASTER meanwhile, the hook's ctx
//     is cancelled, nothing is added, and GARP stops at once. If a VIP
//     cannot be added, the instance goes to FAULT (logged, counted,
//     priority-0 advert) and the group with it: a node never claims MASTER
//     without its addresses. It retries after one Master_Down_Interval.
//   - to any other state: GARP is stopped first, then the VIPs removed.
//   - then Callbacks.AfterTransition is called (for MASTER with VIPsAdded).
//
// Without hooks the engine simply adds the VIPs itself.
//
// # Sync group
//
// All instances of a Config form one sync group (for the reference pair:
// eth0 and eth1). The group is MASTER only when every member is; a member
// falling to BACKUP takes the others along; a member in FAULT (a tracked
// or own link down, or a VIP failure) puts the group in FAULT, the MASTER
// members send priority 0 and no member may become MASTER until it
// recovers. Better than keepalived, when one member of a BACKUP group
// learns that the master is gone (priority 0 received, or its own
// Master_Down timer), the whole group takes over at once instead of
// waiting for every member's own timer: pulling only the master's eth0
// cable costs Skew_Time (~0.6 s), not 3.2 s.
//
// A member's own Master_Down timer does not take the group over while
// another member still hears a master it obeys: one LAN between the nodes
// is cut but the master is alive (a partial partition). The group stays
// BACKUP, never announcing VIPs it would give back, and reports it
// (Status.Partition, a warning log) until the deaf member hears the master
// again. A priority-0 advert on any member lifts the rule. The sync link
// is not used as a signal: it says the peer process is alive, not that it
// is MASTER on a LAN.
//
// Group.SetPreemptHold makes BACKUP members obey a lower-priority master
// instead of preempting it (fwpair holds preemption until the node has the
// peer's connections); with no master heard the group still takes over.
// Callbacks.BeforeReannounce runs when a MASTER hears a lower-priority MASTER
// (a split brain healing), before its gratuitous ARPs.
//
// # VRRPv3
//
// InstanceConfig.Version = 3 selects RFC 9568 per instance. The interval
// is a multiple of 10 ms from 10 ms to 40.95 s; a BACKUP times the master
// out from the interval the master advertises (Master_Adver_Interval),
// not its own. An instance is IPv4 or IPv6, never both (its VIPs' family;
// for IPv6 the first VIP is the virtual router's link-local address);
// IPv4 and IPv6 instances have separate sockets and VRID spaces and may
// share one sync group. The IPv4 checksum is sent over the pseudo-header,
// as keepalived 2.2.7 does by default; the message-only form (RFC 9568's
// reading, keepalived's v3_checksum_as_v2) is accepted too.
//
// # Accept mode
//
// RFC 9568 §6.1's Accept_Mode is InstanceConfig.NoAccept (accept.go,
// accept_linux.go), for v2 and v3 instances alike. By default a MASTER
// accepts packets addressed to its VIPs (pings, SSH to the VIP), as
// fwpair always did and as keepalived does without vrrp_strict; the
// RFC's default is the opposite. With NoAccept, a MASTER that is not the
// address owner (priority 255) refuses them through an nf_tables table
// of its own, inet fwpair_accept: an input-hook chain dropping packets to
// a set of VIPs, Neighbor Solicitations and Advertisements excepted.
// Only locally delivered packets reach that hook, so ARP, Neighbor
// Discovery, traffic routed through the VIP, DNAT port forwards on a VIP
// and replies to connections SNATed to a VIP are unaffected. The table
// is installed atomically when Run starts (before any VIP can be added;
// a VIP that is not assigned is never delivered locally, so it can stay
// while BACKUP), checked every 2 s and put back if a firewall reload
// ("flush ruleset") removed it, and deleted on a graceful stop (after
// Kill it stays, like the VIPs). If it cannot be installed Run fails:
// refusing was asked for, accepting silently would be wrong.
//
// # Timing on a busy machine
//
// A BACKUP that misses three adverts takes over, so at 50 ms adverts a
// MASTER late by 150 ms is a false takeover. Two things guard against it.
// Before acting on a Master_Down expiry the event loop handles every
// advert already received, in its queue or still in the kernel's socket
// buffers (ReadPending): a reader goroutine that was not scheduled in
// time cannot cause a takeover. With Options.RealtimePriority the event
// loop and the readers run on OS threads of their own under SCHED_RR,
// and a MASTER's periodic adverts leave from a pacer (pacer.go). The
// pacer does not send them itself when it can avoid it: a real-time
// thread still needs a P of the Go runtime to run Go code when it wakes,
// and on a host whose cores are saturated while the daemon is busy (the
// sync engine replicating flows, the GC) the Ps are held by
// normal-priority threads the load keeps off the CPU, or stopped for the
// GC: adverts were measured 300-580 ms late at 50 ms. So the pacer
// queues each MASTER's next adverts 1 s ahead in an io_uring
// (uring_linux.go, pacer_uring_linux.go), each an absolute
// CLOCK_MONOTONIC timeout linked to the sendmsg of the pre-encoded
// advert: the kernel sends it on time, as task work on the pacer's
// real-time thread, without returning to Go; the Go side only tops the
// queue up. A priority change or leaving MASTER cancels the queued
// adverts, and waits for the kernel to confirm it, before anything else
// is sent, so no paced advert follows a priority-0 one. Without io_uring
// (old kernel, kernel.io_uring_disabled) the pacer thread sends them
// itself, sleeping in ppoll. The pacer sends only the periodic adverts;
// every other one (the first, priority 0, answers to another master)
// still comes from the state machine.
//
// # Deviations and choices
//
//   - FAULT is not in RFC 3768 (keepalived has it). A FAULT instance does
//     not advertise; dragged members of a FAULT group show BACKUP.
//   - A MASTER that hears a lower-priority master answers at once with an
//     advert and re-announces its VIPs (RFC 9568 and keepalived behaviour;
//     RFC 3768 just discards), and a MASTER yielding to a better one sends
//     one last advert (keepalived's higher_prio_send_advert) so that the
//     winner re-announces too. Both heal split brains quickly, ARP caches
//     included.
//   - Adverts whose address list differs from ours are counted
//     (AddressListMismatch) and, unless their priority is 255, discarded
//     as RFC 3768 §7.1 requires (reason "address_list"); keepalived obeys
//     them, so any host on the LAN could take the pair down. Rejected
//     adverts are logged at warning level, at most once per 10 s per
//     interface and reason.
//   - Unicast mode (UnicastPeers) is a keepalived extension: adverts go to
//     each peer, must come from a peer, and their TTL is not checked.
//   - Simple-password authentication (RFC 2338 type 1) is supported for
//     keepalived interop; IP AH (type 2) is not.
//   - By default adverts and GARPs use the interface's own MAC, like
//     keepalived without use_vmac. With InstanceConfig.UseVMAC the MASTER
//     holds the VIPs on a macvlan interface with the RFC's virtual router
//     MAC (vmac.go, vmac_linux.go), so its GARPs, ARP replies and
//     Neighbor Advertisements carry it, and its multicast adverts leave
//     from that MAC too (RFC 9568 §7.2): the frame is built by the engine
//     and written through AF_PACKET on the parent interface
//     (vmac_send_linux.go), so even the first advert, sent before the
//     macvlan exists, has it and the switch learns the virtual MAC's port
//     at once. Unicast adverts (UnicastPeers) still leave through the
//     socket with the interface's MAC.
//   - Neighbor Advertisements set the Router flag (the MASTER is a
//     router); keepalived 2.2.7 sends Override only.
//   - Preempt delay tolerates a lower-priority master for PreemptDelay
//     after first hearing it, then preempts after Master_Down_Interval.
//
// # Counters
//
// Status has, per instance, adverts received and sent, priority-0 adverts
// received and sent, send errors, VIP failures, address-list mismatches
// and discards by reason; per interface, the discards that happen before
// an advert is matched to an instance (length, checksum, version, type,
// unknown VRID, own looped-back advert, wrong interface). DiscardReasons
// lists the reason names.
package vrrp
