package bench

import (
	"net/netip"

	"github.com/fwpair/fwpair/ctsync"
)

// Kernel constants for synthetic conntrack entries.
const (
	ipsSeenReply   = 1 << 1
	ipsAssured     = 1 << 2
	ipsConfirmed   = 1 << 3
	protoTCP       = 6
	tcpEstablished = 3
	// established is the kernel's default ESTABLISHED timeout (5 days).
	established = 432000
)

// syntheticFlows makes n distinct ESTABLISHED TCP connections that look
// like the lab's traffic: clients 192.168.0.101-250 to servers
// 192.168.1.20-69 on port 443, none of them an address of the lab (the
// real sessions', the firewalls' or the VIPs', which both stacks' filters
// ignore). With snat each is masqueraded behind the eth1 VIP, as the
// typical ruleset does, with a unique translated port.
func syntheticFlows(n int, snat bool) []ctsync.Flow {
	flows := make([]ctsync.Flow, n)
	vip := netip.AddrFrom4([4]byte{192, 168, 1, 100})
	for i := range flows {
		f := ctsync.Flow{
			Key: ctsync.Key{Tuple: ctsync.Tuple{
				Src:     netip.AddrFrom4([4]byte{192, 168, 0, byte(101 + i%150)}),
				Dst:     netip.AddrFrom4([4]byte{192, 168, 1, byte(20 + i%50)}),
				SrcPort: uint16(10000 + i/150),
				DstPort: 443,
				Proto:   protoTCP,
			}},
			Status:        ipsSeenReply | ipsAssured | ipsConfirmed,
			Timeout:       established,
			ProtoState:    tcpEstablished,
			HasProtoState: true,
			TCPWScaleOrig: 7, TCPWScaleReply: 7, HasTCPWScale: true,
		}
		if snat {
			f.SNAT = ctsync.NAT{Addr: vip, Port: uint16(1024 + i/50)}
		}
		flows[i] = f
	}
	return flows
}
