// Package vrrptest provides an in-memory network for testing code that
// runs vrrp.Group, without root and under testing/synctest: segments
// (shared LANs) that carry adverts between nodes, and per node fakes of
// every vrrp adapter (Dialer, Addresser, Announcer, LinkSource) that
// record what the engine did.
//
// Delivery is immediate and in order; a segment can be cut (partition)
// and an interface's link taken down. Everything is safe for concurrent
// use.
package vrrptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/fwpair/fwpair/vrrp"
)

// Network is a set of segments and the nodes attached to them.
type Network struct {
	mu       sync.Mutex
	nodes    []*Node
	cut      map[string]bool // segment name -> partitioned
	watchers []chan struct{}
}

// NewNetwork returns an empty network.
func NewNetwork() *Network { return &Network{cut: map[string]bool{}} }

// Node is one host: its interfaces, addresses and recorded actions.
type Node struct {
	net    *Network
	name   string
	ifaces map[string]*Interface
	conns  []*conn
	dials  int

	vips      map[string][]vrrp.VIP // by interface
	failAdd   error
	garps     []GARP
	vipEvents []VIPEvent
}

// Interface is a node's attachment to a segment.
type Interface struct {
	Name    string
	Segment string
	Addr    netip.Addr
	Index   int
	up      bool
}

// GARP records one Announce call.
type GARP struct {
	At    time.Time
	Iface string
	Addrs []netip.Addr
}

// VIPEvent records one AddVIPs (Added) or RemoveVIPs call.
type VIPEvent struct {
	At    time.Time
	Iface string
	Added bool
	VIPs  []vrrp.VIP
}

// Node adds a host to the network.
func (n *Network) Node(name string) *Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	nd := &Node{net: n, name: name, ifaces: map[string]*Interface{}, vips: map[string][]vrrp.VIP{}}
	n.nodes = append(n.nodes, nd)
	return nd
}

// Attach gives the node an interface on a segment with a primary address.
func (nd *Node) Attach(ifname, segment string, addr netip.Addr) *Node {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	nd.ifaces[ifname] = &Interface{Name: ifname, Segment: segment, Addr: addr, Index: len(nd.ifaces) + 2, up: true}
	return nd
}

// Partition cuts (true) or restores (false) a segment: while cut, it
// carries nothing.
func (n *Network) Partition(segment string, cut bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[segment] = cut
}

// SetLink takes an interface's link up or down. Adverts are neither sent
// nor received through a down link, and WatchLinks reports the change.
func (nd *Node) SetLink(ifname string, up bool) {
	nd.net.mu.Lock()
	nd.ifaces[ifname].up = up
	ws := nd.net.watchers
	nd.net.watchers = nil
	nd.net.mu.Unlock()
	for _, w := range ws {
		close(w)
	}
}

// FailAddVIPs makes AddVIPs fail with err (nil: succeed again).
func (nd *Node) FailAddVIPs(err error) {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	nd.failAdd = err
}

