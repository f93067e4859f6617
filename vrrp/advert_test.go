package vrrp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// Advertisements laid out as RFC 3768 §5.1 defines them, checked byte by byte.
var goldenAdverts = []struct {
	name string
	hex  string
	want Advertisement
}{
	{
		name: "vrid51 prio100",
		hex:  "21 33 64 01 00 01 f2 10 c0 a8 c8 10 00 00 00 00 00 00 00 00",
		want: Advertisement{VRID: 51, Priority: 100, AdvertInterval: 1, Checksum: 0xf210, Addresses: addrs("192.168.200.16")},
	},
	{
		name: "vrid51 prio0 shutdown",
		hex:  "21 33 00 01 00 01 56 11 c0 a8 c8 10 00 00 00 00 00 00 00 00",
		want: Advertisement{VRID: 51, Priority: 0, AdvertInterval: 1, Checksum: 0x5611, Addresses: addrs("192.168.200.16")},
	},
	{
		name: "vrid61 prio80",
		hex:  "21 3d 50 01 00 01 cd b3 c0 a8 00 64 00 00 00 00 00 00 00 00",
		want: Advertisement{VRID: 61, Priority: 80, AdvertInterval: 1, Checksum: 0xcdb3, Addresses: addrs("192.168.0.100")},
	},
	{
		name: "vrid1 owner two addresses",
		hex:  "21 01 ff 02 00 01 cb f7 0a 00 00 01 0a 00 00 02 00 00 00 00 00 00 00 00",
		want: Advertisement{VRID: 1, Priority: 255, AdvertInterval: 1, Checksum: 0xcbf7, Addresses: addrs("10.0.0.1", "10.0.0.2")},
	},
}

func TestAdvertGolden(t *testing.T) {
	for _, tc := range goldenAdverts {
		t.Run(tc.name, func(t *testing.T) {
			wire := mustHex(t, tc.hex)
			got, err := ParseAdvertisement(wire)
			if err != nil {
				t.Fatalf("ParseAdvertisement: %v", err)
			}
			if diff := cmp.Diff(&tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("parsed (-want +got):\n%s", diff)
			}
			enc, err := tc.want.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, wire) {
				t.Errorf("encoded % x, want % x", enc, wire)
			}
		})
	}
}

// readCapture reads a testdata/*.hex file holding a whole IPv4 packet as
// captured with tcpdump, and returns the IP header and the VRRP payload.
func readCapture(t *testing.T, name string) (ipHeader, payload []byte) {
	t.Helper()
	text, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	pkt := mustHex(t, string(text))
	ihl := int(pkt[0]&0x0f) * 4
	return pkt[:ihl], pkt[ihl:]
}

// Adverts sent by keepalived 2.2.7 (Debian bookworm) in a namespace, one
// without authentication, one with auth_type PASS (see testdata/README).
func TestAdvertKeepalivedCapture(t *testing.T) {
	tests := []struct {
		file string
		want Advertisement
	}{
		{
			file: "keepalived-2.2.7-vrid51-noauth.hex",
			want: Advertisement{VRID: 51, Priority: 100, AdvertInterval: 1, Checksum: 0xf210, Addresses: addrs("192.168.200.16")},
		},
		{
			file: "keepalived-2.2.7-vrid52-pass.hex",
			want: Advertisement{VRID: 52, Priority: 150, AuthType: AuthSimple, AdvertInterval: 1, Checksum: 0xc8d3,
				Addresses: addrs("192.168.200.17", "192.168.200.18"), AuthData: SimplePassword("secret12")},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			ipHeader, payload := readCapture(t, tc.file)
			if ttl := ipHeader[8]; ttl != RequiredTTL {
				t.Errorf("TTL %d, want 255", ttl)
			}
			if proto := ipHeader[9]; proto != IPProtocol {
				t.Errorf("protocol %d, want 112", proto)
			}
			if dst := netip.AddrFrom4([4]byte(ipHeader[16:20])); dst != GroupAddress {
				t.Errorf("destination %v, want %v", dst, GroupAddress)
			}
			got, err := ParseAdvertisement(payload)
			if err != nil {
				t.Fatalf("ParseAdvertisement: %v", err)
			}
			if diff := cmp.Diff(&tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("parsed (-want +got):\n%s", diff)
			}
			enc, err := got.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, payload) {
				t.Errorf("re-encoded % x, want keepalived's % x", enc, payload)
			}
		})
	}
}

