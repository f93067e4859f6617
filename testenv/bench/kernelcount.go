package bench

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fwpair/fwpair/testenv"
	"golang.org/x/sys/unix"
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
// advert, independent of where in its advert interval the fault hit. It
// reads the wire with AF_PACKET sockets on eth0 and eth1, which see every
// frame whatever the IP stack does with it.
type advertLog struct {
	fds  []int
	stop atomic.Bool
	wg   sync.WaitGroup
	mu   sync.Mutex
	seen []advert
}

type advert struct {
	at   time.Time
	from string
	prio uint8
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func startAdvertLog(ns *testenv.NS) (*advertLog, error) {
	l := &advertLog{}
	err := ns.Do(func() error {
		for _, ifname := range []string{"eth0", "eth1"} {
			ifi, err := net.InterfaceByName(ifname)
			if err != nil {
				return err
			}
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
			if err != nil {
				return err
			}
			l.fds = append(l.fds, fd)
			if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
				return err
			}
			tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		l.close()
		return nil, fmt.Errorf("VRRP listener in %s: %w", ns.Name, err)
	}
	for _, fd := range l.fds {
		l.wg.Add(1)
		go l.read(fd)
	}
	return l, nil
}

func (l *advertLog) read(fd int) {
	defer l.wg.Done()
	buf := make([]byte, 256)
	for !l.stop.Load() {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || n < 20+3 {
			continue // timeout (EAGAIN) or a short frame
		}
		ihl := int(buf[0]&0x0f) * 4
		if buf[0]>>4 != 4 || buf[9] != 112 || n < ihl+3 {
			continue
		}
		a := advert{at: time.Now(), from: netip.AddrFrom4([4]byte(buf[12:16])).String(), prio: buf[ihl+2]}
		l.mu.Lock()
		l.seen = append(l.seen, a)
		l.mu.Unlock()
	}
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

func (l *advertLog) close() {
	l.stop.Store(true)
	l.wg.Wait()
	for _, fd := range l.fds {
		unix.Close(fd)
	}
}
