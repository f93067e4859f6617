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
}

func newPacer(e *engine) (*pacer, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("advert pacer: eventfd: %w", err)
	}
	return &pacer{pacerCore: pacerCore{e: e, slots: map[int]*paceSlot{}}, efd: efd, done: make(chan struct{})}, nil
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
	_ = unix.Close(p.efd)
}
