package vrrp

import (
	"testing"
	"time"
)

// backupGroup starts a 100/100 group that hears a priority-150 master on
// both members at t0+1s, and returns the time of that advert.
func backupGroup(t *testing.T) (*SyncGroup, time.Time) {
	t.Helper()
	g := testGroup(t, 100, 100)
	g.Step(t0, -1, Startup{})
	now := t0.Add(time.Second)
	g.Step(now, 0, AdvertReceived{Priority: 150, Src: higherIP})
	g.Step(now, 1, AdvertReceived{Priority: 150, Src: higherIP})
	wantStates(t, g, StateBackup, StateBackup, StateBackup)
	return g, now
}

func partitionChanges(acts []Action) []PartitionChange {
	var out []PartitionChange
	for _, a := range acts {
		if pc, ok := a.(PartitionChange); ok {
			out = append(out, pc)
		}
	}
	return out
}

func masterTransitions(acts []Action) int {
	n := 0
	for _, a := range acts {
		if sc, ok := a.(StateChange); ok && sc.To == StateMaster {
			n++
		}
	}
	return n
}

// Issue 11, case 1: member 0 (inside LAN) stops hearing the master while
// member 1 (outside LAN) keeps hearing it every second. The group must
// stay BACKUP for the whole 30 s (keepalived's flap was one takeover every
// ~3.6 s), report the partial partition once, and end the report when the
// inside LAN heals.
func TestSyncGroupPartialPartitionHoldsBackup(t *testing.T) {
	g, now := backupGroup(t)
	var all []Action
	end := now.Add(30 * time.Second)
	next := now
	for tick := now.Add(time.Second); tick.Before(end); tick = tick.Add(time.Second) {
		// Deliver any timer due before this advert.
		for !next.IsZero() && next.Before(tick) {
			var acts []Action
			acts, next = g.Step(next, -1, TimerExpired{})
			all = append(all, acts...)
		}
		var acts []Action
		acts, next = g.Step(tick, 1, AdvertReceived{Priority: 150, Src: higherIP})
		all = append(all, acts...)
	}
	if n := masterTransitions(all); n != 0 {
		t.Fatalf("%d MASTER transitions during a partial partition, want 0", n)
	}
	wantStates(t, g, StateBackup, StateBackup, StateBackup)
	pcs := partitionChanges(all)
	if len(pcs) != 1 || !pcs[0].Partial || pcs[0].Reason != "eth0 hears no master while eth1 does" {
		t.Fatalf("partition reports %+v, want one start", pcs)
	}
	if g.Partition() == "" {
		t.Error("Partition() empty during the partition")
	}
	// The inside LAN heals: the report ends with the first advert heard.
	acts, _ := g.Step(end, 0, AdvertReceived{Priority: 150, Src: higherIP})
	if pcs := partitionChanges(acts); len(pcs) != 1 || pcs[0].Partial {
		t.Fatalf("partition reports on heal %+v, want one end", pcs)
	}
	if g.Partition() != "" {
		t.Errorf("Partition() = %q after heal", g.Partition())
	}
}

// When the master dies during a partial partition, the member that still
// heard it stops hearing it one Master_Down_Interval later and takes the
// whole group over: the rule delays nothing beyond RFC timing.
func TestSyncGroupPartialPartitionThenMasterDies(t *testing.T) {
	g, now := backupGroup(t)
	mdi := MasterDownInterval(time.Second, 100)
	// eth0 deaf from now on; eth1 hears one more advert, then nothing.
	last := now.Add(time.Second)
	g.Step(last, 1, AdvertReceived{Priority: 150, Src: higherIP})
	acts, next := g.Step(now.Add(mdi), -1, TimerExpired{})
	if masterTransitions(acts) != 0 {
		t.Fatalf("eth0 took over while eth1 hears the master")
	}
	if !next.Equal(last.Add(mdi)) {
		t.Fatalf("next deadline %v after the advert, want eth1's Master_Down %v", next.Sub(last), mdi)
	}
	acts, _ = g.Step(next, -1, TimerExpired{})
	wantStates(t, g, StateMaster, StateMaster, StateMaster)
	if pcs := partitionChanges(acts); len(pcs) != 1 || pcs[0].Partial {
		t.Errorf("partition reports %+v, want the end of the partition", pcs)
	}
}

