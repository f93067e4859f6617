package ctsync

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// passiveFTPExpect is the expectation the ftp helper sets up for a PASV
// reply: client 10.0.1.2 may open any source port to 198.51.100.7:40001.
func passiveFTPExpect() Expect {
	a := netip.MustParseAddr
	return Expect{
		ExpectKey: ExpectKey{
			Master: Tuple{Src: a("10.0.1.2"), Dst: a("198.51.100.7"), SrcPort: 51000, DstPort: 21, Proto: protoTCP},
			Tuple:  Tuple{Src: a("10.0.1.2"), Dst: a("198.51.100.7"), DstPort: 40001, Proto: protoTCP},
		},
		Mask:    Tuple{Src: a("255.255.255.255"), Dst: a("255.255.255.255"), DstPort: 0xffff, Proto: protoTCP},
		Timeout: 299, Flags: 0, Class: 0, HasClass: true, Helper: "ftp",
	}
}

func unhexExp(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The layout follows conntrackd's exp2msg: master, expected, mask, timeout,
// flags, class, (NAT), helper.
func TestAppendExpGolden(t *testing.T) {
	x := passiveFTPExpect()
	var o WireOptions
	got, err := o.AppendExp(nil, MsgExpNew, 0, 0x01020304, &x)
	if err != nil {
		t.Fatal(err)
	}
	want := unhexExp(t, `
		13 00 00 7c 01 02 03 04
		00 0c 00 00 0a 00 01 02 c6 33 64 07
		00 05 00 02 06 00 00 00
		00 08 00 03 c7 38 00 15
		00 0c 00 04 0a 00 01 02 c6 33 64 07
		00 05 00 06 06 00 00 00
		00 08 00 07 00 00 9c 41
		00 0c 00 08 ff ff ff ff ff ff ff ff
		00 05 00 0a 06 00 00 00
		00 08 00 0b 00 00 ff ff
		00 08 00 0c 00 00 01 2b
		00 08 00 0d 00 00 00 00
		00 08 00 0e 00 00 00 00
		00 08 00 13 66 74 70 00`)
	if !bytes.Equal(got, want) {
		t.Fatalf("encoded\n%x\nwant\n%x", got, want)
	}
	m, rest, err := NextMessage(got)
	if err != nil || len(rest) != 0 || m.Type != MsgExpNew || m.Seq != 0x01020304 {
		t.Fatalf("NextMessage: %+v %v", m, err)
	}
	back, err := o.DecodeExpect(m.Payload)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, x) {
		t.Fatalf("round trip\n%+v\nwant\n%+v", back, x)
	}
}

func TestExpRoundTripNATAndIPv6(t *testing.T) {
	var o WireOptions
	x := passiveFTPExpect()
	x.NAT = ExpectNAT{Addr: netip.MustParseAddr("192.168.10.5"), Port: 40001, Proto: protoTCP, Direction: 1}
	x.Fn = "nf_nat_follow_master"
	x.Flags = 2
	b, err := o.AppendExp(nil, MsgExpUpd, FlagHello, 7, &x)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := NextMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := o.DecodeExpect(m.Payload)
	if err != nil || !reflect.DeepEqual(got, x) {
		t.Fatalf("NAT round trip: %v\n%+v\nwant\n%+v", err, got, x)
	}

	a := netip.MustParseAddr
	y := Expect{
		ExpectKey: ExpectKey{
			Master: Tuple{Src: a("2001:db8::2"), Dst: a("2001:db8:1::7"), SrcPort: 5000, DstPort: 21, Proto: protoTCP},
			Tuple:  Tuple{Src: a("2001:db8::2"), Dst: a("2001:db8:1::7"), DstPort: 40002, Proto: protoTCP},
		},
		Mask:   Tuple{Src: a("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), Dst: a("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), DstPort: 0xffff, Proto: protoTCP},
		Helper: "ftp",
	}
	b, err = o.AppendExp(nil, MsgExpDel, 0, 8, &y)
	if err != nil {
		t.Fatal(err)
	}
	m, _, _ = NextMessage(b)
	got, err = o.DecodeExpect(m.Payload)
	if err != nil || !reflect.DeepEqual(got, y) {
		t.Fatalf("IPv6 round trip: %v\n%+v\nwant\n%+v", err, got, y)
	}
	// OmitTimeout (sender CommitTimeout) leaves NTA_EXP_TIMEOUT out.
	o.OmitTimeout = true
	b, _ = o.AppendExp(nil, MsgExpNew, 0, 9, &x)
	m, _, _ = NextMessage(b)
	got, _ = o.DecodeExpect(m.Payload)
	if got.Timeout != 0 {
		t.Fatalf("timeout sent with OmitTimeout: %d", got.Timeout)
	}
}

