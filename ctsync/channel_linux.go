package ctsync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// udpChannel is a UDP sync link (unicast or IPv4 multicast) bound to one
// interface. It is created in the caller's network namespace and stays
// there.
type udpChannel struct {
	cfg   ChannelConfig
	conn  *net.UDPConn
	raw   syscall.RawConn
	dst   netip.AddrPort
	mtu   int
	name  string
	close sync.Once
	// accept holds the allowed source addresses (nil: any).
	accept []netip.Addr
	// foreign counts dropped datagrams from other sources; lastForeign
	// is the source of the newest one.
	foreign     atomic.Uint64
	lastForeign atomic.Pointer[netip.Addr]

	// watchMu guards the context whose end interrupts Recv: watchDone is
	// its Done channel, watchStop unregisters it.
	watchMu   sync.Mutex
	watchDone <-chan struct{}
	watchStop func() bool
}

// OpenChannel opens a UDP sync link as conntrackd does: unicast receives on
// Local:Port and sends to Peer:Port; multicast joins Group on the interface,
// receives on Group:Port and sends to it with loopback off and TTL 1. The
// socket is bound to the interface with SO_BINDTODEVICE. It needs
// CAP_NET_ADMIN for the device binding and forced buffer sizes.
func OpenChannel(cfg ChannelConfig) (Channel, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("ctsync: channel: %w", err)
	}
	var sockErr error
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			if sockErr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); sockErr != nil {
				return
			}
			if sockErr = unix.BindToDevice(s, cfg.Interface); sockErr != nil {
				sockErr = fmt.Errorf("SO_BINDTODEVICE %s: %w", cfg.Interface, sockErr)
				return
			}
			if cfg.RecvBuffer > 0 {
				if sockErr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.RecvBuffer); sockErr != nil {
					sockErr = fmt.Errorf("SO_RCVBUFFORCE: %w", sockErr)
					return
				}
			}
			if cfg.SendBuffer > 0 {
				if sockErr = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, cfg.SendBuffer); sockErr != nil {
					sockErr = fmt.Errorf("SO_SNDBUFFORCE: %w", sockErr)
				}
			}
		})
		if err != nil {
			return err
		}
		return sockErr
	}}
	var network, laddr string
	var dst netip.AddrPort
	if cfg.Group.IsValid() {
		network = "udp4"
		laddr = net.JoinHostPort(cfg.Group.String(), strconv.Itoa(int(cfg.Port)))
		dst = netip.AddrPortFrom(cfg.Group, cfg.Port)
	} else {
		network = "udp4"
		if cfg.Peer.Is6() && !cfg.Peer.Is4In6() {
			network = "udp6"
		}
		host := ""
		if cfg.Local.IsValid() {
			host = cfg.Local.String()
		}
		laddr = net.JoinHostPort(host, strconv.Itoa(int(cfg.Port)))
		dst = netip.AddrPortFrom(cfg.Peer, cfg.Port)
	}
	pc, err := lc.ListenPacket(context.Background(), network, laddr)
	if err != nil {
		return nil, fmt.Errorf("ctsync: channel on %s: %w", cfg.Interface, err)
	}
	conn := pc.(*net.UDPConn)
	if cfg.Group.IsValid() {
		p := ipv4.NewPacketConn(conn)
		err := errors.Join(
			p.JoinGroup(ifi, &net.UDPAddr{IP: cfg.Group.AsSlice()}),
			p.SetMulticastInterface(ifi),
			p.SetMulticastLoopback(false),
			p.SetMulticastTTL(1),
		)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("ctsync: multicast %v on %s: %w", cfg.Group, cfg.Interface, err)
		}
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		conn.Close()
		return nil, err
	}
	mtu := cfg.MTU
	if mtu <= 0 {
		mtu = ifi.MTU
	}
	hdr := 28
	if dst.Addr().Is6() && !dst.Addr().Is4In6() {
		hdr = 48
	}
	if mtu-hdr < 64 {
		mtu = 1500
	}
	return &udpChannel{
		cfg: cfg, conn: conn, raw: raw, dst: dst, mtu: mtu - hdr,
		name:   fmt.Sprintf("udp:%s:%v", cfg.Interface, dst),
		accept: cfg.acceptSet(),
	}, nil
}

func (c *udpChannel) Send(p []byte) error {
	_, err := c.conn.WriteToUDPAddrPort(p, c.dst)
	return err
}

func (c *udpChannel) Recv(ctx context.Context, p []byte) (int, error) {
	c.watch(ctx)
	for {
		n, from, err := c.conn.ReadFromUDPAddrPort(p)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			if errors.Is(err, net.ErrClosed) {
				return 0, ErrClosed
			}
			return 0, err
		}
		if c.allowed(from.Addr()) {
			return n, nil
		}
		// Not from the peer: dropped here, counted, never parsed. The
		// socket is bound to the interface, so only the source is left
		// to check.
		a := from.Addr().Unmap()
		c.foreign.Add(1)
		c.lastForeign.Store(&a)
	}
}

// watch makes the end of ctx interrupt a blocked Recv. The receive loop
// passes the same context to every Recv, so the hook is registered once
// per context, not once per datagram (an allocation and two locks of the
// parent context each time, 2% of the receiver's CPU in a burst). A Recv
// with another context unregisters the old hook and clears a deadline it
// may have set.
func (c *udpChannel) watch(ctx context.Context) {
	done := ctx.Done()
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	if done == c.watchDone {
		return
	}
	if c.watchStop != nil {
		c.watchStop()
		c.watchStop = nil
		_ = c.conn.SetReadDeadline(time.Time{})
	}
	c.watchDone = done
	if done != nil {
		c.watchStop = context.AfterFunc(ctx, func() { _ = c.conn.SetReadDeadline(time.Now()) })
	}
}

func (c *udpChannel) allowed(a netip.Addr) bool {
	if len(c.accept) == 0 {
		return true
	}
	a = a.Unmap()
	for _, ok := range c.accept {
		if a == ok {
			return true
		}
	}
	return false
}

// Rejected implements RejectCounter.
func (c *udpChannel) Rejected() (map[string]uint64, string) {
	n := c.foreign.Load()
	if n == 0 {
		return nil, ""
	}
	last := ""
	if p := c.lastForeign.Load(); p != nil {
		last = "from " + p.String() + " (not a configured peer)"
	}
	return map[string]uint64{ReasonForeignSource: n}, last
}

// Up asks the kernel for the interface flags through the socket itself,
// so the answer comes from the socket's network namespace.
func (c *udpChannel) Up() bool {
	ifr, err := unix.NewIfreq(c.cfg.Interface)
	if err != nil {
		return false
	}
	var ierr error
	if err := c.raw.Control(func(fd uintptr) { ierr = unix.IoctlIfreq(int(fd), unix.SIOCGIFFLAGS, ifr) }); err != nil || ierr != nil {
		return false
	}
	const want = unix.IFF_UP | unix.IFF_RUNNING
	return ifr.Uint16()&want == want
}

func (c *udpChannel) MaxPayload() int { return c.mtu }
func (c *udpChannel) String() string  { return c.name }

func (c *udpChannel) Close() error {
	var err error
	c.close.Do(func() {
		c.watchMu.Lock()
		if c.watchStop != nil {
			c.watchStop()
		}
		c.watchMu.Unlock()
		err = c.conn.Close()
	})
	return err
}
