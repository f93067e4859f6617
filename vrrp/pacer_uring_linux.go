package vrrp

// Kernel-timed adverts. The pacer's thread runs under SCHED_RR, but to
// run Go code when it wakes it needs a P of the Go runtime; on a host
// whose cores are saturated while the daemon itself is busy (the sync
// engine replicating flows, the GC cycling), every P is held by
// normal-priority threads that the hogs keep off the CPU, or stopped for
// the GC, and the pacer waits for them: adverts measured up to 300-580 ms
// late at 50 ms (TestPrivilegedV3PacerJitterBusyRuntime). So the pacer
// does not send on time itself: it queues each MASTER's next adverts,
// up to pacerHorizon (1 s) ahead, in an io_uring as absolute CLOCK_MONOTONIC
// timeouts each linked to the sendmsg of the pre-encoded advert. The
// kernel fires the timeout and sends, running the send as task work on
// the pacer's real-time thread, without returning to Go. The Go side only
// tops the queue up, with pacerHorizon of slack. Without io_uring (an old
// kernel, io_uring_disabled) the pacer sends itself as before.

import (
	"encoding/binary"
	"net/netip"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pacerHorizon is how far ahead adverts are queued in the kernel: the
// Go side of the pacer may stall this long without an advert being late.
// At least two adverts are queued, at most pacerMaxDepth.
const (
	pacerHorizon  = time.Second
	pacerMaxDepth = 32
	// pacerStopWait bounds how long stop waits for the kernel to confirm
	// that queued adverts were cancelled.
	pacerStopWait = 200 * time.Millisecond
)

// User data of the ring's requests: kind in the low 2 bits.
const (
	udTimeout = 0
	udSend    = 1
	udKick    = 2
	udOther   = 3 // timeout removals, NOPs: ignored
)

// kmsg is the sendmsg of one advert to one destination, built once when
// pacing starts and shared by every queued send of it (the kernel copies
// the header when a send is submitted and reads the rest when it runs;
// nothing here changes after it is built).
type kmsg struct {
	fd   int
	hdr  unix.Msghdr
	iov  unix.Iovec
	name [28]byte
	ctrl [40]byte
	data []byte
}

func (m *kmsg) finish(nameLen, ctrlLen int) {
	m.iov.Base = &m.data[0]
	m.iov.SetLen(len(m.data))
	m.hdr.Iov = &m.iov
	m.hdr.Iovlen = 1
	m.hdr.Name = &m.name[0]
	m.hdr.Namelen = uint32(nameLen)
	if ctrlLen > 0 {
		m.hdr.Control = &m.ctrl[0]
		m.hdr.SetControllen(ctrlLen)
	}
}

// kernelMsger is implemented by the Linux Conns: the sendmsg of advert b
// to dst for instance in, as the Conn would send it.
type kernelMsger interface {
	kernelMsg(in *instance, b []byte, dst netip.Addr) (*kmsg, error)
}

func (c *rawConn) kernelMsg(in *instance, b []byte, dst netip.Addr) (*kmsg, error) {
	if in.vmac != nil && !in.policy.unicast {
		return c.frames.kernelMsg(in.vmac, b, c.local, dst)
	}
	src := in.cfg.UnicastSource
	if !src.IsValid() {
		src = c.local
	}
	m := &kmsg{fd: c.fd, data: b}
	// sockaddr_in
	binary.NativeEndian.PutUint16(m.name[0:], unix.AF_INET)
	d4 := dst.As4()
	copy(m.name[4:8], d4[:])
	// IP_PKTINFO: interface and source, as rawConn.WriteAdvert sets them.
	const cmsgLen = unix.SizeofCmsghdr + unix.SizeofInet4Pktinfo
	binary.NativeEndian.PutUint64(m.ctrl[0:], cmsgLen)
	binary.NativeEndian.PutUint32(m.ctrl[8:], unix.IPPROTO_IP)
	binary.NativeEndian.PutUint32(m.ctrl[12:], unix.IP_PKTINFO)
	binary.NativeEndian.PutUint32(m.ctrl[16:], uint32(c.index))
	s4 := src.As4()
	copy(m.ctrl[20:24], s4[:]) // spec_dst
	m.finish(unix.SizeofSockaddrInet4, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	return m, nil
}

func (c *rawConn6) kernelMsg(in *instance, b []byte, dst netip.Addr) (*kmsg, error) {
	if in.vmac != nil && !in.policy.unicast {
		return c.frames.kernelMsg(in.vmac, b, c.local, dst)
	}
	src := in.cfg.UnicastSource
	if !src.IsValid() {
		src = c.local
	}
	m := &kmsg{fd: c.fd, data: b}
	// sockaddr_in6, scoped to the interface for link-local destinations
	binary.NativeEndian.PutUint16(m.name[0:], unix.AF_INET6)
	d16 := dst.As16()
	copy(m.name[8:24], d16[:])
	binary.NativeEndian.PutUint32(m.name[24:], uint32(c.index))
	// IPV6_PKTINFO: source and interface.
	const cmsgLen = unix.SizeofCmsghdr + unix.SizeofInet6Pktinfo
	binary.NativeEndian.PutUint64(m.ctrl[0:], cmsgLen)
	binary.NativeEndian.PutUint32(m.ctrl[8:], unix.IPPROTO_IPV6)
	binary.NativeEndian.PutUint32(m.ctrl[12:], unix.IPV6_PKTINFO)
	s16 := src.As16()
	copy(m.ctrl[16:32], s16[:])
	binary.NativeEndian.PutUint32(m.ctrl[32:], uint32(c.index))
	m.finish(unix.SizeofSockaddrInet6, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	return m, nil
}

// kernelMsg is the frame of a virtual-MAC advert as a sendmsg on the
// AF_PACKET socket.
func (f *frameSender) kernelMsg(mac []byte, b []byte, src, dst netip.Addr) (*kmsg, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pc, err := f.conn()
	if err != nil {
		return nil, err
	}
	frame, dstMAC, err := appendAdvertFrame(nil, mac, b, src, dst)
	if err != nil {
		return nil, err
	}
	m := &kmsg{data: frame}
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil, err
	}
	if err := rc.Control(func(fd uintptr) { m.fd = int(fd) }); err != nil {
		return nil, err
	}
	// sockaddr_ll
	binary.NativeEndian.PutUint16(m.name[0:], unix.AF_PACKET)
	binary.NativeEndian.PutUint32(m.name[4:], uint32(f.index))
	m.name[11] = 6 // halen
	copy(m.name[12:18], dstMAC[:])
	m.finish(unix.SizeofSockaddrLinklayer, 0)
	return m, nil
}

// kslot is the kernel side of a paced slot.
type kslot struct {
	msgs   []*kmsg
	queued map[uint64]bool // ids of queued adverts whose send has not completed
}

// pacerDepth is how many adverts of interval every are kept queued.
func pacerDepth(every time.Duration) int {
	n := int((pacerHorizon + every - 1) / every)
	return min(max(n, 2), pacerMaxDepth)
}

// monotonic converts t to CLOCK_MONOTONIC nanoseconds.
func monotonic(t, now time.Time) int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() + int64(t.Sub(now))
}

// kernelStartLocked prepares slot s for kernel pacing; false (logged)
// if its Conn cannot, and the pacer thread then sends it itself.
func (p *pacer) kernelStartLocked(s *paceSlot) bool {
	km, ok := s.conn.(kernelMsger)
	if !ok {
		return false
	}
	k := &kslot{queued: map[uint64]bool{}}
	for j, b := range s.pkts {
		m, err := km.kernelMsg(s.in, b, s.dsts[j])
		if err != nil {
			p.e.log.Warn("advert pacer: adverts of this instance are not kernel-timed", "instance", s.in.cfg.Name, "err", err)
			return false
		}
		k.msgs = append(k.msgs, m)
	}
	s.k = k
	return true
}

// topUpLocked queues the kernel-paced slots' adverts up to their depth.
func (p *pacer) topUpLocked(now time.Time) {
	for _, s := range p.slots {
		if s.k == nil {
			continue
		}
		depth := pacerDepth(s.every) * len(s.k.msgs)
		for len(s.k.queued) < depth {
			if p.ring.free() < uint32(2*len(s.k.msgs)) {
				return
			}
			if !s.next.After(now) { // the queue ran dry (a long stall): no burst
				s.next = now
			}
			// p.at is on the heap: a goroutine stack may move before
			// the submit.
			at := p.at
			*at = unix.NsecToTimespec(monotonic(s.next, now))
			for _, m := range s.k.msgs {
				p.nextID++
				id := p.nextID << 2
				to := p.ring.queue()
				to.opcode = uringOpTimeout
				to.flags = uringSQEIOLink
				to.addr = uint64(uintptr(unsafe.Pointer(at)))
				to.len = 1
				to.opFlags = uringTimeoutAbs | uringTimeoutETimeSucces
				to.userData = id | udTimeout
				snd := p.ring.queue()
				snd.opcode = uringOpSendmsg
				snd.fd = int32(m.fd)
				snd.addr = uint64(uintptr(unsafe.Pointer(&m.hdr)))
				snd.opFlags = unix.MSG_DONTWAIT
				snd.userData = id | udSend
				s.k.queued[id] = true
				p.inflight[id] = s
			}
			// The timespec is copied when the timeout is submitted.
			err := p.ring.submit()
			runtime.KeepAlive(at)
			if err != nil {
				p.e.log.Error("advert pacer: io_uring submit failed", "err", err)
				return
			}
			s.next = s.next.Add(s.every)
		}
	}
}

// reapLocked consumes the ring's completions: counts the sends, and
// re-arms the kick.
func (p *pacer) reapLocked() {
	p.ring.reap(func(ud uint64, res int32) {
		switch ud & 3 {
		case udSend:
			id := ud &^ 3
			s := p.inflight[id]
			delete(p.inflight, id)
			if s == nil {
				return
			}
			delete(s.k.queued, id)
			switch {
			case res >= 0:
				s.in.paced.sent.Add(1)
			case res != -int32(unix.ECANCELED):
				s.in.paced.sendErrors.Add(1)
			}
		case udKick:
			var drain [8]byte
			_, _ = unix.Read(p.efd, drain[:])
			p.kickArmed = false
		}
	})
	if !p.kickArmed && p.ring.free() > 0 {
		k := p.ring.queue()
		k.opcode = uringOpPollAdd
		k.fd = int32(p.efd)
		k.opFlags = unix.POLLIN
		k.userData = udKick
		p.kickArmed = true
		_ = p.ring.submit()
	}
}

// cancelLocked cancels slot s's queued adverts and waits until the
// kernel confirms that none is left to send (or pacerStopWait passes,
// logged).
func (p *pacer) cancelLocked(s *paceSlot) {
	if s.k == nil || len(s.k.queued) == 0 {
		return
	}
	for id := range s.k.queued {
		for p.ring.free() == 0 {
			if err := p.ring.submit(); err != nil {
				break
			}
			p.reapLocked()
		}
		rm := p.ring.queue()
		if rm == nil {
			break
		}
		rm.opcode = uringOpTimeoutRemove
		rm.addr = id | udTimeout
		rm.userData = udOther
	}
	if err := p.ring.submit(); err != nil {
		p.e.log.Error("advert pacer: cannot cancel queued adverts", "err", err)
	}
	deadline := time.Now().Add(pacerStopWait)
	for len(s.k.queued) > 0 {
		p.reapLocked()
		if len(s.k.queued) == 0 {
			break
		}
		if time.Now().After(deadline) {
			p.e.log.Error("advert pacer: queued adverts not confirmed cancelled", "instance", s.in.cfg.Name, "left", len(s.k.queued))
			for id := range s.k.queued {
				delete(p.inflight, id)
			}
			// The kernel may still read these buffers: keep them.
			p.leaked = append(p.leaked, s.k)
			break
		}
		p.ring.wait(p.stopWait, int64(time.Millisecond))
	}
}

// runRing is the pacer's loop with io_uring: top up, wait for a
// completion, a kick or the next self-sent advert.
func (p *pacer) runRing(closing func() bool) {
	for !closing() {
		p.mu.Lock()
		p.reapLocked()
		now := time.Now()
		p.topUpLocked(now)
		p.fireLocked(now)
		next := p.earliestLocked()
		p.mu.Unlock()
		wait := time.Second
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		if wait > 0 {
			p.ring.wait(p.loopWait, int64(wait))
		}
	}
	p.mu.Lock()
	for _, s := range p.slots {
		p.cancelLocked(s)
	}
	p.mu.Unlock()
}
