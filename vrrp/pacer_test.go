package vrrp

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// recordConn is a Conn that records what is written.
type recordConn struct {
	mu     sync.Mutex
	writes []netip.Addr
	local  netip.Addr
}

func (c *recordConn) ReadAdvert([]byte) (int, RecvMeta, error) { select {} }
func (c *recordConn) WriteAdvert(_ []byte, _, dst netip.Addr) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, dst)
	return nil
}
func (c *recordConn) LocalAddr() netip.Addr { return c.local }
func (c *recordConn) IfIndex() int          { return 1 }
func (c *recordConn) Close() error          { return nil }

func (c *recordConn) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.writes)
}

// nop stands in for the adapters New requires; Run is never called.
type nop struct{}

func (nop) Dial(context.Context, string) (Conn, error)                    { return nil, errors.New("nop") }
func (nop) AddVIPs(context.Context, string, []VIP) error                  { return nil }
func (nop) RemoveVIPs(context.Context, string, []VIP) error               { return nil }
func (nop) Announce(context.Context, string, []netip.Addr) error          { return nil }
func (nop) WatchLinks(context.Context, []string, chan<- LinkUpdate) error { return nil }

func TestPacerCore(t *testing.T) {
	cfg := Config{Instances: []InstanceConfig{{Name: "a", Interface: "eth0", VRID: 1, Version: Version3,
		AdvertInterval: 50 * time.Millisecond, VIPs: []VIP{{Prefix: netip.MustParsePrefix("10.0.0.1/24")}}}}}
	g, err := New(cfg, Options{Dialer: nop{}, Addresser: nop{}, Announcer: nop{}, Links: nop{}})
	if err != nil {
		t.Fatal(err)
	}
	conn := &recordConn{local: netip.MustParseAddr("10.0.0.2")}
	in := g.insts[0]
	in.iface.conn = conn
	p := &pacerCore{e: &engine{Group: g}, slots: map[int]*paceSlot{}}
	t0 := time.Now()
	if !p.start(in, 100, t0) || !p.paced(0, 100) || p.paced(0, 99) {
		t.Fatal("not paced after start")
	}
	if next := p.earliest(); next != t0.Add(50*time.Millisecond) {
		t.Fatalf("first paced advert at +%v, want +50ms (the loop sent the first one)", next.Sub(t0))
	}
	p.fire(t0.Add(49 * time.Millisecond))
	if conn.count() != 0 {
		t.Fatal("sent early")
	}
	p.fire(t0.Add(50 * time.Millisecond))
	if conn.count() != 1 || in.paced.sent.Load() != 1 || g.Status().Instances[0].Counters.AdvertsSent != 1 {
		t.Fatalf("writes %d, sent %d after one period", conn.count(), in.paced.sent.Load())
	}
	// A stall of 10 periods sends one advert, not a burst, and re-bases.
	p.fire(t0.Add(550 * time.Millisecond))
	if conn.count() != 2 {
		t.Fatalf("writes %d after a stall, want 2", conn.count())
	}
	if next := p.earliest(); next != t0.Add(600*time.Millisecond) {
		t.Fatalf("next at +%v after the stall, want +600ms", next.Sub(t0))
	}
	p.stop(0)
	p.fire(t0.Add(time.Hour))
	if conn.count() != 2 || !p.earliest().IsZero() {
		t.Fatal("sent after stop")
	}
	// Without a socket there is nothing to pace.
	in.iface.conn = nil
	if p.start(in, 100, t0) {
		t.Fatal("paced without a socket")
	}
}
