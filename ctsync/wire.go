package ctsync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ProtocolVersion is the conntrackd message format version (1 since 0.9.9).
const ProtocolVersion = 1

// Header sizes on the wire.
const (
	headerLen    = 8  // struct nethdr
	headerAckLen = 16 // struct nethdr_ack: nethdr + from + to
	attrHdrLen   = 4  // struct netattr
)

// MsgType is the low nibble of the first header byte.
type MsgType uint8

// Message types of the version-1 format.
const (
	MsgCTNew  MsgType = 0
	MsgCTUpd  MsgType = 1
	MsgCTDel  MsgType = 2
	MsgExpNew MsgType = 3
	MsgExpUpd MsgType = 4
	MsgExpDel MsgType = 5
	MsgCtl    MsgType = 10
)

func (t MsgType) String() string {
	switch t {
	case MsgCTNew:
		return "CT_NEW"
	case MsgCTUpd:
		return "CT_UPD"
	case MsgCTDel:
		return "CT_DEL"
	case MsgExpNew:
		return "EXP_NEW"
	case MsgExpUpd:
		return "EXP_UPD"
	case MsgExpDel:
		return "EXP_DEL"
	case MsgCtl:
		return "CTL"
	}
	return fmt.Sprintf("type%d", uint8(t))
}

// Header flags.
const (
	FlagResync    uint8 = 0x02
	FlagNACK      uint8 = 0x04
	FlagACK       uint8 = 0x08
	FlagAlive     uint8 = 0x10
	FlagHello     uint8 = 0x20
	FlagHelloBack uint8 = 0x40

	helloFlags = FlagHello | FlagHelloBack
	ctlFlags   = FlagResync | FlagNACK | FlagACK | FlagAlive
)

// Conntrack attribute numbers (enum nta_attr, conntrackd 1.4.7).
const (
	ntaIPv4          = 0
	ntaIPv6          = 1
	ntaL4Proto       = 2
	ntaPort          = 3
	ntaTCPState      = 4
	ntaStatus        = 5
	ntaTimeout       = 6
	ntaMark          = 7
	ntaMasterIPv4    = 8
	ntaMasterIPv6    = 9
	ntaMasterL4Proto = 10
	ntaMasterPort    = 11
	ntaSNATIPv4      = 12
	ntaDNATIPv4      = 13
	ntaSPATPort      = 14
	ntaDPATPort      = 15
	ntaNATSeqAdj     = 16
	ntaSCTPState     = 17
	ntaSCTPVTagOrig  = 18
	ntaSCTPVTagRepl  = 19
	ntaDCCPState     = 20
	ntaDCCPRole      = 21
	ntaICMPType      = 22
	ntaICMPCode      = 23
	ntaICMPID        = 24
	ntaTCPWScaleOrig = 25
	ntaTCPWScaleRepl = 26
	ntaHelperName    = 27
	ntaLabels        = 28
	ntaSNATIPv6      = 29
	ntaDNATIPv6      = 30
	ntaSynproxy      = 31
	ntaZone          = 32

	// NTAMax147 is NTA_MAX of conntrackd 1.4.7 to 1.4.9: the first attribute
	// number such a peer does not know.
	NTAMax147 = 33

	helperNameMaxAttr = 16   // NFCT_HELPER_NAME_MAX: nta_len limit incl. NUL
	labelsMaxPayload  = 1024 // receiver limit for NTA_LABELS
)

// IP protocol numbers the codec treats specially.
const (
	protoICMP    = 1
	protoTCP     = 6
	protoUDP     = 17
	protoDCCP    = 33
	protoICMPv6  = 58
	protoSCTP    = 132
	protoUDPLite = 136
)

func hasPorts(p uint8) bool {
	switch p {
	case protoTCP, protoUDP, protoDCCP, protoSCTP, protoUDPLite:
		return true
	}
	return false
}

func isICMP(p uint8) bool { return p == protoICMP || p == protoICMPv6 }

