package vrrp

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// VMACManager is implemented by Addressers that can create the virtual
// router MAC interface of an instance with UseVMAC (the Linux one does,
// through rtnetlink). Both methods are idempotent.
type VMACManager interface {
	// AddVMAC creates (or keeps) a macvlan interface name on parent with
	// MAC mac, up, answering ARP only for its own addresses.
	AddVMAC(ctx context.Context, parent, name string, mac net.HardwareAddr) error
	// RemoveVMAC deletes it; a missing interface is not an error.
	RemoveVMAC(ctx context.Context, name string) error
}

// VMACSender is implemented by Conns that can send an advert in an
// Ethernet frame whose source is the virtual router MAC, as RFC 9568
// §7.2 wants of a MASTER (the Linux ones do, through AF_PACKET on the
// parent interface: the virtual MAC interface exists only once the VIPs
// are added, after the first adverts). The frame carries the same IP
// header the raw socket would write: source LocalAddr, TTL or hop limit
// 255, DSCP/TOS 0xc0.
type VMACSender interface {
	WriteAdvertFrom(mac net.HardwareAddr, b []byte, dst netip.Addr) error
}

// writeAdvert sends b to dst for instance in: with UseVMAC and multicast
// adverts from its virtual MAC when conn can, else through the socket.
// Unicast adverts always go through the socket (their next hop's MAC is
// the kernel's business). It does not allocate beyond what conn does.
func writeAdvert(conn Conn, in *instance, b []byte, dst netip.Addr) error {
	if in.vmac != nil && !in.policy.unicast {
		if vs, ok := conn.(VMACSender); ok {
			return vs.WriteAdvertFrom(in.vmac, b, dst)
		}
	}
	return conn.WriteAdvert(b, in.cfg.UnicastSource, dst)
}

// VirtualMAC returns the virtual router MAC of RFC 9568 §7.3:
// 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID} for IPv6.
func VirtualMAC(vrid uint8, ipv6 bool) net.HardwareAddr {
	block := byte(1)
	if ipv6 {
		block = 2
	}
	return net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, block, vrid}
}

// VMACInterface is the name of the macvlan interface of an instance with
// UseVMAC: "vrrp.VRID" (IPv4) or "vrrp6.VRID" (IPv6), like keepalived's.
func (in InstanceConfig) VMACInterface() string {
	if in.ipv6() {
		return fmt.Sprintf("vrrp6.%d", in.VRID)
	}
	return fmt.Sprintf("vrrp.%d", in.VRID)
}

// vipInterface is where the instance's VIPs go and its GARPs leave from.
func (in InstanceConfig) vipInterface() string {
	if in.UseVMAC {
		return in.VMACInterface()
	}
	return in.Interface
}

// addVMAC creates the instance's virtual MAC interface, if it uses one.
func (e *engine) addVMAC(ctx context.Context, in *instance) error {
	if !in.cfg.UseVMAC {
		return nil
	}
	m, ok := e.addresser.(VMACManager)
	if !ok {
		return fmt.Errorf("vrrp: the addresser %T cannot create a virtual MAC interface", e.addresser)
	}
	return m.AddVMAC(ctx, in.cfg.Interface, in.cfg.VMACInterface(), VirtualMAC(in.cfg.VRID, in.cfg.ipv6()))
}

// removeVMAC deletes the instance's virtual MAC interface, if it uses one.
func (e *engine) removeVMAC(ctx context.Context, in *instance) error {
	if !in.cfg.UseVMAC {
		return nil
	}
	m, ok := e.addresser.(VMACManager)
	if !ok {
		return nil // never created
	}
	return m.RemoveVMAC(ctx, in.cfg.VMACInterface())
}
