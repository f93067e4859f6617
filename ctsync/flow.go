package ctsync

import (
	"context"
	"net/netip"
	"time"
)

// Tuple is the original-direction tuple of a connection: what identifies it
// on the wire (conntrackd sends only this one; the reply is derived).
type Tuple struct {
	Src, Dst netip.Addr
	// SrcPort and DstPort hold the ports for TCP, UDP, SCTP, DCCP and UDPLite.
	SrcPort, DstPort uint16
	// ICMPID, ICMPType and ICMPCode are set for ICMP and ICMPv6 only.
	ICMPID             uint16
	ICMPType, ICMPCode uint8
	Proto              uint8
}

// Key identifies a flow in the caches: the original tuple and the zone.
type Key struct {
	Tuple
	Zone uint16
}

// NAT is one NAT binding as conntrackd replicates it: the translated address
// (the reply tuple's destination for SNAT, its source for DNAT) and, when the
// port was changed too, the translated port.
type NAT struct {
	Addr netip.Addr
	Port uint16 // 0 when the port is not translated
}

// SeqAdj is one direction of the NAT sequence adjustment (CTA_SEQ_ADJ_*).
type SeqAdj struct {
	CorrectionPos, OffsetBefore, OffsetAfter uint32
}

// Flow is the replicated state of one conntrack entry: everything conntrackd
// 1.4.7 puts on the wire, nothing more (no counters, no IDs).
type Flow struct {
	Key
	// Status holds the kernel's IPS_* bits.
	Status uint32
	// Timeout is the remaining lifetime in seconds when the state was read.
	Timeout uint32
	Mark    uint32

	// Protocol state: TCP_CONNTRACK_*, SCTP_CONNTRACK_*, CT_DCCP_* values.
	// HasProtoState tells a zero state (e.g. TCP NONE) from an absent one.
	ProtoState                    uint8
	HasProtoState                 bool
	TCPWScaleOrig, TCPWScaleReply uint8
	HasTCPWScale                  bool
	DCCPRole                      uint8
	SCTPVTagOrig, SCTPVTagReply   uint32

	SNAT, DNAT NAT
	// SeqAdjOrig and SeqAdjReply are meaningful only when HasSeqAdj.
	SeqAdjOrig, SeqAdjReply SeqAdj
	HasSeqAdj               bool

	// Labels are the connlabel bits, nil when none is set.
	Labels []byte
	// Helper is the conntrack helper name, "" when none.
	Helper string
}

// Kernel is the sync engine's view of the local conntrack table. The Linux
// implementation talks ctnetlink; tests use an in-memory table.
type Kernel interface {
	// Dump reads every entry of the table (resync).
	Dump(ctx context.Context) ([]Flow, error)
	// Commit writes flows into the table in batches: a missing entry is
	// created, an existing one is updated to the given state.
	Commit(ctx context.Context, flows []Flow) (CommitResult, error)
	// Delete removes entries by key; missing entries are not an error.
	Delete(ctx context.Context, keys []Key) (CommitResult, error)
	// Events delivers kernel NEW/UPDATE/DESTROY events until ctx ends.
	// Overrun is reported through EventOverrun so the engine can resync.
	Events(ctx context.Context, sink func([]Event)) error
	Close() error
}

// EventType says what happened to a flow in the kernel.
type EventType uint8

const (
	EventNew EventType = iota + 1
	EventUpdate
	EventDestroy
	// EventOverrun means events were lost (ENOBUFS): the table must be
	// dumped again to get back in sync. It carries no flow.
	EventOverrun
	// EventGap means the listener left the NEW and UPDATE groups for a
	// while on purpose (a commit that does not pay for its own events,
	// commitquiet.go): traffic events of that window may be missing, so
	// the table is dumped again as after an overrun. It carries no flow.
	EventGap
)

// Event is one conntrack event from the kernel.
type Event struct {
	Type EventType
	Flow Flow
	// Own is true when the entry was written by this daemon (commit or
	// inject) and so must not be echoed back to the peer.
	Own bool
}

// CommitResult reports a batched write into the kernel.
type CommitResult struct {
	Created, Updated, Deleted int
	// Failed counts failures by reason (errno name, e.g. "EINVAL").
	Failed   map[string]int
	Duration time.Duration
}
