package vrrp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	t0       = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	localIP  = netip.MustParseAddr("192.168.0.2")
	lowerIP  = netip.MustParseAddr("192.168.0.1")
	higherIP = netip.MustParseAddr("192.168.0.3")
)

func testRouter(prio uint8, mods ...func(*RouterConfig)) *Router {
	cfg := RouterConfig{Priority: prio, AdvertInterval: time.Second, Preempt: true, LocalAddr: localIP}
	for _, m := range mods {
		m(&cfg)
	}
	return NewRouter(cfg)
}

// inState drives r into s through real events at t0.
func inState(t *testing.T, r *Router, s State) *Router {
	t.Helper()
	switch s {
	case StateInit:
	case StateBackup:
		r.Step(t0, Startup{})
	case StateMaster:
		r.Step(t0, Startup{})
		if r.State() != StateMaster {
			r.Step(t0.Add(time.Hour), TimerExpired{})
		}
	case StateFault:
		r.Step(t0, Startup{})
		r.Step(t0, LinkChanged{Up: false})
	}
	if r.State() != s {
		t.Fatalf("setup: router in %v, want %v", r.State(), s)
	}
	return r
}

// TestRouterTransitions has one row per transition of the state machine
// (RFC 3768 §6.4) plus fwpair's FAULT, preempt and priority extensions.
func TestRouterTransitions(t *testing.T) {
	const sec = time.Second
	hour := t0.Add(time.Hour) // when the router was driven to Master through its timer
	tests := []struct {
		name      string
		prio      uint8
		mod       func(*RouterConfig)
		from      State
		now       time.Time
		ev        Event
		want      State
		wantActs  []Action
		wantNext  time.Time // zero: not checked unless checkNext
		checkNext bool
	}{
		{
			name: "6.4.1 startup owner goes master", prio: 255, from: StateInit, now: t0, ev: Startup{},
			want:     StateMaster,
			wantActs: []Action{SendAdvert{Priority: 255}, StateChange{From: StateInit, To: StateMaster, Reason: "startup as address owner"}},
			wantNext: t0.Add(sec), checkNext: true,
		},
		{
			name: "6.4.1 startup backup arms master down", prio: 100, from: StateInit, now: t0, ev: Startup{},
			want:     StateBackup,
			wantActs: []Action{StateChange{From: StateInit, To: StateBackup, Reason: "startup"}},
			wantNext: t0.Add(MasterDownInterval(sec, 100)), checkNext: true,
		},
		{
			name: "6.4.2-4 backup shutdown", prio: 100, from: StateBackup, now: t0, ev: Shutdown{},
			want:      StateInit,
			wantActs:  []Action{StateChange{From: StateBackup, To: StateInit, Reason: "shutdown"}},
			checkNext: true,
		},
		{
			name: "6.4.2-5 master down timer fires", prio: 100, from: StateBackup, now: t0.Add(MasterDownInterval(sec, 100)), ev: TimerExpired{},
			want:     StateMaster,
			wantActs: []Action{SendAdvert{Priority: 100}, StateChange{From: StateBackup, To: StateMaster, Reason: "master down timer expired"}},
			wantNext: t0.Add(MasterDownInterval(sec, 100) + sec), checkNext: true,
		},
		{
			name: "backup early timer is a no-op", prio: 100, from: StateBackup, now: t0.Add(sec), ev: TimerExpired{},
			want: StateBackup, wantNext: t0.Add(MasterDownInterval(sec, 100)), checkNext: true,
		},
		{
			name: "6.4.2-6 backup priority 0 shortens to skew time", prio: 100, from: StateBackup, now: t0.Add(sec),
			ev:   AdvertReceived{Priority: 0, Src: higherIP},
			want: StateBackup, wantNext: t0.Add(sec + SkewTime(100)), checkNext: true,
		},
		{
			name: "6.4.2-7 backup higher priority resets timer", prio: 100, from: StateBackup, now: t0.Add(2 * sec),
			ev:   AdvertReceived{Priority: 150, Src: lowerIP},
			want: StateBackup, wantNext: t0.Add(2*sec + MasterDownInterval(sec, 100)), checkNext: true,
		},
		{
			name: "6.4.2-7 backup equal priority resets timer, no tie-break", prio: 100, from: StateBackup, now: t0.Add(2 * sec),
			ev:   AdvertReceived{Priority: 100, Src: lowerIP},
			want: StateBackup, wantNext: t0.Add(2*sec + MasterDownInterval(sec, 100)), checkNext: true,
		},
		{
			name: "6.4.2-7 backup without preempt resets timer on lower priority", prio: 100, mod: func(c *RouterConfig) { c.Preempt = false },
			from: StateBackup, now: t0.Add(2 * sec), ev: AdvertReceived{Priority: 50, Src: lowerIP},
			want: StateBackup, wantNext: t0.Add(2*sec + MasterDownInterval(sec, 100)), checkNext: true,
		},
		{
			name: "6.4.2-8 backup with preempt discards lower priority", prio: 100, from: StateBackup, now: t0.Add(2 * sec),
			ev:   AdvertReceived{Priority: 50, Src: higherIP},
			want: StateBackup, wantNext: t0.Add(MasterDownInterval(sec, 100)), checkNext: true,
		},
		{
			name: "preempt delay tolerates a lower priority master at first", prio: 100, mod: func(c *RouterConfig) { c.PreemptDelay = 10 * sec },
			from: StateBackup, now: t0.Add(2 * sec), ev: AdvertReceived{Priority: 50, Src: lowerIP},
			want: StateBackup, wantNext: t0.Add(2*sec + MasterDownInterval(sec, 100)), checkNext: true,
		},
		{
			name: "backup ignores link up", prio: 100, from: StateBackup, now: t0, ev: LinkChanged{Up: true},
			want: StateBackup,
		},
		{
			name: "backup link down goes fault", prio: 100, from: StateBackup, now: t0, ev: LinkChanged{Up: false},
			want:      StateFault,
			wantActs:  []Action{StateChange{From: StateBackup, To: StateFault, Reason: "link down"}},
			checkNext: true,
		},
		{
			name: "6.4.3-5 master shutdown sends priority 0", prio: 100, from: StateMaster, now: hour, ev: Shutdown{},
			want:      StateInit,
			wantActs:  []Action{SendAdvert{Priority: 0}, StateChange{From: StateMaster, To: StateInit, Reason: "shutdown"}},
			checkNext: true,
		},
		{
			name: "6.4.3-6 adver timer sends and re-arms", prio: 100, from: StateMaster, now: hour.Add(sec), ev: TimerExpired{},
			want:     StateMaster,
			wantActs: []Action{SendAdvert{Priority: 100}},
			wantNext: hour.Add(2 * sec), checkNext: true,
		},
		{
			name: "6.4.3-7 master answers priority 0", prio: 100, from: StateMaster, now: hour.Add(sec / 2), ev: AdvertReceived{Priority: 0, Src: higherIP},
			want:     StateMaster,
			wantActs: []Action{SendAdvert{Priority: 100}},
			wantNext: hour.Add(sec/2 + sec), checkNext: true,
		},
		{
			name: "6.4.3-8 master yields to higher priority", prio: 100, from: StateMaster, now: hour, ev: AdvertReceived{Priority: 101, Src: lowerIP},
			want:     StateBackup,
			wantActs: []Action{SendAdvert{Priority: 100}, StateChange{From: StateMaster, To: StateBackup, Reason: "higher priority advert received"}},
			wantNext: hour.Add(MasterDownInterval(sec, 100)), checkNext: true,
		},
		{
			name: "6.4.3-8 master yields to equal priority from higher address", prio: 100, from: StateMaster, now: hour, ev: AdvertReceived{Priority: 100, Src: higherIP},
			want:     StateBackup,
			wantActs: []Action{SendAdvert{Priority: 100}, StateChange{From: StateMaster, To: StateBackup, Reason: "equal priority advert from higher address received"}},
		},
		{
			name: "6.4.3-9 master keeps role on equal priority from lower address", prio: 100, from: StateMaster, now: hour, ev: AdvertReceived{Priority: 100, Src: lowerIP},
			want:     StateMaster,
			wantActs: []Action{SendAdvert{Priority: 100}, Reannounce{}},
		},
		{
			name: "6.4.3-9 master answers lower priority and re-announces", prio: 100, from: StateMaster, now: hour, ev: AdvertReceived{Priority: 50, Src: higherIP},
			want:     StateMaster,
			wantActs: []Action{SendAdvert{Priority: 100}, Reannounce{}},
			wantNext: hour.Add(sec), checkNext: true,
		},
		{
			name: "master link down sends priority 0 and goes fault", prio: 100, from: StateMaster, now: hour, ev: LinkChanged{Up: false},
			want:      StateFault,
			wantActs:  []Action{SendAdvert{Priority: 0}, StateChange{From: StateMaster, To: StateFault, Reason: "link down"}},
			checkNext: true,
		},
		{
			name: "master address failure sends priority 0 and holds fault", prio: 100, from: StateMaster, now: hour, ev: AddressFailure{},
			want:     StateFault,
			wantActs: []Action{SendAdvert{Priority: 0}, StateChange{From: StateMaster, To: StateFault, Reason: "virtual addresses could not be installed"}},
			wantNext: hour.Add(MasterDownInterval(sec, 100)), checkNext: true,
		},
		{
			name: "fault link up returns to backup", prio: 100, from: StateFault, now: t0.Add(sec), ev: LinkChanged{Up: true},
			want:     StateBackup,
			wantActs: []Action{StateChange{From: StateFault, To: StateBackup, Reason: "link up"}},
			wantNext: t0.Add(sec + MasterDownInterval(sec, 100)), checkNext: true,
		},
		{
			name: "owner fault link up returns to master", prio: 255, from: StateFault, now: t0.Add(sec), ev: LinkChanged{Up: true},
			want:     StateMaster,
			wantActs: []Action{SendAdvert{Priority: 255}, StateChange{From: StateFault, To: StateMaster, Reason: "link up as address owner"}},
		},
		{
			name: "fault ignores adverts", prio: 100, from: StateFault, now: t0, ev: AdvertReceived{Priority: 0, Src: higherIP},
			want: StateFault,
		},
		{
			name: "fault shutdown goes init", prio: 100, from: StateFault, now: t0, ev: Shutdown{},
			want:     StateInit,
			wantActs: []Action{StateChange{From: StateFault, To: StateInit, Reason: "shutdown"}},
		},
		{
			name: "init ignores adverts and timers", prio: 100, from: StateInit, now: t0, ev: AdvertReceived{Priority: 0},
			want: StateInit, checkNext: true,
		},
		{
			name: "startup before any link report counts the link as up", prio: 100, from: StateInit, now: t0, ev: Startup{},
			want:     StateBackup,
			wantActs: []Action{StateChange{From: StateInit, To: StateBackup, Reason: "startup"}},
		},
		{
			name: "priority change applies to the next advert", prio: 100, from: StateMaster, now: hour, ev: PriorityChanged{Priority: 20},
			want: StateMaster,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mods := []func(*RouterConfig){}
			if tc.mod != nil {
				mods = append(mods, tc.mod)
			}
			r := inState(t, testRouter(tc.prio, mods...), tc.from)
			acts, next := r.Step(tc.now, tc.ev)
			if r.State() != tc.want {
				t.Errorf("state %v, want %v", r.State(), tc.want)
			}
			if diff := cmp.Diff(tc.wantActs, acts); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
			if tc.checkNext && !next.Equal(tc.wantNext) {
				t.Errorf("next %v, want %v", next.Sub(t0), tc.wantNext.Sub(t0))
			}
		})
	}
}

