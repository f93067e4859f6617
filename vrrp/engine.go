package vrrp

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Engine timing that is not protocol: how long OS operations may take and
// how often a failed socket is re-opened.
const (
	redialInterval = time.Second
	osTimeout      = 5 * time.Second
	logEvery       = 10 * time.Second // rate limit of per-packet logs
	maxPacket      = 1500
)

// engine is the state of one Run: it owns the state machine, the timer
// and every goroutine it starts.
type engine struct {
	*Group
	dialer    Dialer
	addresser Addresser
	announcer Announcer
	links     LinkSource

	machine *SyncGroup
	routers []*Router
	timer   *time.Timer
	redial  *time.Timer

	rx          chan received
	linkUpdates chan LinkUpdate
	vipFailed   chan vipFailure
	reannounce  chan struct{}
	linkState   map[string]bool

	bgCtx    context.Context // lives until Run returns; readers and watchers use it
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	epochCancel context.CancelFunc // cancels the current MASTER epoch
	epoch       int                // counts MASTER epochs, so stale failures are ignored
	queue       transitionQueue
	actuatorWG  sync.WaitGroup
	vipsHeld    bool // actuator only: VIPs may be installed
	announcing  sync.WaitGroup

	sendBuf  []byte
	logged   map[string]time.Time
	rtWarned atomic.Bool // warned once that real-time scheduling failed

	// pacer sends MASTER instances' periodic adverts from a real-time
	// thread (RealtimePriority); nil without it.
	pacer        *pacer
	pacerClosing atomic.Bool
	periodicStep bool   // the current step is a TimerExpired
	pendBuf      []byte // drainReceived's buffer for ReadPending
	wasMaster    []bool // per instance, before the current step
}

type received struct {
	ifc  *iface
	gen  int
	data []byte
	meta RecvMeta
	err  error
}

func (e *engine) run(ctx context.Context) error {
	e.dialer, e.addresser, e.announcer, e.links = e.opts.Dialer, e.opts.Addresser, e.opts.Announcer, e.opts.Links
	if e.defaults != nil {
		if e.dialer == nil {
			e.dialer = e.defaults.dialer()
		}
		if e.addresser == nil {
			e.addresser = e.defaults.addresser()
		}
		if e.announcer == nil {
			e.announcer = e.defaults.announcer()
		}
		if e.links == nil {
			e.links = e.defaults.linkSource()
		}
	}
	e.logged = map[string]time.Time{}
	e.linkState = map[string]bool{}
	e.bgCtx, e.bgCancel = context.WithCancel(context.Background())
	e.timer = time.NewTimer(time.Hour)
	e.timer.Stop()
	e.redial = time.NewTimer(time.Hour)
	e.redial.Stop()
	e.epochCancel = func() {}
	e.queue.init()

	// A killed predecessor may have left VIPs behind; only MASTER may hold them.
	for _, in := range e.insts {
		rctx, cancel := context.WithTimeout(ctx, osTimeout)
		if err := e.addresser.RemoveVIPs(rctx, in.cfg.vipInterface(), in.cfg.VIPs); err != nil {
			e.log.Warn("removing leftover VIPs", "instance", in.cfg.Name, "iface", in.cfg.vipInterface(), "err", err)
		}
		if err := e.removeVMAC(rctx, in); err != nil {
			e.log.Warn("removing a leftover virtual MAC interface", "instance", in.cfg.Name, "iface", in.cfg.VMACInterface(), "err", err)
		}
		cancel()
	}

	// Accept_Mode: the filter is in place before any VIP can be added.
	refused := refusedVIPs(e.cfg.Instances)
	if err := e.applyAcceptMode(ctx, refused); err != nil {
		if len(refused) > 0 {
			return err
		}
		e.log.Debug("removing a leftover accept filter", "err", err)
	}
	if f, ok := e.addresser.(AcceptFilter); ok && len(refused) > 0 {
		e.bg.Add(1)
		go func() {
			defer e.bg.Done()
			e.keepAcceptMode(e.bgCtx, f, refused)
		}()
	}

	var names []string
	for _, in := range e.insts {
		names = append(names, in.cfg.Name)
		e.mu.Lock()
		prio := in.priority
		e.mu.Unlock()
		r := NewRouter(RouterConfig{
			Index:          in.index,
			Priority:       prio,
			AdvertInterval: in.cfg.AdvertInterval,
			Preempt:        in.cfg.Preempt,
			PreemptDelay:   in.cfg.PreemptDelay,
			Version:        in.cfg.Version,
		})
		e.routers = append(e.routers, r)
	}
	e.machine = NewSyncGroup(names, e.routers)
	e.mu.Lock()
	e.machine.SetPreemptHold(e.faults.preemptHeld)
	e.mu.Unlock()

	e.startPacer()
	for _, ifc := range e.ifaces {
		e.dial(ifc)
	}
	close(e.ready)

	e.actuatorWG.Add(1)
	go e.actuate()
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		err := e.links.WatchLinks(e.bgCtx, e.cfg.watchedLinks(), e.linkUpdates)
		if err != nil && e.bgCtx.Err() == nil {
			e.log.Error("link watcher stopped; link changes are no longer seen", "err", err)
		}
	}()

	now := time.Now()
	e.refreshLinks(now)
	e.step(now, -1, Startup{})
	e.log.Info("vrrp group started", "instances", len(e.insts))

	for {
		select {
		case <-ctx.Done():
			e.stop(true)
			return nil
		case <-e.killed:
			e.stop(false)
			return ErrKilled
		case r := <-e.rx:
			e.handleReceived(r)
		case u := <-e.linkUpdates:
			e.handleLink(u)
		case f := <-e.vipFailed:
			// Only a failure of the current MASTER epoch counts: after
			// leaving MASTER the addresses are being removed anyway.
			if f.epoch == e.epoch && e.machine.State() == StateMaster {
				e.step(time.Now(), f.instance, AddressFailure{})
			}
		case cmd := <-e.cmds:
			cmd(e, time.Now())
		case <-e.timer.C:
			// Adverts that arrived before the deadline count first: select
			// picks at random among ready cases, and a master's advert
			// waiting in rx must not lose to the Master_Down timer (a
			// false takeover on a busy machine).
			e.drainReceived()
			e.step(time.Now(), -1, TimerExpired{})
		case <-e.redial.C:
			for _, ifc := range e.ifaces {
				if up, known := e.linkState[ifc.name]; ifc.conn == nil && (up || !known) {
					e.dial(ifc)
				}
			}
			e.refreshLinks(time.Now())
		}
	}
}

