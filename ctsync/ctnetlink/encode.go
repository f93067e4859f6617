package ctnetlink

// The ctnetlink request encoder for the commit, inject and delete hot
// paths. It appends complete netlink messages to a caller-owned buffer so a
// batch of ~1024 requests is built without allocation and sent in one write.
//
// The kernel's rules for creating entries (see docs/kernel-notes.md) are applied
// here: a create carries CTA_TIMEOUT and a reply tuple that is the plain
// inverse of the original; CTA_STATUS always has CONFIRMED and never the bits
// the kernel refuses to change (EXPECTED, NAT, DYING, ...); the NAT binding
// goes in CTA_NAT_SRC / CTA_NAT_DST so that the kernel computes the
// translated reply; an update carries no NAT and no helper (EOPNOTSUPP).

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// nlReqKind selects which request nlAppendRequest builds.
type nlReqKind uint8

const (
	// nlReqCreate is IPCTNL_MSG_CT_NEW with NLM_F_CREATE|NLM_F_EXCL and the
	// full state, NAT and helper included.
	nlReqCreate nlReqKind = iota + 1
	// nlReqUpdate is IPCTNL_MSG_CT_NEW without NLM_F_CREATE: it changes an
	// existing entry (ENOENT if missing); no NAT, no helper.
	nlReqUpdate
	// nlReqDelete is IPCTNL_MSG_CT_DELETE by original tuple and zone.
	nlReqDelete
)

// nlEncodeOptions are the per-kernel choices that shape requests.
type nlEncodeOptions struct {
	// tcpWindowTracking sends the window scale factors and lets the kernel
	// track windows; without it TCP entries get IP_CT_TCP_FLAG_BE_LIBERAL in
	// both directions (conntrackd's default, as the windows are unknown).
	tcpWindowTracking bool
	// defaultTimeout replaces a zero Flow.Timeout (the kernel needs one).
	defaultTimeout uint32
}

var (
	errNLFamily     = errors.New("ctnetlink: tuple addresses missing or of mixed families")
	errNLNATFamily  = errors.New("ctnetlink: NAT address family differs from the tuple's")
	errNLICMPType   = errors.New("ctnetlink: ICMP type has no reply type")
	errNLLabelsSize = errors.New("ctnetlink: labels must be 4 to 16 bytes, a multiple of 4")
	errNLHelperName = errors.New("ctnetlink: helper name too long")
)

// nlMaxHelperName is NF_CT_HELPER_NAME_LEN - 1.
const nlMaxHelperName = 15

// nlTupleFamily returns the address family of a tuple, or 0 if invalid.
func nlTupleFamily(t *Tuple) uint8 {
	switch {
	case t.Src.Is4() && t.Dst.Is4():
		return nlAFInet
	case t.Src.Is6() && t.Dst.Is6():
		return nlAFInet6
	}
	return 0
}

// nlValidateFlow checks what the kernel would reject with EINVAL before any
// byte is written, so a bad flow is reported and skipped without spoiling a
// batch.
func nlValidateFlow(f *Flow, kind nlReqKind) error {
	fam := nlTupleFamily(&f.Tuple)
	if fam == 0 {
		return errNLFamily
	}
	switch f.Proto {
	case ProtoICMP:
		if _, ok := nlIcmpReplyType(f.ICMPType); !ok {
			return errNLICMPType
		}
	case ProtoICMPv6:
		if _, ok := nlIcmp6ReplyType(f.ICMPType); !ok {
			return errNLICMPType
		}
	}
	if kind == nlReqDelete {
		return nil
	}
	if kind == nlReqCreate {
		for _, n := range [2]NAT{f.SNAT, f.DNAT} {
			if n.Addr.IsValid() && (n.Addr.Is4() != (fam == nlAFInet)) {
				return errNLNATFamily
			}
		}
		if len(f.Helper) > nlMaxHelperName {
			return errNLHelperName
		}
	}
	if len(f.Labels) > 0 && (len(f.Labels)%4 != 0 || len(f.Labels) > 16) {
		return errNLLabelsSize
	}
	return nil
}

// nlIcmpReplyType maps an ICMP query type to the type of its reply, as the
// kernel's tuple inversion does (only these types can be tracked).
func nlIcmpReplyType(t uint8) (uint8, bool) {
	switch t {
	case 8: // echo request
		return 0, true
	case 0:
		return 8, true
	case 13: // timestamp
		return 14, true
	case 14:
		return 13, true
	case 15: // information request
		return 16, true
	case 16:
		return 15, true
	case 17: // address mask request
		return 18, true
	case 18:
		return 17, true
	}
	return 0, false
}

