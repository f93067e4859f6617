package vrrp

import (
	"testing"
	"time"
)

func testGroup(t *testing.T, prios ...uint8) *SyncGroup {
	t.Helper()
	names := []string{"eth0", "eth1", "eth2"}[:len(prios)]
	var members []*Router
	for i, p := range prios {
		members = append(members, testRouter(p, func(c *RouterConfig) { c.Index = i }))
	}
	return NewSyncGroup(names, members)
}

func states(g *SyncGroup) []State {
	var out []State
	for _, m := range g.members {
		out = append(out, m.State())
	}
	return out
}

func wantStates(t *testing.T, g *SyncGroup, group State, members ...State) {
	t.Helper()
	if g.State() != group {
		t.Errorf("group %v, want %v (members %v)", g.State(), group, states(g))
	}
	for i, s := range members {
		if got := g.Member(i).State(); got != s {
			t.Errorf("member %d %v, want %v", i, got, s)
		}
	}
}

func groupChange(acts []Action) (GroupStateChange, bool) {
	for _, a := range acts {
		if gc, ok := a.(GroupStateChange); ok {
			return gc, true
		}
	}
	return GroupStateChange{}, false
}

func countAdverts(acts []Action, prio uint8) int {
	n := 0
	for _, a := range acts {
		if sa, ok := a.(SendAdvert); ok && sa.Priority == prio {
			n++
		}
	}
	return n
}

func masterGroup(t *testing.T) (*SyncGroup, time.Time) {
	t.Helper()
	g := testGroup(t, 100, 100)
	g.Step(t0, -1, Startup{})
	wantStates(t, g, StateBackup, StateBackup, StateBackup)
	now := t0.Add(MasterDownInterval(time.Second, 100))
	acts, _ := g.Step(now, -1, TimerExpired{})
	wantStates(t, g, StateMaster, StateMaster, StateMaster)
	if gc, ok := groupChange(acts); !ok || gc.From != StateBackup || gc.To != StateMaster {
		t.Fatalf("group change %+v %v", gc, ok)
	}
	return g, now
}

func TestSyncGroupStartupAndElection(t *testing.T) {
	masterGroup(t)
}

// The "better than keepalived" rule: one member learning that the
// master is gone takes the whole group over at once.
func TestSyncGroupOneMemberTakesWholeGroup(t *testing.T) {
	g := testGroup(t, 100, 100)
	g.Step(t0, -1, Startup{})
	// eth0 keeps hearing a master; eth1 hears priority 0.
	now := t0.Add(time.Second)
	g.Step(now, 0, AdvertReceived{Priority: 150, Src: higherIP})
	_, next := g.Step(now, 1, AdvertReceived{Priority: 0, Src: higherIP})
	if want := now.Add(SkewTime(100)); !next.Equal(want) {
		t.Fatalf("next %v, want Skew_Time later", next.Sub(now))
	}
	acts, _ := g.Step(next, -1, TimerExpired{})
	wantStates(t, g, StateMaster, StateMaster, StateMaster)
	if n := countAdverts(acts, 100); n != 2 {
		t.Errorf("%d adverts sent on takeover, want one per member", n)
	}
	gc, _ := groupChange(acts)
	if gc.Reason != "eth1: priority 0 received" {
		t.Errorf("group reason %q", gc.Reason)
	}
}

func TestSyncGroupMemberYieldTakesGroupToBackup(t *testing.T) {
	g, now := masterGroup(t)
	acts, _ := g.Step(now.Add(time.Second), 1, AdvertReceived{Priority: 200, Src: lowerIP})
	wantStates(t, g, StateBackup, StateBackup, StateBackup)
	if n := countAdverts(acts, 0); n != 0 {
		t.Errorf("%d priority-0 adverts on a yield, want none", n)
	}
}

func TestSyncGroupFaultDragsGroup(t *testing.T) {
	g, now := masterGroup(t)
	now = now.Add(time.Second)
	acts, next := g.Step(now, 0, LinkChanged{Up: false})
	wantStates(t, g, StateFault, StateFault, StateBackup)
	// Both members send priority 0: eth0's probably dies on the dead link,
	// eth1's reaches the peer, which takes over in Skew_Time.
	if n := countAdverts(acts, 0); n != 2 {
		t.Errorf("%d priority-0 adverts, want 2", n)
	}
	// While eth0 is in FAULT, eth1 must not become MASTER whatever happens.
	for range 5 {
		now = next
		_, next = g.Step(now, -1, TimerExpired{})
	}
	g.Step(now, 1, AdvertReceived{Priority: 0, Src: higherIP})
	_, next = g.Step(now.Add(time.Second), -1, TimerExpired{})
	wantStates(t, g, StateFault, StateFault, StateBackup)

	// Link back: the group returns to BACKUP, and may take over again.
	acts, _ = g.Step(now.Add(2*time.Second), 0, LinkChanged{Up: true})
	wantStates(t, g, StateBackup, StateBackup, StateBackup)
	if gc, ok := groupChange(acts); !ok || gc.From != StateFault {
		t.Errorf("group change %+v", gc)
	}
	_ = next
}

func TestSyncGroupAddressFailure(t *testing.T) {
	g, now := masterGroup(t)
	acts, next := g.Step(now, 1, AddressFailure{})
	wantStates(t, g, StateFault, StateBackup, StateFault)
	if n := countAdverts(acts, 0); n != 2 {
		t.Errorf("%d priority-0 adverts, want 2", n)
	}
	// After the hold-down, the failed member is BACKUP again: no member
	// is in FAULT, so the group may be elected again.
	for i := 0; i < 10 && g.State() != StateBackup; i++ {
		now = next
		_, next = g.Step(now, -1, TimerExpired{})
	}
	wantStates(t, g, StateBackup)
}

func TestSyncGroupShutdown(t *testing.T) {
	g, now := masterGroup(t)
	acts, next := g.Step(now, -1, Shutdown{})
	wantStates(t, g, StateInit, StateInit, StateInit)
	if n := countAdverts(acts, 0); n != 2 {
		t.Errorf("%d priority-0 adverts on shutdown, want 2", n)
	}
	if !next.IsZero() {
		t.Errorf("deadline %v after shutdown", next)
	}
}

func TestSyncGroupSingleMember(t *testing.T) {
	g := testGroup(t, 255)
	acts, _ := g.Step(t0, -1, Startup{})
	wantStates(t, g, StateMaster, StateMaster)
	if gc, _ := groupChange(acts); gc.Reason != "eth0: startup as address owner" {
		t.Errorf("reason %q", gc.Reason)
	}
}