// step runs the machine and executes its actions.
func (e *engine) step(now time.Time, i int, ev Event) {
	e.beforeStep(ev)
	acts, next := e.machine.Step(now, i, ev)
	e.execute(now, acts)
	e.afterStep(now)
	if next.IsZero() {
		e.timer.Stop()
	} else {
		e.timer.Reset(next.Sub(now))
	}
	e.mu.Lock()
	for i, in := range e.insts {
		in.state = e.routers[i].State()
		in.priority = e.routers[i].Priority()
	}
	e.mu.Unlock()
}

func (e *engine) execute(now time.Time, acts []Action) {
	e.stopPacing(acts)
	for _, a := range acts {
		switch a := a.(type) {
		case SendAdvert:
			if e.pacedAdvert(a) {
				continue // the pacer sends it, on time
			}
			e.send(e.insts[a.Instance], a.Priority)
		case PartitionChange, PreemptHeld:
			e.reportFault(a)
		case Reannounce:
			select {
			case e.reannounce <- struct{}{}:
			default:
			}
		case StateChange:
			in := e.insts[a.Instance]
			e.log.Info("vrrp instance transition", "instance", in.cfg.Name, "iface", in.cfg.Interface,
				"vrid", in.cfg.VRID, "from_state", a.From.String(), "to_state", a.To.String(), "reason", a.Reason)
		case GroupStateChange:
			e.log.Info("vrrp group transition", "from_state", a.From.String(), "to_state", a.To.String(), "reason", a.Reason)
			e.mu.Lock()
			e.gstate, e.since, e.reason = a.To, now, a.Reason
			e.mu.Unlock()
			t := Transition{From: a.From, To: a.To, Reason: a.Reason, At: now}
			if a.From == StateMaster {
				// Stops the GARP and the BeforeMaster hook at once.
				e.epochCancel()
				e.epochCancel = func() {}
			}
			item := transitionItem{t: t}
			if a.To == StateMaster {
				e.epoch++
				item.epoch = e.epoch
				item.ctx, e.epochCancel = context.WithCancel(e.bgCtx)
			}
			e.queue.push(item)
		}
	}
}