// fixedAttrSize is the exact payload size of each fixed-size attribute; -1
// marks variable-size ones. Index = attribute number.
var fixedAttrSize = [NTAMax147]int8{
	ntaIPv4: 8, ntaIPv6: 32, ntaL4Proto: 1, ntaPort: 4, ntaTCPState: 1,
	ntaStatus: 4, ntaTimeout: 4, ntaMark: 4, ntaMasterIPv4: 8, ntaMasterIPv6: 32,
	ntaMasterL4Proto: 1, ntaMasterPort: 4, ntaSNATIPv4: 4, ntaDNATIPv4: 4,
	ntaSPATPort: 2, ntaDPATPort: 2, ntaNATSeqAdj: 24, ntaSCTPState: 1,
	ntaSCTPVTagOrig: 4, ntaSCTPVTagRepl: 4, ntaDCCPState: 1, ntaDCCPRole: 1,
	ntaICMPType: 1, ntaICMPCode: 1, ntaICMPID: 2, ntaTCPWScaleOrig: 1,
	ntaTCPWScaleRepl: 1, ntaHelperName: -1, ntaLabels: -1, ntaSNATIPv6: 16,
	ntaDNATIPv6: 16, ntaSynproxy: 12, ntaZone: 2,
}

// Reason says why received input was rejected. Every rejection is counted
// by reason; none changes any state.
type Reason uint8

// Rejection reasons.
const (
	ReasonShort         Reason = iota + 1 // fewer than 8 bytes left for a header
	ReasonVersion                         // version != 1
	ReasonTruncated                       // header length beyond the datagram
	ReasonBadLength                       // header length too small for the type
	ReasonBadType                         // unknown type or flag combination
	ReasonExpectation                     // an expectation message while sync.expectations is off
	ReasonAttrLength                      // attribute length < 4 or beyond the message
	ReasonAttrUnknown                     // attribute number unknown to conntrackd 1.4.7
	ReasonAttrSize                        // attribute payload of the wrong size
	ReasonMissingAddr                     // no NTA_IPV4/NTA_IPV6
	ReasonMissingProto                    // no NTA_L4PROTO
	ReasonUnexpectedCtl                   // control message not valid in this mode
	reasonCount
)

var reasonNames = [reasonCount]string{
	ReasonShort:         "short",
	ReasonVersion:       "version",
	ReasonTruncated:     "truncated",
	ReasonBadLength:     "bad_length",
	ReasonBadType:       "bad_type",
	ReasonExpectation:   "expectation",
	ReasonAttrLength:    "attr_length",
	ReasonAttrUnknown:   "attr_unknown",
	ReasonAttrSize:      "attr_size",
	ReasonMissingAddr:   "missing_addr",
	ReasonMissingProto:  "missing_proto",
	ReasonUnexpectedCtl: "unexpected_ctl",
}

