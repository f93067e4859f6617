package ctnetlink

import (
	"fmt"
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
	// Proto is the IP protocol number (ProtoTCP, ...).
	Proto uint8
}

// IP protocol numbers the codec treats specially (values of Tuple.Proto).
const (
	ProtoICMP    = 1
	ProtoTCP     = 6
	ProtoUDP     = 17
	ProtoDCCP    = 33
	ProtoGRE     = 47
	ProtoICMPv6  = 58
	ProtoSCTP    = 132
	ProtoUDPLite = 136
)

// Valid reports whether t has two addresses of one family.
func (t *Tuple) Valid() bool {
	return t.Src.IsValid() && t.Dst.IsValid() && t.Src.Is4() == t.Dst.Is4()
}

// Key identifies a flow in the caches: the original tuple and the zone.
type Key struct {
	Tuple
	Zone uint16
}

// String is the tuple as "proto src:sport -> dst:dport" (ICMP: id, type
// and code instead of ports), with the zone when it is not 0: for logs.
func (k Key) String() string {
	var s string
	switch k.Proto {
	case ProtoICMP, ProtoICMPv6:
		s = fmt.Sprintf("%d %s -> %s id %d type %d code %d", k.Proto, k.Src, k.Dst, k.ICMPID, k.ICMPType, k.ICMPCode)
	default:
		s = fmt.Sprintf("%d %s -> %s", k.Proto, netip.AddrPortFrom(k.Src, k.SrcPort), netip.AddrPortFrom(k.Dst, k.DstPort))
	}
	if k.Zone != 0 {
		s += fmt.Sprintf(" zone %d", k.Zone)
	}
	return s
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
	// Status holds the kernel's IPS_* bits (IPSSrcNAT, ...).
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
	// while on purpose (LinuxKernel.CommitQuiet, a commit that does not pay
	// for its own events): traffic events of that window may be missing,
	// so the table must be dumped again as after an overrun. It carries no
	// flow.
	EventGap
)

// Event is one conntrack event from the kernel.
type Event struct {
	Type EventType
	Flow Flow
	// Own is true when the event was caused by a write of this adapter's
	// writer socket (commit, inject, delete, flush): the sync engine does
	// not echo such events back to the peer.
	Own bool
}

// IPS_* bits of Flow.Status that callers look at or set
// (nf_conntrack_common.h).
const (
	IPSSeenReply = 1 << 1
	IPSAssured   = 1 << 2
	IPSConfirmed = 1 << 3
	IPSSrcNAT    = 1 << 4
	IPSDstNAT    = 1 << 5
)

// CommitResult reports a batched write into the kernel.
type CommitResult struct {
	Created, Updated, Deleted int
	// Failed counts failures by reason (errno name, e.g. "EINVAL").
	Failed   map[string]int
	Duration time.Duration
}