func (e *engine) send(in *instance, prio uint8) {
	// Only the event loop touches conn and sendBuf; mu is for the counters.
	conn := in.iface.conn
	if conn == nil {
		e.mu.Lock()
		in.counters.sendErrors++
		e.mu.Unlock()
		return
	}
	var b []byte
	if in.v3 == nil {
		adv := in.advert
		adv.Priority = prio
		var err error
		b, err = adv.AppendBinary(e.sendBuf[:0])
		if err != nil { // the config was validated: this is a bug
			panic(err)
		}
		e.sendBuf = b
	}
	group := [1]netip.Addr{in.groupAddress()}
	dsts := group[:]
	if in.policy.unicast {
		dsts = in.cfg.UnicastPeers
	}
	for _, dst := range dsts {
		if in.v3 != nil {
			// The v3 checksum covers the pseudo-header: one encoding per
			// destination.
			b = e.encodeV3(in, conn, prio, dst)
		}
		err := writeAdvert(conn, in, b, dst)
		e.mu.Lock()
		switch {
		case err != nil:
			in.counters.sendErrors++
		case prio == ShutdownPriority:
			in.counters.sent++
			in.counters.zeroSent++
		default:
			in.counters.sent++
		}
		e.mu.Unlock()
		if err != nil {
			e.logLimited(slog.LevelWarn, "send:"+in.cfg.Name, "sending advert failed", "instance", in.cfg.Name, "dst", dst, "err", err)
		}
	}
}

// logLimited logs at most once per logEvery per key.
func (e *engine) logLimited(level slog.Level, key, msg string, args ...any) {
	now := time.Now()
	if last, ok := e.logged[key]; ok && now.Sub(last) < logEvery {
		return
	}
	e.logged[key] = now
	e.log.Log(context.Background(), level, msg, args...)
}

func (e *engine) handleReceived(r received) {
	ifc := r.ifc
	if r.gen != ifc.gen || ifc.conn == nil {
		return // from a socket we already replaced
	}
	if r.err != nil {
		e.log.Warn("vrrp socket failed; re-opening", "iface", ifc.name, "err", r.err)
		e.closeConn(ifc)
		e.redial.Reset(redialInterval)
		e.refreshLinks(time.Now())
		return
	}
	m := r.meta
	discard := func(c *counters, reason DiscardReason, args ...any) {
		e.mu.Lock()
		c.discarded[reason]++
		e.mu.Unlock()
		e.logLimited(rejectLevel(reason), ifc.name+":"+reason.String(), "advert rejected",
			append([]any{"iface", ifc.name, "src", m.Src, "reason", reason.String()}, args...)...)
	}
	if m.IfIndex != 0 && m.IfIndex != ifc.conn.IfIndex() {
		discard(&ifc.counters, DiscardWrongInterface)
		return
	}
	if e.isLocal(m.Src) {
		discard(&ifc.counters, DiscardOwnAdvert)
		return
	}
	if len(r.data) > 0 && r.data[0]>>4 == Version3 {
		e.handleV3(ifc, r.data, m, discard)
		return
	}
	a, err := ParseAdvertisement(r.data)
	if err != nil {
		reason := DiscardLength
		var pe *ParseError
		if errors.As(err, &pe) {
			reason = pe.Reason()
		}
		discard(&ifc.counters, reason, "err", err)
		return
	}
	in := ifc.insts[a.VRID]
	if in != nil && in.v3 != nil {
		discard(&in.counters, DiscardVersion, "instance", in.cfg.Name, "version", Version2)
		return
	}
	if in == nil {
		discard(&ifc.counters, DiscardUnknownVRID, "vrid", a.VRID)
		return
	}
	reason, mismatch := in.policy.check(a, m)
	if !e.admit(in, reason, mismatch, a.Priority, a.Addresses, m, discard) {
		return
	}
	e.step(time.Now(), in.index, AdvertReceived{Priority: a.Priority, Src: m.Src})
}

// admit applies the receive policy's verdict on an advert of either
// version: it counts an address-list mismatch, discards a rejected advert
// (with the address lists when they are the reason), counts an accepted
// one and warns about a priority-255 owner that lists other addresses.
// It reports whether the advert goes on to the state machine.
func (e *engine) admit(in *instance, reason DiscardReason, mismatch bool, prio uint8, theirs []netip.Addr, m RecvMeta, discard func(*counters, DiscardReason, ...any)) bool {
	if mismatch {
		e.mu.Lock()
		in.counters.addrMismatch++
		e.mu.Unlock()
	}
	if reason == DiscardAddressList {
		discard(&in.counters, reason, "instance", in.cfg.Name, "priority", prio,
			"theirs", theirs, "ours", in.policy.vips)
		return false
	}
	if reason != DiscardNone {
		discard(&in.counters, reason, "instance", in.cfg.Name)
		return false
	}
	e.mu.Lock()
	in.counters.received++
	if prio == ShutdownPriority {
		in.counters.zeroReceived++
	}
	e.mu.Unlock()
	if mismatch {
		e.logLimited(slog.LevelWarn, "mismatch:"+in.cfg.Name, "address owner's advert lists other addresses than ours (accepted: priority 255; check both configs)",
			"instance", in.cfg.Name, "src", m.Src, "theirs", theirs, "ours", in.policy.vips)
	}
	return true
}

