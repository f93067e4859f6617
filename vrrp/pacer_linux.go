package vrrp

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// pacer runs pacerCore on a real-time thread that sleeps in ppoll until
// the next advert is due or the event loop kicks its eventfd.
type pacer struct {
	pacerCore
	efd  int
	done chan struct{}

	// ring queues adverts in the kernel (pacer_uring_linux.go); nil
	// without io_uring. The fields below are guarded by mu.
	ring      *uring
	inflight  map[uint64]*paceSlot // queued sends by id
	nextID    uint64
	kickArmed bool
	leaked    []*kslot // adverts whose cancellation was not confirmed
	// Memory the kernel reads, on the heap: the timeout being queued,
	// and the waits of the pacer's loop and of stop (under mu).
	at                 *unix.Timespec
	loopWait, stopWait *uringWait
}

// pacerRingEntries sizes the ring: two requests per queued advert.
const pacerRingEntries = 1024

func newPacer(e *engine) (*pacer, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("advert pacer: eventfd: %w", err)
	}
	p := &pacer{pacerCore: pacerCore{e: e, slots: map[int]*paceSlot{}}, efd: efd, done: make(chan struct{})}
	if r, err := newURing(pacerRingEntries); err != nil {
		e.log.Warn("advert pacer: no io_uring, adverts are not kernel-timed", "err", err)
	} else {
		p.ring, p.inflight = r, map[uint64]*paceSlot{}
		p.at, p.loopWait, p.stopWait = new(unix.Timespec), new(uringWait), new(uringWait)
		p.onStart = func(s *paceSlot) {
			if p.kernelStartLocked(s) {
				p.topUpLocked(time.Now())
			}
		}
		p.onStop = p.cancelLocked
	}
	return p, nil
}

// kick wakes the pacer to re-read its slots.
func (p *pacer) kick() {
	one := [8]byte{1}
	_, _ = unix.Write(p.efd, one[:])
}

// run is the pacer's goroutine; it returns once closing is set and kicked.
func (p *pacer) run(closing func() bool) {
	defer close(p.done)
	p.e.realtimeThread("advert pacer")
	if p.ring != nil {
		p.runRing(closing)
		return
	}
	fds := []unix.PollFd{{Fd: int32(p.efd), Events: unix.POLLIN}}
	var drain [8]byte
	var ts unix.Timespec
	for !closing() {
		next := p.earliest()
		var timeout *unix.Timespec
		if !next.IsZero() {
			d := time.Until(next)
			if d <= 0 {
				p.fire(time.Now())
				continue
			}
			ts = unix.NsecToTimespec(int64(d))
			timeout = &ts
		}
		n, err := unix.Ppoll(fds, timeout, nil)
		if err != nil && !errors.Is(err, unix.EINTR) {
			p.e.log.Error("advert pacer stopped; adverts fall back to the event loop", "err", err)
			return
		}
		if n > 0 {
			_, _ = unix.Read(p.efd, drain[:])
		}
	}
}

func (p *pacer) close() {
	<-p.done
	if p.ring != nil {
		p.ring.close()
	}
	_ = unix.Close(p.efd)
}
