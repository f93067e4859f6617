package vrrp

import (
	"net"
	"net/netip"
)

// ICMPv6 Neighbor Advertisement (RFC 4861 §4.4), the IPv6 counterpart of
// gratuitous ARP: a new MASTER sends one unsolicited NA per IPv6 VIP to
// ff02::1 (RFC 9568 §6.4.1, §8.2).
const (
	icmpv6NeighborAdvert = 136
	naFlagRouter         = 0x80
	naFlagOverride       = 0x20
	ndOptTargetLinkAddr  = 2
	naLen                = 4 + 4 + 16 + 8 // type..checksum, flags+reserved, target, option
)

// AllNodes is ff02::1, where unsolicited Neighbor Advertisements go.
var AllNodes = netip.MustParseAddr("ff02::1")

// AppendNeighborAdvert appends an unsolicited Neighbor Advertisement for
// target with the given link-layer address (6-octet Ethernet MAC) to b:
// Router and Override set, Solicited clear, a Target Link-Layer Address
// option; the checksum is left zero for the kernel to fill (raw ICMPv6
// sockets always checksum, RFC 3542 §3.1). The Router flag tells hosts
// that the address belongs to a router, which a VRRP master is; keepalived
// 2.2.7 sends Override only.
func AppendNeighborAdvert(b []byte, target netip.Addr, mac net.HardwareAddr) []byte {
	t := target.As16()
	b = append(b, icmpv6NeighborAdvert, 0, 0, 0, naFlagRouter|naFlagOverride, 0, 0, 0)
	b = append(b, t[:]...)
	b = append(b, ndOptTargetLinkAddr, 1)
	var hw [6]byte
	copy(hw[:], mac)
	return append(b, hw[:]...)
}
