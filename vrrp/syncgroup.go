package vrrp

import (
	"cmp"
	"fmt"
	"strings"
	"time"
)

// SyncGroup is the pure state machine of a sync group: the instances of
// one node (eth0 and eth1 of a firewall) that must move together, so that
// the VIPs of the two sides never end up on different nodes.
//
// Rules, applied after every event until the members agree:
//   - the group is MASTER only when every member is MASTER;
//   - a member in FAULT puts the group in FAULT: MASTER members leave with a
//     priority-0 advert (so the peer takes over in Skew_Time through the
//     links that still work) and no member may become MASTER;
//   - a MASTER member that yields to a better router takes the others to
//     BACKUP with it;
//   - a BACKUP member that becomes MASTER (its Master_Down timer fired, for
//     instance Skew_Time after a priority-0 advert) takes the whole group to
//     MASTER at once. keepalived waits for each member's own timer instead,
//     which costs a full Master_Down_Interval when only one link of the old
//     master failed;
//   - a BACKUP member whose Master_Down timer fires does not take the group
//     over while another member still hears a master it must obey (an
//     advert within its own Master_Down_Interval): the master is alive and
//     only one LAN between the nodes is cut. This is a partial partition;
//     the group stays BACKUP, so it never announces VIPs it would have to
//     give back, and reports it (PartitionChange) until the deaf member
//     hears the master again, nobody hears it, or the group leaves BACKUP.
//     A priority-0 advert on any member means the master node is leaving:
//     what the other members heard no longer holds them back;
//   - while preemption is held (SetPreemptHold: this node does not yet hold
//     the peer's connections) a BACKUP member obeys a lower-priority master
//     as if preemption were off; without a master it still takes over.
type SyncGroup struct {
	members []*Router
	names   []string
	state   State

	// heard[i] is when member i last heard a master it obeys (zero if
	// never, or forgotten after a priority-0 advert).
	heard []time.Time
	// deaf[i] is set while member i's takeover is held back by another
	// member that hears the master; it names that member.
	deaf        []int
	partition   string // current partial-partition description, "" if none
	holdPreempt bool
}

// PartitionChange reports that a partial partition began (Partial) or
// ended. Reason says which member hears no master while which other one
// still does.
type PartitionChange struct {
	Partial bool
	Reason  string
}

// PreemptHeld reports that a lower-priority master was obeyed instead of
// preempted because preemption is held (SetPreemptHold).
type PreemptHeld struct {
	Instance int
	Priority uint8 // the lower-priority master's
}

func (PartitionChange) isAction() {}
func (PreemptHeld) isAction()     {}

// NewSyncGroup builds a group over routers whose RouterConfig.Index is
// their position in the slice. names are used in transition reasons.
func NewSyncGroup(names []string, members []*Router) *SyncGroup {
	deaf := make([]int, len(members))
	for i := range deaf {
		deaf[i] = -1
	}
	return &SyncGroup{members: members, names: names, heard: make([]time.Time, len(members)), deaf: deaf}
}

// SetPreemptHold holds (true) or allows (false) preemption of a
// lower-priority master by the group's BACKUP members. It takes effect
// with the next advert: once released, a lower-priority master is
// preempted one Master_Down_Interval later, as RFC 3768 §6.4.2 does.
func (g *SyncGroup) SetPreemptHold(hold bool) { g.holdPreempt = hold }

// Partition returns the current partial-partition description, "" if none.
func (g *SyncGroup) Partition() string { return g.partition }

// hears reports whether member i heard a master it obeys within its
// Master_Down_Interval before now.
func (g *SyncGroup) hears(i int, now time.Time) bool {
	m := g.members[i]
	return m.State() == StateBackup && !g.heard[i].IsZero() && now.Before(g.heard[i].Add(m.masterDownInterval()))
}

// hearingOther returns a member other than i that hears a master, or -1.
func (g *SyncGroup) hearingOther(i int, now time.Time) int {
	for j := range g.members {
		if j != i && g.hears(j, now) {
			return j
		}
	}
	return -1
}

// observe records what an advert tells about the master, and rewrites it
// while preemption is held. It returns the event to give the member.
func (g *SyncGroup) observe(now time.Time, i int, ev AdvertReceived) (Event, []Action) {
	m := g.members[i]
	var acts []Action
	local := m.Priority()
	if ev.Priority == ShutdownPriority {
		// The master node is leaving: none of its members holds us back.
		for j := range g.heard {
			g.heard[j] = time.Time{}
		}
		return ev, nil
	}
	if m.State() != StateBackup {
		return ev, nil
	}
	if ev.Priority < local && m.cfg.Preempt && g.holdPreempt {
		acts = append(acts, PreemptHeld{Instance: i, Priority: ev.Priority})
		ev.Priority = local // obeyed like an equal: refreshes Master_Down
	}
	if !m.cfg.Preempt || ev.Priority >= local {
		g.heard[i] = now
	}
	return ev, acts
}

// updateDenied tells each member whether it may become MASTER by its own
// timer: not while a member is in FAULT, nor while another member hears a
// master.
func (g *SyncGroup) updateDenied(now time.Time) {
	fault := false
	for _, m := range g.members {
		if m.State() == StateFault {
			fault = true
		}
	}
	for i, m := range g.members {
		m.masterDenied = fault || g.hearingOther(i, now) >= 0
	}
}

// State returns the group state.
func (g *SyncGroup) State() State { return g.state }

// Member returns the machine of instance i.
func (g *SyncGroup) Member(i int) *Router { return g.members[i] }

