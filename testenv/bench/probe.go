package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/fwpair/fwpair/testenv"
)

// probe is a 10 ms UDP probe like testenv.Probe that also hands out the
// arrival time of every echo, which the chart needs.
type probe struct {
	conn   net.Conn
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	replies []time.Time
}

func startProbe(ns *testenv.NS, addr netip.AddrPort, interval time.Duration) (*probe, error) {
	var c net.Conn
	if err := ns.Do(func() error {
		var err error
		c, err = net.Dial("udp", addr.String())
		return err
	}); err != nil {
		return nil, fmt.Errorf("probe from %s: %w", ns.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &probe{conn: c, cancel: cancel}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		var buf [8]byte
		for seq := uint64(0); ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			binary.BigEndian.PutUint64(buf[:], seq)
			_, _ = p.conn.Write(buf[:]) // a failed send is a gap, seen by the receiver
		}
	}()
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 64)
		for {
			if _, err := p.conn.Read(buf); err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue // ECONNREFUSED after an ICMP error
			}
			now := time.Now()
			p.mu.Lock()
			p.replies = append(p.replies, now)
			p.mu.Unlock()
		}
	}()
	return p, nil
}

// waitReply waits until an echo arrives after t or the timeout passes.
func (p *probe) waitReply(after time.Time, timeout time.Duration) bool {
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

// trace returns the echo arrival times in [from, to] relative to zero, and
// the longest time without an echo in that window.
func (p *probe) trace(zero, from, to time.Time) (offsets []time.Duration, gap time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := from
	for _, r := range p.replies {
		if r.Before(from) {
			prev = r
			continue
		}
		if r.After(to) {
			break
		}
		offsets = append(offsets, r.Sub(zero))
		gap = max(gap, r.Sub(prev))
		prev = r
	}
	return offsets, max(gap, to.Sub(prev))
}

func (p *probe) close() {
	p.cancel()
	p.conn.Close()
	p.wg.Wait()
}
