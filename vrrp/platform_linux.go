package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// Link changes are seen at once through an rtnetlink link-group
// subscription; the poll catches anything a lost notification would hide.
// Without the subscription the poll is fast.
const (
	linkPollInterval     = time.Second
	linkFastPollInterval = 100 * time.Millisecond
)

// linuxPlatform holds the namespace handle and the rtnetlink handle shared
// by the Linux adapters. Everything it opens is bound to that namespace:
// rtnetlink through a Handle made with NewHandleAt, sockets by creating
// them on a throwaway OS thread switched into the namespace.
type linuxPlatform struct {
	ns netns.NsHandle
	// own is true when ns is the process's own namespace: sockets are then
	// opened without setns, which needs CAP_SYS_ADMIN (the systemd unit
	// grants only CAP_NET_ADMIN and CAP_NET_RAW).
	own  bool
	nl   *netlink.Handle
	nlMu sync.Mutex // serialises requests on nl, shared by several goroutines
	log  *slog.Logger
	vips []netip.Addr // configured VIPs, never taken as an interface's primary address

	garpMu sync.Mutex
	garp   map[string]*garpConn
	nd     map[string]*ndConn // IPv6 Neighbor Advertisement sockets
}

type garpConn struct {
	index int
	conn  *packet.Conn
}

func newPlatform(nsPath string, cfg Config, log *slog.Logger) (platform, error) {
	var (
		ns  netns.NsHandle
		err error
	)
	if nsPath == "" {
		ns, err = netns.Get() // the calling thread's namespace
	} else {
		ns, err = netns.GetFromPath(nsPath)
	}
	if err != nil {
		return nil, fmt.Errorf("open network namespace %q: %w", nsPath, err)
	}
	own := false
	if proc, perr := netns.GetFromPid(os.Getpid()); perr == nil {
		own = ns.Equal(proc)
		_ = proc.Close()
	}
	var nl *netlink.Handle
	if own {
		// Only rtnetlink: a bare NewHandle also opens XFRM, which needs
		// the xfrm_user module.
		nl, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		nl, err = netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	}
	if err != nil {
		_ = ns.Close()
		return nil, fmt.Errorf("rtnetlink handle: %w", err)
	}
	p := &linuxPlatform{ns: ns, own: own, nl: nl, log: log, garp: map[string]*garpConn{}, nd: map[string]*ndConn{}}
	for _, in := range cfg.Instances {
		p.vips = append(p.vips, vipAddrs(in.VIPs)...)
	}
	return p, nil
}

func (p *linuxPlatform) dialer() Dialer         { return (*linuxDialer)(p) }
func (p *linuxPlatform) addresser() Addresser   { return (*linuxAddresser)(p) }
func (p *linuxPlatform) announcer() Announcer   { return (*linuxAnnouncer)(p) }
func (p *linuxPlatform) linkSource() LinkSource { return (*linuxLinks)(p) }

func (p *linuxPlatform) close() error {
	p.garpMu.Lock()
	for name, gc := range p.garp {
		_ = gc.conn.Close()
		delete(p.garp, name)
	}
	for name, nc := range p.nd {
		_ = nc.conn.Close()
		delete(p.nd, name)
	}
	p.garpMu.Unlock()
	p.nl.Close()
	return p.ns.Close()
}

