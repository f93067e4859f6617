package vrrp

import (
	"fmt"
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
//     master failed.
type SyncGroup struct {
	members []*Router
	names   []string
	state   State
}

// NewSyncGroup builds a group over routers whose RouterConfig.Index is
// their position in the slice. names are used in transition reasons.
func NewSyncGroup(names []string, members []*Router) *SyncGroup {
	return &SyncGroup{members: members, names: names}
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
	if i < 0 {
		for _, m := range g.members {
			a, _ := m.Step(now, ev)
			acts = append(acts, a...)
		}
	} else {
		acts, _ = g.members[i].Step(now, ev)
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
	for _, m := range g.members {
		m.masterDenied = false
	}
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
