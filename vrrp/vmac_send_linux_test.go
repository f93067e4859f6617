package vrrp

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
)

// The frames of adverts from the virtual MAC: Ethernet header with the
// multicast group's MAC, and the IP header the raw socket would write
// (TOS 0xc0, TTL 255, protocol 112, valid IPv4 header checksum).
func TestAppendAdvertFrame(t *testing.T) {
	msg := []byte{0x31, 0x33, 0x64, 0x01, 0x00, 0x05, 0x00, 0x00, 192, 168, 0, 100}
	f, dst, err := appendAdvertFrame(nil, VirtualMAC(51, false), msg, netip.MustParseAddr("192.168.0.1"), GroupAddress)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := hex.DecodeString("01005e000012" + "00005e000133" + "0800" +
		"45c0" + "0020" + "00000000" + "ff70" + "0000" + "c0a80001" + "e0000012")
	binaryPutChecksum(want[14:34])
	want = append(want, msg...)
	if !bytes.Equal(f, want) {
		t.Errorf("IPv4 frame\n got %x\nwant %x", f, want)
	}
	if dst != [6]byte{0x01, 0x00, 0x5e, 0, 0, 0x12} {
		t.Errorf("IPv4 destination MAC %x", dst)
	}
	if ipChecksum(f[14:34]) != 0 {
		t.Errorf("IPv4 header checksum does not verify")
	}

	f, dst, err = appendAdvertFrame(nil, VirtualMAC(61, true), msg, netip.MustParseAddr("fe80::1"), GroupAddress6)
	if err != nil {
		t.Fatal(err)
	}
	want, _ = hex.DecodeString("333300000012" + "00005e00023d" + "86dd" +
		"6c000000" + "000c" + "70" + "ff" + "fe800000000000000000000000000001" + "ff020000000000000000000000000012")
	want = append(want, msg...)
	if !bytes.Equal(f, want) {
		t.Errorf("IPv6 frame\n got %x\nwant %x", f, want)
	}
	if dst != [6]byte{0x33, 0x33, 0, 0, 0, 0x12} {
		t.Errorf("IPv6 destination MAC %x", dst)
	}

	if _, _, err := appendAdvertFrame(nil, VirtualMAC(1, false), msg, netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("192.168.0.2")); err == nil {
		t.Error("unicast destination accepted")
	}
	if _, _, err := appendAdvertFrame(nil, VirtualMAC(1, false), msg, netip.MustParseAddr("fe80::1"), GroupAddress); err == nil {
		t.Error("mixed families accepted")
	}
}

func binaryPutChecksum(h []byte) {
	c := ipChecksum(h)
	h[10], h[11] = byte(c>>8), byte(c)
}
