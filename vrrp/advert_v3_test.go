package vrrp

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// ipPayload splits a captured IPv4 or IPv6 packet (no extension headers)
// into its source, destination and payload.
func ipPayload(t testing.TB, pkt []byte) (src, dst netip.Addr, payload []byte) {
	t.Helper()
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), pkt[ihl:]
	case 6:
		if pkt[6] != IPProtocol {
			t.Fatalf("next header %d, want %d", pkt[6], IPProtocol)
		}
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), pkt[40:]
	}
	t.Fatalf("not an IP packet: % x", pkt[:1])
	return
}

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	text, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return mustHex(t, string(text))
}

// Adverts captured from keepalived 2.2.7 in vrrp_version 3 (testdata/README).
var goldenV3 = []struct {
	file string
	want AdvertisementV3
}{
	{"keepalived-2.2.7-v3-vrid51-1s.hex", AdvertisementV3{VRID: 51, Priority: 100, MaxAdvertInterval: 100, Checksum: 0x7874, Addresses: addrs("192.168.200.16")}},
	{"keepalived-2.2.7-v3-vrid51-prio0.hex", AdvertisementV3{VRID: 51, Priority: 0, MaxAdvertInterval: 100, Checksum: 0xdc74, Addresses: addrs("192.168.200.16")}},
	{"keepalived-2.2.7-v3-vrid53-50ms.hex", AdvertisementV3{VRID: 53, Priority: 150, MaxAdvertInterval: 5, Checksum: 0xbe0f, Addresses: addrs("192.168.200.17", "192.168.200.18")}},
	{"keepalived-2.2.7-v3-ipv6-vrid61.hex", AdvertisementV3{VRID: 61, Priority: 200, MaxAdvertInterval: 10, Checksum: 0xd9d5, Addresses: addrs("fe80::61", "2001:db8:200::16")}},
	{"keepalived-2.2.7-v3-ipv6-vrid61-prio0.hex", AdvertisementV3{VRID: 61, Priority: 0, MaxAdvertInterval: 10, Checksum: 0xa1d6, Addresses: addrs("fe80::61", "2001:db8:200::16")}},
}

func TestAdvertV3GoldenKeepalived(t *testing.T) {
	for _, tc := range goldenV3 {
		t.Run(tc.file, func(t *testing.T) {
			src, dst, wire := ipPayload(t, readGolden(t, tc.file))
			got, err := ParseAdvertisementV3(wire, src, dst)
			if err != nil {
				t.Fatalf("ParseAdvertisementV3: %v", err)
			}
			if diff := cmp.Diff(&tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("parsed (-want +got):\n%s", diff)
			}
			enc, err := tc.want.AppendBinary(nil, src, dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, wire) {
				t.Errorf("encoded % x\n         want % x", enc, wire)
			}
			if n := tc.want.Len(); n != len(wire) {
				t.Errorf("Len %d, want %d", n, len(wire))
			}
		})
	}
}

