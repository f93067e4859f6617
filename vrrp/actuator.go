package vrrp

// The actuator: one goroutine per Run that carries the group's transitions
// out in order (hooks, VIPs, gratuitous ARP / unsolicited NA), so the
// event loop in engine.go never waits for the operating system.

import (
	"context"
	"sync"
	"time"
)

// transitionItem is one group transition for the actuator.
type transitionItem struct {
	t     Transition
	ctx   context.Context // MASTER epoch; nil for other states
	epoch int
}

// vipFailure reports that the VIPs of an instance could not be added.
type vipFailure struct {
	instance int
	epoch    int
}

// transitionQueue is an unbounded FIFO, so the event loop never blocks on
// a slow hook or netlink call.
type transitionQueue struct {
	mu      sync.Mutex
	items   []transitionItem
	signal  chan struct{}
	closed  bool // drain, then stop
	aborted bool // stop now
}

func (q *transitionQueue) init() { q.signal = make(chan struct{}, 1) }

func (q *transitionQueue) push(it transitionItem) {
	q.mu.Lock()
	q.items = append(q.items, it)
	q.mu.Unlock()
	q.wake()
}

func (q *transitionQueue) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *transitionQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

func (q *transitionQueue) abort() {
	q.mu.Lock()
	q.aborted = true
	q.mu.Unlock()
	q.wake()
}

// pop waits for the next item; ok is false when the actuator must stop.
func (q *transitionQueue) pop() (transitionItem, bool) {
	for {
		q.mu.Lock()
		switch {
		case q.aborted:
			q.mu.Unlock()
			return transitionItem{}, false
		case len(q.items) > 0:
			it := q.items[0]
			q.items = q.items[1:]
			q.mu.Unlock()
			return it, true
		case q.closed:
			q.mu.Unlock()
			return transitionItem{}, false
		}
		q.mu.Unlock()
		<-q.signal
	}
}

func (q *transitionQueue) isAborted() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.aborted
}

// actuate applies group transitions to the system, in order: hook, VIPs,
// GARP, AfterTransition. It runs on its own goroutine so that adverts are
// never delayed by it.
func (e *engine) actuate() {
	defer e.actuatorWG.Done()
	for {
		it, ok := e.queue.pop()
		if !ok {
			return
		}
		if it.t.To == StateMaster {
			it.t.VIPsAdded = e.takeVIPs(it)
		} else {
			e.releaseVIPs()
		}
		if e.queue.isAborted() {
			return
		}
		if h := e.opts.Callbacks.AfterTransition; h != nil {
			h(it.t)
		}
	}
}

func (e *engine) takeVIPs(it transitionItem) bool {
	if h := e.opts.Callbacks.BeforeMaster; h != nil {
		start := time.Now()
		err := h(it.ctx, it.t)
		if err != nil {
			e.log.Error("BeforeMaster hook failed; adding VIPs anyway", "err", err, "took", time.Since(start))
		}
	}
	if it.ctx.Err() != nil {
		e.log.Info("left MASTER before the VIPs were added")
		return false
	}
	e.vipsHeld = true
	for _, in := range e.insts {
		ctx, cancel := context.WithTimeout(it.ctx, osTimeout)
		err := e.addVMAC(ctx, in)
		if err == nil {
			err = e.addresser.AddVIPs(ctx, in.cfg.vipInterface(), in.cfg.VIPs)
		}
		cancel()
		if err != nil {
			if it.ctx.Err() != nil {
				return false
			}
			e.log.Error("cannot add VIPs; instance goes to FAULT", "instance", in.cfg.Name, "iface", in.cfg.Interface, "err", err)
			e.mu.Lock()
			in.counters.vipFailures++
			e.mu.Unlock()
			select {
			case e.vipFailed <- vipFailure{instance: in.index, epoch: it.epoch}:
			default:
			}
			return false
		}
	}
	if e.garp.Load().Count < 0 {
		return true
	}
	// The first round goes out before AfterTransition; the rest of the
	// burst and the refresh run until the epoch ends.
	e.announceAll(it.ctx)
	e.announcing.Add(1)
	go e.announceLoop(it.ctx)
	return true
}

func (e *engine) announceAll(ctx context.Context) {
	for _, in := range e.insts {
		if ctx.Err() != nil {
			return
		}
		if err := e.announcer.Announce(ctx, in.cfg.vipInterface(), in.advert.Addresses); err != nil && ctx.Err() == nil {
			e.log.Warn("gratuitous ARP failed", "instance", in.cfg.Name, "iface", in.cfg.Interface, "err", err)
		}
	}
}

// announceLoop sends the rest of the GARP burst, then refreshes, and
// sends a new burst on Reannounce, until ctx (the MASTER epoch) ends.
func (e *engine) announceLoop(ctx context.Context) {
	defer e.announcing.Done()
	burst := func(n int) bool {
		for range n {
			t := time.NewTimer(e.garp.Load().Spacing)
			select {
			case <-ctx.Done():
				t.Stop()
				return false
			case <-t.C:
			}
			e.announceAll(ctx)
		}
		return true
	}
	// Drop a Reannounce that predates this epoch.
	select {
	case <-e.reannounce:
	default:
	}
	if !burst(e.garp.Load().Count - 1) {
		return
	}
	var refresh <-chan time.Time
	if refreshEvery := e.garp.Load().Refresh; refreshEvery > 0 {
		tk := time.NewTicker(refreshEvery)
		defer tk.Stop()
		refresh = tk.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-refresh:
			e.announceAll(ctx)
		case <-e.reannounce:
			if h := e.opts.Callbacks.BeforeReannounce; h != nil {
				h(ctx)
			}
			e.announceAll(ctx)
			if !burst(e.garp.Load().Count - 1) {
				return
			}
		}
	}
}

func (e *engine) releaseVIPs() {
	// The epoch was cancelled by the event loop; wait until the GARP
	// goroutine has really stopped before removing the addresses.
	e.announcing.Wait()
	if !e.vipsHeld {
		return
	}
	e.vipsHeld = false
	for _, in := range e.insts {
		ctx, cancel := context.WithTimeout(e.bgCtx, osTimeout)
		if err := e.addresser.RemoveVIPs(ctx, in.cfg.vipInterface(), in.cfg.VIPs); err != nil {
			e.log.Error("cannot remove VIPs", "instance", in.cfg.Name, "iface", in.cfg.vipInterface(), "err", err)
			e.mu.Lock()
			in.counters.vipFailures++
			e.mu.Unlock()
		}
		if err := e.removeVMAC(ctx, in); err != nil {
			e.log.Error("cannot remove the virtual MAC interface", "instance", in.cfg.Name, "iface", in.cfg.VMACInterface(), "err", err)
		}
		cancel()
	}
}