// nlIcmp6ReplyType is nlIcmpReplyType for ICMPv6.
func nlIcmp6ReplyType(t uint8) (uint8, bool) {
	switch t {
	case 128: // echo request
		return 129, true
	case 129:
		return 128, true
	case 139: // node information query
		return 140, true
	case 140:
		return 139, true
	}
	return 0, false
}

// nlAppendRequest appends one complete ctnetlink request for f to b. flags are
// extra netlink flags (e.g. NLM_F_ACK); NLM_F_REQUEST and, for creates,
// NLM_F_CREATE|NLM_F_EXCL are added here. Deletes use only f.Key. On error
// b is returned unchanged.
func nlAppendRequest(b []byte, kind nlReqKind, f *Flow, seq uint32, flags uint16, o *nlEncodeOptions) ([]byte, error) {
	if err := nlValidateFlow(f, kind); err != nil {
		return b, err
	}
	fam := nlTupleFamily(&f.Tuple)
	msgType := uint16(nfnlSubsysCtnetlink<<8 | ipctnlMsgCtNew)
	flags |= nlmFRequest
	switch kind {
	case nlReqCreate:
		flags |= nlmFCreate | nlmFExcl
	case nlReqDelete:
		msgType = nfnlSubsysCtnetlink<<8 | ipctnlMsgCtDelete
	}

	start := len(b)
	b = nlAppendMsgHeader(b, msgType, flags, seq, fam)

	b = nlAppendTuple(b, ctaTupleOrig, &f.Tuple, fam, false)
	if f.Zone != 0 {
		b = nlAppendBE16Attr(b, ctaZone, f.Zone)
	}
	if kind == nlReqDelete {
		return nlFinishMsg(b, start), nil
	}
	if kind == nlReqCreate {
		b = nlAppendTuple(b, ctaTupleReply, &f.Tuple, fam, true)
	}
	b = nlAppendBE32Attr(b, ctaStatus, f.Status&^nlIPSUnchangeable|IPSConfirmed)
	timeout := f.Timeout
	if timeout == 0 {
		timeout = o.defaultTimeout
	}
	b = nlAppendBE32Attr(b, ctaTimeout, timeout)
	b = nlAppendBE32Attr(b, ctaMark, f.Mark)
	b = nlAppendProtoinfo(b, f, o)
	if kind == nlReqCreate {
		if f.SNAT.Addr.IsValid() || f.SNAT.Port != 0 {
			b = nlAppendNAT(b, ctaNATSrc, f.SNAT, f.Src, fam)
		}
		if f.DNAT.Addr.IsValid() || f.DNAT.Port != 0 {
			b = nlAppendNAT(b, ctaNATDst, f.DNAT, f.Dst, fam)
		}
		if f.Helper != "" {
			var n int
			b, n = nlBeginNest(b)
			b = nlAppendStringAttr(b, ctaHelpName, f.Helper)
			b = nlEndNest(b, n, ctaHelp)
		}
	}
	if f.HasSeqAdj {
		b = nlAppendSeqAdj(b, ctaSeqAdjOrig, &f.SeqAdjOrig)
		b = nlAppendSeqAdj(b, ctaSeqAdjReply, &f.SeqAdjReply)
	}
	if len(f.Labels) > 0 {
		b = nlAppendBytesAttr(b, ctaLabels, f.Labels)
	}
	return nlFinishMsg(b, start), nil
}

// nlAppendFlush appends a request that empties the whole table (all zones,
// both families).
func nlAppendFlush(b []byte, seq uint32, flags uint16) []byte {
	start := len(b)
	b = nlAppendMsgHeader(b, nfnlSubsysCtnetlink<<8|ipctnlMsgCtDelete, flags|nlmFRequest, seq, 0)
	return nlFinishMsg(b, start)
}

// nlAppendDumpRequest appends a dump request for every entry (all families).
func nlAppendDumpRequest(b []byte, seq uint32) []byte {
	start := len(b)
	b = nlAppendMsgHeader(b, nfnlSubsysCtnetlink<<8|ipctnlMsgCtGet, nlmFRequest|nlmFDump, seq, 0)
	return nlFinishMsg(b, start)
}

// nlAppendMsgHeader appends nlmsghdr (length patched by nlFinishMsg) and nfgenmsg.
func nlAppendMsgHeader(b []byte, typ, flags uint16, seq uint32, family uint8) []byte {
	b = binary.NativeEndian.AppendUint32(b, 0)
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel fills ours in
	return append(b, family, nfnetlinkV0, 0, 0)
}