func (r Reason) String() string {
	if r > 0 && r < reasonCount {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason%d", uint8(r))
}

// ParseError is a rejected message or attribute.
type ParseError struct {
	Reason Reason
	Offset int // byte offset in the message (or datagram for header errors)
	Attr   int // attribute number, -1 when not about an attribute
}

func (e *ParseError) Error() string {
	if e.Attr >= 0 {
		return fmt.Sprintf("ctsync: malformed message: %s (attribute %d at offset %d)", e.Reason, e.Attr, e.Offset)
	}
	return fmt.Sprintf("ctsync: malformed message: %s (offset %d)", e.Reason, e.Offset)
}

func perr(r Reason, off, attr int) error { return &ParseError{Reason: r, Offset: off, Attr: attr} }

// ReasonOf extracts the rejection reason of err, 0 if it is no ParseError.
func ReasonOf(err error) Reason {
	var pe *ParseError
	if errors.As(err, &pe) {
		return pe.Reason
	}
	return 0
}

// Message is one version-1 message: its header and, for data messages, the
// raw attribute payload (decode it with WireOptions.DecodeFlow).
type Message struct {
	Type  MsgType
	Flags uint8
	Seq   uint32
	// From and To are the range of ACK and NACK (0 for RESYNC).
	From, To uint32
	// Payload aliases the datagram: copy it to keep it.
	Payload []byte
}

// IsData reports whether m carries a state (conntrack or expectation).
func (m *Message) IsData() bool { return m.Type <= MsgExpDel }

// NextMessage splits the first message off a datagram, checking the header
// as conntrackd does. On error the rest of the datagram must be dropped.
func NextMessage(b []byte) (m Message, rest []byte, err error) {
	if len(b) < headerLen {
		return m, nil, perr(ReasonShort, 0, -1)
	}
	if b[0]>>4 != ProtocolVersion {
		return m, nil, perr(ReasonVersion, 0, -1)
	}
	m.Type = MsgType(b[0] & 0x0f)
	m.Flags = b[1]
	n := int(binary.BigEndian.Uint16(b[2:4]))
	m.Seq = binary.BigEndian.Uint32(b[4:8])
	if n > len(b) {
		return m, nil, perr(ReasonTruncated, 2, -1)
	}
	switch {
	case m.Type == MsgCtl:
		if m.Flags&(FlagACK|FlagNACK|FlagResync) != 0 {
			if n < headerAckLen {
				return m, nil, perr(ReasonBadLength, 2, -1)
			}
			m.From = binary.BigEndian.Uint32(b[8:12])
			m.To = binary.BigEndian.Uint32(b[12:16])
		} else if m.Flags&FlagAlive == 0 {
			if n < headerLen {
				return m, nil, perr(ReasonBadLength, 2, -1)
			}
			return m, b[n:], perr(ReasonBadType, 0, -1)
		}
		if n < headerLen {
			return m, nil, perr(ReasonBadLength, 2, -1)
		}
	case m.Type <= MsgExpDel:
		if n < headerLen {
			return m, nil, perr(ReasonBadLength, 2, -1)
		}
		if m.Flags&^helloFlags != 0 {
			return m, b[n:], perr(ReasonBadType, 1, -1)
		}
		m.Payload = b[headerLen:n:n]
	default:
		if n < headerLen {
			return m, nil, perr(ReasonBadLength, 2, -1)
		}
		return m, b[n:], perr(ReasonBadType, 0, -1)
	}
	return m, b[n:], nil
}

// AppendCtl appends a control message (ALIVE: 8 bytes; ACK, NACK, RESYNC:
// 16 bytes with the range).
func AppendCtl(b []byte, flags uint8, seq, from, to uint32) []byte {
	if flags&(FlagACK|FlagNACK|FlagResync) == 0 {
		b = append(b, ProtocolVersion<<4|uint8(MsgCtl), flags, 0, headerLen)
		return binary.BigEndian.AppendUint32(b, seq)
	}
	b = append(b, ProtocolVersion<<4|uint8(MsgCtl), flags, 0, headerAckLen)
	b = binary.BigEndian.AppendUint32(b, seq)
	b = binary.BigEndian.AppendUint32(b, from)
	return binary.BigEndian.AppendUint32(b, to)
}

// WireOptions are the per-peer encoding choices (compat knobs). The zero
// value talks to conntrackd 1.4.7-1.4.9 on a little-endian host.
type WireOptions struct {
	// MaxAttr: attributes numbered >= MaxAttr are never sent (NTA_MAX of the
	// peer's version: 28, 29, 31, 32 or 33). 0 means 33 (1.4.7).
	MaxAttr int
	// LegacyNATv4 byte-reverses NTA_SNAT_IPV4/NTA_DNAT_IPV4 as conntrackd
	// <= 1.4.6 on a little-endian host does (both ways).
	LegacyNATv4 bool
	// BigEndianPeer encodes and decodes the sender-native attributes
	// (NTA_SPAT_PORT, NTA_DPAT_PORT, NTA_ICMP_ID) big-endian, for a peer on a
	// big-endian host. The default is little-endian (x86, arm64).
	BigEndianPeer bool
	// OmitTimeout leaves NTA_TIMEOUT out (conntrackd's sender CommitTimeout).
	OmitTimeout bool
}

func (o *WireOptions) maxAttr() int {
	if o.MaxAttr <= 0 || o.MaxAttr > NTAMax147 {
		return NTAMax147
	}
	return o.MaxAttr
}

func (o *WireOptions) native() binary.ByteOrder {
	if o.BigEndianPeer {
		return binary.BigEndian
	}
	return binary.LittleEndian
}

// Errors returned by the encoder for flows it cannot represent.
var (
	ErrBadAddr    = errors.New("ctsync: flow needs source and destination of one family")
	ErrHelperName = errors.New("ctsync: helper name longer than 11 bytes")
	ErrLabels     = errors.New("ctsync: labels longer than 1024 bytes")
)

// AppendCT appends a conntrack message of type t (CT_NEW, CT_UPD, CT_DEL)
// carrying f, in conntrackd's attribute order.
func (o *WireOptions) AppendCT(b []byte, t MsgType, flags uint8, seq uint32, f *Flow) ([]byte, error) {
	if !f.Src.IsValid() || !f.Dst.IsValid() || f.Src.Is4() != f.Dst.Is4() {
		return b, ErrBadAddr
	}
	if len(f.Helper) > helperNameMaxAttr-attrHdrLen-1 {
		return b, ErrHelperName
	}
	if len(f.Labels) > labelsMaxPayload {
		return b, ErrLabels
	}
	start := len(b)
	b = append(b, ProtocolVersion<<4|uint8(t)&0x0f, flags, 0, 0)
	b = binary.BigEndian.AppendUint32(b, seq)
	max := o.maxAttr()
	e := attrEnc{b: b, max: max}
	if f.Src.Is4() {
		s, d := f.Src.As4(), f.Dst.As4()
		e.put(ntaIPv4, s[:], d[:])
	} else {
		s, d := f.Src.As16(), f.Dst.As16()
		e.put(ntaIPv6, s[:], d[:])
	}
	e.u32(ntaStatus, f.Status)
	e.u8(ntaL4Proto, f.Proto)
	switch {
	case f.Proto == protoTCP:
		e.ports(ntaPort, f.SrcPort, f.DstPort)
		if f.HasProtoState {
			e.u8(ntaTCPState, f.ProtoState)
		}
		if f.HasTCPWScale {
			e.u8(ntaTCPWScaleOrig, f.TCPWScaleOrig)
			e.u8(ntaTCPWScaleRepl, f.TCPWScaleReply)
		}
	case f.Proto == protoSCTP:
		e.ports(ntaPort, f.SrcPort, f.DstPort)
		if f.HasProtoState {
			e.u8(ntaSCTPState, f.ProtoState)
			e.u32(ntaSCTPVTagOrig, f.SCTPVTagOrig)
			e.u32(ntaSCTPVTagRepl, f.SCTPVTagReply)
		}
	case f.Proto == protoDCCP:
		e.ports(ntaPort, f.SrcPort, f.DstPort)
		if f.HasProtoState {
			e.u8(ntaDCCPState, f.ProtoState)
			e.u8(ntaDCCPRole, f.DCCPRole)
		}
	case hasPorts(f.Proto):
		e.ports(ntaPort, f.SrcPort, f.DstPort)
	case isICMP(f.Proto):
		e.u8(ntaICMPType, f.ICMPType)
		e.u8(ntaICMPCode, f.ICMPCode)
		e.u16(ntaICMPID, f.ICMPID, o.native())
	}
	if !o.OmitTimeout && f.Timeout != 0 {
		e.u32(ntaTimeout, f.Timeout)
	}
	// conntrackd sends the mark whenever the kernel reported one, which a
	// dump always does: send it always (0 commits as "no mark").
	e.u32(ntaMark, f.Mark)
	if f.SNAT.Addr.Is4() {
		e.natv4(ntaSNATIPv4, f.SNAT.Addr, o.LegacyNATv4)
	}
	if f.DNAT.Addr.Is4() {
		e.natv4(ntaDNATIPv4, f.DNAT.Addr, o.LegacyNATv4)
	}
	if f.SNAT.Addr.Is6() {
		a := f.SNAT.Addr.As16()
		e.put(ntaSNATIPv6, a[:], nil)
	}
	if f.DNAT.Addr.Is6() {
		a := f.DNAT.Addr.As16()
		e.put(ntaDNATIPv6, a[:], nil)
	}
	if f.SNAT.Port != 0 {
		e.u16(ntaSPATPort, f.SNAT.Port, o.native())
	}
	if f.DNAT.Port != 0 {
		e.u16(ntaDPATPort, f.DNAT.Port, o.native())
	}
	if f.HasSeqAdj {
		var p [24]byte
		for i, v := range [6]uint32{f.SeqAdjOrig.CorrectionPos, f.SeqAdjOrig.OffsetBefore, f.SeqAdjOrig.OffsetAfter,
			f.SeqAdjReply.CorrectionPos, f.SeqAdjReply.OffsetBefore, f.SeqAdjReply.OffsetAfter} {
			binary.BigEndian.PutUint32(p[4*i:], v)
		}
		e.put(ntaNATSeqAdj, p[:], nil)
	}
	if f.Helper != "" {
		var p [helperNameMaxAttr]byte
		n := copy(p[:], f.Helper)
		e.put(ntaHelperName, p[:n+1], nil)
	}
	if anySet(f.Labels) {
		var p [labelsMaxPayload]byte
		words := (len(f.Labels) + 3) / 4
		var w [4]byte
		for i := range words {
			clear(w[:])
			copy(w[:], f.Labels[4*i:])
			binary.BigEndian.PutUint32(p[4*i:], binary.LittleEndian.Uint32(w[:]))
		}
		e.put(ntaLabels, p[:4*words], nil)
	}
	if f.Zone != 0 {
		e.u16(ntaZone, f.Zone, binary.BigEndian)
	}
	b = e.b
	n := len(b) - start
	if n > 0xffff {
		return b[:start], errors.New("ctsync: message too long")
	}
	binary.BigEndian.PutUint16(b[start+2:], uint16(n))
	return b, nil
}

func anySet(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return true
		}
	}
	return false
}

