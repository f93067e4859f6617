package ctnetlink

// The ctnetlink message decoder shared by Dump and the event listener. It
// reads a conntrack message (IPCTNL_MSG_CT_NEW / _DELETE, as dumped or
// broadcast by the kernel) into a Flow without allocating, except for the
// labels and the helper name when present. It derives the NAT bindings from
// the reply tuple as conntrackd does: SNAT is the reply destination when it
// differs from the original source, DNAT the reply source when it differs
// from the original destination (same for the ports). Malformed input gives
// an error, never a panic.
//
// Flow.Labels holds CTA_LABELS as the kernel sends and takes it: the raw
// connlabel bitmap in host word order (on the little-endian targets, bit b
// of byte i is label 8i+b), 16 bytes when the namespace uses labels; nil
// when no bit is set. conntrackd's NTA_LABELS are big-endian 32-bit words,
// so the wire codec converts.

import (
	"encoding/binary"
	"net/netip"
)

// nlDecodeFlow decodes the payload of one conntrack message (nfgenmsg and
// attributes, i.e. what follows the nlmsghdr) into f, which is reset first.
func nlDecodeFlow(payload []byte, f *Flow) error {
	*f = Flow{}
	if len(payload) < nfgenHdrLen {
		return errNLTruncated
	}
	var (
		reply                  Tuple
		haveOrig, haveReply    bool
		haveSeqOrig, haveSeqRp bool
	)
	it := nlAttrIter{b: payload[nfgenHdrLen:]}
	for it.next() {
		d := it.data
		switch it.typ {
		case ctaTupleOrig:
			if err := nlDecodeTuple(d, &f.Tuple); err != nil {
				return err
			}
			haveOrig = true
		case ctaTupleReply:
			if err := nlDecodeTuple(d, &reply); err != nil {
				return err
			}
			haveReply = true
		case ctaStatus:
			v, err := nlBE32(d)
			if err != nil {
				return err
			}
			f.Status = v
		case ctaTimeout:
			v, err := nlBE32(d)
			if err != nil {
				return err
			}
			f.Timeout = v
		case ctaMark:
			v, err := nlBE32(d)
			if err != nil {
				return err
			}
			f.Mark = v
		case ctaZone:
			if len(d) < 2 {
				return errNLBadAttr
			}
			f.Zone = binary.BigEndian.Uint16(d)
		case ctaProtoinfo:
			if err := nlDecodeProtoinfo(d, f); err != nil {
				return err
			}
		case ctaHelp:
			h := nlAttrIter{b: d}
			for h.next() {
				if h.typ == ctaHelpName {
					f.Helper = nlCString(h.data)
				}
			}
			if h.err != nil {
				return h.err
			}
		case ctaSeqAdjOrig:
			if err := nlDecodeSeqAdj(d, &f.SeqAdjOrig); err != nil {
				return err
			}
			haveSeqOrig = true
		case ctaSeqAdjReply:
			if err := nlDecodeSeqAdj(d, &f.SeqAdjReply); err != nil {
				return err
			}
			haveSeqRp = true
		case ctaLabels:
			for _, c := range d {
				if c != 0 {
					f.Labels = append([]byte(nil), d...)
					break
				}
			}
		}
	}
	if it.err != nil {
		return it.err
	}
	if !haveOrig {
		return errNLNoTuple
	}
	f.HasSeqAdj = haveSeqOrig || haveSeqRp
	if haveReply {
		nlDeriveNAT(f, &reply)
	}
	return nil
}

// nlDeriveNAT fills f.SNAT and f.DNAT from the reply tuple, guided by the
// IPS_SRC_NAT / IPS_DST_NAT status bits when the kernel reported a status.
func nlDeriveNAT(f *Flow, r *Tuple) {
	ports := nlHasPorts(f.Proto)
	if f.Status&IPSSrcNAT != 0 || f.Status == 0 {
		if r.Dst != f.Src && r.Dst.IsValid() {
			f.SNAT.Addr = r.Dst
		}
		if ports && r.DstPort != f.SrcPort {
			f.SNAT.Port = r.DstPort
			if !f.SNAT.Addr.IsValid() {
				f.SNAT.Addr = r.Dst
			}
		}
	}
	if f.Status&IPSDstNAT != 0 || f.Status == 0 {
		if r.Src != f.Dst && r.Src.IsValid() {
			f.DNAT.Addr = r.Src
		}
		if ports && r.SrcPort != f.DstPort {
			f.DNAT.Port = r.SrcPort
			if !f.DNAT.Addr.IsValid() {
				f.DNAT.Addr = r.Src
			}
		}
	}
}