func TestRouterStartupWithLinkDown(t *testing.T) {
	r := testRouter(100)
	r.Step(t0, LinkChanged{Up: false})
	if acts, _ := r.Step(t0, Startup{}); r.State() != StateFault {
		t.Fatalf("state %v after startup with link down, actions %v", r.State(), acts)
	}
	r.Step(t0.Add(time.Second), LinkChanged{Up: true})
	if r.State() != StateBackup {
		t.Errorf("state %v after link up, want BACKUP", r.State())
	}
}

func TestRouterPreemptDelay(t *testing.T) {
	r := inState(t, testRouter(100, func(c *RouterConfig) { c.PreemptDelay = 5 * time.Second }), StateBackup)
	// A lower-priority master advertises every second.
	var now time.Time
	for i := 1; i < 30 && r.State() == StateBackup; i++ {
		now = t0.Add(time.Duration(i) * time.Second)
		r.Step(now, AdvertReceived{Priority: 50, Src: lowerIP})
		r.Step(now.Add(time.Second-time.Nanosecond), TimerExpired{})
	}
	// Tolerated from t0+1s to t0+6s, then Master_Down_Interval after the
	// last accepted advert (t0+5s): t0+8.609s, checked on the next tick.
	if r.State() != StateMaster {
		t.Fatalf("never preempted")
	}
	if took := now.Sub(t0); took < 8*time.Second || took > 10*time.Second {
		t.Errorf("preempted at t0+%v, want about t0+9s (5s delay + Master_Down_Interval)", took)
	}
}