// Both members lose the master at once (crash): the first timer takes the
// group over, as before.
func TestSyncGroupCompleteLossTakesOver(t *testing.T) {
	g, now := backupGroup(t)
	acts, _ := g.Step(now.Add(MasterDownInterval(time.Second, 100)), -1, TimerExpired{})
	wantStates(t, g, StateMaster, StateMaster, StateMaster)
	if pcs := partitionChanges(acts); len(pcs) != 0 {
		t.Errorf("partition reported on a complete loss: %+v", pcs)
	}
}

// A priority-0 advert on one member means the master node is leaving:
// the group takes over in Skew_Time even though the other member heard
// the master a moment ago.
func TestSyncGroupPriorityZeroOverridesHearing(t *testing.T) {
	g, now := backupGroup(t)
	now = now.Add(500 * time.Millisecond)
	_, next := g.Step(now, 1, AdvertReceived{Priority: 0, Src: higherIP})
	acts, _ := g.Step(next, -1, TimerExpired{})
	wantStates(t, g, StateMaster, StateMaster, StateMaster)
	if next.Sub(now) != SkewTime(100) {
		t.Errorf("takeover after %v, want Skew_Time", next.Sub(now))
	}
	if pcs := partitionChanges(acts); len(pcs) != 0 {
		t.Errorf("partition reported: %+v", pcs)
	}
}

// While preemption is held, a lower-priority master is obeyed; once
// released it is preempted one Master_Down_Interval after its next advert.
func TestSyncGroupPreemptHold(t *testing.T) {
	g := testGroup(t, 150, 150)
	g.SetPreemptHold(true)
	g.Step(t0, -1, Startup{})
	now := t0
	var next time.Time
	held := 0
	for range 20 {
		now = now.Add(time.Second)
		for m := range 2 {
			var acts []Action
			acts, next = g.Step(now, m, AdvertReceived{Priority: 100, Src: lowerIP})
			for _, a := range acts {
				if _, ok := a.(PreemptHeld); ok {
					held++
				}
			}
		}
		if !next.After(now) {
			t.Fatalf("deadline %v not after now", next)
		}
		if acts, _ := g.Step(now.Add(10*time.Millisecond), -1, TimerExpired{}); masterTransitions(acts) != 0 {
			t.Fatal("preempted while held")
		}
	}
	if held != 40 {
		t.Errorf("%d PreemptHeld actions, want 40", held)
	}
	wantStates(t, g, StateBackup, StateBackup, StateBackup)
	g.SetPreemptHold(false)
	now = now.Add(time.Second)
	g.Step(now, 0, AdvertReceived{Priority: 100, Src: lowerIP})
	_, next = g.Step(now, 1, AdvertReceived{Priority: 100, Src: lowerIP})
	acts, _ := g.Step(next, -1, TimerExpired{})
	wantStates(t, g, StateMaster, StateMaster, StateMaster)
	if masterTransitions(acts) != 2 {
		t.Errorf("want both members to MASTER: %v", acts)
	}
	if d := next.Sub(now.Add(-time.Second)); d > MasterDownInterval(time.Second, 150)+time.Second {
		t.Errorf("preempted %v after release", d)
	}
}

// Without a master (the peer is gone) a held group still takes over.
func TestSyncGroupPreemptHoldWithoutMaster(t *testing.T) {
	g := testGroup(t, 150, 150)
	g.SetPreemptHold(true)
	_, next := g.Step(t0, -1, Startup{})
	g.Step(next, -1, TimerExpired{})
	wantStates(t, g, StateMaster, StateMaster, StateMaster)
}
