package ctsync

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// Channel is one sync link: a datagram transport to the peer. The Engine
// uses up to four of them, one active at a time.
type Channel interface {
	// Send transmits one datagram to the peer.
	Send(p []byte) error
	// Recv blocks until a datagram arrives, ctx ends or the channel is
	// closed, and copies it into p.
	Recv(ctx context.Context, p []byte) (int, error)
	// Up reports whether the link can carry traffic (interface up and
	// running).
	Up() bool
	// MaxPayload is the largest datagram to send: the link MTU minus the
	// IP and UDP headers (28 bytes for IPv4).
	MaxPayload() int
	String() string
	Close() error
}

// Conntrackd's conventional sync endpoints.
const (
	DefaultPort = 3780
)

// DefaultGroup is conntrackd's conventional multicast group.
func DefaultGroup() netip.Addr { return netip.AddrFrom4([4]byte{225, 0, 0, 50}) }

// MaxChannels is the number of redundant links (conntrackd's
// MULTICHANNEL_MAX).
const MaxChannels = 4

// ChannelConfig describes one UDP sync link.
type ChannelConfig struct {
	// Interface is the dedicated sync interface; the socket is bound to it
	// (SO_BINDTODEVICE) and its state drives failover.
	Interface string
	// Local is the address to receive on (unicast) or the interface
	// address to send multicast from (optional).
	Local netip.Addr
	// Peer is the unicast destination. Exactly one of Peer and Group.
	Peer netip.Addr
	// Group is the multicast group (IPv4), e.g. DefaultGroup().
	Group netip.Addr
	// Port is the UDP port (DefaultPort when 0); for multicast it is what
	// conntrackd calls "Group".
	Port uint16
	// SendBuffer and RecvBuffer set SO_SNDBUFFORCE/SO_RCVBUFFORCE when > 0.
	SendBuffer, RecvBuffer int
	// MTU overrides the interface MTU when > 0.
	MTU int
	// AcceptFrom lists the source addresses datagrams are accepted from;
	// everything else is dropped and counted (see SourceFilter). Empty
	// means Peer for a unicast link; a multicast link with an empty list
	// accepts every sender on the interface (the appliance configuration
	// refuses that).
	AcceptFrom []netip.Addr
}

// acceptSet returns the allowed source addresses (unmapped), nil for any.
func (c *ChannelConfig) acceptSet() []netip.Addr {
	src := c.AcceptFrom
	if len(src) == 0 && c.Peer.IsValid() {
		src = []netip.Addr{c.Peer}
	}
	out := make([]netip.Addr, 0, len(src))
	for _, a := range src {
		out = append(out, a.Unmap())
	}
	return out
}

// RejectCounter is implemented by channels that drop datagrams before the
// engine sees them: from a source other than the configured peers, or
// failing authentication. The engine adds the counts to its rejection
// reasons and logs them, at most once a second.
type RejectCounter interface {
	// Rejected returns the counts by reason and a description of the
	// newest rejected datagram ("" when none).
	Rejected() (counts map[string]uint64, last string)
}

func (c *ChannelConfig) validate() error {
	if c.Interface == "" {
		return errors.New("ctsync: channel needs an interface")
	}
	if c.Peer.IsValid() == c.Group.IsValid() {
		return fmt.Errorf("ctsync: channel on %s needs exactly one of peer address and multicast group", c.Interface)
	}
	if c.Group.IsValid() && (!c.Group.Is4() || !c.Group.IsMulticast()) {
		return fmt.Errorf("ctsync: channel on %s: %v is not an IPv4 multicast group", c.Interface, c.Group)
	}
	for _, a := range c.AcceptFrom {
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			return fmt.Errorf("ctsync: channel on %s: %v is not a peer address to accept from", c.Interface, a)
		}
	}
	if c.Peer.IsValid() && c.Local.IsValid() && c.Peer.Is4() != c.Local.Is4() {
		return fmt.Errorf("ctsync: channel on %s: local %v and peer %v differ in family", c.Interface, c.Local, c.Peer)
	}
	return nil
}

// ErrClosed is returned by a closed channel.
var ErrClosed = errors.New("ctsync: channel closed")

// MemNetwork is an in-memory pair of channels for tests: datagrams sent on
// one end are received on the other. Drop, when set, decides per datagram
// whether it is lost.
type MemNetwork struct {
	mu   sync.Mutex
	Drop func(p []byte) bool
}

// MemChannel is one end of a MemNetwork link.
type MemChannel struct {
	net  *MemNetwork
	name string
	mtu  int
	in   chan []byte
	peer *MemChannel

	mu     sync.Mutex
	down   bool
	closed chan struct{}
	once   sync.Once
}

// NewMemLink returns the two ends of one in-memory link with the given
// datagram size limit (max payload).
func (n *MemNetwork) NewMemLink(name string, maxPayload int) (a, b *MemChannel) {
	a = &MemChannel{net: n, name: name + "/a", mtu: maxPayload, in: make(chan []byte, 4096), closed: make(chan struct{})}
	b = &MemChannel{net: n, name: name + "/b", mtu: maxPayload, in: make(chan []byte, 4096), closed: make(chan struct{})}
	a.peer, b.peer = b, a
	return a, b
}

// SetDrop installs a loss function (nil: no loss).
func (n *MemNetwork) SetDrop(f func([]byte) bool) {
	n.mu.Lock()
	n.Drop = f
	n.mu.Unlock()
}

// Reopen returns a fresh end replacing c, which must be closed (a
// restarted node's new socket on the same link).
func (c *MemChannel) Reopen() *MemChannel {
	n := &MemChannel{net: c.net, name: c.name, mtu: c.mtu, in: make(chan []byte, 4096), closed: make(chan struct{}), peer: c.peer}
	c.peer.mu.Lock()
	c.peer.peer = n
	c.peer.mu.Unlock()
	return n
}

// SetUp sets the link state seen by Up on this end.
func (c *MemChannel) SetUp(up bool) {
	c.mu.Lock()
	c.down = !up
	c.mu.Unlock()
}

// Send implements Channel. A datagram to a full or closed peer is lost.
func (c *MemChannel) Send(p []byte) error {
	select {
	case <-c.closed:
		return ErrClosed
	default:
	}
	if len(p) > c.mtu {
		return fmt.Errorf("ctsync: datagram of %d bytes exceeds %d", len(p), c.mtu)
	}
	if !c.Up() {
		return errors.New("ctsync: link down")
	}
	c.net.mu.Lock()
	drop := c.net.Drop
	c.net.mu.Unlock()
	if drop != nil && drop(p) {
		return nil
	}
	b := append([]byte(nil), p...)
	c.mu.Lock()
	peer := c.peer
	c.mu.Unlock()
	select {
	case peer.in <- b:
	case <-peer.closed:
	default: // queue full: lost, like a UDP socket buffer overflow
	}
	return nil
}

// Recv implements Channel.
func (c *MemChannel) Recv(ctx context.Context, p []byte) (int, error) {
	select {
	case b := <-c.in:
		return copy(p, b), nil
	case <-c.closed:
		return 0, ErrClosed
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Up implements Channel.
func (c *MemChannel) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.down
}

// MaxPayload implements Channel.
func (c *MemChannel) MaxPayload() int { return c.mtu }

func (c *MemChannel) String() string { return "mem:" + c.name }

// Close implements Channel.
func (c *MemChannel) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}