// attrEnc appends TLVs, skipping attribute numbers the peer does not know.
type attrEnc struct {
	b   []byte
	max int
}

func (e *attrEnc) put(t int, p1, p2 []byte) {
	if t >= e.max {
		return
	}
	n := attrHdrLen + len(p1) + len(p2)
	e.b = binary.BigEndian.AppendUint16(e.b, uint16(n))
	e.b = binary.BigEndian.AppendUint16(e.b, uint16(t))
	e.b = append(e.b, p1...)
	e.b = append(e.b, p2...)
	for ; n%4 != 0; n++ {
		e.b = append(e.b, 0)
	}
}

func (e *attrEnc) u8(t int, v uint8) { e.put(t, []byte{v}, nil) }

func (e *attrEnc) u16(t int, v uint16, bo binary.ByteOrder) {
	var p [2]byte
	bo.PutUint16(p[:], v)
	e.put(t, p[:], nil)
}

func (e *attrEnc) u32(t int, v uint32) {
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], v)
	e.put(t, p[:], nil)
}

func (e *attrEnc) ports(t int, s, d uint16) {
	var p [4]byte
	binary.BigEndian.PutUint16(p[:], s)
	binary.BigEndian.PutUint16(p[2:], d)
	e.put(t, p[:], nil)
}

