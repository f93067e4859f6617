package vrrp

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzParseAdvertisementV3 checks that no input panics the VRRPv3 decoder
// (IPv4 and IPv6) and that whatever parses re-encodes to the same bytes,
// up to the reserved bits (ignored on receive, zero on send) and the
// checksum form (both are accepted on IPv4, one is sent).
func FuzzParseAdvertisementV3(f *testing.F) {
	for _, g := range goldenV3 {
		src, _, payload := ipPayload(f, readGolden(f, g.file))
		f.Add(payload, src.Is6())
	}
	f.Add([]byte{}, false)
	f.Add([]byte{0x31, 1, 100, 0, 0, 5, 0, 0}, true)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		src, dst := netip.MustParseAddr("192.168.200.1"), GroupAddress
		if v6 {
			src, dst = netip.MustParseAddr("fe80::1"), GroupAddress6
		}
		a, err := ParseAdvertisementV3(b, src, dst)
		if err != nil {
			return
		}
		enc, err := a.AppendBinary(nil, src, dst)
		if err != nil {
			t.Fatalf("parsed advert does not encode: %v", err)
		}
		if len(enc) != len(b) || !bytes.Equal(enc[:4], b[:4]) || !bytes.Equal(enc[8:], b[8:]) ||
			enc[4] != b[4]&0x0f || enc[5] != b[5] {
			t.Fatalf("round trip changed the packet:\n in % x\nout % x", b, enc)
		}
		if ChecksumV3(b, src, dst) == 0 && !bytes.Equal(enc, b) && b[4]&0xf0 == 0 {
			t.Fatalf("round trip changed a canonical packet:\n in % x\nout % x", b, enc)
		}
		again, err := ParseAdvertisementV3(enc, src, dst)
		if err != nil || again.VRID != a.VRID || again.Priority != a.Priority || again.MaxAdvertInterval != a.MaxAdvertInterval {
			t.Fatalf("re-parse: %+v, %v; first %+v", again, err, a)
		}
		var p receivePolicy
		p.checkV3(a, RecvMeta{Src: src, Dst: dst, TTL: RequiredTTL}) // must not panic either
	})
}
