package vrrp

import (
	"fmt"
	"net/netip"
	"time"
)

// State is the state of one VRRP instance or of a sync group.
type State uint8

const (
	// StateInit is RFC 3768 Initialize: not started, or shut down.
	StateInit State = iota
	// StateBackup listens for the master and takes over when it disappears.
	StateBackup
	// StateMaster advertises and (through the engine) holds the VIPs.
	StateMaster
	// StateFault is not part of RFC 3768: an interface the instance needs
	// is down, or its VIPs could not be installed. A FAULT instance neither
	// advertises nor takes over.
	StateFault
)

// String returns "INIT", "BACKUP", "MASTER" or "FAULT" (keepalived's words).
func (s State) String() string {
	switch s {
	case StateInit:
		return "INIT"
	case StateBackup:
		return "BACKUP"
	case StateMaster:
		return "MASTER"
	case StateFault:
		return "FAULT"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Event is an input to Router.Step or to the sync group.
type Event interface{ isEvent() }

// Startup is RFC 3768's Startup event (§6.4.1).
type Startup struct{}

// Shutdown is RFC 3768's Shutdown event: a master sends priority 0.
type Shutdown struct{}

// TimerExpired tells the machine that the deadline it returned has passed.
// The machine compares its own deadlines with now, so a stale or early
// expiry is harmless.
type TimerExpired struct{}

// AdvertReceived is an advert that passed receive validation.
type AdvertReceived struct {
	Priority uint8
	Src      netip.Addr // IP source address, the sender's primary address
	// Interval is the Max Adver Int of a VRRPv3 advert (RFC 9568): a
	// backup times the master out from the master's interval, not its
	// own. Zero (VRRPv2) means our own interval.
	Interval time.Duration
}

// LinkChanged reports whether every interface the instance depends on (its
// own and the tracked ones) is up.
type LinkChanged struct{ Up bool }

// AddressFailure reports that the VIPs could not be installed. The
// instance must not claim MASTER silently: it goes to FAULT for one
// Master_Down_Interval and then back to BACKUP, from where it may retry.
type AddressFailure struct{}

// PriorityChanged sets a new priority (1-254) for the next adverts and
// elections. It does not change the role by itself.
type PriorityChanged struct{ Priority uint8 }

// groupTakeover and groupYield are issued by the sync group to keep its
// members together.
type groupTakeover struct{ reason string }
type groupYield struct {
	reason       string
	sendPriority bool // send a priority-0 advert, so the peer takes over in Skew_Time
}

func (Startup) isEvent()         {}
func (Shutdown) isEvent()        {}
func (TimerExpired) isEvent()    {}
func (AdvertReceived) isEvent()  {}
func (LinkChanged) isEvent()     {}
func (AddressFailure) isEvent()  {}
func (PriorityChanged) isEvent() {}
func (groupTakeover) isEvent()   {}
func (groupYield) isEvent()      {}

// Action is an output of Router.Step or of the sync group.
type Action interface{ isAction() }

// SendAdvert asks the engine to send an advert for instance Instance with
// the given priority.
type SendAdvert struct {
	Instance int
	Priority uint8
}

// Reannounce asks for a fresh gratuitous ARP burst: a master heard a
// lower-priority master (split brain healing), so neighbours may point at
// the wrong node.
type Reannounce struct{ Instance int }

// StateChange reports a transition of one instance.
type StateChange struct {
	Instance int
	From, To State
	Reason   string
}

// GroupStateChange reports a transition of the sync group as a whole.
type GroupStateChange struct {
	From, To State
	Reason   string
}

func (SendAdvert) isAction()       {}
func (Reannounce) isAction()       {}
func (StateChange) isAction()      {}
func (GroupStateChange) isAction() {}

// RouterConfig holds the parameters of one instance's state machine.
type RouterConfig struct {
	Index          int           // instance index, copied into every Action
	Priority       uint8         // 1-255; 255 is the address owner
	AdvertInterval time.Duration // whole seconds for VRRPv2, centiseconds for v3
	// Version is 2 (RFC 3768, also for zero) or 3 (RFC 9568). In v3 the
	// timers follow the master's advertised interval.
	Version uint8
	Preempt bool
	// PreemptDelay tolerates a lower-priority master for this long after
	// first hearing it before preempting it (keepalived preempt_delay).
	PreemptDelay time.Duration
	// LocalAddr is our primary address on the interface, for the equal
	// priority tie-break in Master.
	LocalAddr netip.Addr
}

// Router is the pure RFC 3768 §6 (VRRPv2) or RFC 9568 §6 (VRRPv3) state
// machine of one instance, extended with FAULT. The versions differ only
// in the timers: v3 computes Skew_Time and Master_Down_Interval from
// Master_Adver_Interval, the interval the master advertises. It holds no sockets and no timers: Step takes the current
// time and returns the actions and the next deadline.
type Router struct {
	cfg   RouterConfig
	state State

	masterDown   time.Time // Backup: Master_Down_Timer
	downReason   string    // why masterDown was last armed
	advertAt     time.Time // Master: Adver_Timer
	preemptAt    time.Time // Backup: end of the tolerance for a lower-priority master
	faultUntil   time.Time // Fault after AddressFailure: hold-down end
	linkDown     bool
	started      bool
	masterDenied bool // set by the sync group while a member is in FAULT
	// masterAdver is RFC 9568 Master_Adver_Interval (v3 only): the
	// master's advertised interval, our own until we hear one.
	masterAdver time.Duration
}

// NewRouter returns a machine in StateInit.
func NewRouter(cfg RouterConfig) *Router {
	return &Router{cfg: cfg, masterAdver: cfg.AdvertInterval}
}

// State returns the current state.
func (r *Router) State() State { return r.state }

// Priority returns the current priority.
func (r *Router) Priority() uint8 { return r.cfg.Priority }

// SetLocalAddr updates the primary address used for the tie-break (it is
// only known once the socket is open).
func (r *Router) SetLocalAddr(a netip.Addr) { r.cfg.LocalAddr = a }

func (r *Router) owner() bool { return r.cfg.Priority == OwnerPriority }

func (r *Router) v3() bool { return r.cfg.Version == Version3 }

func (r *Router) masterDownInterval() time.Duration {
	if r.v3() {
		return MasterDownIntervalV3(r.masterAdver, r.cfg.Priority)
	}
	return MasterDownInterval(r.cfg.AdvertInterval, r.cfg.Priority)
}

func (r *Router) skewTime() time.Duration {
	if r.v3() {
		return SkewTimeV3(r.cfg.Priority, r.masterAdver)
	}
	return SkewTime(r.cfg.Priority)
}

// learnInterval adopts the interval of the master we listen to (RFC 9568
// §6.4.2, §6.4.3: "Set Master_Adver_Interval to Adver Interval contained
// in the ADVERTISEMENT"). VRRPv2 has nothing to learn: a different
// interval was discarded by validation.
func (r *Router) learnInterval(ev AdvertReceived) {
	if r.v3() && ev.Interval > 0 {
		r.masterAdver = ev.Interval
	}
}

// Step applies ev at time now and returns the actions to execute, in
// order, and the next deadline (zero if none) at which the caller must
// deliver TimerExpired.
func (r *Router) Step(now time.Time, ev Event) ([]Action, time.Time) {
	var acts []Action
	switch ev := ev.(type) {
	case Startup:
		if r.state == StateInit {
			r.started = true
			acts = r.start(now, acts, "startup")
		}
	case Shutdown:
		r.started = false
		if r.state == StateMaster {
			// §6.4.3: cancel Adver_Timer, send priority 0.
			acts = append(acts, SendAdvert{Instance: r.cfg.Index, Priority: ShutdownPriority})
		}
		acts = r.enter(now, acts, StateInit, "shutdown")
	case TimerExpired:
		acts = r.timer(now, acts)
	case AdvertReceived:
		acts = r.advert(now, acts, ev)
	case LinkChanged:
		acts = r.link(now, acts, ev.Up)
	case AddressFailure:
		if r.state == StateMaster || r.state == StateBackup {
			if r.state == StateMaster {
				acts = append(acts, SendAdvert{Instance: r.cfg.Index, Priority: ShutdownPriority})
			}
			r.faultUntil = now.Add(r.masterDownInterval())
			acts = r.enter(now, acts, StateFault, "virtual addresses could not be installed")
		}
	case PriorityChanged:
		if ev.Priority != 0 {
			r.cfg.Priority = ev.Priority
		}
	case groupTakeover:
		if r.state == StateBackup {
			acts = r.becomeMaster(now, acts, ev.reason)
		}
	case groupYield:
		if r.state == StateMaster {
			if ev.sendPriority {
				acts = append(acts, SendAdvert{Instance: r.cfg.Index, Priority: ShutdownPriority})
			}
			acts = r.becomeBackup(now, acts, ev.reason)
		}
	}
	return acts, r.deadline()
}

// start is Startup (§6.4.1), also used when a link comes back and when a
// FAULT hold-down ends.
func (r *Router) start(now time.Time, acts []Action, reason string) []Action {
	// RFC 9568 §6.4.1: Master_Adver_Interval starts as our own interval.
	r.masterAdver = r.cfg.AdvertInterval
	if r.linkDown {
		return r.enter(now, acts, StateFault, "link down")
	}
	if r.owner() && !r.masterDenied {
		return r.becomeMaster(now, acts, reason+" as address owner")
	}
	return r.becomeBackup(now, acts, reason)
}

func (r *Router) becomeMaster(now time.Time, acts []Action, reason string) []Action {
	// §6.4.1/§6.4.2: send an advert at once, arm Adver_Timer.
	acts = append(acts, SendAdvert{Instance: r.cfg.Index, Priority: r.cfg.Priority})
	r.advertAt = now.Add(r.cfg.AdvertInterval)
	// We are the master now: should we yield without hearing another
	// (sync group), our own interval is the best guess.
	r.masterAdver = r.cfg.AdvertInterval
	return r.enter(now, acts, StateMaster, reason)
}

func (r *Router) becomeBackup(now time.Time, acts []Action, reason string) []Action {
	r.armMasterDown(now, r.masterDownInterval(), "master down timer expired")
	return r.enter(now, acts, StateBackup, reason)
}

func (r *Router) armMasterDown(now time.Time, d time.Duration, reason string) {
	r.masterDown = now.Add(d)
	r.downReason = reason
}

// enter switches state, clearing the timers that belong to the old one.
func (r *Router) enter(_ time.Time, acts []Action, to State, reason string) []Action {
	from := r.state
	if to != StateMaster {
		r.advertAt = time.Time{}
	}
	if to != StateBackup {
		r.masterDown = time.Time{}
		r.preemptAt = time.Time{}
	}
	if to != StateFault {
		r.faultUntil = time.Time{}
	}
	r.state = to
	if from == to {
		return acts
	}
	return append(acts, StateChange{Instance: r.cfg.Index, From: from, To: to, Reason: reason})
}

func (r *Router) timer(now time.Time, acts []Action) []Action {
	switch r.state {
	case StateBackup:
		if r.masterDown.IsZero() || now.Before(r.masterDown) {
			return acts
		}
		if r.masterDenied {
			// A sync-group member is in FAULT: the group may not become
			// MASTER, so keep waiting.
			r.armMasterDown(now, r.masterDownInterval(), "master down timer expired")
			return acts
		}
		return r.becomeMaster(now, acts, r.downReason)
	case StateMaster:
		if r.advertAt.IsZero() || now.Before(r.advertAt) {
			return acts
		}
		r.advertAt = now.Add(r.cfg.AdvertInterval)
		return append(acts, SendAdvert{Instance: r.cfg.Index, Priority: r.cfg.Priority})
	case StateFault:
		if r.faultUntil.IsZero() || now.Before(r.faultUntil) {
			return acts
		}
		r.faultUntil = time.Time{}
		return r.start(now, acts, "fault hold-down over")
	}
	return acts
}

func (r *Router) advert(now time.Time, acts []Action, ev AdvertReceived) []Action {
	local := r.cfg.Priority
	switch r.state {
	case StateBackup:
		switch {
		case ev.Priority == ShutdownPriority:
			// §6.4.2: the master is leaving; take over after Skew_Time.
			r.armMasterDown(now, r.skewTime(), "priority 0 received")
		case !r.cfg.Preempt || ev.Priority >= local:
			r.preemptAt = time.Time{}
			r.learnInterval(ev)
			r.armMasterDown(now, r.masterDownInterval(), "master down timer expired")
		case r.cfg.PreemptDelay > 0 && (r.preemptAt.IsZero() || now.Before(r.preemptAt)):
			// Tolerate the lower-priority master for PreemptDelay.
			if r.preemptAt.IsZero() {
				r.preemptAt = now.Add(r.cfg.PreemptDelay)
			}
			r.learnInterval(ev)
			r.armMasterDown(now, r.masterDownInterval(), "preempting lower-priority master")
		default:
			// §6.4.2: preempt. Discard, so that Master_Down_Timer runs out.
			r.downReason = "preempting lower-priority master"
		}
	case StateMaster:
		switch {
		case ev.Priority == ShutdownPriority:
			// §6.4.3: answer at once so backups do not take over.
			r.advertAt = now.Add(r.cfg.AdvertInterval)
			acts = append(acts, SendAdvert{Instance: r.cfg.Index, Priority: local})
		case ev.Priority > local || ev.Priority == local && ev.Src.Compare(r.cfg.LocalAddr) > 0:
			reason := "higher priority advert received"
			if ev.Priority == local {
				reason = "equal priority advert from higher address received"
			}
			// One last advert before yielding (keepalived's
			// higher_prio_send_advert): the winner then sees that another
			// master existed and re-announces the VIPs, which neighbours
			// may have learned from us during a split brain.
			acts = append(acts, SendAdvert{Instance: r.cfg.Index, Priority: local})
			r.learnInterval(ev)
			acts = r.becomeBackup(now, acts, reason)
		default:
			// Another master with lower priority: split brain healing.
			// RFC 3768 discards; like keepalived and RFC 9568 we answer at
			// once so the other side yields, and refresh the neighbours'
			// ARP caches, which may point at the other node.
			r.advertAt = now.Add(r.cfg.AdvertInterval)
			acts = append(acts,
				SendAdvert{Instance: r.cfg.Index, Priority: local},
				Reannounce{Instance: r.cfg.Index})
		}
	}
	return acts
}

func (r *Router) link(now time.Time, acts []Action, up bool) []Action {
	if !up {
		r.linkDown = true
		switch r.state {
		case StateMaster:
			// Tell the peer to take over in Skew_Time (the advert may not
			// leave through a dead link, but others in the group get out).
			acts = append(acts, SendAdvert{Instance: r.cfg.Index, Priority: ShutdownPriority})
			return r.enter(now, acts, StateFault, "link down")
		case StateBackup:
			return r.enter(now, acts, StateFault, "link down")
		}
		return acts
	}
	r.linkDown = false
	if r.state == StateFault && r.faultUntil.IsZero() && r.started {
		return r.start(now, acts, "link up")
	}
	return acts
}

func (r *Router) deadline() time.Time {
	switch r.state {
	case StateBackup:
		return r.masterDown
	case StateMaster:
		return r.advertAt
	case StateFault:
		return r.faultUntil
	}
	return time.Time{}
}
