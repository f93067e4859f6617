package vrrp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
)

var _ VMACManager = (*linuxAddresser)(nil)

// AddVMAC creates the macvlan interface name on parent with MAC mac and
// brings it up. ARP: the parent and the macvlan answer only for their own
// addresses (arp_ignore = 1), so the VIPs, which live on the macvlan, are
// answered with the virtual MAC and never with the parent's (keepalived
// sets the same with use_vmac).
func (a *linuxAddresser) AddVMAC(ctx context.Context, parent, name string, mac net.HardwareAddr) error {
	p := (*linuxPlatform)(a)
	if err := ctx.Err(); err != nil {
		return err
	}
	plink, err := p.linkByName(parent)
	if err != nil {
		return fmt.Errorf("virtual MAC on %s: %w", parent, err)
	}
	p.nlMu.Lock()
	link, err := p.nl.LinkByName(name)
	var nf netlink.LinkNotFoundError
	switch {
	case err == nil:
		mv, ok := link.(*netlink.Macvlan)
		if !ok || link.Attrs().ParentIndex != plink.Attrs().Index || !bytes.Equal(link.Attrs().HardwareAddr, mac) {
			// Not ours, or left with other settings: replace it.
			if err := p.nl.LinkDel(link); err != nil {
				p.nlMu.Unlock()
				return fmt.Errorf("replace %s: %w", name, err)
			}
			link = nil
		} else {
			link = mv
		}
	case errors.As(err, &nf):
		link = nil
	default:
		p.nlMu.Unlock()
		return fmt.Errorf("virtual MAC %s: %w", name, err)
	}
	if link == nil {
		mv := &netlink.Macvlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: plink.Attrs().Index, HardwareAddr: mac},
			Mode:      netlink.MACVLAN_MODE_BRIDGE,
		}
		if err := p.nl.LinkAdd(mv); err != nil {
			p.nlMu.Unlock()
			return fmt.Errorf("create %s on %s: %w", name, parent, err)
		}
		link = mv
	}
	p.nlMu.Unlock()
	for _, ifname := range []string{parent, name} {
		if err := p.writeSysctl(filepath.Join("net/ipv4/conf", ifname, "arp_ignore"), "1"); err != nil {
			return err
		}
	}
	p.nlMu.Lock()
	defer p.nlMu.Unlock()
	if err := p.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s up: %w", name, err)
	}
	return nil
}

// RemoveVMAC deletes the macvlan interface name.
func (a *linuxAddresser) RemoveVMAC(_ context.Context, name string) error {
	p := (*linuxPlatform)(a)
	p.nlMu.Lock()
	defer p.nlMu.Unlock()
	link, err := p.nl.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if _, ok := link.(*netlink.Macvlan); !ok {
		return fmt.Errorf("remove %s: not a macvlan interface (%s); left alone", name, link.Type())
	}
	if err := p.nl.LinkDel(link); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

// writeSysctl writes /proc/sys/key in the platform's namespace (the
// net/ tree of /proc/sys belongs to the namespace of the thread that
// opens it).
func (p *linuxPlatform) writeSysctl(key, value string) error {
	return p.inNamespace(func() error {
		if err := os.WriteFile(filepath.Join("/proc/sys", key), []byte(value), 0o644); err != nil {
			return fmt.Errorf("sysctl %s = %s: %w", key, value, err)
		}
		return nil
	})
}