// inNamespace runs fn on a fresh OS thread switched into the platform's
// namespace. The thread is never unlocked, so the runtime discards it
// when the goroutine ends instead of reusing a thread in another
// namespace.
func (p *linuxPlatform) inNamespace(fn func() error) error {
	if p.own {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(p.ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

func (p *linuxPlatform) linkByName(name string) (netlink.Link, error) {
	p.nlMu.Lock()
	defer p.nlMu.Unlock()
	return p.nl.LinkByName(name)
}

// primaryAddr returns the interface's first primary IPv4 address that is
// not one of our VIPs.
func (p *linuxPlatform) primaryAddr(link netlink.Link) (netip.Addr, error) {
	p.nlMu.Lock()
	addrs, err := p.nl.AddrList(link, netlink.FAMILY_V4)
	p.nlMu.Unlock()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		if !ok || a.Flags&unix.IFA_F_SECONDARY != 0 || slices.Contains(p.vips, ip) {
			continue
		}
		return ip, nil
	}
	return netip.Addr{}, fmt.Errorf("%s has no IPv4 address of its own", link.Attrs().Name)
}

// linuxDialer opens raw IP protocol 112 sockets.
type linuxDialer linuxPlatform

var _ Dialer = (*linuxDialer)(nil)

func (d *linuxDialer) Dial(ctx context.Context, ifname string) (Conn, error) {
	p := (*linuxPlatform)(d)
	link, err := p.linkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("vrrp: %s: %w", ifname, err)
	}
	local, err := p.primaryAddr(link)
	if err != nil {
		return nil, fmt.Errorf("vrrp: %w", err)
	}
	pc, sc, err := p.listenBound(ctx, ifname, fmt.Sprintf("ip4:%d", IPProtocol), "0.0.0.0")
	if err != nil {
		return nil, err
	}
	c := &rawConn{pc: ipv4.NewPacketConn(pc), raw: sc, index: link.Attrs().Index, local: local}
	c.frames.init(p, ifname, c.index)
	if err := sc.Control(func(fd uintptr) { c.fd = int(fd) }); err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("vrrp: %s: %w", ifname, err)
	}
	ifi := &net.Interface{Index: c.index, Name: ifname}
	steps := []socketStep{
		{"join 224.0.0.18", func() error { return c.pc.JoinGroup(ifi, &net.IPAddr{IP: GroupAddress.AsSlice()}) }},
		{"multicast interface", func() error { return c.pc.SetMulticastInterface(ifi) }},
		{"multicast TTL", func() error { return c.pc.SetMulticastTTL(RequiredTTL) }},
		{"unicast TTL", func() error { return c.pc.SetTTL(RequiredTTL) }},
		{"multicast loop", func() error { return c.pc.SetMulticastLoopback(false) }},
		// Internetwork control precedence, like keepalived.
		{"TOS", func() error { return c.pc.SetTOS(0xc0) }},
		{"control messages", func() error {
			return c.pc.SetControlMessage(ipv4.FlagTTL|ipv4.FlagDst|ipv4.FlagInterface, true)
		}},
	}
	if err := applySocketSteps(ifname, steps, c.pc.Close); err != nil {
		return nil, err
	}
	return c, nil
}

// socketStep is one option set on a fresh VRRP socket.
type socketStep = struct {
	what string
	err  func() error
}

// applySocketSteps sets a fresh socket's options in order; on the first
// failure it closes the socket and names the step.
func applySocketSteps(ifname string, steps []socketStep, closeConn func() error) error {
	for _, s := range steps {
		if err := s.err(); err != nil {
			_ = closeConn()
			return fmt.Errorf("vrrp: %s: %s: %w", ifname, s.what, err)
		}
	}
	return nil
}

// listenBound opens a raw IP socket (network "ip4:112" or "ip6:112") in
// the platform's namespace, bound to ifname with SO_BINDTODEVICE: it
// receives only what arrives on that interface and sends only through it,
// whatever the routing table says.
func (p *linuxPlatform) listenBound(ctx context.Context, ifname, network, laddr string) (net.PacketConn, syscall.RawConn, error) {
	var pc net.PacketConn
	err := p.inNamespace(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname)
			})
			return errors.Join(err, serr)
		}}
		var err error
		pc, err = lc.ListenPacket(ctx, network, laddr)
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("vrrp: open raw socket %s on %s: %w", network, ifname, err)
	}
	sc, err := pc.(syscall.Conn).SyscallConn()
	if err != nil {
		_ = pc.Close()
		return nil, nil, fmt.Errorf("vrrp: %s: raw socket: %w", ifname, err)
	}
	return pc, sc, nil
}

// rawConn is a Conn over a raw IPv4 socket bound to one interface.
type rawConn struct {
	pc     *ipv4.PacketConn
	raw    syscall.RawConn // for ReadPending
	index  int
	local  netip.Addr
	frames frameSender // adverts from the virtual MAC (vmac_send_linux.go)
	fd     int         // the socket, for the kernel-timed pacer's sendmsg
}

var _ Conn = (*rawConn)(nil)

