package vrrp_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/fwpair/fwpair/testenv"
	"github.com/fwpair/fwpair/vrrp"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// use_vmac in VRRPv3 over IPv4 and IPv6 (fw1 alone, MASTER of the four
// instances): adverts leave from the virtual router MAC (RFC 9568 §7.2;
// 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID} for IPv6, seen
// on the wire by the client), the VIPs live on vrrp.51 and vrrp6.61 with
// those MACs, and the client resolves the VIPs (ARP, Neighbor
// Discovery) to them and reaches the server through them.
func TestPrivilegedV3VMACAdvertsAndIPv6(t *testing.T) {
	testenv.RequirePrivileged(t)
	// The client's frames arrive on the virtual MAC interfaces: the
	// forwarding rule must name them.
	ruleset, err := testenv.VMACRuleset()
	if err != nil {
		t.Fatal(err)
	}
	ruleset = strings.Replace(ruleset, `"vrrp.51" }`, `"vrrp.51", "vrrp6.61" }`, 1)
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwv", Ruleset: ruleset})
	if err := lab.AddIPv6(); err != nil {
		t.Fatal(err)
	}
	cfg := labConfigDual(150)
	for i := range cfg.Instances {
		cfg.Instances[i].UseVMAC = true
		for j := range cfg.Instances[i].VIPs {
			cfg.Instances[i].VIPs[j].Label = ""
		}
	}
	vmac4 := vrrp.VirtualMAC(51, false)
	vmac6 := vrrp.VirtualMAC(61, true)

	// Capture from before fw1 starts: every advert it ever sends counts.
	capture, err := listenAll(lab.Client, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	defer capture.Close()

	us := startInNS(t, "fw1", lab.FW1, cfg, realtime)
	eventually(t, 6*time.Second, "fw1 MASTER with the VIPs on the virtual MAC interfaces", func() (bool, error) {
		if us.Status().State != vrrp.StateMaster {
			return false, nil
		}
		for _, c := range []struct {
			ifname string
			vip    netip.Prefix
		}{{"vrrp.51", testenv.VIP0}, {"vrrp.52", testenv.VIP1}, {"vrrp6.61", testenv.VIP6LL0}, {"vrrp6.61", testenv.VIP6_0}, {"vrrp6.62", testenv.VIP6LL1}} {
			if ok, err := testenv.HasAddr(lab.FW1, c.ifname, c.vip.Addr()); !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	})
	for ifname, want := range map[string]net.HardwareAddr{"vrrp.51": vmac4, "vrrp6.61": vmac6} {
		l, err := lab.FW1.Handle().LinkByName(ifname)
		if err != nil {
			t.Fatal(err)
		}
		if got := l.Attrs().HardwareAddr; !bytes.Equal(got, want) {
			t.Errorf("%s has MAC %v, want %v", ifname, got, want)
		}
	}

	// Adverts on the wire: VRID 51 over IPv4 and 61 over IPv6, each from
	// its virtual MAC, a dozen of each (the first one included).
	seen := map[string]int{}
	deadline := time.Now().Add(3 * time.Second)
	buf := make([]byte, 2048)
	for (seen["4"] < 12 || seen["6"] < 12) && time.Now().Before(deadline) {
		_ = capture.SetReadDeadline(deadline)
		n, _, err := capture.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			t.Fatal(err)
		}
		family, vrid, src, ok := advertFrame(buf[:n])
		switch {
		case !ok:
		case family == "4" && vrid == 51, family == "6" && vrid == 61:
			want := vmac4
			if family == "6" {
				want = vmac6
			}
			if !bytes.Equal(src, want) {
				t.Fatalf("IPv%s advert of VRID %d from %v, want the virtual MAC %v", family, vrid, src, want)
			}
			seen[family]++
		}
	}
	if seen["4"] < 12 || seen["6"] < 12 {
		t.Fatalf("captured %d IPv4 and %d IPv6 adverts in 3 s, want 12 of each", seen["4"], seen["6"])
	}

	// The client resolves the VIPs to the virtual MACs and goes through.
	if _, err := lab.Client.Run(t.Context(), "ip", "neigh", "flush", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	pingThrough(t, lab)
	ping6Through(t, lab)
	for _, c := range []struct {
		vip  netip.Addr
		want net.HardwareAddr
	}{{testenv.VIP0.Addr(), vmac4}, {testenv.VIP6LL0.Addr(), vmac6}} {
		got, err := neighborMAC(lab.Client, "eth0", c.vip)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("client resolves %v to %v, want the virtual MAC %v", c.vip, got, c.want)
		}
	}
}

// listenAll opens an AF_PACKET socket receiving every frame on ifname in
// ns.
func listenAll(ns *testenv.NS, ifname string) (*packet.Conn, error) {
	var c *packet.Conn
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		c, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	return c, err
}

// advertFrame decodes a frame: ok if it carries a VRRP advert (IPv4 or
// IPv6 without extension headers), with its family, VRID and Ethernet
// source.
func advertFrame(f []byte) (family string, vrid uint8, src net.HardwareAddr, ok bool) {
	if len(f) < 14 {
		return "", 0, nil, false
	}
	src = net.HardwareAddr(f[6:12])
	ip := f[14:]
	switch {
	case f[12] == 0x08 && f[13] == 0x00 && len(ip) >= 20 && ip[9] == vrrp.IPProtocol:
		hl := int(ip[0]&0x0f) * 4
		if len(ip) < hl+2 {
			return "", 0, nil, false
		}
		return "4", ip[hl+1], src, true
	case f[12] == 0x86 && f[13] == 0xdd && len(ip) >= 42 && ip[6] == vrrp.IPProtocol:
		return "6", ip[41], src, true
	}
	return "", 0, nil, false
}

// neighborMAC returns the MAC of ns's neighbour entry for addr on ifname.
func neighborMAC(ns *testenv.NS, ifname string, addr netip.Addr) (net.HardwareAddr, error) {
	link, err := ns.Handle().LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	family := netlink.FAMILY_V4
	if addr.Is6() {
		family = netlink.FAMILY_V6
	}
	neighs, err := ns.Handle().NeighList(link.Attrs().Index, family)
	if err != nil {
		return nil, err
	}
	for _, nb := range neighs {
		if ip, ok := netip.AddrFromSlice(nb.IP); ok && ip.Unmap() == addr {
			return nb.HardwareAddr, nil
		}
	}
	return nil, fmt.Errorf("no neighbour entry for %v on %s", addr, ifname)
}
