package ctnetlinktest

import (
	"net/netip"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
)

// TCP_CONNTRACK_* states used by the fixtures.
const (
	TCPSynSent     = 1
	TCPEstablished = 3
)

// TCP builds an established, assured TCP flow.
func TCP(src, dst string, sport, dport uint16) ctnetlink.Flow {
	return ctnetlink.Flow{
		Key: ctnetlink.Key{Tuple: ctnetlink.Tuple{
			Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
			SrcPort: sport, DstPort: dport, Proto: ctnetlink.ProtoTCP,
		}},
		Status:        ctnetlink.IPSSeenReply | ctnetlink.IPSAssured | ctnetlink.IPSConfirmed,
		Timeout:       3600,
		ProtoState:    TCPEstablished,
		HasProtoState: true,
	}
}

// UDP builds a UDP flow that has seen replies.
func UDP(src, dst string, sport, dport uint16) ctnetlink.Flow {
	return ctnetlink.Flow{
		Key: ctnetlink.Key{Tuple: ctnetlink.Tuple{
			Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
			SrcPort: sport, DstPort: dport, Proto: ctnetlink.ProtoUDP,
		}},
		Status:  ctnetlink.IPSSeenReply | ctnetlink.IPSConfirmed,
		Timeout: 120,
	}
}

// Ping builds an ICMP or ICMPv6 echo flow.
func Ping(src, dst string, id uint16) ctnetlink.Flow {
	f := ctnetlink.Flow{
		Key: ctnetlink.Key{Tuple: ctnetlink.Tuple{
			Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst),
			ICMPID: id, ICMPType: 8, Proto: ctnetlink.ProtoICMP,
		}},
		Status:  ctnetlink.IPSSeenReply,
		Timeout: 25,
	}
	if f.Src.Is6() {
		f.Proto, f.ICMPType = ctnetlink.ProtoICMPv6, 128
	}
	return f
}

// CommitFlows is a mixed set for commit tests: TCP, UDP and ICMP in both
// families, a mark, zones, SNAT with a port, DNAT with a port, IPv6 SNAT.
func CommitFlows() []ctnetlink.Flow {
	tcp4 := TCP("192.168.0.10", "192.168.1.20", 40000, 80)
	tcp4.Mark = 0x2a
	udp4 := UDP("192.168.0.10", "192.168.1.20", 5353, 53)
	udp4.Zone = 7
	ping4 := Ping("192.168.0.10", "192.168.1.20", 4242)
	tcp6 := TCP("2001:db8::10", "2001:db8:1::20", 40001, 443)
	tcp6.Timeout = 1000
	udp6 := UDP("2001:db8::10", "2001:db8:1::20", 5000, 53)
	ping6 := Ping("2001:db8::10", "2001:db8:1::20", 77)
	snat := TCP("192.168.0.11", "192.168.1.20", 40002, 22)
	snat.SNAT = ctnetlink.NAT{Addr: netip.MustParseAddr("192.168.1.100"), Port: 61000}
	snat.Mark = 9
	snat.Zone = 3
	dnat := TCP("192.168.0.12", "192.168.0.100", 40003, 8080)
	dnat.DNAT = ctnetlink.NAT{Addr: netip.MustParseAddr("192.168.1.20"), Port: 80}
	snat6 := UDP("2001:db8::11", "2001:db8:1::20", 6000, 53)
	snat6.SNAT = ctnetlink.NAT{Addr: netip.MustParseAddr("2001:db8:1::100")}
	return []ctnetlink.Flow{tcp4, udp4, ping4, tcp6, udp6, ping6, snat, dnat, snat6}
}

// BenchFlows makes n distinct flows (established TCP, or UDP when proto is
// ctnetlink.ProtoUDP); with snat, each gets its own SNAT address and port
// binding.
func BenchFlows(n int, proto uint8, snat bool) []ctnetlink.Flow {
	flows := make([]ctnetlink.Flow, n)
	dst := netip.AddrFrom4([4]byte{192, 0, 2, 1})
	for i := range flows {
		f := TCP("10.0.0.1", "192.0.2.1", 0, 80)
		if proto == ctnetlink.ProtoUDP {
			f = UDP("10.0.0.1", "192.0.2.1", 0, 53)
		}
		f.Src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		f.Dst = dst
		f.SrcPort = uint16(1024 + i%50000)
		if snat {
			f.SNAT = ctnetlink.NAT{Addr: netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i/50000)}), Port: uint16(10000 + i%50000)}
		}
		flows[i] = f
	}
	return flows
}

// FTPMaster builds the i-th ftp control connection with the ftp helper, a
// master for FTPExpect.
func FTPMaster(i int) ctnetlink.Flow {
	a := netip.MustParseAddr
	return ctnetlink.Flow{
		Key: ctnetlink.Key{Tuple: ctnetlink.Tuple{
			Src: a("10.0.1.2"), Dst: a("198.51.100.7"), SrcPort: uint16(40000 + i), DstPort: 21, Proto: ctnetlink.ProtoTCP,
		}},
		Status: 0x18e, Timeout: 300, ProtoState: TCPEstablished, HasProtoState: true, Helper: "ftp",
	}
}

// FTPExpect builds the expectation of a passive ftp data connection of
// master m to port, as the ftp helper creates it.
func FTPExpect(m *ctnetlink.Flow, port uint16) ctnetlink.Expect {
	a := netip.MustParseAddr
	return ctnetlink.Expect{
		ExpectKey: ctnetlink.ExpectKey{
			Master: m.Tuple,
			Tuple:  ctnetlink.Tuple{Src: a("10.0.1.2"), Dst: a("198.51.100.7"), DstPort: port, Proto: ctnetlink.ProtoTCP},
		},
		Mask:    ctnetlink.Tuple{Src: a("255.255.255.255"), Dst: a("255.255.255.255"), DstPort: 0xffff, Proto: ctnetlink.ProtoTCP},
		Timeout: 299, HasClass: true, Helper: "ftp",
	}
}
