package ctsync

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.Join(strings.Fields(s), "")
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A worked example of a CT_NEW message, laid out as conntrackd 1.4.7 builds it.
func TestWireWorkedExample(t *testing.T) {
	want := unhex(t, `
		10 00 00 44  00 00 00 2a
		00 0c 00 00  c0 a8 00 02  0a 00 00 05
		00 08 00 05  00 00 01 8e
		00 05 00 02  06 00 00 00
		00 08 00 03  d4 31 01 bb
		00 05 00 04  03 00 00 00
		00 08 00 06  00 06 97 5c
		00 08 00 07  00 00 00 01`)
	f := Flow{
		Key: Key{Tuple: Tuple{
			Src: netip.MustParseAddr("192.168.0.2"), Dst: netip.MustParseAddr("10.0.0.5"),
			SrcPort: 54321, DstPort: 443, Proto: 6,
		}},
		Status: 0x18e, Timeout: 431964, Mark: 1,
		ProtoState: 3, HasProtoState: true,
	}
	var o WireOptions
	got, err := o.AppendCT(nil, MsgCTNew, 0, 42, &f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("encoding:\n got %x\nwant %x", got, want)
	}
	m, rest, err := NextMessage(got)
	if err != nil || len(rest) != 0 || m.Type != MsgCTNew || m.Seq != 42 {
		t.Fatalf("NextMessage = %+v, %d rest, %v", m, len(rest), err)
	}
	back, err := o.DecodeFlow(m.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f, back, addrCmp); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
}

// Byte-order quirks: SPAT/DPAT/ICMP_ID in sender-native (LE) order, IPv4 NAT
// in network order (1.4.7) or reversed (legacy).
func TestWireByteOrderQuirks(t *testing.T) {
	f := Flow{
		Key: Key{Tuple: Tuple{
			Src: netip.MustParseAddr("192.168.0.10"), Dst: netip.MustParseAddr("8.8.8.8"),
			SrcPort: 0x1234, DstPort: 53, Proto: 17,
		}, Zone: 7},
		Status: 0x1b0, Timeout: 30,
		SNAT: NAT{Addr: netip.MustParseAddr("192.168.1.100"), Port: 0x2345},
	}
	var o WireOptions
	b, err := o.AppendCT(nil, MsgCTUpd, 0, 1, &f)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"0008000c c0a80164", // NTA_SNAT_IPV4 network order
		"0006000e 45230000", // NTA_SPAT_PORT little-endian + pad
		"00060020 00070000", // NTA_ZONE big-endian
	} {
		if !bytes.Contains(b, unhex(t, want)) {
			t.Errorf("missing %s in %x", want, b)
		}
	}
	legacy := WireOptions{LegacyNATv4: true, BigEndianPeer: true, MaxAttr: 32}
	b2, err := legacy.AppendCT(nil, MsgCTUpd, 0, 1, &f)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0008000c 6401a8c0", "0006000e 23450000"} {
		if !bytes.Contains(b2, unhex(t, want)) {
			t.Errorf("legacy: missing %s in %x", want, b2)
		}
	}
	if bytes.Contains(b2, unhex(t, "00060020")) {
		t.Errorf("legacy (MaxAttr 32) sent NTA_ZONE: %x", b2)
	}
	m, _, _ := NextMessage(b2)
	back, err := legacy.DecodeFlow(m.Payload)
	if err != nil {
		t.Fatal(err)
	}
	want := f
	want.Zone = 0
	if diff := cmp.Diff(want, back, addrCmp); diff != "" {
		t.Fatalf("legacy round trip (-want +got):\n%s", diff)
	}
	// ICMP id is native too.
	ic := Flow{Key: Key{Tuple: Tuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"),
		Proto: 1, ICMPType: 8, ICMPID: 0x0102}}, Timeout: 30}
	b3, _ := o.AppendCT(nil, MsgCTNew, 0, 1, &ic)
	if !bytes.Contains(b3, unhex(t, "00060018 02010000")) {
		t.Errorf("ICMP id not little-endian: %x", b3)
	}
}

