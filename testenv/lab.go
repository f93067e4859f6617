package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The reference lab's addresses (the topology in doc.go).
var (
	VIP0       = netip.MustParsePrefix("192.168.0.100/24") // client side, fw eth0
	VIP1       = netip.MustParsePrefix("192.168.1.100/24") // server side, fw eth1
	ClientAddr = netip.MustParsePrefix("192.168.0.10/24")
	ServerAddr = netip.MustParsePrefix("192.168.1.10/24")
	FWAddrs    = [2][3]netip.Prefix{
		{netip.MustParsePrefix("192.168.0.1/24"), netip.MustParsePrefix("192.168.1.1/24"), netip.MustParsePrefix("10.0.0.1/30")},
		{netip.MustParsePrefix("192.168.0.2/24"), netip.MustParsePrefix("192.168.1.2/24"), netip.MustParsePrefix("10.0.0.2/30")},
	}
	// Masquerade is the ruleset a typical firewall adds: the client LAN
	// leaves through eth1 translated to the eth1 VIP.
	Masquerade = `table ip fwpair-nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth1" ip saddr 192.168.0.0/24 snat to 192.168.1.100
	}
}
`
)

// LabOptions tunes the reference lab.
type LabOptions struct {
	// Prefix starts every namespace name (e.g. "fwl"), so concurrent
	// packages and stale leftovers can be told apart.
	Prefix string
	// Ruleset is the nftables ruleset loaded into both firewalls; empty
	// means the repository's etc/fwpair.nft.
	Ruleset string
	// Masquerade adds the client-LAN SNAT behind the eth1 VIP.
	Masquerade bool
	// LooseTCP leaves nf_conntrack_tcp_loose at the kernel default (1)
	// instead of the strict 0.
	LooseTCP bool
}

// Lab is the reference topology, built in namespaces of its own.
type Lab struct {
	Client, FW1, FW2, Server *NS
	// Switch holds the two LAN bridges (br0 for lan0, br1 for lan1).
	Switch *NS

	all []*NS
}

// FW returns fw1 (n=1) or fw2 (n=2).
func (l *Lab) FW(n int) *NS {
	if n == 1 {
		return l.FW1
	}
	return l.FW2
}

// NewLab builds the lab for a test and tears it down when the test ends.
func NewLab(t TB, opts LabOptions) *Lab {
	t.Helper()
	l, err := BuildLab(opts)
	if err != nil {
		t.Fatalf("build lab: %v", err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Logf("lab teardown: %v", err)
		}
	})
	return l
}

// BuildLab builds the lab; the caller must Close it.
func BuildLab(opts LabOptions) (l *Lab, err error) {
	if opts.Prefix == "" {
		opts.Prefix = "fwl"
	}
	l = &Lab{}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	mk := func(role string) (*NS, error) {
		ns, err := CreateNS(opts.Prefix + role)
		if err == nil {
			l.all = append(l.all, ns)
		}
		return ns, err
	}
	if l.Switch, err = mk("sw"); err != nil {
		return nil, err
	}
	if l.Client, err = mk("cl"); err != nil {
		return nil, err
	}
	if l.FW1, err = mk("f1"); err != nil {
		return nil, err
	}
	if l.FW2, err = mk("f2"); err != nil {
		return nil, err
	}
	if l.Server, err = mk("sv"); err != nil {
		return nil, err
	}
	if err := l.wire(); err != nil {
		return nil, err
	}
	if err := l.configure(opts); err != nil {
		return nil, err
	}
	return l, nil
}

