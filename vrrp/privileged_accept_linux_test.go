package vrrp_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fwpair/fwpair/testenv"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// Accept_Mode in the lab: fw1 alone, MASTER for the IPv4 and IPv6
// instances of both LANs. With accept mode off the client's ping and TCP
// to the VIPs are refused, while ARP, IPv6 Neighbor Discovery (unicast
// Neighbor Solicitations to the VIPs included), routing through the VIPs
// and a DNAT port forward on the VIP keep working. With it on, the VIPs
// answer. Stopping the group removes the filter.
func TestPrivilegedV3AcceptMode(t *testing.T) {
	testenv.RequirePrivileged(t)
	lab := newDualLab(t)
	// Port forward: the client's VIP0:8080 goes to the server's :8080.
	// Loaded on its own, after the reference ruleset (which lets
	// eth0->eth1 connections through).
	fwd := fmt.Sprintf(`table ip fwv-portfwd {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		iifname "eth0" ip daddr %s tcp dport 8080 dnat to %s:8080
	}
}
`, testenv.VIP0.Addr(), testenv.ServerAddr.Addr())
	if err := lab.FW1.LoadRuleset(fwd); err != nil {
		t.Fatal(err)
	}
	// Something to connect to: port 22 on fw1 (the reference ruleset
	// accepts it from the inside), port 8080 on the server.
	serve(t, lab.FW1, ":22")
	serve(t, lab.Server, ":8080")

	for _, accept := range []bool{false, true} {
		t.Run(fmt.Sprintf("accept=%v", accept), func(t *testing.T) {
			cfg := labConfigDual(150)
			for i := range cfg.Instances {
				cfg.Instances[i].NoAccept = !accept
			}
			us := startInNS(t, "fw1", lab.FW1, cfg, realtime)
			eventually(t, 6*time.Second, "fw1 MASTER with every VIP", dualHoldsAll(lab, 1))

			// ARP: the client must resolve the VIP now.
			if _, err := lab.Client.Run(t.Context(), "ip", "neigh", "flush", "dev", "eth0"); err != nil {
				t.Fatal(err)
			}
			pingThrough(t, lab)
			ping6Through(t, lab)
			fw1MAC := linkMAC(t, lab.FW1, "eth0")
			for _, vip := range []netip.Addr{testenv.VIP6LL0.Addr(), testenv.VIP6_0.Addr()} {
				// A permanent neighbour entry keeps the client's kernel
				// from resolving the VIP itself (its multicast
				// solicitation would be answered even if unicast ones
				// were not): the only solicitation is the test's.
				if _, err := lab.Client.Run(t.Context(), "ip", "-6", "neigh", "replace", vip.String(), "lladdr", fw1MAC, "nud", "permanent", "dev", "eth0"); err != nil {
					t.Fatal(err)
				}
				if err := solicit(lab.Client, "eth0", vip); err != nil {
					t.Errorf("unicast Neighbor Solicitation to %v: %v", vip, err)
				}
			}
			if err := dialThrough(lab.Client, netip.AddrPortFrom(testenv.VIP0.Addr(), 8080), 3); err != nil {
				t.Errorf("port forward VIP0:8080 -> server: %v", err)
			}

			for _, vip := range []netip.Addr{testenv.VIP0.Addr(), testenv.VIP6_0.Addr(), testenv.VIP6LL0.Addr()} {
				target := vip.String()
				if vip.IsLinkLocalUnicast() {
					target += "%eth0"
				}
				answered := pingOnce(lab.Client, target, accept)
				if answered != accept {
					t.Errorf("ping %s answered=%v with accept mode %v", target, answered, accept)
				}
			}
			tries := 1 // a refused VIP stays silent: one second tells
			if accept {
				tries = 3
			}
			err := dialThrough(lab.Client, netip.AddrPortFrom(testenv.VIP0.Addr(), 22), tries)
			if accept && err != nil {
				t.Errorf("TCP to VIP0:22 refused with accept mode on: %v", err)
			}
			if !accept && err == nil {
				t.Errorf("TCP to VIP0:22 accepted with accept mode off")
			}

			if !accept {
				// A firewall reload ("flush ruleset") removes the
				// filter; the engine puts it back.
				if _, err := lab.FW1.Run(t.Context(), "nft", "delete", "table", "inet", "fwpair_accept"); err != nil {
					t.Fatal(err)
				}
				eventually(t, 3*time.Second+time.Second, "the accept filter is back", func() (bool, error) {
					out, err := lab.FW1.Run(t.Context(), "nft", "list", "tables")
					return containsLine(out, "table inet fwpair_accept"), err
				})
				if pingOnce(lab.Client, testenv.VIP0.Addr().String(), false) {
					t.Errorf("ping VIP0 answered after the filter was restored")
				}
			}

			if err := us.stop(); err != nil {
				t.Fatal(err)
			}
			out, err := lab.FW1.Run(t.Context(), "nft", "list", "tables")
			if err != nil {
				t.Fatal(err)
			}
			if hasTable := containsLine(out, "table inet fwpair_accept"); hasTable {
				t.Errorf("table inet fwpair_accept left after a graceful stop:\n%s", out)
			}
		})
	}
}