func (e *attrEnc) natv4(t int, a netip.Addr, legacy bool) {
	p := a.As4()
	if legacy {
		p[0], p[1], p[2], p[3] = p[3], p[2], p[1], p[0]
	}
	e.put(t, p[:], nil)
}

// DecodeFlow decodes the attributes of a conntrack message. It applies
// conntrackd's receiver rules (a malformed or unknown attribute rejects the
// whole message) and never panics. Master-tuple and synproxy attributes are
// checked and ignored (fwpair replicates neither).
func (o *WireOptions) DecodeFlow(p []byte) (Flow, error) {
	var f Flow
	var haveL3, haveProto bool
	off := 0
	native := o.native()
	for len(p)-off > attrHdrLen {
		n := int(binary.BigEndian.Uint16(p[off:]))
		t := int(binary.BigEndian.Uint16(p[off+2:]))
		if n < attrHdrLen || n > len(p)-off {
			return Flow{}, perr(ReasonAttrLength, off, t)
		}
		if t >= NTAMax147 {
			return Flow{}, perr(ReasonAttrUnknown, off, t)
		}
		v := p[off+attrHdrLen : off+n]
		switch sz := int(fixedAttrSize[t]); {
		case sz >= 0 && len(v) != sz:
			return Flow{}, perr(ReasonAttrSize, off, t)
		case t == ntaHelperName && n > helperNameMaxAttr:
			return Flow{}, perr(ReasonAttrSize, off, t)
		case t == ntaLabels && (len(v) > labelsMaxPayload || len(v)%4 != 0):
			return Flow{}, perr(ReasonAttrSize, off, t)
		}
		switch t {
		case ntaIPv4:
			f.Src = netip.AddrFrom4([4]byte(v[0:4]))
			f.Dst = netip.AddrFrom4([4]byte(v[4:8]))
			haveL3 = true
		case ntaIPv6:
			f.Src = netip.AddrFrom16([16]byte(v[0:16]))
			f.Dst = netip.AddrFrom16([16]byte(v[16:32]))
			haveL3 = true
		case ntaL4Proto:
			f.Proto = v[0]
			haveProto = true
		case ntaPort:
			f.SrcPort = binary.BigEndian.Uint16(v)
			f.DstPort = binary.BigEndian.Uint16(v[2:])
		case ntaTCPState, ntaSCTPState, ntaDCCPState:
			f.ProtoState, f.HasProtoState = v[0], true
		case ntaStatus:
			f.Status = binary.BigEndian.Uint32(v)
		case ntaTimeout:
			f.Timeout = binary.BigEndian.Uint32(v)
		case ntaMark:
			f.Mark = binary.BigEndian.Uint32(v)
		case ntaSNATIPv4, ntaDNATIPv4:
			a := [4]byte(v)
			if o.LegacyNATv4 {
				a[0], a[1], a[2], a[3] = a[3], a[2], a[1], a[0]
			}
			if t == ntaSNATIPv4 {
				f.SNAT.Addr = netip.AddrFrom4(a)
			} else {
				f.DNAT.Addr = netip.AddrFrom4(a)
			}
		case ntaSNATIPv6:
			f.SNAT.Addr = netip.AddrFrom16([16]byte(v))
		case ntaDNATIPv6:
			f.DNAT.Addr = netip.AddrFrom16([16]byte(v))
		case ntaSPATPort:
			f.SNAT.Port = native.Uint16(v)
		case ntaDPATPort:
			f.DNAT.Port = native.Uint16(v)
		case ntaNATSeqAdj:
			u := func(i int) uint32 { return binary.BigEndian.Uint32(v[4*i:]) }
			f.SeqAdjOrig = SeqAdj{CorrectionPos: u(0), OffsetBefore: u(1), OffsetAfter: u(2)}
			f.SeqAdjReply = SeqAdj{CorrectionPos: u(3), OffsetBefore: u(4), OffsetAfter: u(5)}
			f.HasSeqAdj = true
		case ntaSCTPVTagOrig:
			f.SCTPVTagOrig = binary.BigEndian.Uint32(v)
		case ntaSCTPVTagRepl:
			f.SCTPVTagReply = binary.BigEndian.Uint32(v)
		case ntaDCCPRole:
			f.DCCPRole = v[0]
		case ntaICMPType:
			f.ICMPType = v[0]
		case ntaICMPCode:
			f.ICMPCode = v[0]
		case ntaICMPID:
			f.ICMPID = native.Uint16(v)
		case ntaTCPWScaleOrig:
			f.TCPWScaleOrig, f.HasTCPWScale = v[0], true
		case ntaTCPWScaleRepl:
			f.TCPWScaleReply, f.HasTCPWScale = v[0], true
		case ntaHelperName:
			s := v
			for i, c := range s {
				if c == 0 {
					s = s[:i]
					break
				}
			}
			f.Helper = string(s)
		case ntaLabels:
			if len(v) > 0 {
				f.Labels = make([]byte, len(v))
				for i := 0; i < len(v); i += 4 {
					binary.LittleEndian.PutUint32(f.Labels[i:], binary.BigEndian.Uint32(v[i:]))
				}
			}
		case ntaZone:
			f.Zone = binary.BigEndian.Uint16(v)
		}
		off += (n + 3) &^ 3
	}
	if !haveL3 {
		return Flow{}, perr(ReasonMissingAddr, 0, -1)
	}
	if !haveProto {
		return Flow{}, perr(ReasonMissingProto, 0, -1)
	}
	if f.Labels != nil && !anySet(f.Labels) {
		f.Labels = nil
	}
	return f, nil
}

// packer concatenates messages into datagrams the way conntrackd does: a
// message is added while the datagram stays strictly below max bytes.
type packer struct {
	max int
	cur []byte
	out [][]byte
}

func (p *packer) add(msg []byte) {
	if len(p.cur) > 0 && len(p.cur)+len(msg) >= p.max {
		p.flush()
	}
	p.cur = append(p.cur, msg...)
}

func (p *packer) flush() {
	if len(p.cur) > 0 {
		p.out = append(p.out, p.cur)
		p.cur = nil
	}
}