func TestRouterPriorityChangeAffectsAdverts(t *testing.T) {
	r := inState(t, testRouter(100), StateMaster)
	r.Step(t0.Add(time.Hour), PriorityChanged{Priority: 20})
	acts, _ := r.Step(t0.Add(time.Hour+time.Second), TimerExpired{})
	if diff := cmp.Diff([]Action{SendAdvert{Priority: 20}}, acts); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Priority 0 is not a priority: it is ignored.
	r.Step(t0.Add(time.Hour), PriorityChanged{Priority: 0})
	if r.Priority() != 20 {
		t.Errorf("priority %d after PriorityChanged{0}", r.Priority())
	}
}

func TestRouterAddressFailureHoldDown(t *testing.T) {
	r := inState(t, testRouter(100), StateMaster)
	now := t0.Add(time.Hour)
	_, next := r.Step(now, AddressFailure{})
	if r.State() != StateFault {
		t.Fatalf("state %v", r.State())
	}
	r.Step(next.Add(-time.Millisecond), TimerExpired{})
	if r.State() != StateFault {
		t.Fatalf("left FAULT before the hold-down ended")
	}
	r.Step(next, TimerExpired{})
	if r.State() != StateBackup {
		t.Fatalf("state %v after hold-down, want BACKUP", r.State())
	}
}

