package ctsync

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Expectation attribute numbers (enum nta_exp_attr, conntrackd 1.2.0 to
// 1.4.9).
const (
	ntaExpMasterIPv4    = 0
	ntaExpMasterIPv6    = 1
	ntaExpMasterL4Proto = 2
	ntaExpMasterPort    = 3
	ntaExpExpectIPv4    = 4
	ntaExpExpectIPv6    = 5
	ntaExpExpectL4Proto = 6
	ntaExpExpectPort    = 7
	ntaExpMaskIPv4      = 8
	ntaExpMaskIPv6      = 9
	ntaExpMaskL4Proto   = 10
	ntaExpMaskPort      = 11
	ntaExpTimeout       = 12
	ntaExpFlags         = 13
	ntaExpClass         = 14
	ntaExpNATIPv4       = 15
	ntaExpNATPort       = 16
	ntaExpNATL4Proto    = 17
	ntaExpNATDir        = 18
	ntaExpHelperName    = 19
	ntaExpFn            = 20

	// NTAExpMax is NTA_EXP_MAX: the first expectation attribute number
	// conntrackd does not know.
	NTAExpMax = 21

	expFnMaxAttr = 32 // receiver limit for NTA_EXP_FN, nta_len incl. NUL
)

var fixedExpAttrSize = [NTAExpMax]int8{
	ntaExpMasterIPv4: 8, ntaExpMasterIPv6: 32, ntaExpMasterL4Proto: 1, ntaExpMasterPort: 4,
	ntaExpExpectIPv4: 8, ntaExpExpectIPv6: 32, ntaExpExpectL4Proto: 1, ntaExpExpectPort: 4,
	ntaExpMaskIPv4: 8, ntaExpMaskIPv6: 32, ntaExpMaskL4Proto: 1, ntaExpMaskPort: 4,
	ntaExpTimeout: 4, ntaExpFlags: 4, ntaExpClass: 4, ntaExpNATIPv4: 8, ntaExpNATPort: 4,
	ntaExpNATL4Proto: 1, ntaExpNATDir: 4, ntaExpHelperName: -1, ntaExpFn: -1,
}

// Errors returned by the expectation encoder.
var (
	ErrExpectFn = errors.New("ctsync: expectation function name longer than 30 bytes")
)

// AppendExp appends an expectation message of type t (EXP_NEW, EXP_UPD,
// EXP_DEL) carrying x, in conntrackd's attribute order (exp2msg). Ports of
// the expected tuple and mask are sent when the master's protocol has
// ports, as conntrackd does.
func (o *WireOptions) AppendExp(b []byte, t MsgType, flags uint8, seq uint32, x *Expect) ([]byte, error) {
	if !x.Master.Valid() || !x.Tuple.Valid() || x.Tuple.Src.Is4() != x.Master.Src.Is4() {
		return b, ErrBadAddr
	}
	if x.Mask.Src.IsValid() && x.Mask.Src.Is4() != x.Tuple.Src.Is4() ||
		x.Mask.Dst.IsValid() && x.Mask.Dst.Is4() != x.Tuple.Src.Is4() {
		return b, ErrBadAddr
	}
	if len(x.Helper) > helperNameMaxAttr-attrHdrLen-1 {
		return b, ErrHelperName
	}
	if len(x.Fn) > expFnMaxAttr-attrHdrLen-1 {
		return b, ErrExpectFn
	}
	start := len(b)
	b = append(b, ProtocolVersion<<4|uint8(t)&0x0f, flags, 0, 0)
	b = binary.BigEndian.AppendUint32(b, seq)
	e := attrEnc{b: b, max: NTAExpMax}
	v4 := x.Master.Src.Is4()
	addrs := func(n4, n6 int, s, d netip.Addr) {
		if v4 {
			sa, da := as4(s), as4(d)
			e.put(n4, sa[:], da[:])
		} else {
			sa, da := as16(s), as16(d)
			e.put(n6, sa[:], da[:])
		}
	}
	mproto := x.Master.Proto
	addrs(ntaExpMasterIPv4, ntaExpMasterIPv6, x.Master.Src, x.Master.Dst)
	e.u8(ntaExpMasterL4Proto, mproto)
	if hasPorts(mproto) {
		e.ports(ntaExpMasterPort, x.Master.SrcPort, x.Master.DstPort)
	}
	addrs(ntaExpExpectIPv4, ntaExpExpectIPv6, x.Tuple.Src, x.Tuple.Dst)
	e.u8(ntaExpExpectL4Proto, x.Tuple.Proto)
	if hasPorts(mproto) {
		e.ports(ntaExpExpectPort, x.Tuple.SrcPort, x.Tuple.DstPort)
	}
	addrs(ntaExpMaskIPv4, ntaExpMaskIPv6, x.Mask.Src, x.Mask.Dst)
	e.u8(ntaExpMaskL4Proto, x.Mask.Proto)
	if hasPorts(mproto) {
		e.ports(ntaExpMaskPort, x.Mask.SrcPort, x.Mask.DstPort)
	}
	if !o.OmitTimeout && x.Timeout != 0 {
		e.u32(ntaExpTimeout, x.Timeout)
	}
	e.u32(ntaExpFlags, x.Flags)
	if x.HasClass {
		e.u32(ntaExpClass, x.Class)
	}
	if x.NAT.Addr.Is4() {
		a := x.NAT.Addr.As4()
		e.put(ntaExpNATIPv4, a[:], []byte{0, 0, 0, 0})
		e.u8(ntaExpNATL4Proto, x.NAT.Proto)
		e.ports(ntaExpNATPort, x.NAT.Port, 0)
		e.u32(ntaExpNATDir, x.NAT.Direction)
	}
	if x.Helper != "" {
		e.put(ntaExpHelperName, append([]byte(x.Helper), 0), nil)
	}
	if x.Fn != "" {
		e.put(ntaExpFn, append([]byte(x.Fn), 0), nil)
	}
	b = e.b
	binary.BigEndian.PutUint16(b[start+2:], uint16(len(b)-start))
	return b, nil
}

// as4 and as16 return the raw bytes of a (zero for an invalid address: an
// unset mask).
func as4(a netip.Addr) [4]byte {
	if a.Is4() {
		return a.As4()
	}
	return [4]byte{}
}

func as16(a netip.Addr) [16]byte {
	if a.IsValid() {
		return a.As16()
	}
	return [16]byte{}
}

// DecodeExpect decodes the attributes of an expectation message with
// conntrackd's receiver rules (msg2exp): a malformed or unknown attribute
// rejects the whole message. The master, expected and mask addresses and
// the master and expected protocols are required.
func (o *WireOptions) DecodeExpect(p []byte) (Expect, error) {
	var x Expect
	var haveMaster, haveExpect, haveMask, haveMProto, haveEProto bool
	var natSrc netip.Addr
	var natPort uint16
	var haveNAT bool
	off := 0
	for len(p)-off > attrHdrLen {
		n := int(binary.BigEndian.Uint16(p[off:]))
		t := int(binary.BigEndian.Uint16(p[off+2:]))
		if n < attrHdrLen || n > len(p)-off {
			return Expect{}, perr(ReasonAttrLength, off, t)
		}
		if t >= NTAExpMax {
			return Expect{}, perr(ReasonAttrUnknown, off, t)
		}
		v := p[off+attrHdrLen : off+n]
		switch sz := int(fixedExpAttrSize[t]); {
		case sz >= 0 && len(v) != sz:
			return Expect{}, perr(ReasonAttrSize, off, t)
		case t == ntaExpHelperName && n > helperNameMaxAttr:
			return Expect{}, perr(ReasonAttrSize, off, t)
		case t == ntaExpFn && n > expFnMaxAttr:
			return Expect{}, perr(ReasonAttrSize, off, t)
		}
		switch t {
		case ntaExpMasterIPv4, ntaExpMasterIPv6:
			x.Master.Src, x.Master.Dst = addrPair(v)
			haveMaster = true
		case ntaExpExpectIPv4, ntaExpExpectIPv6:
			x.Tuple.Src, x.Tuple.Dst = addrPair(v)
			haveExpect = true
		case ntaExpMaskIPv4, ntaExpMaskIPv6:
			x.Mask.Src, x.Mask.Dst = addrPair(v)
			haveMask = true
		case ntaExpMasterL4Proto:
			x.Master.Proto, haveMProto = v[0], true
		case ntaExpExpectL4Proto:
			x.Tuple.Proto, haveEProto = v[0], true
		case ntaExpMaskL4Proto:
			x.Mask.Proto = v[0]
		case ntaExpMasterPort:
			x.Master.SrcPort, x.Master.DstPort = binary.BigEndian.Uint16(v), binary.BigEndian.Uint16(v[2:])
		case ntaExpExpectPort:
			x.Tuple.SrcPort, x.Tuple.DstPort = binary.BigEndian.Uint16(v), binary.BigEndian.Uint16(v[2:])
		case ntaExpMaskPort:
			x.Mask.SrcPort, x.Mask.DstPort = binary.BigEndian.Uint16(v), binary.BigEndian.Uint16(v[2:])
		case ntaExpTimeout:
			x.Timeout = binary.BigEndian.Uint32(v)
		case ntaExpFlags:
			x.Flags = binary.BigEndian.Uint32(v)
		case ntaExpClass:
			x.Class, x.HasClass = binary.BigEndian.Uint32(v), true
		case ntaExpNATIPv4:
			natSrc, haveNAT = netip.AddrFrom4([4]byte(v[0:4])), true
		case ntaExpNATPort:
			natPort = binary.BigEndian.Uint16(v)
		case ntaExpNATL4Proto:
			x.NAT.Proto = v[0]
		case ntaExpNATDir:
			x.NAT.Direction = binary.BigEndian.Uint32(v)
		case ntaExpHelperName:
			x.Helper = cString(v)
		case ntaExpFn:
			x.Fn = cString(v)
		}
		off += (n + 3) &^ 3
	}
	if !haveMaster || !haveExpect || !haveMask {
		return Expect{}, perr(ReasonMissingAddr, 0, -1)
	}
	if !haveMProto || !haveEProto {
		return Expect{}, perr(ReasonMissingProto, 0, -1)
	}
	if x.Master.Src.Is4() != x.Tuple.Src.Is4() {
		return Expect{}, perr(ReasonMissingAddr, 0, -1)
	}
	if haveNAT {
		x.NAT.Addr, x.NAT.Port = natSrc, natPort
	} else {
		x.NAT = ExpectNAT{}
	}
	return x, nil
}

func addrPair(v []byte) (netip.Addr, netip.Addr) {
	if len(v) == 8 {
		return netip.AddrFrom4([4]byte(v[0:4])), netip.AddrFrom4([4]byte(v[4:8]))
	}
	return netip.AddrFrom16([16]byte(v[0:16])), netip.AddrFrom16([16]byte(v[16:32]))
}

func cString(v []byte) string {
	for i, c := range v {
		if c == 0 {
			return string(v[:i])
		}
	}
	return string(v)
}