func nlFinishMsg(b []byte, start int) []byte {
	binary.NativeEndian.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

// nlAppendTuple appends a CTA_TUPLE_* nest for t, or for its inverse (the
// reply direction as the kernel would compute it without NAT).
func nlAppendTuple(b []byte, typ uint16, t *Tuple, fam uint8, inverse bool) []byte {
	src, dst := t.Src, t.Dst
	sport, dport := t.SrcPort, t.DstPort
	icmpType := t.ICMPType
	if inverse {
		src, dst = dst, src
		sport, dport = dport, sport
		switch t.Proto {
		case ProtoICMP:
			icmpType, _ = nlIcmpReplyType(icmpType)
		case ProtoICMPv6:
			icmpType, _ = nlIcmp6ReplyType(icmpType)
		}
	}
	b, tn := nlBeginNest(b)

	b, ipn := nlBeginNest(b)
	if fam == nlAFInet {
		s4, d4 := src.As4(), dst.As4()
		b = nlAppendBytesAttr(b, ctaIPv4Src, s4[:])
		b = nlAppendBytesAttr(b, ctaIPv4Dst, d4[:])
	} else {
		s16, d16 := src.As16(), dst.As16()
		b = nlAppendBytesAttr(b, ctaIPv6Src, s16[:])
		b = nlAppendBytesAttr(b, ctaIPv6Dst, d16[:])
	}
	b = nlEndNest(b, ipn, ctaTupleIP)

	b, pn := nlBeginNest(b)
	b = nlAppendU8Attr(b, ctaProtoNum, t.Proto)
	switch {
	case t.Proto == ProtoICMP:
		b = nlAppendBE16Attr(b, ctaProtoICMPID, t.ICMPID)
		b = nlAppendU8Attr(b, ctaProtoICMPType, icmpType)
		b = nlAppendU8Attr(b, ctaProtoICMPCode, t.ICMPCode)
	case t.Proto == ProtoICMPv6:
		b = nlAppendBE16Attr(b, ctaProtoICMP6ID, t.ICMPID)
		b = nlAppendU8Attr(b, ctaProtoICMP6Typ, icmpType)
		b = nlAppendU8Attr(b, ctaProtoICMP6Cod, t.ICMPCode)
	case nlHasPorts(t.Proto):
		b = nlAppendBE16Attr(b, ctaProtoSrcPort, sport)
		b = nlAppendBE16Attr(b, ctaProtoDstPort, dport)
	}
	b = nlEndNest(b, pn, ctaTupleProto)
	return nlEndNest(b, tn, typ)
}

// nlAppendProtoinfo appends CTA_PROTOINFO for TCP, SCTP and DCCP flows that
// carry a protocol state.
func nlAppendProtoinfo(b []byte, f *Flow, o *nlEncodeOptions) []byte {
	switch f.Proto {
	case ProtoTCP:
		b, n := nlBeginNest(b)
		b, tn := nlBeginNest(b)
		if f.HasProtoState {
			b = nlAppendU8Attr(b, ctaProtoinfoTCPState, f.ProtoState)
		}
		switch {
		case !o.tcpWindowTracking:
			fl := []byte{nlTCPFlagBeLiberal, nlTCPFlagBeLiberal}
			b = nlAppendBytesAttr(b, ctaProtoinfoTCPFlagsOrig, fl)
			b = nlAppendBytesAttr(b, ctaProtoinfoTCPFlagsRepl, fl)
		case f.HasTCPWScale:
			b = nlAppendU8Attr(b, ctaProtoinfoTCPWScaleOrig, f.TCPWScaleOrig)
			b = nlAppendU8Attr(b, ctaProtoinfoTCPWScaleRepl, f.TCPWScaleReply)
			fl := []byte{nlTCPFlagWindowScale, nlTCPFlagWindowScale}
			b = nlAppendBytesAttr(b, ctaProtoinfoTCPFlagsOrig, fl)
			b = nlAppendBytesAttr(b, ctaProtoinfoTCPFlagsRepl, fl)
		}
		b = nlEndNest(b, tn, ctaProtoinfoTCP)
		return nlEndNest(b, n, ctaProtoinfo)
	case ProtoSCTP:
		if !f.HasProtoState {
			return b
		}
		b, n := nlBeginNest(b)
		b, sn := nlBeginNest(b)
		b = nlAppendU8Attr(b, ctaProtoinfoSCTPState, f.ProtoState)
		b = nlAppendBE32Attr(b, ctaProtoinfoSCTPVTagOrig, f.SCTPVTagOrig)
		b = nlAppendBE32Attr(b, ctaProtoinfoSCTPVTagReply, f.SCTPVTagReply)
		b = nlEndNest(b, sn, ctaProtoinfoSCTP)
		return nlEndNest(b, n, ctaProtoinfo)
	case ProtoDCCP:
		if !f.HasProtoState {
			return b
		}
		b, n := nlBeginNest(b)
		b, dn := nlBeginNest(b)
		b = nlAppendU8Attr(b, ctaProtoinfoDCCPState, f.ProtoState)
		b = nlAppendU8Attr(b, ctaProtoinfoDCCPRole, f.DCCPRole)
		b = nlEndNest(b, dn, ctaProtoinfoDCCP)
		return nlEndNest(b, n, ctaProtoinfo)
	}
	return b
}

// nlAppendNAT appends a CTA_NAT_SRC/DST nest: one address (min = max) and,
// when the port is translated, a CTA_NAT_PROTO nest with min = max port.
// An unset address with a set port means "port only": the address is then
// the untranslated one (def).
func nlAppendNAT(b []byte, typ uint16, n NAT, def netip.Addr, fam uint8) []byte {
	addr := n.Addr
	if !addr.IsValid() {
		addr = def
	}
	b, nn := nlBeginNest(b)
	if fam == nlAFInet {
		a := addr.As4()
		b = nlAppendBytesAttr(b, ctaNATv4MinIP, a[:])
		b = nlAppendBytesAttr(b, ctaNATv4MaxIP, a[:])
	} else {
		a := addr.As16()
		b = nlAppendBytesAttr(b, ctaNATv6MinIP, a[:])
		b = nlAppendBytesAttr(b, ctaNATv6MaxIP, a[:])
	}
	if n.Port != 0 {
		var pn int
		b, pn = nlBeginNest(b)
		b = nlAppendBE16Attr(b, ctaProtoNATPortMin, n.Port)
		b = nlAppendBE16Attr(b, ctaProtoNATPortMax, n.Port)
		b = nlEndNest(b, pn, ctaNATProto)
	}
	return nlEndNest(b, nn, typ)
}

func nlAppendSeqAdj(b []byte, typ uint16, s *SeqAdj) []byte {
	b, n := nlBeginNest(b)
	b = nlAppendBE32Attr(b, ctaSeqAdjCorrectionPos, s.CorrectionPos)
	b = nlAppendBE32Attr(b, ctaSeqAdjOffsetBefore, s.OffsetBefore)
	b = nlAppendBE32Attr(b, ctaSeqAdjOffsetAfter, s.OffsetAfter)
	return nlEndNest(b, n, typ)
}

// nlBeginNest reserves room for a nest header and returns its offset, to be
// closed with nlEndNest.
func nlBeginNest(b []byte) ([]byte, int) {
	return append(b, 0, 0, 0, 0), len(b)
}

// nlEndNest writes the header of the nest that starts at off.
func nlEndNest(b []byte, off int, typ uint16) []byte {
	binary.NativeEndian.PutUint16(b[off:], uint16(len(b)-off))
	binary.NativeEndian.PutUint16(b[off+2:], typ|nlaFNested)
	return b
}

func nlAppendAttrHeader(b []byte, typ uint16, payload int) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(nlaHdrLen+payload))
	return binary.NativeEndian.AppendUint16(b, typ)
}