// Step applies ev to member i, or to every member if i < 0, then
// reconciles the group. It returns the actions in order (including one
// StateChange per member transition and a GroupStateChange when the group
// state changes) and the next deadline.
func (g *SyncGroup) Step(now time.Time, i int, ev Event) ([]Action, time.Time) {
	var acts []Action
	if adv, ok := ev.(AdvertReceived); ok && i >= 0 {
		var more []Action
		ev, more = g.observe(now, i, adv)
		acts = append(acts, more...)
	}
	g.updateDenied(now)
	// Members whose timer is due but who may not take over: held back.
	var due []bool
	if _, ok := ev.(TimerExpired); ok {
		due = make([]bool, len(g.members))
		for j, m := range g.members {
			due[j] = m.State() == StateBackup && m.masterDenied && !m.masterDown.IsZero() && !now.Before(m.masterDown)
		}
	}
	if i < 0 {
		for _, m := range g.members {
			a, _ := m.Step(now, ev)
			acts = append(acts, a...)
		}
	} else {
		a, _ := g.members[i].Step(now, ev)
		acts = append(acts, a...)
	}
	for j, d := range due {
		if d && g.members[j].State() == StateBackup {
			g.deaf[j] = g.hearingOther(j, now)
		}
	}
	// Reconcile. Each round can only move members towards agreement; the
	// bound guards against a bug turning into a livelock.
	for range 4 {
		more := g.reconcile(now, acts)
		if len(more) == 0 {
			break
		}
		acts = append(acts, more...)
	}

	if next := g.aggregate(); next != g.state {
		acts = append(acts, GroupStateChange{From: g.state, To: next, Reason: g.rootReason(acts, next)})
		g.state = next
	}
	acts = g.updatePartition(now, acts)
	var deadline time.Time
	for _, m := range g.members {
		deadline = earliest(deadline, m.deadline())
	}
	return acts, deadline
}

// reconcile looks at the member transitions in acts and returns the
// actions of the members it had to move.
func (g *SyncGroup) reconcile(now time.Time, acts []Action) []Action {
	faulty := -1
	for i, m := range g.members {
		if m.State() == StateFault {
			faulty = i
			break
		}
	}
	var out []Action
	if faulty >= 0 {
		reason := fmt.Sprintf("sync group: %s is FAULT", g.names[faulty])
		for _, m := range g.members {
			m.masterDenied = true
			if m.State() == StateMaster {
				a, _ := m.Step(now, groupYield{reason: reason, sendPriority: true})
				out = append(out, a...)
			}
		}
		return out
	}
	g.updateDenied(now)
	// Which member moved, and where? Only transitions seen in this Step count.
	var toMaster, toBackup = -1, -1
	for _, a := range acts {
		sc, ok := a.(StateChange)
		if !ok {
			continue
		}
		switch {
		case sc.To == StateMaster:
			toMaster = sc.Instance
		case sc.From == StateMaster && sc.To == StateBackup:
			toBackup = sc.Instance
		}
	}
	switch {
	case toBackup >= 0:
		reason := fmt.Sprintf("sync group: %s left MASTER", g.names[toBackup])
		for _, m := range g.members {
			if m.State() == StateMaster {
				a, _ := m.Step(now, groupYield{reason: reason})
				out = append(out, a...)
			}
		}
	case toMaster >= 0:
		reason := fmt.Sprintf("sync group: %s became MASTER", g.names[toMaster])
		for _, m := range g.members {
			if m.State() == StateBackup {
				a, _ := m.Step(now, groupTakeover{reason: reason})
				out = append(out, a...)
			}
		}
	}
	return out
}

func (g *SyncGroup) aggregate() State {
	all := func(s State) bool {
		for _, m := range g.members {
			if m.State() != s {
				return false
			}
		}
		return true
	}
	for _, m := range g.members {
		if m.State() == StateFault {
			return StateFault
		}
	}
	switch {
	case all(StateMaster):
		return StateMaster
	case all(StateInit):
		return StateInit
	}
	return StateBackup
}

// rootReason picks the reason of the first member transition towards the
// new group state, which is the one that caused the others.
func (g *SyncGroup) rootReason(acts []Action, to State) string {
	for _, a := range acts {
		if sc, ok := a.(StateChange); ok && sc.To == to {
			return fmt.Sprintf("%s: %s", g.names[sc.Instance], sc.Reason)
		}
	}
	for _, a := range acts {
		if sc, ok := a.(StateChange); ok {
			return fmt.Sprintf("%s: %s", g.names[sc.Instance], sc.Reason)
		}
	}
	return "sync group"
}

// updatePartition ends the partial partition when no member is held back
// any more (it heard the master again, or the member that heard it no
// longer does, or the group left BACKUP), starts one when a member was just
// held back, and reports changes.
func (g *SyncGroup) updatePartition(now time.Time, acts []Action) []Action {
	var reasons []string
	for i, j := range g.deaf {
		if j < 0 {
			continue
		}
		if g.state != StateBackup || g.hears(i, now) || !g.hears(j, now) {
			g.deaf[i] = -1
			continue
		}
		reasons = append(reasons, fmt.Sprintf("%s hears no master while %s does", g.names[i], g.names[j]))
	}
	desc := strings.Join(reasons, "; ")
	if desc != g.partition {
		acts = append(acts, PartitionChange{Partial: desc != "", Reason: cmp.Or(desc, g.partition)})
		g.partition = desc
	}
	return acts
}
