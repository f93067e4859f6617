package testenv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// AdvertRecorder records when VRRP adverts (IPv4 protocol 112) cross an
// interface of a namespace, with the kernel's receive timestamps
// (SO_TIMESTAMPNS), so a loaded machine delays the reading but not the
// times. It reads through AF_PACKET, which sees every frame whatever the
// IP stack does with it.
type AdvertRecorder struct {
	fd   int
	stop atomic.Bool
	done chan struct{}
	mu   sync.Mutex
	seen []WireAdvert
}

// WireAdvert is one advert seen on the wire.
type WireAdvert struct {
	At       time.Time
	Src      netip.Addr
	VRID     uint8
	Priority uint8
}

// RecordAdverts starts recording on ifname in ns until Close.
func RecordAdverts(ns *NS, ifname string) (*AdvertRecorder, error) {
	r := &AdvertRecorder{fd: -1, done: make(chan struct{})}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(netOrder16(unix.ETH_P_IP))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		r.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index}); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
			return err
		}
		tv := unix.NsecToTimeval((100 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if err != nil {
		if r.fd >= 0 {
			unix.Close(r.fd)
		}
		return nil, fmt.Errorf("testenv: advert recorder in %s on %s: %w", ns.Name, ifname, err)
	}
	go r.read()
	return r, nil
}

// netOrder16 swaps a 16-bit value to network byte order (little-endian
// hosts), as AF_PACKET protocol numbers want.
func netOrder16(v uint16) uint16 { return v<<8 | v>>8 }

func (r *AdvertRecorder) read() {
	defer close(r.done)
	buf := make([]byte, 256)
	oob := make([]byte, 128)
	for !r.stop.Load() {
		n, oobn, _, _, err := unix.Recvmsg(r.fd, buf, oob, 0)
		if err != nil || n < 20+3 {
			continue // timeout (EAGAIN) or a short frame
		}
		ihl := int(buf[0]&0x0f) * 4
		if buf[0]>>4 != 4 || buf[9] != 112 || n < ihl+3 {
			continue
		}
		at := time.Now()
		if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
			for _, m := range msgs {
				if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
					// struct timespec on 64-bit Linux: tv_sec, tv_nsec.
					sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
					nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
					at = time.Unix(sec, nsec)
				}
			}
		}
		a := WireAdvert{At: at, Src: netip.AddrFrom4([4]byte(buf[12:16])), VRID: buf[ihl+1], Priority: buf[ihl+2]}
		r.mu.Lock()
		r.seen = append(r.seen, a)
		r.mu.Unlock()
	}
}

// Adverts returns the adverts seen so far.
func (r *AdvertRecorder) Adverts() []WireAdvert {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

// Close stops recording.
func (r *AdvertRecorder) Close() error {
	r.stop.Store(true)
	<-r.done
	return unix.Close(r.fd)
}

// Intervals returns the times between consecutive adverts from src with
// the given VRID, seen within [from, to).
func Intervals(adverts []WireAdvert, src netip.Addr, vrid uint8, from, to time.Time) []time.Duration {
	var out []time.Duration
	var last time.Time
	for _, a := range adverts {
		if a.Src != src || a.VRID != vrid || a.At.Before(from) || !a.At.Before(to) {
			continue
		}
		if !last.IsZero() {
			out = append(out, a.At.Sub(last))
		}
		last = a.At
	}
	return out
}

// Percentile returns the p-th percentile (0-100, nearest rank) of ds.
func Percentile(ds []time.Duration, p float64) (time.Duration, error) {
	if len(ds) == 0 {
		return 0, errors.New("no samples")
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(p/100*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i], nil
}