// pingOnce pings target from ns and reports whether it was answered: up
// to three pings of one second when an answer is expected, one otherwise
// (a refused VIP stays silent).
func pingOnce(ns *testenv.NS, target string, expect bool) bool {
	tries := 1
	if expect {
		tries = 3
	}
	for range tries {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, err := ns.Run(ctx, "ping", "-n", "-c", "1", "-W", "1", target)
		cancel()
		if err == nil {
			return true
		}
	}
	return false
}

func containsLine(out, line string) bool {
	return slices.Contains(strings.Split(out, "\n"), line)
}

// serve accepts TCP connections on addr in ns and writes "ok" to each,
// until the test ends.
func serve(t *testing.T, ns *testenv.NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("ok"))
			_ = c.Close()
		}
	}()
}

// dialThrough connects from ns to dst and reads the server's "ok", in
// up to tries attempts of one second.
func dialThrough(ns *testenv.NS, dst netip.AddrPort, tries int) error {
	var err error
	for range tries {
		err = ns.Do(func() error {
			c, err := net.DialTimeout("tcp", dst.String(), time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Second))
			b, err := io.ReadAll(c)
			if err != nil {
				return err
			}
			if string(b) != "ok" {
				return fmt.Errorf("read %q", b)
			}
			return nil
		})
		if err == nil {
			return nil
		}
	}
	return err
}

// solicit sends a unicast Neighbor Solicitation for target to target
// itself from ns's ifname (what neighbour unreachability detection does)
// and waits up to two seconds, resending every 500 ms, for the Neighbor
// Advertisement.
func solicit(ns *testenv.NS, ifname string, target netip.Addr) error {
	return ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return err
		}
		defer c.Close()
		pc := c.IPv6PacketConn()
		if err := pc.SetHopLimit(255); err != nil {
			return err
		}
		var f ipv6.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv6.ICMPTypeNeighborAdvertisement)
		if err := pc.SetICMPFilter(&f); err != nil {
			return err
		}
		// Body: reserved, target, source link-layer address option.
		body := make([]byte, 4, 28)
		t16 := target.As16()
		body = append(body, t16[:]...)
		body = append(body, 1, 1)
		body = append(body, ifi.HardwareAddr...)
		msg, err := (&icmp.Message{Type: ipv6.ICMPTypeNeighborSolicitation, Body: &icmp.RawBody{Data: body}}).Marshal(nil)
		if err != nil {
			return err
		}
		dst := &net.IPAddr{IP: target.AsSlice()}
		if target.IsLinkLocalUnicast() {
			dst.Zone = ifname
		}
		buf := make([]byte, 1500)
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if _, err := c.WriteTo(msg, dst); err != nil {
				return fmt.Errorf("send: %w", err)
			}
			_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			for {
				n, _, err := c.ReadFrom(buf)
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				if err != nil {
					return err
				}
				// type, code, checksum, flags(4), target(16)
				// The answer has the Solicited flag; the MASTER's
				// unsolicited advertisements do not count.
				if n >= 24 && buf[0] == 136 && netip.AddrFrom16([16]byte(buf[8:24])) == target.WithZone("") &&
					binary.BigEndian.Uint32(buf[4:8])&(1<<30) != 0 {
					return nil
				}
			}
		}
		return errors.New("no solicited Neighbor Advertisement within 2s")
	})
}

func linkMAC(t *testing.T, ns *testenv.NS, ifname string) string {
	t.Helper()
	l, err := ns.Handle().LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr.String()
}
