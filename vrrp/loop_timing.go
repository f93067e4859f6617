package vrrp

import (
	"context"
	"runtime"
)

// maxDrain bounds drainReceived, so a flood cannot hold the timer off.
const maxDrain = 64

// pendingReader is implemented by Conns that can read a packet already
// queued in the kernel without waiting (the Linux raw sockets).
type pendingReader interface {
	ReadPending(b []byte) (int, RecvMeta, bool)
}

// drainReceived handles, without waiting, the adverts already queued by
// the readers and then those still in the sockets. Called before a timer
// expiry is acted on: on a saturated machine the reader goroutines may
// not have run although the master's adverts arrived in time.
func (e *engine) drainReceived() {
	for range maxDrain {
		select {
		case r := <-e.rx:
			e.handleReceived(r)
			continue
		default:
		}
		break
	}
	for _, ifc := range e.ifaces {
		pr, ok := ifc.conn.(pendingReader)
		if !ok {
			continue
		}
		if e.pendBuf == nil {
			e.pendBuf = make([]byte, maxPacket)
		}
		for range maxDrain {
			n, meta, ok := pr.ReadPending(e.pendBuf)
			if !ok {
				break
			}
			e.handleReceived(received{ifc: ifc, gen: ifc.gen, data: e.pendBuf[:n], meta: meta})
		}
	}
}

// runScheduled runs the event loop, on a real-time OS thread of its own
// when Options.RealtimePriority is set.
func (e *engine) runScheduled(ctx context.Context) error {
	if e.opts.RealtimePriority == 0 {
		return e.run(ctx)
	}
	errc := make(chan error, 1)
	go func() {
		e.realtimeThread("event loop")
		errc <- e.run(ctx)
	}()
	return <-errc
}

// realtimeThread locks the calling goroutine to its OS thread and puts
// that thread under SCHED_RR at Options.RealtimePriority; no-op when the
// option is zero. The thread is never unlocked: when the goroutine ends,
// the runtime discards it, priority and all, instead of reusing it.
func (e *engine) realtimeThread(what string) {
	prio := e.opts.RealtimePriority
	if prio == 0 {
		return
	}
	runtime.LockOSThread()
	if err := setRealtime(prio); err != nil && !e.rtWarned.Swap(true) {
		e.log.Warn("cannot raise the VRRP threads' scheduling priority; running at normal priority",
			"thread", what, "priority", prio, "err", err)
	}
}
