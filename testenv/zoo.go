package testenv

// The traffic zoo: one of each kind of connection a NAT gateway pair
// forwards, with etc/fwpair-nat.nft on both firewalls, to judge a failover
// kind by kind (issue #10).

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// The zoo's ports and addresses.
const (
	// PortForwardPort is the outside VIP's forwarded port; InsidePort the
	// inside host's (the client namespace's) port it reaches.
	PortForwardPort = 8080
	InsidePort      = 7100
	// StreamPort is the server's UDP stream port.
	StreamPort = 7200
)

// ZooTimeouts are the conntrack timeouts the zoo shortens in the
// firewalls' namespaces (their own sysctls), so that flows older than
// their timeout fit in a short test.
var ZooTimeouts = [][2]string{
	{"net/netfilter/nf_conntrack_udp_timeout", "5"},
	{"net/netfilter/nf_conntrack_udp_timeout_stream", "10"},
	{"net/netfilter/nf_conntrack_tcp_timeout_established", "20"},
	{"net/netfilter/nf_conntrack_icmp_timeout", "10"},
}

// ZooRuleset returns etc/fwpair-nat.nft.
func ZooRuleset() (string, error) {
	p, err := RepoFile("etc/fwpair-nat.nft")
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	return string(b), err
}

// addIPv6ViaFW1 gives the lab IPv6 (AddIPv6) and routes the client's and
// the server's LAN prefixes through fw1's own addresses: the zoo runs
// VRRPv2, so there are no IPv6 VIPs, and its replicated IPv6 entries are
// compared table to table. Call it before the daemons start, so that their
// address lists include the new addresses.
func (l *Lab) addIPv6ViaFW1() error {
	if err := l.AddIPv6(); err != nil {
		return err
	}
	route := func(ns *NS, dst netip.Prefix, gw netip.Addr) error {
		r := &netlink.Route{Dst: prefixToIPNet(dst), Gw: net.IP(gw.AsSlice())}
		if err := ns.Handle().RouteAdd(r); err != nil {
			return fmt.Errorf("%s: route %s via %s: %w", ns.Name, dst, gw, err)
		}
		return nil
	}
	if err := route(l.Client, ServerAddr6.Masked(), FWAddrs6[0][0].Addr()); err != nil {
		return err
	}
	return route(l.Server, ClientAddr6.Masked(), FWAddrs6[0][1].Addr())
}

// UDPStream is a long-lived UDP flow in which only the outside side talks
// after the first datagram: the client sends one subscription, the server
// sends a numbered datagram every interval from then on. Packets in either
// direction keep the conntrack entry alive, and a firewall that lost the
// entry drops the server's datagrams for good (the client never sends
// again to re-create it), so the flow survives a failover only if its
// state was replicated and fresh.
type UDPStream struct {
	srv, cli net.PacketConn
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	last     atomic.Int64 // unix nanoseconds of the last datagram received
	maxGap   atomic.Int64
}

// StartUDPStream starts the server in srvNS on srv and subscribes from
// cliNS.
func StartUDPStream(srvNS, cliNS *NS, srv netip.AddrPort, interval time.Duration) (*UDPStream, error) {
	s := &UDPStream{}
	if err := srvNS.Do(func() error {
		var err error
		s.srv, err = net.ListenPacket("udp", srv.String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("udp stream server: %w", err)
	}
	if err := cliNS.Do(func() error {
		var err error
		s.cli, err = net.ListenPacket("udp", ":0")
		return err
	}); err != nil {
		s.srv.Close()
		return nil, fmt.Errorf("udp stream client: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	buf := make([]byte, 64)
	if _, err := s.cli.WriteTo([]byte("subscribe"), net.UDPAddrFromAddrPort(srv)); err != nil {
		s.Close()
		return nil, err
	}
	s.srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, peer, err := s.srv.ReadFrom(buf)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("udp stream: no subscription: %w", err)
	}
	s.last.Store(time.Now().UnixNano())
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		var b [8]byte
		for seq := uint64(0); ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			binary.BigEndian.PutUint64(b[:], seq)
			s.srv.WriteTo(b[:], peer)
		}
	}()
	go func() {
		defer s.wg.Done()
		b := make([]byte, 64)
		for {
			if _, _, err := s.cli.ReadFrom(b); err != nil {
				return
			}
			now := time.Now().UnixNano()
			if gap := now - s.last.Swap(now); gap > s.maxGap.Load() {
				s.maxGap.Store(gap)
			}
		}
	}()
	return s, nil
}

// WaitKept waits until a datagram arrives after since; it reports whether
// one did before the deadline.
func (s *UDPStream) WaitKept(since time.Time, deadline time.Duration) bool {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if s.last.Load() > since.UnixNano() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s.last.Load() > since.UnixNano()
}

// Close stops the stream.
func (s *UDPStream) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.srv.Close()
	if s.cli != nil {
		s.cli.Close()
	}
	s.wg.Wait()
}

