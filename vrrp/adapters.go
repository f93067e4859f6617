package vrrp

import (
	"context"
	"net/netip"
)

// Conn sends and receives VRRP adverts on one interface. The engine opens
// one Conn per interface (shared by the instances on it) through a Dialer,
// and re-dials after the link comes back up.
type Conn interface {
	// ReadAdvert blocks until a VRRP packet arrives and copies its IP
	// payload into b. It returns an error once the Conn is closed.
	ReadAdvert(b []byte) (n int, meta RecvMeta, err error)
	// WriteAdvert sends the VRRP message b to dst (GroupAddress or a
	// unicast peer) with TTL 255, from src if valid, else from the
	// interface's primary address.
	WriteAdvert(b []byte, src, dst netip.Addr) error
	// LocalAddr is the interface's primary IPv4 address: the source of
	// multicast adverts and our side of the equal-priority tie-break.
	LocalAddr() netip.Addr
	// IfIndex is the interface index the Conn is bound to.
	IfIndex() int
	// Close unblocks ReadAdvert and releases the socket.
	Close() error
}

// Dialer opens a Conn on an interface.
type Dialer interface {
	Dial(ctx context.Context, ifname string) (Conn, error)
}

// Addresser installs and removes VIPs. Both methods are idempotent:
// adding a present address or removing an absent one is not an error.
type Addresser interface {
	AddVIPs(ctx context.Context, ifname string, vips []VIP) error
	RemoveVIPs(ctx context.Context, ifname string, vips []VIP) error
}

// Announcer sends one gratuitous ARP for each address on ifname. The
// engine does the burst spacing and the periodic refresh.
type Announcer interface {
	Announce(ctx context.Context, ifname string, addrs []netip.Addr) error
}

// LinkUpdate is the state of one interface's link.
type LinkUpdate struct {
	Name string
	Up   bool
}

// LinkSource reports link state. WatchLinks sends the current state of
// every named interface (a missing interface is down), then every change,
// until ctx is done. It returns ctx's error, or another error if watching
// failed for good.
type LinkSource interface {
	WatchLinks(ctx context.Context, names []string, updates chan<- LinkUpdate) error
}