// A timer armed in one state must not act in the next (ze's generation
// counters solve the same problem; here the machine compares its own
// deadlines with now).
func TestRouterStaleTimerAfterTransition(t *testing.T) {
	r := inState(t, testRouter(100), StateMaster)
	now := t0.Add(time.Hour)
	_, oldNext := r.Step(now, TimerExpired{}) // Adver_Timer armed for now+1s
	r.Step(now.Add(time.Second/2), AdvertReceived{Priority: 200, Src: lowerIP})
	if r.State() != StateBackup {
		t.Fatalf("state %v", r.State())
	}
	if acts, _ := r.Step(oldNext, TimerExpired{}); len(acts) != 0 || r.State() != StateBackup {
		t.Errorf("stale Adver_Timer expiry in BACKUP: %v, state %v", acts, r.State())
	}
	// And the stale Master_Down deadline of an earlier BACKUP period.
	r2 := inState(t, testRouter(100), StateBackup)
	_, staleDown := r2.Step(t0, TimerExpired{})
	r2.Step(t0.Add(time.Second), LinkChanged{Up: false})
	r2.Step(t0.Add(2*time.Second), LinkChanged{Up: true}) // new Master_Down from t0+2s
	if r2.Step(staleDown, TimerExpired{}); r2.State() != StateBackup {
		t.Errorf("stale Master_Down expiry made it %v", r2.State())
	}
}