func (c *rawConn) ReadAdvert(b []byte) (int, RecvMeta, error) {
	n, cm, src, err := c.pc.ReadFrom(b)
	if err != nil {
		return 0, RecvMeta{}, err
	}
	var m RecvMeta
	if ipa, ok := src.(*net.IPAddr); ok {
		m.Src, _ = netip.AddrFromSlice(ipa.IP.To4())
	}
	if cm != nil {
		m.TTL = cm.TTL
		m.IfIndex = cm.IfIndex
		m.Dst, _ = netip.AddrFromSlice(cm.Dst.To4())
	}
	return n, m, nil
}

func (c *rawConn) WriteAdvert(b []byte, src, dst netip.Addr) error {
	if !src.IsValid() {
		// Pin the source to the address the engine uses for the
		// tie-break and to recognise its own adverts, whatever the
		// kernel's source selection would pick once VIPs are present.
		src = c.local
	}
	cm := &ipv4.ControlMessage{IfIndex: c.index, Src: src.AsSlice()}
	_, err := c.pc.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice()})
	return err
}

func (c *rawConn) LocalAddr() netip.Addr { return c.local }
func (c *rawConn) IfIndex() int          { return c.index }
func (c *rawConn) Close() error {
	c.frames.close()
	return c.pc.Close()
}

// linuxAddresser adds and removes VIPs through the namespace's rtnetlink
// handle.
type linuxAddresser linuxPlatform

var _ Addresser = (*linuxAddresser)(nil)

func vipAddr(v VIP, withLabel bool) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   v.Prefix.Addr().AsSlice(),
		Mask: net.CIDRMask(v.Prefix.Bits(), v.Prefix.Addr().BitLen()),
	}}
	if withLabel {
		a.Label = v.Label
	}
	if v.Prefix.Addr().Is6() {
		// No duplicate address detection: the address must be usable (as
		// the source of the Neighbor Advertisements) at once, and the
		// peer that held it is gone or going.
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func (a *linuxAddresser) AddVIPs(ctx context.Context, ifname string, vips []VIP) error {
	p := (*linuxPlatform)(a)
	link, err := p.linkByName(ifname)
	if err != nil {
		return fmt.Errorf("add VIPs on %s: %w", ifname, err)
	}
	p.nlMu.Lock()
	defer p.nlMu.Unlock()
	for _, v := range vips {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := p.nl.AddrAdd(link, vipAddr(v, true))
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add VIP %v on %s: %w", v.Prefix, ifname, err)
		}
	}
	return nil
}

func (a *linuxAddresser) RemoveVIPs(ctx context.Context, ifname string, vips []VIP) error {
	p := (*linuxPlatform)(a)
	link, err := p.linkByName(ifname)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil // no interface, no address
		}
		return fmt.Errorf("remove VIPs on %s: %w", ifname, err)
	}
	p.nlMu.Lock()
	defer p.nlMu.Unlock()
	var errs []error
	for _, v := range vips {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Without the label, so that an address left with another label
		// (an older config) is removed too.
		err := p.nl.AddrDel(link, vipAddr(v, false))
		if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("remove VIP %v on %s: %w", v.Prefix, ifname, err))
		}
	}
	return errors.Join(errs...)
}

// linuxAnnouncer sends gratuitous ARP requests through AF_PACKET.
type linuxAnnouncer linuxPlatform

var _ Announcer = (*linuxAnnouncer)(nil)

func (an *linuxAnnouncer) Announce(ctx context.Context, ifname string, addrs []netip.Addr) error {
	p := (*linuxPlatform)(an)
	link, err := p.linkByName(ifname)
	if err != nil {
		return fmt.Errorf("GARP on %s: %w", ifname, err)
	}
	attrs := link.Attrs()
	v4, v6 := splitFamilies(addrs)
	if len(v6) > 0 {
		if err := p.advertiseNeighbors(ctx, ifname, attrs, v6); err != nil {
			return err
		}
	}
	if len(v4) == 0 {
		return nil
	}
	conn, err := p.garpConn(ifname, attrs)
	if err != nil {
		return err
	}
	for _, addr := range v4 {
		if err := ctx.Err(); err != nil {
			return err
		}
		// A gratuitous ARP request: sender and target IP are the VIP, so
		// every host on the segment updates an existing cache entry.
		pkt, err := arp.NewPacket(arp.OperationRequest, attrs.HardwareAddr, addr, ethernet.Broadcast, addr)
		if err != nil {
			return fmt.Errorf("GARP for %v: %w", addr, err)
		}
		payload, err := pkt.MarshalBinary()
		if err != nil {
			return err
		}
		frame, err := (&ethernet.Frame{
			Destination: ethernet.Broadcast,
			Source:      attrs.HardwareAddr,
			EtherType:   ethernet.EtherTypeARP,
			Payload:     payload,
		}).MarshalBinary()
		if err != nil {
			return err
		}
		if _, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: ethernet.Broadcast}); err != nil {
			p.dropGARPConn(ifname)
			return fmt.Errorf("GARP for %v on %s: %w", addr, ifname, err)
		}
	}
	return nil
}

