package ctnetlink

// This file holds the ctnetlink vocabulary (values from the kernel's uapi
// headers linux/netlink.h, linux/netfilter/nfnetlink.h,
// nfnetlink_conntrack.h and nf_conntrack_common.h) and the low-level framing
// shared by the request encoder (encode.go) and the message decoder
// (decode.go). It is pure: no sockets, usable on any platform.
//
// Byte order: netlink and attribute headers are in host order (little-endian
// on the target machines), ctnetlink payloads (addresses, ports, u16/u32
// values) are big-endian, except u8 values.

import (
	"encoding/binary"
	"errors"
)

// Netlink framing.
const (
	nlmsgHdrLen  = 16
	nfgenHdrLen  = 4
	nlaHdrLen    = 4
	nlmsgErrLen  = 4 // struct nlmsgerr: int error, then the request's header
	nlaFNested   = 0x8000
	nlaTypeMask  = 0x3fff // NLA_TYPE_MASK: strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
	nlmsgError   = 0x2
	nlmsgDone    = 0x3
	nlmsgOverrun = 0x4

	nlmFRequest = 0x1
	nlmFMulti   = 0x2
	nlmFAck     = 0x4
	nlmFDump    = 0x300 // NLM_F_ROOT|NLM_F_MATCH
	nlmFExcl    = 0x200
	nlmFCreate  = 0x400
)

// nfnetlink / ctnetlink message types.
const (
	nfnlSubsysCtnetlink = 1
	nfnetlinkV0         = 0

	ipctnlMsgCtNew    = 0
	ipctnlMsgCtGet    = 1
	ipctnlMsgCtDelete = 2

	nlAFInet  = 2
	nlAFInet6 = 10
)

// Top-level CTA_* attributes.
const (
	ctaTupleOrig   = 1
	ctaTupleReply  = 2
	ctaStatus      = 3
	ctaProtoinfo   = 4
	ctaHelp        = 5
	ctaNATSrc      = 6
	ctaTimeout     = 7
	ctaMark        = 8
	ctaNATDst      = 13
	ctaSeqAdjOrig  = 15
	ctaSeqAdjReply = 16
	ctaZone        = 18
	ctaLabels      = 22
)

// Nested attributes.
const (
	ctaTupleIP    = 1
	ctaTupleProto = 2

	ctaIPv4Src = 1
	ctaIPv4Dst = 2
	ctaIPv6Src = 3
	ctaIPv6Dst = 4

	ctaProtoNum      = 1
	ctaProtoSrcPort  = 2
	ctaProtoDstPort  = 3
	ctaProtoICMPID   = 4
	ctaProtoICMPType = 5
	ctaProtoICMPCode = 6
	ctaProtoICMP6ID  = 7
	ctaProtoICMP6Typ = 8
	ctaProtoICMP6Cod = 9

	ctaProtoinfoTCP  = 1
	ctaProtoinfoDCCP = 2
	ctaProtoinfoSCTP = 3

	ctaProtoinfoTCPState      = 1
	ctaProtoinfoTCPWScaleOrig = 2
	ctaProtoinfoTCPWScaleRepl = 3
	ctaProtoinfoTCPFlagsOrig  = 4
	ctaProtoinfoTCPFlagsRepl  = 5

	ctaProtoinfoDCCPState = 1
	ctaProtoinfoDCCPRole  = 2

	ctaProtoinfoSCTPState     = 1
	ctaProtoinfoSCTPVTagOrig  = 2
	ctaProtoinfoSCTPVTagReply = 3

	ctaHelpName = 1

	ctaNATv4MinIP = 1
	ctaNATv4MaxIP = 2
	ctaNATProto   = 3
	ctaNATv6MinIP = 4
	ctaNATv6MaxIP = 5

	ctaProtoNATPortMin = 1
	ctaProtoNATPortMax = 2

	ctaSeqAdjCorrectionPos = 1
	ctaSeqAdjOffsetBefore  = 2
	ctaSeqAdjOffsetAfter   = 3
)

