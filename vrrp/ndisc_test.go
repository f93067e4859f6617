package vrrp

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
)

// The NA keepalived 2.2.7 sent for fe80::61 (testdata/README), from our
// encoder: identical but for the Router flag (keepalived sets Override
// only) and the checksum, which the kernel fills in.
func TestNeighborAdvertGoldenKeepalived(t *testing.T) {
	pkt := readGolden(t, "keepalived-2.2.7-ipv6-na-fe80-61.hex")
	if pkt[6] != 58 || pkt[7] != 255 {
		t.Fatalf("golden is not ICMPv6 with hop limit 255: next header %d hop limit %d", pkt[6], pkt[7])
	}
	want := bytes.Clone(pkt[40:])
	want[2], want[3] = 0, 0 // checksum: the kernel's job
	want[4] |= naFlagRouter
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	got := AppendNeighborAdvert(nil, netip.MustParseAddr("fe80::61"), mac)
	if !bytes.Equal(got, want) {
		t.Errorf("NA % x\n  want % x", got, want)
	}
	if len(got) != naLen {
		t.Errorf("length %d, want %d", len(got), naLen)
	}
}