// Pinger sends ICMP echo requests with one identifier from a namespace and
// records the replies.
type Pinger struct {
	conn   *icmp.PacketConn
	ID     int
	cancel context.CancelFunc
	wg     sync.WaitGroup
	last   atomic.Int64
}

// StartPinger pings dst from ns every interval with identifier id.
func StartPinger(ns *NS, dst netip.Addr, id int, interval time.Duration) (*Pinger, error) {
	p := &Pinger{ID: id}
	if err := ns.Do(func() error {
		var err error
		p.conn, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
		return err
	}); err != nil {
		return nil, fmt.Errorf("pinger: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for seq := 0; ; seq++ {
			m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: []byte("fwpair-zoo")}}
			b, err := m.Marshal(nil)
			if err == nil {
				p.conn.WriteTo(b, &net.IPAddr{IP: net.IP(dst.AsSlice())})
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	go func() {
		defer p.wg.Done()
		b := make([]byte, 1500)
		for {
			n, _, err := p.conn.ReadFrom(b)
			if err != nil {
				return
			}
			m, err := icmp.ParseMessage(1, b[:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id {
				p.last.Store(time.Now().UnixNano())
			}
		}
	}()
	return p, nil
}

// WaitKept waits for a reply after since.
func (p *Pinger) WaitKept(since time.Time, deadline time.Duration) bool {
	end := time.Now().Add(deadline)
	for time.Now().Before(end) {
		if p.last.Load() > since.UnixNano() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p.last.Load() > since.UnixNano()
}

// Close stops the pinger.
func (p *Pinger) Close() {
	p.cancel()
	p.conn.Close()
	p.wg.Wait()
}

// InvalidDrops reads the invalid_drops counter of etc/fwpair-nat.nft in a
// firewall (nft as a test oracle).
func InvalidDrops(ns *NS) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := ns.Run(ctx, "nft", "list", "counter", "inet", "fwpair", "invalid_drops")
	if err != nil {
		return 0, fmt.Errorf("%s: nft list counter: %w: %s", ns.Name, err, out)
	}
	m := regexp.MustCompile(`packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("%s: no packet count in %q", ns.Name, out)
	}
	return strconv.Atoi(m[1])
}

// ConntrackTuples lists the original tuples ("proto src sport dst dport",
// or "icmp src dst id") of a firewall's kernel entries that match the
// conntrack -L filter args (conntrack as a test oracle).
func ConntrackTuples(ns *NS, args ...string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Standard output only: conntrack's summary on standard error would
	// land in the middle of a line.
	var stderr strings.Builder
	cmd := ns.Cmd(ctx, "conntrack", append([]string{"-L"}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: conntrack -L %v: %w: %s", ns.Name, args, err, stderr.String())
	}
	set := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || strings.Contains(f[0], "=") {
			continue
		}
		kv := map[string]string{}
		for _, w := range f {
			k, v, ok := strings.Cut(w, "=")
			if ok {
				if _, seen := kv[k]; !seen {
					kv[k] = v // the first occurrence: the original tuple
				}
			}
		}
		set[tupleString(f[0], kv["src"], kv["sport"], kv["dst"], kv["dport"], kv["id"])] = true
	}
	return set, nil
}

func tupleString(proto, src, sport, dst, dport, id string) string {
	if proto == "icmp" || proto == "icmpv6" {
		return fmt.Sprintf("%s %s %s id=%s", proto, src, dst, id)
	}
	return fmt.Sprintf("%s %s %s %s %s", proto, src, sport, dst, dport)
}

// ExternalTuples lists the same tuples from a daemon's external cache.
func ExternalTuples(d *Daemon) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := d.Client().Cache(ctx, "external")
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	for _, e := range c.Entries {
		set[tupleString(e.Proto, e.Src, fmt.Sprint(e.SrcPort), e.Dst, fmt.Sprint(e.DstPort), "")] = true
	}
	return set, nil
}

// Missing lists the keys of want (filtered by keep) absent from have.
func Missing(want, have map[string]bool, keep func(string) bool) []string {
	var out []string
	for k := range want {
		if keep(k) && !have[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