// VIPs returns the VIP addresses currently on the node, sorted.
func (nd *Node) VIPs() []netip.Addr {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	var out []netip.Addr
	for _, vs := range nd.vips {
		for _, v := range vs {
			out = append(out, v.Prefix.Addr())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// SetVIPs puts addresses on an interface directly, e.g. to play a killed
// predecessor that left them behind.
func (nd *Node) SetVIPs(ifname string, vips []vrrp.VIP) {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	nd.vips[ifname] = slices.Clone(vips)
}

// GARPs returns the recorded gratuitous ARP rounds.
func (nd *Node) GARPs() []GARP {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	return slices.Clone(nd.garps)
}

// VIPEvents returns the recorded AddVIPs/RemoveVIPs calls.
func (nd *Node) VIPEvents() []VIPEvent {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	return slices.Clone(nd.vipEvents)
}

// Dials returns how many Conns the node has opened.
func (nd *Node) Dials() int {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	return nd.dials
}

// Options returns vrrp.Options wired to this node's fakes.
func (nd *Node) Options() vrrp.Options {
	return vrrp.Options{Dialer: nd, Addresser: nd, Announcer: nd, Links: nd}
}

// Dial implements vrrp.Dialer.
func (nd *Node) Dial(_ context.Context, ifname string) (vrrp.Conn, error) {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	ifc, ok := nd.ifaces[ifname]
	if !ok {
		return nil, fmt.Errorf("vrrptest: %s has no interface %s", nd.name, ifname)
	}
	c := &conn{node: nd, ifc: ifc, in: make(chan packet, 64), closed: make(chan struct{})}
	nd.conns = append(nd.conns, c)
	nd.dials++
	return c, nil
}

// AddVIPs implements vrrp.Addresser.
func (nd *Node) AddVIPs(_ context.Context, ifname string, vips []vrrp.VIP) error {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	if nd.failAdd != nil {
		return nd.failAdd
	}
	for _, v := range vips {
		if !slices.Contains(nd.vips[ifname], v) {
			nd.vips[ifname] = append(nd.vips[ifname], v)
		}
	}
	nd.vipEvents = append(nd.vipEvents, VIPEvent{At: time.Now(), Iface: ifname, Added: true, VIPs: vips})
	return nil
}

// RemoveVIPs implements vrrp.Addresser.
func (nd *Node) RemoveVIPs(_ context.Context, ifname string, vips []vrrp.VIP) error {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	nd.vips[ifname] = slices.DeleteFunc(nd.vips[ifname], func(v vrrp.VIP) bool { return slices.Contains(vips, v) })
	nd.vipEvents = append(nd.vipEvents, VIPEvent{At: time.Now(), Iface: ifname, VIPs: vips})
	return nil
}

// Announce implements vrrp.Announcer.
func (nd *Node) Announce(_ context.Context, ifname string, addrs []netip.Addr) error {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	nd.garps = append(nd.garps, GARP{At: time.Now(), Iface: ifname, Addrs: slices.Clone(addrs)})
	return nil
}

// WatchLinks implements vrrp.LinkSource.
func (nd *Node) WatchLinks(ctx context.Context, names []string, updates chan<- vrrp.LinkUpdate) error {
	last := map[string]bool{}
	for first := true; ; first = false {
		nd.net.mu.Lock()
		changed := make(chan struct{})
		nd.net.watchers = append(nd.net.watchers, changed)
		var out []vrrp.LinkUpdate
		for _, name := range names {
			ifc, ok := nd.ifaces[name]
			up := ok && ifc.up
			if prev, seen := last[name]; first || !seen || prev != up {
				out = append(out, vrrp.LinkUpdate{Name: name, Up: up})
				last[name] = up
			}
		}
		nd.net.mu.Unlock()
		for _, u := range out {
			select {
			case updates <- u:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

type packet struct {
	data []byte
	meta vrrp.RecvMeta
}

type conn struct {
	node   *Node
	ifc    *Interface
	in     chan packet
	once   sync.Once
	closed chan struct{}
}

func (c *conn) ReadAdvert(b []byte) (int, vrrp.RecvMeta, error) {
	select {
	case p := <-c.in:
		return copy(b, p.data), p.meta, nil
	case <-c.closed:
		return 0, vrrp.RecvMeta{}, net.ErrClosed
	}
}

func (c *conn) WriteAdvert(b []byte, src, dst netip.Addr) error {
	n := c.node.net
	n.mu.Lock()
	defer n.mu.Unlock()
	select {
	case <-c.closed:
		return net.ErrClosed
	default:
	}
	if !c.ifc.up {
		return errors.New("vrrptest: link down")
	}
	if n.cut[c.ifc.Segment] {
		return nil // lost on the wire
	}
	if !src.IsValid() {
		src = c.ifc.Addr
	}
	for _, other := range n.nodes {
		if other == c.node {
			continue // multicast loop is off
		}
		for _, oc := range other.conns {
			if oc.ifc.Segment != c.ifc.Segment || !oc.ifc.up {
				continue
			}
			if !dst.IsMulticast() && dst != oc.ifc.Addr {
				continue
			}
			select {
			case <-oc.closed:
				continue
			default:
			}
			p := packet{data: slices.Clone(b), meta: vrrp.RecvMeta{Src: src, Dst: dst, TTL: vrrp.RequiredTTL, IfIndex: oc.ifc.Index}}
			select {
			case oc.in <- p:
			default: // receiver queue full: lost
			}
		}
	}
	return nil
}

func (c *conn) LocalAddr() netip.Addr { return c.ifc.Addr }
func (c *conn) IfIndex() int          { return c.ifc.Index }

func (c *conn) Close() error {
	c.once.Do(func() {
		c.node.net.mu.Lock()
		c.node.conns = slices.DeleteFunc(c.node.conns, func(x *conn) bool { return x == c })
		c.node.net.mu.Unlock()
		close(c.closed)
	})
	return nil
}

// Inject delivers raw bytes to every open conn of the node on ifname, as
// if they had arrived from the wire (for malformed-packet tests).
func (nd *Node) Inject(ifname string, data []byte, meta vrrp.RecvMeta) {
	nd.net.mu.Lock()
	defer nd.net.mu.Unlock()
	for _, c := range nd.conns {
		if c.ifc.Name == ifname {
			if meta.IfIndex == 0 {
				meta.IfIndex = c.ifc.Index
			}
			select {
			case c.in <- packet{data: slices.Clone(data), meta: meta}:
			default:
			}
		}
	}
}