// keepalived's IPv4 checksum covers the pseudo-header; RFC 9568 (and
// keepalived's v3_checksum_as_v2) computes it over the message only. Both
// must be accepted on IPv4, only the pseudo-header form on IPv6.
func TestAdvertV3ChecksumForms(t *testing.T) {
	src, dst := netip.MustParseAddr("192.168.200.1"), GroupAddress
	a := AdvertisementV3{VRID: 7, Priority: 100, MaxAdvertInterval: 5, Addresses: addrs("10.0.0.7")}
	b, err := a.AppendBinary(nil, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	b[6], b[7] = 0, 0
	v2style := Checksum(b)
	b[6], b[7] = byte(v2style>>8), byte(v2style)
	if _, err := ParseAdvertisementV3(b, src, dst); err != nil {
		t.Errorf("IPv4 checksum without pseudo-header refused: %v", err)
	}
	// A pseudo-header checksum is bound to the addresses.
	good, _ := a.AppendBinary(nil, src, dst)
	if _, err := ParseAdvertisementV3(good, netip.MustParseAddr("192.168.200.2"), dst); !errors.Is(err, ErrChecksum) {
		t.Errorf("checksum from another source accepted: %v", err)
	}

	s6, d6 := netip.MustParseAddr("fe80::1"), GroupAddress6
	a6 := AdvertisementV3{VRID: 7, Priority: 100, MaxAdvertInterval: 5, Addresses: addrs("fe80::7")}
	b6, err := a6.AppendBinary(nil, s6, d6)
	if err != nil {
		t.Fatal(err)
	}
	b6[6], b6[7] = 0, 0
	v2style = Checksum(b6)
	b6[6], b6[7] = byte(v2style>>8), byte(v2style)
	if _, err := ParseAdvertisementV3(b6, s6, d6); !errors.Is(err, ErrChecksum) {
		t.Errorf("IPv6 checksum without pseudo-header accepted: %v", err)
	}
}

func TestAdvertV3Errors(t *testing.T) {
	src, dst := netip.MustParseAddr("192.168.200.1"), GroupAddress
	good, err := (&AdvertisementV3{VRID: 1, Priority: 100, MaxAdvertInterval: 100, Addresses: addrs("10.0.0.1")}).AppendBinary(nil, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name   string
		b      []byte
		want   error
		reason DiscardReason
	}{
		{"empty", nil, ErrShort, DiscardLength},
		{"v2", mod(func(b []byte) []byte { b[0] = 0x21; return b }), ErrVersion, DiscardVersion},
		{"type 2", mod(func(b []byte) []byte { b[0] = 0x32; return b }), ErrType, DiscardType},
		{"count 2 with 1 address", mod(func(b []byte) []byte { b[3] = 2; return b }), ErrShort, DiscardLength},
		{"trailing octets", mod(func(b []byte) []byte { return append(b, 0, 0, 0, 0) }), ErrLong, DiscardLength},
		{"checksum", mod(func(b []byte) []byte { b[7]++; return b }), ErrChecksum, DiscardChecksum},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAdvertisementV3(tc.b, src, dst)
			var pe *ParseError
			if !errors.Is(err, tc.want) || !errors.As(err, &pe) || pe.Reason() != tc.reason {
				t.Fatalf("err %v, want %v (%v)", err, tc.want, tc.reason)
			}
		})
	}
	// Reserved bits are ignored on receive and zero on send.
	b := mod(func(b []byte) []byte { b[4] |= 0xf0; return b })
	b[6], b[7] = 0, 0
	c := ChecksumV3(b, src, dst)
	b[6], b[7] = byte(c>>8), byte(c)
	a, err := ParseAdvertisementV3(b, src, dst)
	if err != nil || a.MaxAdvertInterval != 100 {
		t.Fatalf("reserved bits set: %+v, %v", a, err)
	}

	for _, tc := range []struct {
		name     string
		a        AdvertisementV3
		src, dst netip.Addr
	}{
		{"interval beyond 12 bits", AdvertisementV3{MaxAdvertInterval: 4096, Addresses: addrs("10.0.0.1")}, src, dst},
		{"IPv6 address in IPv4 packet", AdvertisementV3{MaxAdvertInterval: 1, Addresses: addrs("fe80::1")}, src, dst},
		{"IPv4 address in IPv6 packet", AdvertisementV3{MaxAdvertInterval: 1, Addresses: addrs("10.0.0.1")}, netip.MustParseAddr("fe80::1"), GroupAddress6},
		{"mixed families of src and dst", AdvertisementV3{MaxAdvertInterval: 1}, src, GroupAddress6},
		{"no source", AdvertisementV3{MaxAdvertInterval: 1}, netip.Addr{}, dst},
	} {
		if _, err := tc.a.AppendBinary(nil, tc.src, tc.dst); err == nil {
			t.Errorf("%s: encoded", tc.name)
		}
	}
}

func TestCentisecondsV3(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		cs   uint16
		okay bool
	}{
		{10 * time.Millisecond, 1, true},
		{50 * time.Millisecond, 5, true},
		{time.Second, 100, true},
		{40950 * time.Millisecond, 4095, true},
		{0, 0, false},
		{5 * time.Millisecond, 0, false},
		{15 * time.Millisecond, 0, false},
		{40960 * time.Millisecond, 0, false},
	} {
		cs, ok := CentisecondsV3(tc.d)
		if cs != tc.cs || ok != tc.okay {
			t.Errorf("CentisecondsV3(%v) = %d, %v; want %d, %v", tc.d, cs, ok, tc.cs, tc.okay)
		}
	}
}

// RFC 9568 §6.1 timers scale with the master's interval.
func TestTimersV3(t *testing.T) {
	if got := SkewTimeV3(100, time.Second); got != SkewTime(100) {
		t.Errorf("SkewTimeV3(100, 1s) = %v, want v2's %v", got, SkewTime(100))
	}
	if got, want := MasterDownIntervalV3(50*time.Millisecond, 100), 150*time.Millisecond+156*50*time.Millisecond/256; got != want {
		t.Errorf("MasterDownIntervalV3(50ms, 100) = %v, want %v", got, want)
	}
	if got, want := MasterDownIntervalV3(10*time.Millisecond, 254), 30*time.Millisecond+2*10*time.Millisecond/256; got != want {
		t.Errorf("MasterDownIntervalV3(10ms, 254) = %v, want %v", got, want)
	}
	// Priorities one apart still time out in order at the smallest interval.
	if MasterDownIntervalV3(Centisecond, 101) >= MasterDownIntervalV3(Centisecond, 100) {
		t.Error("priority 101 does not time out before 100 at 10 ms")
	}
}

// Encoding into a buffer with room does not allocate: the send path of a
// MASTER at 10 ms adverts must not feed the garbage collector.
func TestAdvertV3AppendNoAlloc(t *testing.T) {
	a := AdvertisementV3{VRID: 1, Priority: 100, MaxAdvertInterval: 5, Addresses: addrs("10.0.0.1", "10.0.0.2")}
	src := netip.MustParseAddr("192.168.0.1")
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := a.AppendBinary(buf[:0], src, GroupAddress); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("AppendBinary allocates %v times per call", allocs)
	}
}
