package vrrp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

var _ IPv6Dialer = (*linuxDialer)(nil)

// linkLocalAddr returns the interface's first usable link-local IPv6
// address that is not one of our VIPs: the source of VRRPv3 adverts over
// IPv6 (RFC 9568 §5.1.2.1). An address still in duplicate address
// detection cannot be used yet; the engine re-dials until it can.
func (p *linuxPlatform) linkLocalAddr(link netlink.Link) (netip.Addr, error) {
	p.nlMu.Lock()
	addrs, err := p.nl.AddrList(link, netlink.FAMILY_V6)
	p.nlMu.Unlock()
	if err != nil {
		return netip.Addr{}, err
	}
	tentative := false
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !ip.IsLinkLocalUnicast() || slices.Contains(p.vips, ip) {
			continue
		}
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
			tentative = true
			continue
		}
		return ip, nil
	}
	if tentative {
		return netip.Addr{}, fmt.Errorf("%s: link-local address still in duplicate address detection", link.Attrs().Name)
	}
	return netip.Addr{}, fmt.Errorf("%s has no IPv6 link-local address of its own", link.Attrs().Name)
}

// DialIPv6 opens a raw IPv6 protocol 112 socket bound to ifname, joined
// to ff02::12 there only, hop limit 255, multicast loop off.
func (d *linuxDialer) DialIPv6(ctx context.Context, ifname string) (Conn, error) {
	p := (*linuxPlatform)(d)
	link, err := p.linkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vrrp: %s: %w", ifname, err)
	}
	local, err := p.linkLocalAddr(link)
	if err != nil {
		return nil, fmt.Errorf("vrrp: %w", err)
	}
	pc, sc, err := p.listenBound(ctx, ifname, fmt.Sprintf("ip6:%d", IPProtocol), "::")
	if err != nil {
		return nil, err
	}
	c := &rawConn6{pc: ipv6.NewPacketConn(pc), raw: sc, index: link.Attrs().Index, local: local}
	c.frames.init(p, ifname, c.index)
	if err := sc.Control(func(fd uintptr) { c.fd = int(fd) }); err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("vrrp: %s: %w", ifname, err)
	}
	ifi := &net.Interface{Index: c.index, Name: ifname}
	steps := []socketStep{
		{"join ff02::12", func() error { return c.pc.JoinGroup(ifi, &net.IPAddr{IP: GroupAddress6.AsSlice()}) }},
		{"multicast interface", func() error { return c.pc.SetMulticastInterface(ifi) }},
		{"multicast hop limit", func() error { return c.pc.SetMulticastHopLimit(RequiredTTL) }},
		{"unicast hop limit", func() error { return c.pc.SetHopLimit(RequiredTTL) }},
		{"multicast loop", func() error { return c.pc.SetMulticastLoopback(false) }},
		// Traffic class 0xc0 (network control), like keepalived.
		{"traffic class", func() error { return c.pc.SetTrafficClass(0xc0) }},
		{"control messages", func() error {
			return c.pc.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true)
		}},
	}
	if err := applySocketSteps(ifname, steps, c.pc.Close); err != nil {
		return nil, err
	}
	return c, nil
}

// rawConn6 is a Conn over a raw IPv6 socket bound to one interface.
type rawConn6 struct {
	pc     *ipv6.PacketConn
	raw    syscall.RawConn // for ReadPending
	index  int
	local  netip.Addr
	frames frameSender // adverts from the virtual MAC (vmac_send_linux.go)
	fd     int         // the socket, for the kernel-timed pacer's sendmsg
}

var _ Conn = (*rawConn6)(nil)

func (c *rawConn6) ReadAdvert(b []byte) (int, RecvMeta, error) {
	n, cm, src, err := c.pc.ReadFrom(b)
	if err != nil {
		return 0, RecvMeta{}, err
	}
	var m RecvMeta
	if ipa, ok := src.(*net.IPAddr); ok {
		m.Src, _ = netip.AddrFromSlice(ipa.IP)
	}
	if cm != nil {
		m.TTL = cm.HopLimit
		m.IfIndex = cm.IfIndex
		m.Dst, _ = netip.AddrFromSlice(cm.Dst)
	}
	return n, m, nil
}

func (c *rawConn6) WriteAdvert(b []byte, src, dst netip.Addr) error {
	if !src.IsValid() {
		src = c.local
	}
	cm := &ipv6.ControlMessage{IfIndex: c.index, Src: src.AsSlice(), HopLimit: RequiredTTL}
	_, err := c.pc.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()})
	return err
}

func (c *rawConn6) LocalAddr() netip.Addr { return c.local }
func (c *rawConn6) IfIndex() int          { return c.index }
func (c *rawConn6) Close() error {
	c.frames.close()
	return c.pc.Close()
}
