package bench

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fwpair/fwpair/testenv"
	"golang.org/x/net/ipv4"
)

// ctCount reads a namespace's nf_conntrack_count: the file is opened
// inside the namespace, and /proc/sys/net files stay bound to the
// namespace they were opened in, so reads can come from any thread.
type ctCount struct {
	mu sync.Mutex
	f  *os.File
}

func openCTCount(ns *testenv.NS) (*ctCount, error) {
	c := &ctCount{}
	err := ns.Do(func() error {
		var err error
		c.f, err = os.Open("/proc/sys/net/netfilter/nf_conntrack_count")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ns.Name, err)
	}
	return c, nil
}

func (c *ctCount) read() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b [32]byte
	n, err := c.f.ReadAt(b[:], 0)
	if n == 0 {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b[:n])))
}

func (c *ctCount) close() { c.f.Close() }

// advertLog records when VRRP adverts from given sources reach a
// namespace, so a takeover can be timed from the failed node's last
// advert, independent of where in its advert interval the fault hit.
type advertLog struct {
	conn net.PacketConn
	done chan struct{}
	mu   sync.Mutex
	seen []advert
}

type advert struct {
	at   time.Time
	from string
	prio uint8
}

func startAdvertLog(ns *testenv.NS) (*advertLog, error) {
	l := &advertLog{done: make(chan struct{})}
	err := ns.Do(func() error {
		var err error
		if l.conn, err = net.ListenPacket("ip4:112", "0.0.0.0"); err != nil {
			return err
		}
		// A host only delivers 224.0.0.18 locally on interfaces where
		// some socket joined it; the daemons may listen another way.
		p := ipv4.NewPacketConn(l.conn)
		for _, ifname := range []string{"eth0", "eth1"} {
			ifi, err := net.InterfaceByName(ifname)
			if err == nil {
				err = p.JoinGroup(ifi, &net.IPAddr{IP: net.IPv4(224, 0, 0, 18)})
			}
			if err != nil {
				l.conn.Close()
				return fmt.Errorf("join VRRP group on %s: %w", ifname, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("VRRP listener in %s: %w", ns.Name, err)
	}
	go func() {
		defer close(l.done)
		buf := make([]byte, 1500)
		for {
			n, from, err := l.conn.ReadFrom(buf)
			if err != nil {
				if os.Getenv("BENCH_DEBUG") != "" {
					fmt.Fprintln(os.Stderr, "advert log:", err)
				}
				return
			}
			a := advert{at: time.Now(), from: from.String()}
			if n >= 3 {
				a.prio = buf[2] // VRRP header: version/type, VRID, priority
			}
			l.mu.Lock()
			l.seen = append(l.seen, a)
			l.mu.Unlock()
		}
	}()
	return l, nil
}

// last is the time of the last advert from one of the sources before t.
func (l *advertLog) last(before time.Time, from ...string) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.seen) - 1; i >= 0; i-- {
		a := l.seen[i]
		if a.at.After(before) {
			continue
		}
		for _, f := range from {
			if a.from == f {
				return a.at, true
			}
		}
	}
	return time.Time{}, false
}

func (l *advertLog) close() { l.conn.Close(); <-l.done }