func TestWireMalformed(t *testing.T) {
	var o WireOptions
	good, _ := o.AppendCT(nil, MsgCTNew, 0, 9, &Flow{Key: Key{Tuple: Tuple{
		Src: netip.MustParseAddr("10.1.1.1"), Dst: netip.MustParseAddr("10.2.2.2"), Proto: 17, SrcPort: 1, DstPort: 2}}})
	mut := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	hdrCases := []struct {
		name string
		b    []byte
		want Reason
	}{
		{"short", good[:7], ReasonShort},
		{"version", mut(func(b []byte) []byte { b[0] = 0x20; return b }), ReasonVersion},
		{"truncated", good[:len(good)-4], ReasonTruncated},
		{"len<8", mut(func(b []byte) []byte { b[3] = 4; b[2] = 0; return b }), ReasonBadLength},
		{"type 7", mut(func(b []byte) []byte { b[0] = 0x17; return b }), ReasonBadType},
		{"data with ACK flag", mut(func(b []byte) []byte { b[1] = FlagACK; return b }), ReasonBadType},
		{"ack len 8", unhex(t, "1a080008 00000001"), ReasonBadLength},
		{"ctl no flag", unhex(t, "1a000008 00000001"), ReasonBadType},
	}
	for _, c := range hdrCases {
		_, _, err := NextMessage(c.b)
		if got := ReasonOf(err); got != c.want {
			t.Errorf("%s: reason %v (%v), want %v", c.name, got, err, c.want)
		}
	}
	payload := good[8:]
	attrCases := []struct {
		name string
		p    []byte
		want Reason
	}{
		{"attr len 3", append(bytes.Clone(payload), 0, 3, 0, 5, 0), ReasonAttrLength},
		{"attr beyond", append(bytes.Clone(payload), 0, 9, 0, 5, 0), ReasonAttrLength},
		{"unknown attr 33", append(bytes.Clone(payload), 0, 8, 0, 33, 0, 0, 0, 0), ReasonAttrUnknown},
		{"status size 2", append(bytes.Clone(payload), 0, 6, 0, 5, 0, 0, 0, 0), ReasonAttrSize},
		{"helper too long", append(bytes.Clone(payload), append([]byte{0, 20, 0, 27}, make([]byte, 16)...)...), ReasonAttrSize},
		{"no addr", unhex(t, "00050002 06000000"), ReasonMissingAddr},
		{"no proto", unhex(t, "000c0000 01020304 05060708"), ReasonMissingProto},
	}
	for _, c := range attrCases {
		_, err := o.DecodeFlow(c.p)
		if got := ReasonOf(err); got != c.want {
			t.Errorf("%s: reason %v (%v), want %v", c.name, got, err, c.want)
		}
	}
	// Trailing <= 4 bytes are ignored, as conntrackd's loop does.
	if _, err := o.DecodeFlow(append(bytes.Clone(payload), 0, 0, 0, 0)); err != nil {
		t.Errorf("trailing 4 bytes: %v", err)
	}
}

func TestWireCtlAndPacking(t *testing.T) {
	b := AppendCtl(nil, FlagACK|FlagHello, 5, 1, 4)
	b = AppendCtl(b, FlagAlive, 6, 0, 0)
	if want := unhex(t, "1a280010 00000005 00000001 00000004 1a100008 00000006"); !bytes.Equal(b, want) {
		t.Fatalf("ctl = %x, want %x", b, want)
	}
	m, rest, err := NextMessage(b)
	if err != nil || m.Flags != FlagACK|FlagHello || m.From != 1 || m.To != 4 {
		t.Fatalf("ack: %+v %v", m, err)
	}
	m, rest, err = NextMessage(rest)
	if err != nil || m.Flags != FlagAlive || m.Seq != 6 || len(rest) != 0 {
		t.Fatalf("alive: %+v %v", m, err)
	}
	p := packer{max: 100}
	for range 10 {
		p.add(make([]byte, 24))
	}
	p.flush()
	total := 0
	for _, d := range p.out {
		if len(d) >= 100 {
			t.Fatalf("datagram of %d bytes, max 100", len(d))
		}
		total += len(d)
	}
	if total != 240 || len(p.out) != 3 {
		t.Fatalf("packed %d bytes in %d datagrams", total, len(p.out))
	}
}