// Close removes every namespace of the lab.
func (l *Lab) Close() error {
	var errs []error
	for i := len(l.all) - 1; i >= 0; i-- {
		if err := l.all[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	l.all = nil
	return errors.Join(errs...)
}

// wire creates the bridges and veth pairs. Every veth is created inside
// the switch namespace (or fw1 for the sync link) with its peer placed
// straight into the target namespace, so nothing appears in the root
// namespace even for a moment.
func (l *Lab) wire() error {
	sw := l.Switch.Handle()
	bridges := map[string]*netlink.Bridge{}
	for _, name := range []string{"br0", "br1"} {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
		if err := sw.LinkAdd(br); err != nil {
			return fmt.Errorf("switch: add %s: %w", name, err)
		}
		if err := sw.LinkSetUp(br); err != nil {
			return fmt.Errorf("switch: %s up: %w", name, err)
		}
		bridges[name] = br
	}
	ports := []struct {
		swName string
		bridge string
		peer   *NS
		ifname string
	}{
		{"cl0", "br0", l.Client, "eth0"},
		{"f1e0", "br0", l.FW1, "eth0"},
		{"f2e0", "br0", l.FW2, "eth0"},
		{"f1e1", "br1", l.FW1, "eth1"},
		{"f2e1", "br1", l.FW2, "eth1"},
		{"sv0", "br1", l.Server, "eth0"},
	}
	for _, p := range ports {
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: p.swName, MasterIndex: bridges[p.bridge].Index},
			PeerName:      p.ifname,
			PeerNamespace: netlink.NsFd(p.peer.FD()),
		}
		if err := sw.LinkAdd(v); err != nil {
			return fmt.Errorf("switch: add veth %s -> %s/%s: %w", p.swName, p.peer.Name, p.ifname, err)
		}
		link, err := sw.LinkByName(p.swName)
		if err == nil {
			err = sw.LinkSetMaster(link, bridges[p.bridge])
		}
		if err == nil {
			err = sw.LinkSetUp(link)
		}
		if err != nil {
			return fmt.Errorf("switch: %s: %w", p.swName, err)
		}
	}
	// The dedicated sync link: a direct veth pair fw1 eth2 <-> fw2 eth2.
	sync := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "eth2"},
		PeerName:      "eth2",
		PeerNamespace: netlink.NsFd(l.FW2.FD()),
	}
	if err := l.FW1.Handle().LinkAdd(sync); err != nil {
		return fmt.Errorf("sync link: %w", err)
	}
	return nil
}

func addrUp(ns *NS, ifname string, addrs ...netip.Prefix) error {
	h := ns.Handle()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", ns.Name, ifname, err)
	}
	for _, a := range addrs {
		if err := h.AddrAdd(link, &netlink.Addr{IPNet: prefixToIPNet(a)}); err != nil {
			return fmt.Errorf("%s: add %s to %s: %w", ns.Name, a, ifname, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: %s up: %w", ns.Name, ifname, err)
	}
	return nil
}

func defaultRoute(ns *NS, gw netip.Addr) error {
	r := &netlink.Route{Gw: net.IP(gw.AsSlice()), Dst: nil}
	if err := ns.Handle().RouteAdd(r); err != nil {
		return fmt.Errorf("%s: default via %s: %w", ns.Name, gw, err)
	}
	return nil
}

func prefixToIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func (l *Lab) configure(opts LabOptions) error {
	if err := addrUp(l.Client, "eth0", ClientAddr); err != nil {
		return err
	}
	if err := defaultRoute(l.Client, VIP0.Addr()); err != nil {
		return err
	}
	if err := addrUp(l.Server, "eth0", ServerAddr); err != nil {
		return err
	}
	if err := defaultRoute(l.Server, VIP1.Addr()); err != nil {
		return err
	}
	ruleset := opts.Ruleset
	if ruleset == "" {
		path, err := RepoFile("etc/fwpair.nft")
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		ruleset = string(b)
	}
	if opts.Masquerade {
		ruleset += "\n" + Masquerade
	}
	for i, fw := range []*NS{l.FW1, l.FW2} {
		for j, ifname := range []string{"eth0", "eth1", "eth2"} {
			if err := addrUp(fw, ifname, FWAddrs[i][j]); err != nil {
				return err
			}
		}
		sysctls := [][2]string{
			{"net/ipv4/ip_forward", "1"},
			{"net/ipv6/conf/all/forwarding", "1"},
		}
		if !opts.LooseTCP {
			sysctls = append(sysctls, [2]string{"net/netfilter/nf_conntrack_tcp_loose", "0"})
		}
		for _, s := range sysctls {
			if err := fw.Sysctl(s[0], s[1]); err != nil {
				return err
			}
		}
		if err := fw.LoadRuleset(ruleset); err != nil {
			return err
		}
	}
	return nil
}

// LoadRuleset loads an nftables ruleset into the namespace with nft -f.
func (ns *NS) LoadRuleset(ruleset string) error {
	dir, err := os.MkdirTemp("", "fwpair-nft-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "ruleset.nft")
	if err := os.WriteFile(file, []byte(ruleset), 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = ns.Run(ctx, "nft", "-f", file)
	return err
}

// RepoFile finds a file of the repository by walking up from the working
// directory to the module root (or from $FWPAIR_ROOT when set).
func RepoFile(rel string) (string, error) {
	dir := os.Getenv("FWPAIR_ROOT")
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return "", err
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return "", fmt.Errorf("testenv: no go.mod above the working directory; set FWPAIR_ROOT")
			}
			dir = parent
		}
	}
	p := filepath.Join(dir, rel)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("testenv: %w", err)
	}
	return p, nil
}

