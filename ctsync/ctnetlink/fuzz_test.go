package ctnetlink

import (
	"net/netip"
	"testing"
)

// FuzzNetlinkDecodeFlow feeds arbitrary ctnetlink payloads to the decoder: it
// must never panic, and what it accepts has a usable original tuple.
func FuzzNetlinkDecodeFlow(f *testing.F) {
	for name := range ktKernelMsgs {
		f.Add(ktMsg(f, name)[nlmsgHdrLen:])
	}
	def := nlEncodeOptions{defaultTimeout: 60}
	for _, c := range ktEncodeCases() {
		if b, err := nlAppendRequest(nil, c.kind, &c.flow, 1, 0, &def); err == nil {
			f.Add(b[nlmsgHdrLen:])
		}
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		var fl Flow
		if err := nlDecodeFlow(payload, &fl); err != nil {
			return
		}
		if !fl.Src.IsValid() || !fl.Dst.IsValid() || fl.Src.Is4() != fl.Dst.Is4() {
			t.Fatalf("decoded a flow without a valid tuple: %+v", fl.Key)
		}
		if fl.SNAT.Port != 0 && !fl.SNAT.Addr.IsValid() || fl.DNAT.Port != 0 && !fl.DNAT.Addr.IsValid() {
			t.Fatalf("NAT port without address: %+v %+v", fl.SNAT, fl.DNAT)
		}
	})
}

// FuzzNetlinkDecodeEvents feeds arbitrary datagrams to the event decoder.
func FuzzNetlinkDecodeEvents(f *testing.F) {
	for name := range ktKernelMsgs {
		m := ktMsg(f, name)
		f.Add(m, uint32(0))
		f.Add(append(append([]byte(nil), m...), m...), uint32(0x2884ebcc))
	}
	f.Fuzz(func(t *testing.T, dgram []byte, own uint32) {
		evs, bad := nlAppendEvents(nil, dgram, own)
		if bad < 0 || len(evs) > len(dgram)/(nlmsgHdrLen+nfgenHdrLen) {
			t.Fatalf("%d events, %d bad from %d bytes", len(evs), bad, len(dgram))
		}
		for _, ev := range evs {
			if ev.Type < EventNew || ev.Type > EventDestroy {
				t.Fatalf("event type %d", ev.Type)
			}
		}
	})
}

// FuzzNetlinkEncodeDecode builds flows from fuzzed fields: encoding never panics,
// refuses what the kernel would refuse, and what it writes decodes to the
// same key.
func FuzzNetlinkEncodeDecode(f *testing.F) {
	f.Add([]byte{10, 0, 0, 1}, []byte{10, 0, 0, 2}, uint16(1000), uint16(80), uint8(6), uint8(8), uint16(3), uint32(0x0e), uint8(3), []byte{}, "", uint8(0))
	f.Add(make([]byte, 16), make([]byte, 16), uint16(1), uint16(2), uint8(58), uint8(128), uint16(0), uint32(0), uint8(0), []byte{1, 2, 3, 4}, "ftp", uint8(1))
	f.Add([]byte{1, 2, 3}, []byte{10, 0, 0, 2}, uint16(1), uint16(2), uint8(1), uint8(3), uint16(0), uint32(0xffffffff), uint8(0), []byte{1}, "x", uint8(2))
	f.Fuzz(func(t *testing.T, src, dst []byte, sport, dport uint16, proto, icmpType uint8, zone uint16,
		status uint32, state uint8, labels []byte, helper string, kindSel uint8) {
		addr := func(b []byte) netip.Addr {
			switch len(b) {
			case 4:
				return netip.AddrFrom4([4]byte(b))
			case 16:
				return netip.AddrFrom16([16]byte(b))
			}
			return netip.Addr{}
		}
		fl := Flow{
			Key: Key{Tuple: Tuple{Src: addr(src), Dst: addr(dst), SrcPort: sport, DstPort: dport,
				ICMPID: sport, ICMPType: icmpType, Proto: proto}, Zone: zone},
			Status: status, ProtoState: state, HasProtoState: state&1 == 1,
			Labels: labels, Helper: helper,
		}
		if len(labels) > 0 {
			fl.SNAT = NAT{Addr: addr(labels), Port: dport}
		}
		kind := nlReqKind(kindSel%3) + nlReqCreate
		opts := nlEncodeOptions{defaultTimeout: 60, tcpWindowTracking: state&2 == 2}
		b, err := nlAppendRequest(nil, kind, &fl, 7, 0, &opts)
		if err != nil {
			if len(b) != 0 {
				t.Fatalf("error %v with %d bytes written", err, len(b))
			}
			return
		}
		h, payload, rest, ok := nlNextMessage(b)
		if !ok || len(rest) != 0 || h.Seq != 7 {
			t.Fatalf("malformed message: ok %v rest %d seq %d", ok, len(rest), h.Seq)
		}
		var got Flow
		if err := nlDecodeFlow(payload, &got); err != nil {
			t.Fatalf("decode of our own request: %v", err)
		}
		want := fl.Key
		switch {
		case proto == ProtoICMP || proto == ProtoICMPv6:
			want.SrcPort, want.DstPort = 0, 0
		case nlHasPorts(proto):
			want.ICMPID, want.ICMPType = 0, 0
		default:
			want.SrcPort, want.DstPort, want.ICMPID, want.ICMPType = 0, 0, 0, 0
		}
		if got.Key != want {
			t.Fatalf("key %+v, want %+v", got.Key, want)
		}
	})
}