// rejectLevel is the log level of a rejected advert: warning, except for
// our own looped-back adverts and packets seen on another interface, which
// are normal on Linux and would drown the others.
func rejectLevel(r DiscardReason) slog.Level {
	switch r {
	case DiscardOwnAdvert, DiscardWrongInterface:
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// isLocal reports whether addr is one of our advert sources, i.e. the
// packet is our own, looped back.
func (e *engine) isLocal(addr netip.Addr) bool {
	for _, ifc := range e.ifaces {
		if ifc.localAddr == addr {
			return true
		}
	}
	for _, in := range e.insts {
		if in.cfg.UnicastSource == addr {
			return true
		}
	}
	return false
}

func (e *engine) handleLink(u LinkUpdate) {
	prev, known := e.linkState[u.Name]
	e.linkState[u.Name] = u.Up
	for _, ifc := range e.ifaces { // the IPv4 and the IPv6 socket
		if ifc.name != u.Name {
			continue
		}
		e.mu.Lock()
		ifc.up = u.Up
		e.mu.Unlock()
		if u.Up && known && !prev {
			// The interface may have been re-created with a new index, and
			// a flap can drop the group membership: start afresh.
			e.closeConn(ifc)
			e.dial(ifc)
		}
	}
	e.refreshLinks(time.Now())
}

// refreshLinks tells each machine whether everything it depends on is up:
// its links and its socket.
func (e *engine) refreshLinks(now time.Time) {
	for _, in := range e.insts {
		up := in.iface.conn != nil
		for _, l := range in.links {
			if st, ok := e.linkState[l]; ok && !st {
				up = false
			}
		}
		if up != in.linkUp {
			in.linkUp = up
			e.step(now, in.index, LinkChanged{Up: up})
		}
	}
}

func (e *engine) dial(ifc *iface) {
	ctx, cancel := context.WithTimeout(e.bgCtx, osTimeout)
	conn, err := e.dialFamily(ctx, ifc)
	cancel()
	if err != nil {
		e.logLimited(slog.LevelWarn, "dial:"+ifc.name, "cannot open VRRP socket; retrying", "iface", ifc.name, "err", err)
		e.redial.Reset(redialInterval)
		return
	}
	e.mu.Lock()
	ifc.conn = conn
	ifc.gen++
	ifc.localAddr = conn.LocalAddr()
	e.mu.Unlock()
	for _, in := range ifc.insts {
		local := conn.LocalAddr()
		if in.cfg.UnicastSource.IsValid() {
			local = in.cfg.UnicastSource
		}
		e.routers[in.index].SetLocalAddr(local)
	}
	gen := ifc.gen
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		e.realtimeThread("reader " + ifc.name)
		for {
			buf := make([]byte, maxPacket)
			n, meta, err := conn.ReadAdvert(buf)
			r := received{ifc: ifc, gen: gen, data: buf[:n], meta: meta, err: err}
			select {
			case e.rx <- r:
			case <-e.bgCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
}

func (e *engine) closeConn(ifc *iface) {
	if ifc.conn == nil {
		return
	}
	if e.pacer != nil {
		for _, in := range ifc.insts {
			e.pacer.stop(in.index)
		}
	}
	_ = ifc.conn.Close()
	e.mu.Lock()
	ifc.conn = nil
	ifc.gen++
	e.mu.Unlock()
}

// stop ends Run. graceful sends priority 0 and removes the VIPs; a kill
// leaves the network as it is.
func (e *engine) stop(graceful bool) {
	if graceful {
		e.step(time.Now(), -1, Shutdown{})
		e.queue.close()
	} else {
		e.epochCancel()
		e.queue.abort()
	}
	e.actuatorWG.Wait()
	e.epochCancel()
	e.announcing.Wait()
	e.timer.Stop()
	e.redial.Stop()
	e.stopPacer()
	for _, ifc := range e.ifaces {
		e.closeConn(ifc)
	}
	e.bgCancel()
	e.bg.Wait()
	if graceful && len(refusedVIPs(e.cfg.Instances)) > 0 {
		// The VIPs are gone; the filter goes too (after Kill, like
		// them, it stays).
		if err := e.applyAcceptMode(context.Background(), nil); err != nil {
			e.log.Warn("cannot remove the accept filter", "err", err)
		}
	}
	e.log.Info("vrrp group stopped", "graceful", graceful)
}
