package testenv

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// IPv6 on the lab's LANs (AddIPv6): ULA prefixes fd00:0:0:0::/64 (lan0)
// and fd00:0:0:1::/64 (lan1). Each LAN has two IPv6 VIPs for a VRRPv3
// instance: the virtual router's link-local address first (RFC 9568),
// which the client and server use as their default gateway, then a
// global one.
var (
	VIP6LL0     = netip.MustParsePrefix("fe80::51/64")
	VIP6LL1     = netip.MustParsePrefix("fe80::52/64")
	VIP6_0      = netip.MustParsePrefix("fd00::100/64")
	VIP6_1      = netip.MustParsePrefix("fd00:0:0:1::100/64")
	ClientAddr6 = netip.MustParsePrefix("fd00::10/64")
	ServerAddr6 = netip.MustParsePrefix("fd00:0:0:1::10/64")
	FWAddrs6    = [2][2]netip.Prefix{
		{netip.MustParsePrefix("fd00::1/64"), netip.MustParsePrefix("fd00:0:0:1::1/64")},
		{netip.MustParsePrefix("fd00::2/64"), netip.MustParsePrefix("fd00:0:0:1::2/64")},
	}
)

// AddIPv6 adds IPv6 to the lab's LANs: addresses without duplicate
// address detection on the client, the server and both firewalls' eth0
// and eth1, and client and server default routes through the LANs'
// link-local VIPs. It then waits (bounded) until every firewall LAN
// interface has a usable link-local address, which VRRPv3 over IPv6
// sends from. Additive: the IPv4 lab is unchanged.
func (l *Lab) AddIPv6() error {
	if err := addr6(l.Client, "eth0", ClientAddr6); err != nil {
		return err
	}
	if err := addr6(l.Server, "eth0", ServerAddr6); err != nil {
		return err
	}
	for i, fw := range []*NS{l.FW1, l.FW2} {
		for j, ifname := range []string{"eth0", "eth1"} {
			if err := addr6(fw, ifname, FWAddrs6[i][j]); err != nil {
				return err
			}
		}
	}
	if err := route6Via(l.Client, "eth0", VIP6LL0.Addr()); err != nil {
		return err
	}
	if err := route6Via(l.Server, "eth0", VIP6LL1.Addr()); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, ns := range []*NS{l.FW1, l.FW2, l.Client, l.Server} {
		ifnames := []string{"eth0", "eth1"}
		if ns == l.Client || ns == l.Server {
			ifnames = ifnames[:1]
		}
		for _, ifname := range ifnames {
			for {
				ok, err := linkLocalReady(ns, ifname)
				if err != nil {
					return err
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%s: %s: no usable link-local address after 10s", ns.Name, ifname)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return nil
}

func addr6(ns *NS, ifname string, p netip.Prefix) error {
	h := ns.Handle()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", ns.Name, ifname, err)
	}
	if err := h.AddrAdd(link, &netlink.Addr{IPNet: prefixToIPNet(p), Flags: unix.IFA_F_NODAD}); err != nil {
		return fmt.Errorf("%s: add %s to %s: %w", ns.Name, p, ifname, err)
	}
	return nil
}

func route6Via(ns *NS, ifname string, gw netip.Addr) error {
	h := ns.Handle()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", ns.Name, ifname, err)
	}
	r := &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		Gw:        net.IP(gw.AsSlice()),
	}
	if err := h.RouteAdd(r); err != nil {
		return fmt.Errorf("%s: default via %s dev %s: %w", ns.Name, gw, ifname, err)
	}
	return nil
}

// linkLocalReady reports whether ifname has a link-local address that is
// out of duplicate address detection.
func linkLocalReady(ns *NS, ifname string) (bool, error) {
	h := ns.Handle()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return false, err
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if a.IP.IsLinkLocalUnicast() && a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) == 0 {
			return true, nil
		}
	}
	return false, nil
}

// VIP6Holders is VIPHolders for the IPv6 VIPs: which firewalls hold both
// the link-local and the global VIP of each LAN on a link that is up.
func (l *Lab) VIP6Holders() (eth0, eth1 []int, err error) {
	for n := 1; n <= 2; n++ {
		for _, c := range []struct {
			ifname string
			vips   []netip.Prefix
			out    *[]int
		}{{"eth0", []netip.Prefix{VIP6LL0, VIP6_0}, &eth0}, {"eth1", []netip.Prefix{VIP6LL1, VIP6_1}, &eth1}} {
			all := true
			for _, v := range c.vips {
				ok, err := holdsOnUpLink(l.FW(n), c.ifname, v.Addr())
				if err != nil {
					return nil, nil, err
				}
				all = all && ok
			}
			if all {
				*c.out = append(*c.out, n)
			}
		}
	}
	return eth0, eth1, nil
}