func nlAppendU8Attr(b []byte, typ uint16, v uint8) []byte {
	b = nlAppendAttrHeader(b, typ, 1)
	return append(b, v, 0, 0, 0)
}

func nlAppendBE16Attr(b []byte, typ uint16, v uint16) []byte {
	b = nlAppendAttrHeader(b, typ, 2)
	b = binary.BigEndian.AppendUint16(b, v)
	return append(b, 0, 0)
}

func nlAppendBE32Attr(b []byte, typ uint16, v uint32) []byte {
	b = nlAppendAttrHeader(b, typ, 4)
	return binary.BigEndian.AppendUint32(b, v)
}

func nlAppendBytesAttr(b []byte, typ uint16, v []byte) []byte {
	b = nlAppendAttrHeader(b, typ, len(v))
	b = append(b, v...)
	for range nlAlign(len(v)) - len(v) {
		b = append(b, 0)
	}
	return b
}

// nlAppendStringAttr appends a NUL-terminated string attribute.
func nlAppendStringAttr(b []byte, typ uint16, s string) []byte {
	b = nlAppendAttrHeader(b, typ, len(s)+1)
	b = append(b, s...)
	b = append(b, 0)
	for range nlAlign(len(s)+1) - (len(s) + 1) {
		b = append(b, 0)
	}
	return b
}
