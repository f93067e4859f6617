package ctsync

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/ipv4"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/testenv"
)

// TestPrivilegedMulticastAcceptFrom: on a multicast link the receiver
// takes datagrams only from its configured peer: a well-formed state sent
// to the group from another address on the segment is dropped, counted
// and never applied, while the peer's states keep arriving.
func TestPrivilegedMulticastAcceptFrom(t *testing.T) {
	testenv.RequirePrivileged(t)
	a, b := nsPair(t, 1)
	na := startNSNode(t, a, Config{Channels: []ChannelConfig{{Interface: "eth2", Group: DefaultGroup()}}}, ctnetlink.KernelOptions{})
	nb := startNSNode(t, b, Config{Channels: []ChannelConfig{{Interface: "eth2", Group: DefaultGroup(), AcceptFrom: []netip.Addr{linkAddr(0, 0)}}}}, ctnetlink.KernelOptions{})
	traffic := labKernel(t, a)
	if _, err := traffic.Commit(labCtx(t, 10*time.Second), genFlows(200, 0, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "replication from the peer", func() error {
		return sameCaches(na.e.Entries(CacheInternal), nb.e.Entries(CacheExternal), 200)
	})

	// A stranger on the segment (a second address in a's namespace).
	stranger := netip.MustParseAddr("10.0.0.66")
	l, err := a.Handle().LinkByName("eth2")
	if err == nil {
		err = a.Handle().AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: stranger.AsSlice(), Mask: net.CIDRMask(32, 32)}})
	}
	if err != nil {
		t.Fatal(err)
	}
	var conn *net.UDPConn
	if err := a.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(stranger, 0)))
		if err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("eth2")
		if err != nil {
			return err
		}
		return ipv4.NewPacketConn(conn).SetMulticastInterface(ifi)
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	forged := forgedDatagram(t, 0, 1, 7)
	for range 10 {
		if _, err := conn.WriteToUDPAddrPort(forged, netip.AddrPortFrom(DefaultGroup(), DefaultPort)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "foreign datagrams counted", func() error {
		if n := nb.e.Stats().Malformed[ReasonForeignSource]; n != 10 {
			return fmt.Errorf("foreign_source %d", n)
		}
		return nil
	})
	for _, f := range nb.e.Entries(CacheExternal) {
		if f.Key == forgedFlow(7).Key {
			t.Fatal("the stranger's state was applied")
		}
	}
	if _, err := traffic.Commit(labCtx(t, 10*time.Second), genFlows(50, 200, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "replication after the stranger", func() error {
		return sameCaches(na.e.Entries(CacheInternal), nb.e.Entries(CacheExternal), 250)
	})
}