// IPS_* status bits (nf_conntrack_common.h); the ones callers set or look
// at (IPSSeenReply, ...) are exported in flow.go.
const (
	nlIPSExpected    = 1 << 0
	nlIPSSeqAdjust   = 1 << 6
	nlIPSSrcNATDone  = 1 << 7
	nlIPSDstNATDone  = 1 << 8
	nlIPSDying       = 1 << 9
	nlIPSTemplate    = 1 << 11
	nlIPSUntracked   = 1 << 12
	nlIPSOffload     = 1 << 14
	nlIPSHWOffload   = 1 << 15
	nlIPSNATMask     = IPSSrcNAT | IPSDstNAT
	nlIPSNATDoneMask = nlIPSSrcNATDone | nlIPSDstNATDone

	// nlIPSUnchangeable mirrors the kernel's IPS_UNCHANGEABLE_MASK: bits a
	// request must not try to set (CONFIRMED is added back on writes).
	nlIPSUnchangeable = nlIPSNATDoneMask | nlIPSNATMask | nlIPSExpected | IPSConfirmed |
		nlIPSDying | nlIPSSeqAdjust | nlIPSTemplate | nlIPSUntracked | nlIPSOffload | nlIPSHWOffload
)

// TCP conntrack flags (struct nf_ct_tcp_flags).
const (
	nlTCPFlagWindowScale = 0x01
	nlTCPFlagBeLiberal   = 0x08
)

// nlHasPorts reports whether the protocol's tuple carries ports
// (CTA_PROTO_SRC_PORT / CTA_PROTO_DST_PORT).
func nlHasPorts(proto uint8) bool {
	switch proto {
	case ProtoTCP, ProtoUDP, ProtoDCCP, ProtoSCTP, ProtoUDPLite, ProtoGRE:
		return true
	}
	return false
}

// Decoding errors. They never carry the input; callers count them.
var (
	errNLTruncated = errors.New("ctnetlink: truncated message")
	errNLBadAttr   = errors.New("ctnetlink: malformed attribute")
	errNLNoTuple   = errors.New("ctnetlink: no original tuple")
	errNLBadAddr   = errors.New("ctnetlink: bad address")
)

// nlMsgHeader is a decoded struct nlmsghdr.
type nlMsgHeader struct {
	Len   uint32
	Type  uint16
	Flags uint16
	Seq   uint32
	PID   uint32
}

// nlAlign rounds n up to the netlink 4-byte alignment.
func nlAlign(n int) int { return (n + 3) &^ 3 }

// nlNextMessage splits the first netlink message off b. It returns the header,
// the payload (after the header) and the rest of b. ok is false when b holds
// no complete, well-formed message.
func nlNextMessage(b []byte) (h nlMsgHeader, payload, rest []byte, ok bool) {
	if len(b) < nlmsgHdrLen {
		return h, nil, nil, false
	}
	h.Len = binary.NativeEndian.Uint32(b[0:4])
	h.Type = binary.NativeEndian.Uint16(b[4:6])
	h.Flags = binary.NativeEndian.Uint16(b[6:8])
	h.Seq = binary.NativeEndian.Uint32(b[8:12])
	h.PID = binary.NativeEndian.Uint32(b[12:16])
	if h.Len < nlmsgHdrLen || uint64(h.Len) > uint64(len(b)) {
		return h, nil, nil, false
	}
	payload = b[nlmsgHdrLen:h.Len]
	next := nlAlign(int(h.Len))
	if next > len(b) {
		next = len(b)
	}
	return h, payload, b[next:], true
}

// nlAttrIter walks a run of netlink attributes without allocating.
type nlAttrIter struct {
	b    []byte
	typ  uint16
	data []byte
	err  error
}

// next advances to the next attribute; it returns false at the end or on a
// malformed attribute (then err is set).
func (it *nlAttrIter) next() bool {
	if len(it.b) == 0 {
		return false
	}
	if len(it.b) < nlaHdrLen {
		it.err = errNLBadAttr
		return false
	}
	l := int(binary.NativeEndian.Uint16(it.b[0:2]))
	if l < nlaHdrLen || l > len(it.b) {
		it.err = errNLBadAttr
		return false
	}
	it.typ = binary.NativeEndian.Uint16(it.b[2:4]) & nlaTypeMask
	it.data = it.b[nlaHdrLen:l]
	n := nlAlign(l)
	if n > len(it.b) {
		n = len(it.b)
	}
	it.b = it.b[n:]
	return true
}