// randFlow returns a normalised random flow (fields the codec would drop
// are left zero) so that encode/decode round-trips exactly.
func randFlow(r *rand.Rand) Flow {
	var f Flow
	if r.IntN(4) == 0 {
		var s, d [16]byte
		s[0], d[0] = 0x20, 0x20
		for i := 1; i < 16; i++ {
			s[i], d[i] = byte(r.Uint32()), byte(r.Uint32())
		}
		f.Src, f.Dst = netip.AddrFrom16(s), netip.AddrFrom16(d)
	} else {
		f.Src = netip.AddrFrom4([4]byte{10, byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		f.Dst = netip.AddrFrom4([4]byte{172, 16, byte(r.Uint32()), byte(r.Uint32())})
	}
	protos := []uint8{6, 6, 6, 17, 17, 1, 132, 33, 136, 47}
	f.Proto = protos[r.IntN(len(protos))]
	if f.Proto == 1 && f.Src.Is6() {
		f.Proto = 58
	}
	switch {
	case hasPorts(f.Proto):
		f.SrcPort, f.DstPort = uint16(1+r.Uint32N(65535)), uint16(1+r.Uint32N(65535))
	case isICMP(f.Proto):
		f.ICMPID, f.ICMPType, f.ICMPCode = uint16(r.Uint32()), uint8(r.Uint32()), uint8(r.IntN(3))
	}
	f.Status = r.Uint32() &^ 1 // no IPS_EXPECTED
	// Within the receive-side caps (DefaultMaxTimeouts) so the engine
	// tests' states pass validation; TCP ESTABLISHED below takes longer.
	f.Timeout = 30 + r.Uint32N(570)
	if r.IntN(3) == 0 {
		f.Mark = r.Uint32()
	}
	switch f.Proto {
	case 6:
		f.ProtoState, f.HasProtoState = uint8(r.IntN(10)), true
		if f.ProtoState == tcpEstablished {
			f.Timeout = 1 + r.Uint32N(432000)
		}
		if r.IntN(2) == 0 {
			f.TCPWScaleOrig, f.TCPWScaleReply, f.HasTCPWScale = uint8(r.IntN(15)), uint8(r.IntN(15)), true
		}
	case 132:
		f.ProtoState, f.HasProtoState = uint8(r.IntN(8)), true
		f.SCTPVTagOrig, f.SCTPVTagReply = r.Uint32(), r.Uint32()
	case 33:
		f.ProtoState, f.HasProtoState = uint8(r.IntN(8)), true
		f.DCCPRole = uint8(r.IntN(2))
	}
	if r.IntN(5) == 0 {
		if f.Src.Is4() {
			f.SNAT.Addr = netip.AddrFrom4([4]byte{192, 168, 1, byte(r.Uint32())})
		} else {
			f.SNAT.Addr = f.Dst.Prev()
		}
		if r.IntN(2) == 0 {
			f.SNAT.Port = 1 + uint16(r.IntN(65535))
		}
	}
	if r.IntN(8) == 0 {
		if f.Src.Is4() {
			f.DNAT.Addr = netip.AddrFrom4([4]byte{192, 168, 2, byte(r.Uint32())})
		} else {
			f.DNAT.Addr = f.Src.Next()
		}
		f.DNAT.Port = uint16(r.IntN(100))
	}
	if r.IntN(10) == 0 {
		f.HasSeqAdj = true
		f.SeqAdjOrig = SeqAdj{CorrectionPos: r.Uint32(), OffsetBefore: r.Uint32(), OffsetAfter: r.Uint32()}
		f.SeqAdjReply = SeqAdj{CorrectionPos: r.Uint32(), OffsetBefore: r.Uint32(), OffsetAfter: r.Uint32()}
	}
	if r.IntN(10) == 0 {
		f.Labels = make([]byte, 16)
		f.Labels[r.IntN(16)] = byte(1 + r.IntN(255))
	}
	if r.IntN(10) == 0 {
		f.Helper = []string{"ftp", "sip", "tftp", "irc", "netbios-ns"}[r.IntN(5)]
	}
	if r.IntN(4) == 0 {
		f.Zone = uint16(r.Uint32())
	}
	return f
}

func TestWireRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var o WireOptions
	for i := range 5000 {
		f := randFlow(r)
		b, err := o.AppendCT(nil, MsgType(i%3), 0, uint32(i), &f)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if len(b)%4 != 0 {
			t.Fatalf("unaligned message %x", b)
		}
		m, rest, err := NextMessage(b)
		if err != nil || len(rest) != 0 {
			t.Fatalf("%d: NextMessage: %v", i, err)
		}
		back, err := o.DecodeFlow(m.Payload)
		if err != nil {
			t.Fatalf("%d: decode %x: %v", i, b, err)
		}
		if diff := cmp.Diff(f, back, addrCmp); diff != "" {
			t.Fatalf("%d: (-want +got):\n%s", i, diff)
		}
	}
}

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
