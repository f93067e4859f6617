package vrrp

import (
	"testing"
	"time"
)

func v3Router(prio uint8, interval time.Duration) *Router {
	return testRouter(prio, func(c *RouterConfig) {
		c.Version = Version3
		c.AdvertInterval = interval
	})
}

// RFC 9568 §6.4: a VRRPv3 backup times the master out from the interval
// the master advertises, not from its own; v2 ignores the field.
func TestRouterV3LearnsMasterInterval(t *testing.T) {
	const own, theirs = 50 * time.Millisecond, 200 * time.Millisecond
	r := inState(t, v3Router(100, own), StateBackup)
	if _, next := r.Step(t0, TimerExpired{}); next != t0.Add(MasterDownIntervalV3(own, 100)) {
		t.Fatalf("startup deadline %v, want own Master_Down_Interval %v", next.Sub(t0), MasterDownIntervalV3(own, 100))
	}
	now := t0.Add(10 * time.Millisecond)
	_, next := r.Step(now, AdvertReceived{Priority: 150, Src: higherIP, Interval: theirs})
	if want := now.Add(MasterDownIntervalV3(theirs, 100)); next != want {
		t.Errorf("after the master's advert: deadline in %v, want %v (3 x %v + skew)", next.Sub(now), want.Sub(now), theirs)
	}
	// Priority 0: Skew_Time from the master's interval too.
	now = now.Add(theirs)
	if _, next = r.Step(now, AdvertReceived{Priority: 0, Src: higherIP, Interval: theirs}); next != now.Add(SkewTimeV3(100, theirs)) {
		t.Errorf("priority 0: deadline in %v, want Skew_Time %v", next.Sub(now), SkewTimeV3(100, theirs))
	}

	// A lower-priority master that we will preempt teaches nothing.
	r = inState(t, v3Router(100, own), StateBackup)
	r.Step(t0, AdvertReceived{Priority: 50, Src: lowerIP, Interval: theirs})
	if _, next := r.Step(t0, TimerExpired{}); next != t0.Add(MasterDownIntervalV3(own, 100)) {
		t.Errorf("lower-priority advert changed the timer to %v", next.Sub(t0))
	}

	// VRRPv2 ignores the field: Master_Down_Interval is always its own.
	r2 := inState(t, testRouter(100), StateBackup)
	if _, next := r2.Step(t0, AdvertReceived{Priority: 150, Src: higherIP, Interval: theirs}); next != t0.Add(MasterDownInterval(time.Second, 100)) {
		t.Errorf("v2 deadline %v", next.Sub(t0))
	}
}

// A v3 master that yields to a better one adopts that one's interval.
func TestRouterV3MasterYieldsWithTheirInterval(t *testing.T) {
	const own, theirs = 50 * time.Millisecond, time.Second
	r := inState(t, v3Router(100, own), StateMaster)
	now := t0.Add(2 * time.Hour)
	acts, next := r.Step(now, AdvertReceived{Priority: 200, Src: lowerIP, Interval: theirs})
	if r.State() != StateBackup {
		t.Fatalf("state %v after a higher-priority advert (acts %v)", r.State(), acts)
	}
	if want := now.Add(MasterDownIntervalV3(theirs, 100)); next != want {
		t.Errorf("deadline in %v, want %v", next.Sub(now), want.Sub(now))
	}
	// Taking over again: adverts at our own interval, and the next yield
	// without an advert (sync group) starts from our own interval.
	now = next
	_, next = r.Step(now, TimerExpired{})
	if r.State() != StateMaster || next != now.Add(own) {
		t.Fatalf("after master down: %v, next advert in %v, want MASTER and %v", r.State(), next.Sub(now), own)
	}
	_, next = r.Step(now, groupYield{reason: "test"})
	if want := now.Add(MasterDownIntervalV3(own, 100)); next != want {
		t.Errorf("after a group yield: deadline in %v, want %v", next.Sub(now), want.Sub(now))
	}
}

// Centisecond adverts: a MASTER advertises every interval and a BACKUP
// that hears it in time never takes over; three missed adverts plus skew
// make it take over, and not earlier.
func TestRouterV3Centiseconds(t *testing.T) {
	const iv = 10 * time.Millisecond
	m := inState(t, v3Router(200, iv), StateMaster)
	b := inState(t, v3Router(100, iv), StateBackup)
	now := t0.Add(time.Hour)
	m.Step(now, TimerExpired{}) // re-arm from now
	for i := range 100 {
		acts, next := m.Step(now, TimerExpired{})
		if i > 0 && (len(acts) != 1 || next != now.Add(iv)) {
			t.Fatalf("advert %d: acts %v next %v", i, acts, next.Sub(now))
		}
		b.Step(now, AdvertReceived{Priority: 200, Src: higherIP, Interval: iv})
		b.Step(now, TimerExpired{})
		if b.State() != StateBackup {
			t.Fatalf("backup took over while adverts arrived on time (advert %d)", i)
		}
		now = next
	}
	last := now.Add(-iv)
	mdi := MasterDownIntervalV3(iv, 100)
	b.Step(last.Add(mdi-time.Microsecond), TimerExpired{})
	if b.State() != StateBackup {
		t.Fatal("took over before Master_Down_Interval")
	}
	b.Step(last.Add(mdi), TimerExpired{})
	if b.State() != StateMaster {
		t.Fatalf("did not take over after Master_Down_Interval %v", mdi)
	}
}
