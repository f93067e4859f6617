package testenv

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// ProbePort is the UDP port of the lab's probe echo.
const ProbePort = 7001

// UDPEcho echoes UDP datagrams inside a namespace.
type UDPEcho struct {
	conn net.PacketConn
	done chan struct{}
}

// StartUDPEcho listens on addr inside ns.
func StartUDPEcho(ns *NS, addr netip.AddrPort) (*UDPEcho, error) {
	var c net.PacketConn
	if err := ns.Do(func() error {
		var err error
		c, err = net.ListenPacket("udp", addr.String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("udp echo in %s: %w", ns.Name, err)
	}
	e := &UDPEcho{conn: c, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo(buf[:n], from)
		}
	}()
	return e, nil
}

// Close stops the echo.
func (e *UDPEcho) Close() { e.conn.Close(); <-e.done }

// Probe sends a numbered datagram every interval and records when each
// echo comes back, to measure the traffic gap of a failover.
type Probe struct {
	conn     net.Conn
	interval time.Duration
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	replies []time.Time
}

// StartProbe starts probing addr from ns.
func StartProbe(ns *NS, addr netip.AddrPort, interval time.Duration) (*Probe, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.Dial("udp", addr.String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("probe from %s: %w", ns.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Probe{conn: c, interval: interval, cancel: cancel}
	p.wg.Add(2)
	go p.send(ctx)
	go p.receive()
	return p, nil
}

func (p *Probe) send(ctx context.Context) {
	defer p.wg.Done()
	t := time.NewTicker(p.interval)
	defer t.Stop()
	var buf [8]byte
	for seq := uint64(0); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		binary.BigEndian.PutUint64(buf[:], seq)
		p.conn.Write(buf[:]) // errors (e.g. ICMP unreachable) are gaps, seen by receive
	}
}

func (p *Probe) receive() {
	defer p.wg.Done()
	buf := make([]byte, 64)
	for {
		if _, err := p.conn.Read(buf); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // ECONNREFUSED from an ICMP error: keep listening
		}
		now := time.Now()
		p.mu.Lock()
		p.replies = append(p.replies, now)
		p.mu.Unlock()
	}
}

// Gap returns the longest time without an echo between from and to, and
// whether any echo arrived after from at all.
func (p *Probe) Gap(from, to time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var gap time.Duration
	prev := from
	any := false
	for _, r := range p.replies {
		if r.Before(from) {
			prev = r
			continue
		}
		if r.After(to) {
			break
		}
		if d := r.Sub(prev); d > gap {
			gap = d
		}
		prev = r
		any = true
	}
	// The time from the last echo to the end of the window counts too.
	gap = max(gap, to.Sub(prev))
	return gap, any
}

// Replies returns the arrival times of the echoes in [from, to].
func (p *Probe) Replies(from, to time.Time) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Time
	for _, r := range p.replies {
		if !r.Before(from) && !r.After(to) {
			out = append(out, r)
		}
	}
	return out
}

// WaitReply waits until an echo arrives after t, or the timeout.
func (p *Probe) WaitReply(after time.Time, timeout time.Duration) bool {
	end := time.Now().Add(timeout)
	for time.Now().Before(end) {
		p.mu.Lock()
		n := len(p.replies)
		ok := n > 0 && p.replies[n-1].After(after)
		p.mu.Unlock()
		if ok {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// Close stops the probe.
func (p *Probe) Close() {
	p.cancel()
	p.conn.Close()
	p.wg.Wait()
}
