package vrrp

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// The advert pacer (with Options.RealtimePriority) sends a MASTER's
// periodic adverts from an OS thread of its own under SCHED_RR that
// sleeps in the kernel until the next advert is due (ppoll on an eventfd,
// see pacer_linux.go). The event loop's own wake-ups go through Go's
// timers and scheduler, whose threads run at normal priority: on a
// saturated machine they are late by tens of milliseconds, which at
// 50 ms adverts is a false takeover. The state machine is unchanged: the
// loop still decides everything and sends every non-periodic advert
// (first one, priority 0, answers to another master); it only hands the
// periodic ones to the pacer while an instance is MASTER.

// paceSlot is one MASTER instance's periodic advert.
type paceSlot struct {
	in    *instance
	conn  Conn
	pkts  [][]byte // one encoding per destination (the v3 checksum differs)
	dsts  []netip.Addr
	prio  uint8
	every time.Duration
	next  time.Time
	// k holds the adverts queued in the kernel (pacer_uring_linux.go);
	// nil when the pacer thread sends them itself.
	k *kslot
}

// pacedCounters are the pacer's additions to an instance's counters.
type pacedCounters struct {
	sent, sendErrors atomic.Uint64
}

func (c *pacedCounters) addTo(out Counters) Counters {
	out.AdvertsSent += c.sent.Load()
	out.SendErrors += c.sendErrors.Load()
	return out
}

// pacerCore is the platform-independent part of the pacer.
type pacerCore struct {
	e     *engine
	mu    sync.Mutex
	slots map[int]*paceSlot // by instance index
	// onStart and onStop, when set, run under mu as a slot starts or
	// ends: the kernel-timed pacer queues and cancels its adverts there.
	onStart, onStop func(s *paceSlot)
}

// encodeAll encodes in's advert with priority prio for every destination;
// it allocates, and is called only when pacing starts or changes.
func encodeAll(in *instance, conn Conn, prio uint8) (pkts [][]byte, dsts []netip.Addr) {
	dsts = []netip.Addr{in.groupAddress()}
	if in.policy.unicast {
		dsts = in.cfg.UnicastPeers
	}
	for _, dst := range dsts {
		var (
			b   []byte
			err error
		)
		if in.v3 != nil {
			src := in.cfg.UnicastSource
			if !src.IsValid() {
				src = conn.LocalAddr()
			}
			adv := *in.v3
			adv.Priority = prio
			b, err = adv.AppendBinary(nil, src, dst)
		} else {
			adv := in.advert
			adv.Priority = prio
			b, err = adv.AppendBinary(nil)
		}
		if err != nil { // the config was validated: this is a bug
			panic(err)
		}
		pkts = append(pkts, b)
	}
	return pkts, dsts
}

// start paces instance in at priority prio from now on (the first advert
// was just sent by the loop). Called by the event loop.
func (p *pacerCore) start(in *instance, prio uint8, now time.Time) bool {
	conn := in.iface.conn
	if conn == nil {
		return false
	}
	pkts, dsts := encodeAll(in, conn, prio)
	s := &paceSlot{in: in, conn: conn, pkts: pkts, dsts: dsts, prio: prio,
		every: in.cfg.AdvertInterval, next: now.Add(in.cfg.AdvertInterval)}
	p.mu.Lock()
	if old := p.slots[in.index]; old != nil && p.onStop != nil {
		p.onStop(old)
	}
	p.slots[in.index] = s
	if p.onStart != nil {
		p.onStart(s)
	}
	p.mu.Unlock()
	return true
}

// stop ends pacing of instance i; when it returns, no paced advert of i
// is being sent or will be.
func (p *pacerCore) stop(i int) {
	p.mu.Lock()
	if s := p.slots[i]; s != nil && p.onStop != nil {
		p.onStop(s)
	}
	delete(p.slots, i)
	p.mu.Unlock()
}

// paced reports whether instance i is paced at priority prio.
func (p *pacerCore) paced(i int, prio uint8) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.slots[i]
	return ok && s.prio == prio
}

// earliest returns when the next advert the pacer thread sends itself is
// due (zero: none).
func (p *pacerCore) earliest() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.earliestLocked()
}

func (p *pacerCore) earliestLocked() time.Time {
	var t time.Time
	for _, s := range p.slots {
		if s.k == nil {
			t = earliest(t, s.next)
		}
	}
	return t
}

// fire sends every advert that is due. It does not allocate beyond what
// the Conn does.
func (p *pacerCore) fire(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fireLocked(now)
}

// fireLocked is fire with mu held; it skips the kernel-timed slots.
func (p *pacerCore) fireLocked(now time.Time) {
	for _, s := range p.slots {
		if s.k != nil || now.Before(s.next) {
			continue
		}
		for j, b := range s.pkts {
			if err := writeAdvert(s.conn, s.in, b, s.dsts[j]); err != nil {
				s.in.paced.sendErrors.Add(1)
			} else {
				s.in.paced.sent.Add(1)
			}
		}
		s.next = s.next.Add(s.every)
		if !s.next.After(now) { // far behind (a stall): no burst
			s.next = now.Add(s.every)
		}
	}
}

// startPacer starts the pacer when real-time scheduling is asked for.
func (e *engine) startPacer() {
	if e.opts.RealtimePriority == 0 {
		return
	}
	p, err := newPacer(e)
	if err != nil {
		e.log.Warn("no advert pacer; the event loop sends every advert", "err", err)
		return
	}
	e.pacer = p
	go p.run(e.pacerClosing.Load)
}

// stopPacer stops the pacer's goroutine and waits for it.
func (e *engine) stopPacer() {
	if e.pacer == nil {
		return
	}
	e.pacerClosing.Store(true)
	e.pacer.kick()
	e.pacer.close()
	e.pacer = nil
}

// beforeStep notes what pacedAdvert needs to tell the periodic adverts.
func (e *engine) beforeStep(ev Event) {
	if e.pacer == nil {
		return
	}
	_, e.periodicStep = ev.(TimerExpired)
	e.wasMaster = e.wasMaster[:0]
	for _, r := range e.routers {
		e.wasMaster = append(e.wasMaster, r.State() == StateMaster)
	}
}

// stopPacing stops the pacing of every instance that leaves MASTER in
// acts, before any of acts is executed: no paced advert may follow a
// priority-0 or last advert.
func (e *engine) stopPacing(acts []Action) {
	if e.pacer == nil {
		return
	}
	for _, a := range acts {
		if sc, ok := a.(StateChange); ok && sc.From == StateMaster {
			e.pacer.stop(sc.Instance)
		}
	}
}

// pacedAdvert reports whether a is a periodic advert (Adver_Timer of an
// instance that stays MASTER) that the pacer already sends.
func (e *engine) pacedAdvert(a SendAdvert) bool {
	return e.pacer != nil && e.periodicStep && a.Instance < len(e.wasMaster) && e.wasMaster[a.Instance] &&
		e.routers[a.Instance].State() == StateMaster && e.pacer.paced(a.Instance, a.Priority)
}

// afterStep (re)starts pacing for every MASTER instance not paced at its
// current priority: it just became MASTER, its priority changed, or its
// socket was re-opened.
func (e *engine) afterStep(now time.Time) {
	if e.pacer == nil {
		return
	}
	e.periodicStep = false
	kick := false
	for i, r := range e.routers {
		if r.State() == StateMaster && !e.pacer.paced(i, r.Priority()) && e.pacer.start(e.insts[i], r.Priority(), now) {
			kick = true
		}
	}
	if kick {
		e.pacer.kick()
	}
}