func TestParseAdvertisementErrors(t *testing.T) {
	good := mustHex(t, goldenAdverts[0].hex)
	withChecksum := func(b []byte) []byte {
		b[6], b[7] = 0, 0
		c := Checksum(b)
		b[6], b[7] = byte(c>>8), byte(c)
		return b
	}
	mutate := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name   string
		b      []byte
		err    error
		reason DiscardReason
	}{
		{"empty", nil, ErrShort, DiscardLength},
		{"header only", good[:8], ErrShort, DiscardLength},
		{"truncated by one", good[:len(good)-1], ErrShort, DiscardLength},
		{"trailing byte", append(bytes.Clone(good), 0), ErrLong, DiscardLength},
		{"count larger than packet", mutate(func(b []byte) []byte { b[3] = 200; return withChecksum(b) }), ErrShort, DiscardLength},
		{"count zero with address present", mutate(func(b []byte) []byte { b[3] = 0; return withChecksum(b) }), ErrLong, DiscardLength},
		{"version 3", mutate(func(b []byte) []byte { b[0] = 0x31; return withChecksum(b) }), ErrVersion, DiscardVersion},
		{"type 2", mutate(func(b []byte) []byte { b[0] = 0x22; return withChecksum(b) }), ErrType, DiscardType},
		{"bad checksum", mutate(func(b []byte) []byte { b[7]++; return b }), ErrChecksum, DiscardChecksum},
		{"flipped priority", mutate(func(b []byte) []byte { b[2] = 101; return b }), ErrChecksum, DiscardChecksum},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAdvertisement(tc.b)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
			if pe.Reason() != tc.reason {
				t.Errorf("reason %v, want %v", pe.Reason(), tc.reason)
			}
		})
	}
}

func TestAppendBinaryRejects(t *testing.T) {
	a := Advertisement{VRID: 1, Priority: 100, AdvertInterval: 1, Addresses: addrs("2001:db8::1")}
	if _, err := a.MarshalBinary(); err == nil {
		t.Error("IPv6 address encoded without error")
	}
	a.Addresses = make([]netip.Addr, 256)
	for i := range a.Addresses {
		a.Addresses[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
	}
	if _, err := a.MarshalBinary(); err == nil {
		t.Error("256 addresses encoded without error")
	}
	prefix := []byte{0xaa}
	a.Addresses = addrs("10.0.0.1")
	b, err := a.AppendBinary(prefix)
	if err != nil || b[0] != 0xaa || len(b) != 1+a.Len() || Checksum(b[1:]) != 0 {
		t.Errorf("AppendBinary after a prefix: % x, %v", b, err)
	}
}

func TestTimers(t *testing.T) {
	// RFC 3768 §6.1: Skew_Time = (256-Priority)/256 s, Master_Down_Interval = 3*Advertisement_Interval + Skew_Time, at 1 s.
	tests := []struct {
		prio     uint8
		skewMS   float64
		masterMS float64
	}{
		{254, 7.8125, 3007.8125}, {200, 218.75, 3218.75}, {150, 414.0625, 3414.0625},
		{128, 500, 3500}, {100, 609.375, 3609.375}, {50, 804.6875, 3804.6875}, {1, 996.09375, 3996.09375},
	}
	for _, tc := range tests {
		if got := float64(SkewTime(tc.prio).Nanoseconds()) / 1e6; got != tc.skewMS {
			t.Errorf("SkewTime(%d) = %vms, want %vms", tc.prio, got, tc.skewMS)
		}
		if got := float64(MasterDownInterval(1e9, tc.prio).Nanoseconds()) / 1e6; got != tc.masterMS {
			t.Errorf("MasterDownInterval(1s, %d) = %vms, want %vms", tc.prio, got, tc.masterMS)
		}
	}
}
