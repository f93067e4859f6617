package vrrp

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
)

// ndConn is the raw ICMPv6 socket that sends Neighbor Advertisements on
// one interface.
type ndConn struct {
	index int
	conn  *ipv6.PacketConn
}

// splitFamilies splits addrs into IPv4 and IPv6 addresses.
func splitFamilies(addrs []netip.Addr) (v4, v6 []netip.Addr) {
	for _, a := range addrs {
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	return v4, v6
}

// advertiseNeighbors sends one unsolicited Neighbor Advertisement per
// address to ff02::1, from that address, hop limit 255 (RFC 4861 §7.2.6).
func (p *linuxPlatform) advertiseNeighbors(ctx context.Context, ifname string, attrs *netlink.LinkAttrs, addrs []netip.Addr) error {
	nc, err := p.ndConn(ifname, attrs)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, naLen)
	dst := &net.IPAddr{IP: AllNodes.AsSlice()}
	for _, addr := range addrs {
		if err := ctx.Err(); err != nil {
			return err
		}
		msg := AppendNeighborAdvert(buf[:0], addr, attrs.HardwareAddr)
		cm := &ipv6.ControlMessage{IfIndex: attrs.Index, Src: addr.AsSlice(), HopLimit: RequiredTTL}
		if _, err := nc.WriteTo(msg, cm, dst); err != nil {
			p.dropNDConn(ifname)
			return fmt.Errorf("neighbor advertisement for %v on %s: %w", addr, ifname, err)
		}
	}
	return nil
}

// ndConn returns the ICMPv6 socket of ifname, re-opening it if the
// interface was re-created with another index.
func (p *linuxPlatform) ndConn(ifname string, attrs *netlink.LinkAttrs) (*ipv6.PacketConn, error) {
	p.garpMu.Lock()
	defer p.garpMu.Unlock()
	if nc, ok := p.nd[ifname]; ok {
		if nc.index == attrs.Index {
			return nc.conn, nil
		}
		_ = nc.conn.Close()
		delete(p.nd, ifname)
	}
	var pc net.PacketConn
	err := p.inNamespace(func() error {
		var err error
		pc, err = net.ListenPacket("ip6:ipv6-icmp", "::")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ICMPv6 socket on %s: %w", ifname, err)
	}
	c := ipv6.NewPacketConn(pc)
	// Send-only: let nothing queue up for reading.
	var f ipv6.ICMPFilter
	f.SetAll(true)
	if err := c.SetICMPFilter(&f); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("ICMPv6 filter on %s: %w", ifname, err)
	}
	if err := c.SetMulticastHopLimit(RequiredTTL); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("ICMPv6 hop limit on %s: %w", ifname, err)
	}
	p.nd[ifname] = &ndConn{index: attrs.Index, conn: c}
	return c, nil
}

func (p *linuxPlatform) dropNDConn(ifname string) {
	p.garpMu.Lock()
	defer p.garpMu.Unlock()
	if nc, ok := p.nd[ifname]; ok {
		_ = nc.conn.Close()
		delete(p.nd, ifname)
	}
}