// LinkDown takes an interface of a lab host down (a pulled cable).
func (l *Lab) LinkDown(ns *NS, ifname string) error { return setLink(ns, ifname, false) }

// LinkUp brings it back.
func (l *Lab) LinkUp(ns *NS, ifname string) error { return setLink(ns, ifname, true) }

func setLink(ns *NS, ifname string, up bool) error {
	h := ns.Handle()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", ns.Name, ifname, err)
	}
	if up {
		err = h.LinkSetUp(link)
	} else {
		err = h.LinkSetDown(link)
	}
	if err != nil {
		return fmt.Errorf("%s: set %s up=%v: %w", ns.Name, ifname, up, err)
	}
	return nil
}

// HasAddr reports whether an interface of ns holds the address.
func HasAddr(ns *NS, ifname string, addr netip.Addr) (bool, error) {
	h := ns.Handle()
	link, err := h.LinkByName(ifname)
	if err != nil {
		return false, err
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && ip.Unmap() == addr {
			return true, nil
		}
	}
	return false, nil
}

// VIPHolders returns which firewalls (1, 2) hold each lab VIP on a link
// that is up (a crashed node's VIPs on its downed links attract nothing).
func (l *Lab) VIPHolders() (eth0, eth1 []int, err error) {
	for n := 1; n <= 2; n++ {
		ok, err := holdsOnUpLink(l.FW(n), "eth0", VIP0.Addr())
		if err != nil {
			return nil, nil, err
		}
		if ok {
			eth0 = append(eth0, n)
		}
		ok, err = holdsOnUpLink(l.FW(n), "eth1", VIP1.Addr())
		if err != nil {
			return nil, nil, err
		}
		if ok {
			eth1 = append(eth1, n)
		}
	}
	return eth0, eth1, nil
}

func holdsOnUpLink(ns *NS, ifname string, addr netip.Addr) (bool, error) {
	link, err := ns.Handle().LinkByName(ifname)
	if err != nil {
		return false, err
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		return false, nil
	}
	ok, err := HasAddr(ns, ifname, addr)
	if ok || err != nil {
		return ok, err
	}
	return onVMAC(ns, link, addr)
}

// PlaceVIPs puts both VIPs on firewall n only (removing them from the
// other) and points the client's and server's neighbour entries for the
// VIPs at n, as a gratuitous ARP would. Used by tests that move the VIPs
// by hand, without a VRRP engine.
func (l *Lab) PlaceVIPs(n int) error {
	other := 3 - n
	for _, v := range []struct {
		ifname string
		vip    netip.Prefix
	}{{"eth0", VIP0}, {"eth1", VIP1}} {
		oh := l.FW(other).Handle()
		if link, err := oh.LinkByName(v.ifname); err == nil {
			if err := oh.AddrDel(link, &netlink.Addr{IPNet: prefixToIPNet(v.vip)}); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, unix.EADDRNOTAVAIL) {
				return fmt.Errorf("remove %s from fw%d: %w", v.vip, other, err)
			}
		}
		h := l.FW(n).Handle()
		link, err := h.LinkByName(v.ifname)
		if err != nil {
			return err
		}
		if err := h.AddrReplace(link, &netlink.Addr{IPNet: prefixToIPNet(v.vip)}); err != nil {
			return fmt.Errorf("add %s to fw%d: %w", v.vip, n, err)
		}
	}
	if err := l.pointNeigh(l.Client, VIP0.Addr(), n, "eth0"); err != nil {
		return err
	}
	return l.pointNeigh(l.Server, VIP1.Addr(), n, "eth1")
}

// pointNeigh sets host's neighbour entry for vip to fw n's MAC on ifname.
func (l *Lab) pointNeigh(host *NS, vip netip.Addr, n int, fwIf string) error {
	fwLink, err := l.FW(n).Handle().LinkByName(fwIf)
	if err != nil {
		return err
	}
	h := host.Handle()
	link, err := h.LinkByName("eth0")
	if err != nil {
		return err
	}
	neigh := &netlink.Neigh{
		LinkIndex:    link.Attrs().Index,
		Family:       netlink.FAMILY_V4,
		State:        netlink.NUD_STALE,
		IP:           net.IP(vip.AsSlice()),
		HardwareAddr: fwLink.Attrs().HardwareAddr,
	}
	if err := h.NeighSet(neigh); err != nil {
		return fmt.Errorf("%s: neighbour %s -> fw%d: %w", host.Name, vip, n, err)
	}
	return nil
}