// garpConn returns the AF_PACKET socket of ifname, re-opening it if the
// interface was re-created with another index.
func (p *linuxPlatform) garpConn(ifname string, attrs *netlink.LinkAttrs) (*packet.Conn, error) {
	p.garpMu.Lock()
	defer p.garpMu.Unlock()
	if gc, ok := p.garp[ifname]; ok {
		if gc.index == attrs.Index {
			return gc.conn, nil
		}
		_ = gc.conn.Close()
		delete(p.garp, ifname)
	}
	ifi := &net.Interface{Index: attrs.Index, Name: ifname, HardwareAddr: attrs.HardwareAddr, MTU: attrs.MTU}
	var conn *packet.Conn
	err := p.inNamespace(func() error {
		var err error
		// Protocol 0: a send-only socket, nothing is queued for reading.
		conn, err = packet.Listen(ifi, packet.Raw, 0, nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("GARP socket on %s: %w", ifname, err)
	}
	p.garp[ifname] = &garpConn{index: attrs.Index, conn: conn}
	return conn, nil
}

func (p *linuxPlatform) dropGARPConn(ifname string) {
	p.garpMu.Lock()
	defer p.garpMu.Unlock()
	if gc, ok := p.garp[ifname]; ok {
		_ = gc.conn.Close()
		delete(p.garp, ifname)
	}
}

// linuxLinks reports link state read through the namespace's rtnetlink
// handle. It re-reads the state whenever the kernel announces any link
// change (an RTMGRP_LINK subscription, used only as a wake-up, so no
// message needs decoding) and on a slow poll as a safety net.
type linuxLinks linuxPlatform

var _ LinkSource = (*linuxLinks)(nil)

func linkUp(l netlink.Link) bool {
	a := l.Attrs()
	return a.Flags&net.FlagUp != 0 && (a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown)
}

func (ll *linuxLinks) WatchLinks(ctx context.Context, names []string, updates chan<- LinkUpdate) error {
	p := (*linuxPlatform)(ll)
	wake := make(chan struct{}, 1)
	dead := make(chan struct{}) // closed if the subscription fails
	sub, err := p.subscribeLinks()
	if err != nil {
		p.log.Warn("no rtnetlink link notifications; polling link state", "err", err)
		close(dead)
	} else {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(dead)
			buf := make([]byte, 16<<10)
			for {
				_, err := sub.Read(buf)
				if errors.Is(err, unix.ENOBUFS) {
					err = nil // overrun: events were lost, re-read anyway
				}
				if err != nil {
					if !errors.Is(err, os.ErrClosed) {
						p.log.Warn("rtnetlink link notifications failed; polling link state", "err", err)
					}
					return
				}
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}()
		defer wg.Wait()
		defer sub.Close() // unblocks Read through the runtime poller
	}

	last := map[string]bool{}
	tick := time.NewTicker(linkPollInterval)
	defer tick.Stop()
	for first := true; ; first = false {
		for _, name := range names {
			link, err := p.linkByName(name)
			up := err == nil && linkUp(link)
			if prev, seen := last[name]; first || !seen || prev != up {
				last[name] = up
				select {
				case updates <- LinkUpdate{Name: name, Up: up}:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
		select {
		case <-wake:
		case <-tick.C:
		case <-dead:
			dead = nil
			tick.Reset(linkFastPollInterval)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// subscribeLinks opens a non-blocking rtnetlink socket in the namespace,
// subscribed to link notifications. As an *os.File it uses the runtime
// poller, so Close unblocks a pending Read.
func (p *linuxPlatform) subscribeLinks() (*os.File, error) {
	fd := -1
	err := p.inNamespace(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
			_ = unix.Close(fd)
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rtnetlink link subscription: %w", err)
	}
	return os.NewFile(uintptr(fd), "rtnetlink-link"), nil
}
