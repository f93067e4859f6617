package testenv

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// WithVRRPv3 writes a copy of a node config (etc/node1.toml style) that
// runs VRRPv3 at interval, with the VRRP threads under SCHED_RR at
// rtPriority (0: normal scheduling), and returns its path.
func WithVRRPv3(path, dir string, n int, interval time.Duration, rtPriority int) (string, error) {
	name := fmt.Sprintf("node%d-vrrpv3-%s.toml", n, interval)
	return rewriteConfig(path, dir, name, func(text string) (string, error) {
		if !strings.Contains(text, "\n[vrrp]\n") {
			return "", fmt.Errorf("no [vrrp] table")
		}
		if strings.Contains(text, "\nversion =") || strings.Contains(text, "\nrealtime_priority =") {
			return "", fmt.Errorf("vrrp.version or vrrp.realtime_priority already set")
		}
		n := strings.Count(text, "\nadvert_interval = ")
		if n == 0 {
			return "", fmt.Errorf("no advert_interval to replace")
		}
		lines := strings.Split(text, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "advert_interval = ") {
				lines[i] = fmt.Sprintf("advert_interval = %q", interval.String())
			}
		}
		text = strings.Join(lines, "\n")
		return strings.Replace(text, "\n[vrrp]\n", fmt.Sprintf("\n[vrrp]\nversion = 3\nrealtime_priority = %d\n", rtPriority), 1), nil
	})
}

// WithVMAC writes a copy of a node config with use_vmac = true in every
// [[vrrp.instance]] and returns its path.
func WithVMAC(path, dir string, n int) (string, error) {
	return rewriteConfig(path, dir, fmt.Sprintf("node%d-vmac.toml", n), func(text string) (string, error) {
		if !strings.Contains(text, "\n[[vrrp.instance]]\n") {
			return "", fmt.Errorf("no [[vrrp.instance]]")
		}
		return strings.ReplaceAll(text, "\n[[vrrp.instance]]\n", "\n[[vrrp.instance]]\nuse_vmac = true\n"), nil
	})
}

// VMACRuleset is the repository's ruleset with the forwarding rule for new
// connections from the inside also matching the virtual MAC interface of
// VRID 51 (vrrp.51), where the client's frames arrive with use_vmac.
func VMACRuleset() (string, error) {
	path, err := RepoFile("etc/fwpair.nft")
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	const rule = `iifname "eth0" oifname "eth1" ct state new accept`
	if !strings.Contains(string(b), rule) {
		return "", fmt.Errorf("%s: no %q rule", path, rule)
	}
	return strings.Replace(string(b), rule, `iifname { "eth0", "vrrp.51" } oifname "eth1" ct state new accept`, 1), nil
}

// PinNeighbor makes ns's neighbour entry for addr on ifname permanent
// with the link-layer address it has now: a host whose ARP cache no
// gratuitous ARP updates.
func PinNeighbor(ns *NS, ifname string, addr netip.Addr) (net.HardwareAddr, error) {
	h := ns.Handle()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	neighs, err := h.NeighList(link.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	for _, nb := range neighs {
		if ip, ok := netip.AddrFromSlice(nb.IP.To4()); ok && ip == addr && len(nb.HardwareAddr) == 6 {
			pinned := &netlink.Neigh{LinkIndex: link.Attrs().Index, Family: netlink.FAMILY_V4,
				State: netlink.NUD_PERMANENT, IP: nb.IP, HardwareAddr: nb.HardwareAddr}
			if err := h.NeighSet(pinned); err != nil {
				return nil, fmt.Errorf("%s: pin %v: %w", ns.Name, addr, err)
			}
			return nb.HardwareAddr, nil
		}
	}
	return nil, fmt.Errorf("%s: no neighbour entry for %v on %s", ns.Name, addr, ifname)
}

// onVMAC reports whether addr is on an up macvlan interface on top of
// parent (a virtual MAC interface of use_vmac).
func onVMAC(ns *NS, parent netlink.Link, addr netip.Addr) (bool, error) {
	links, err := ns.Handle().LinkList()
	if err != nil {
		return false, err
	}
	for _, l := range links {
		if _, ok := l.(*netlink.Macvlan); !ok || l.Attrs().ParentIndex != parent.Attrs().Index || l.Attrs().Flags&net.FlagUp == 0 {
			continue
		}
		if ok, err := HasAddr(ns, l.Attrs().Name, addr); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}