func TestAppendExpRefuses(t *testing.T) {
	var o WireOptions
	x := passiveFTPExpect()
	x.Tuple.Dst = netip.MustParseAddr("2001:db8::1")
	if _, err := o.AppendExp(nil, MsgExpNew, 0, 1, &x); err != ErrBadAddr {
		t.Fatalf("mixed families: %v", err)
	}
	x = passiveFTPExpect()
	x.Helper = "a-very-long-helper"
	if _, err := o.AppendExp(nil, MsgExpNew, 0, 1, &x); err != ErrHelperName {
		t.Fatalf("long helper: %v", err)
	}
	x = passiveFTPExpect()
	x.Fn = strings.Repeat("f", 31)
	if _, err := o.AppendExp(nil, MsgExpNew, 0, 1, &x); err != ErrExpectFn {
		t.Fatalf("long fn: %v", err)
	}
}

func TestDecodeExpectRejects(t *testing.T) {
	var o WireOptions
	x := passiveFTPExpect()
	good, _ := o.AppendExp(nil, MsgExpNew, 0, 1, &x)
	payload := good[headerLen:]
	cases := []struct {
		name string
		p    []byte
		r    Reason
	}{
		{"unknown attribute 21", append(append([]byte{}, payload...), 0, 8, 0, 21, 0, 0, 0, 0), ReasonAttrUnknown},
		{"attribute beyond message", append(append([]byte{}, payload...), 0, 40, 0, 13, 0, 0, 0, 0), ReasonAttrLength},
		{"short flags", append(append([]byte{}, payload...), 0, 6, 0, 13, 0, 0, 0, 0), ReasonAttrSize},
		{"helper too long", append(append([]byte{}, payload...), unhexExp(t, "00 11 00 13 61 61 61 61 61 61 61 61 61 61 61 61 61 00 00 00")...), ReasonAttrSize},
		{"no master", payload[28:], ReasonMissingAddr},
		{"no mask", append(append([]byte{}, payload[:56]...), payload[68:]...), ReasonMissingAddr},
		{"no expected proto", append(append([]byte{}, payload[:40]...), payload[48:]...), ReasonMissingProto},
	}
	for _, c := range cases {
		if _, err := o.DecodeExpect(c.p); ReasonOf(err) != c.r {
			t.Errorf("%s: got %v, want %s", c.name, err, c.r)
		}
	}
}

func FuzzDecodeExpect(f *testing.F) {
	var o WireOptions
	x := passiveFTPExpect()
	b, _ := o.AppendExp(nil, MsgExpNew, 0, 1, &x)
	f.Add(b[headerLen:])
	x.NAT = ExpectNAT{Addr: netip.MustParseAddr("192.0.2.1"), Port: 1, Proto: protoTCP}
	b, _ = o.AppendExp(nil, MsgExpNew, 0, 1, &x)
	f.Add(b[headerLen:])
	f.Fuzz(func(t *testing.T, p []byte) {
		got, err := o.DecodeExpect(p)
		if err != nil {
			if ReasonOf(err) == 0 {
				t.Fatalf("error without reason: %v", err)
			}
			return
		}
		// What decodes re-encodes and decodes to the same expectation.
		enc, err := o.AppendExp(nil, MsgExpNew, 0, 1, &got)
		if err != nil {
			return // e.g. a mask of the other family: refused, not sent
		}
		again, err := o.DecodeExpect(enc[headerLen:])
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(normExp(again), normExp(got)) {
			t.Fatalf("re-decode differs\n%+v\n%+v", again, got)
		}
	})
}

// normExp clears what the encoder legitimately drops: ports of a portless
// master protocol, a zero timeout.
func normExp(x Expect) Expect {
	if !hasPorts(x.Master.Proto) {
		x.Master.SrcPort, x.Master.DstPort = 0, 0
		x.Tuple.SrcPort, x.Tuple.DstPort = 0, 0
		x.Mask.SrcPort, x.Mask.DstPort = 0, 0
	}
	return x
}
