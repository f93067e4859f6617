package ctnetlink

import "net/netip"

// ExpectKey identifies an expectation in the caches: its expected tuple
// (addresses, ports, protocol) and the original tuple of its master. Two
// expectations of one master for the same tuple are one expectation, as in
// the kernel.
type ExpectKey struct {
	Master Tuple
	Tuple  Tuple
}

// ExpectNAT is the NAT binding an expected connection gets when it is set
// up (the helper's saved address and port) and its direction (0: original,
// 1: reply), as the kernel's CTA_EXPECT_NAT.
type ExpectNAT struct {
	Addr      netip.Addr // invalid when the expectation has no NAT
	Port      uint16
	Proto     uint8
	Direction uint32
}

// Expect is the replicated state of one conntrack expectation: what
// conntrackd 1.4.7 puts in its EXP messages. Master holds only the master
// conntrack's addresses, ports and protocol; Mask the mask of the expected
// tuple (addresses and ports; a zero port is a wildcard).
type Expect struct {
	ExpectKey
	Mask    Tuple
	Timeout uint32 // remaining seconds when read; 0: not sent
	Flags   uint32 // NF_CT_EXPECT_* bits
	Class   uint32
	// HasClass says Class was reported (the kernel always does).
	HasClass bool
	NAT      ExpectNAT
	Helper   string
	Fn       string
}

// ExpectEvent is one expectation event from the kernel.
type ExpectEvent struct {
	Type   EventType // EventNew or EventDestroy
	Expect Expect
	// Own: created or deleted by this daemon (not echoed to the peer).
	Own bool
	// Master, when set, is the master conntrack's state read right after
	// a NEW event: the helper's NAT may just have changed its sequence
	// adjustment, which no conntrack event reports.
	Master *Flow
}