// nlDecodeTuple decodes a CTA_TUPLE_* nest.
func nlDecodeTuple(b []byte, t *Tuple) error {
	it := nlAttrIter{b: b}
	for it.next() {
		switch it.typ {
		case ctaTupleIP:
			ip := nlAttrIter{b: it.data}
			for ip.next() {
				switch ip.typ {
				case ctaIPv4Src, ctaIPv4Dst:
					if len(ip.data) < 4 {
						return errNLBadAddr
					}
					a := netip.AddrFrom4([4]byte(ip.data[:4]))
					if ip.typ == ctaIPv4Src {
						t.Src = a
					} else {
						t.Dst = a
					}
				case ctaIPv6Src, ctaIPv6Dst:
					if len(ip.data) < 16 {
						return errNLBadAddr
					}
					a := netip.AddrFrom16([16]byte(ip.data[:16]))
					if ip.typ == ctaIPv6Src {
						t.Src = a
					} else {
						t.Dst = a
					}
				}
			}
			if ip.err != nil {
				return ip.err
			}
		case ctaTupleProto:
			p := nlAttrIter{b: it.data}
			for p.next() {
				d := p.data
				switch p.typ {
				case ctaProtoNum:
					if len(d) < 1 {
						return errNLBadAttr
					}
					t.Proto = d[0]
				case ctaProtoSrcPort, ctaProtoDstPort, ctaProtoICMPID, ctaProtoICMP6ID:
					if len(d) < 2 {
						return errNLBadAttr
					}
					v := binary.BigEndian.Uint16(d)
					switch p.typ {
					case ctaProtoSrcPort:
						t.SrcPort = v
					case ctaProtoDstPort:
						t.DstPort = v
					default:
						t.ICMPID = v
					}
				case ctaProtoICMPType, ctaProtoICMP6Typ:
					if len(d) < 1 {
						return errNLBadAttr
					}
					t.ICMPType = d[0]
				case ctaProtoICMPCode, ctaProtoICMP6Cod:
					if len(d) < 1 {
						return errNLBadAttr
					}
					t.ICMPCode = d[0]
				}
			}
			if p.err != nil {
				return p.err
			}
		}
	}
	if it.err != nil {
		return it.err
	}
	if !t.Src.IsValid() || !t.Dst.IsValid() || t.Src.Is4() != t.Dst.Is4() {
		return errNLBadAddr
	}
	return nil
}

// nlDecodeProtoinfo decodes CTA_PROTOINFO for TCP, SCTP and DCCP.
func nlDecodeProtoinfo(b []byte, f *Flow) error {
	it := nlAttrIter{b: b}
	for it.next() {
		p := nlAttrIter{b: it.data}
		for p.next() {
			d := p.data
			switch it.typ {
			case ctaProtoinfoTCP:
				switch p.typ {
				case ctaProtoinfoTCPState:
					if len(d) < 1 {
						return errNLBadAttr
					}
					f.ProtoState, f.HasProtoState = d[0], true
				case ctaProtoinfoTCPWScaleOrig:
					if len(d) < 1 {
						return errNLBadAttr
					}
					f.TCPWScaleOrig, f.HasTCPWScale = d[0], true
				case ctaProtoinfoTCPWScaleRepl:
					if len(d) < 1 {
						return errNLBadAttr
					}
					f.TCPWScaleReply, f.HasTCPWScale = d[0], true
				}
			case ctaProtoinfoSCTP:
				switch p.typ {
				case ctaProtoinfoSCTPState:
					if len(d) < 1 {
						return errNLBadAttr
					}
					f.ProtoState, f.HasProtoState = d[0], true
				case ctaProtoinfoSCTPVTagOrig, ctaProtoinfoSCTPVTagReply:
					v, err := nlBE32(d)
					if err != nil {
						return err
					}
					if p.typ == ctaProtoinfoSCTPVTagOrig {
						f.SCTPVTagOrig = v
					} else {
						f.SCTPVTagReply = v
					}
				}
			case ctaProtoinfoDCCP:
				switch p.typ {
				case ctaProtoinfoDCCPState:
					if len(d) < 1 {
						return errNLBadAttr
					}
					f.ProtoState, f.HasProtoState = d[0], true
				case ctaProtoinfoDCCPRole:
					if len(d) < 1 {
						return errNLBadAttr
					}
					f.DCCPRole = d[0]
				}
			}
		}
		if p.err != nil {
			return p.err
		}
	}
	return it.err
}

func nlDecodeSeqAdj(b []byte, s *SeqAdj) error {
	it := nlAttrIter{b: b}
	for it.next() {
		var dst *uint32
		switch it.typ {
		case ctaSeqAdjCorrectionPos:
			dst = &s.CorrectionPos
		case ctaSeqAdjOffsetBefore:
			dst = &s.OffsetBefore
		case ctaSeqAdjOffsetAfter:
			dst = &s.OffsetAfter
		default:
			continue
		}
		v, err := nlBE32(it.data)
		if err != nil {
			return err
		}
		*dst = v
	}
	return it.err
}

func nlBE32(d []byte) (uint32, error) {
	if len(d) < 4 {
		return 0, errNLBadAttr
	}
	return binary.BigEndian.Uint32(d), nil
}

// nlCString returns the bytes of b up to the first NUL.
func nlCString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// nlEventType classifies a conntrack message by its header: NEW with
// NLM_F_CREATE is a new entry, NEW without it an update, DELETE a destroy.
// ok is false for anything that is not a ctnetlink conntrack message.
func nlEventType(h *nlMsgHeader) (EventType, bool) {
	if h.Type>>8 != nfnlSubsysCtnetlink {
		return 0, false
	}
	switch h.Type & 0xff {
	case ipctnlMsgCtNew:
		if h.Flags&nlmFCreate != 0 {
			return EventNew, true
		}
		return EventUpdate, true
	case ipctnlMsgCtDelete:
		return EventDestroy, true
	}
	return 0, false
}

// nlAppendEvents decodes every conntrack message in one datagram received
// on the event socket and appends the events to dst. A message whose
// netlink port id equals ownPortID was caused by our own writer socket and
// is marked Own. bad counts messages that could not be decoded (skipped).
func nlAppendEvents(dst []Event, b []byte, ownPortID uint32) (out []Event, bad int) {
	for len(b) > 0 {
		h, payload, rest, ok := nlNextMessage(b)
		if !ok {
			return dst, bad + 1
		}
		b = rest
		typ, ok := nlEventType(&h)
		if !ok {
			if h.Type != nlmsgDone && h.Type != nlmsgError {
				bad++
			}
			continue
		}
		dst = append(dst, Event{Type: typ, Own: ownPortID != 0 && h.PID == ownPortID})
		if err := nlDecodeFlow(payload, &dst[len(dst)-1].Flow); err != nil {
			dst = dst[:len(dst)-1]
			bad++
		}
	}
	return dst, bad
}
