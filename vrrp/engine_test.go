package vrrp_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fwpair/fwpair/vrrp"
	"github.com/fwpair/fwpair/vrrp/vrrptest"
)

var (
	vip0 = netip.MustParseAddr("192.168.0.100")
	vip1 = netip.MustParseAddr("192.168.1.100")
)

// pairConfig is the reference pair: one instance per LAN, in one group.
func pairConfig(prio uint8, preempt bool) vrrp.Config {
	return vrrp.Config{Instances: []vrrp.InstanceConfig{
		{Name: "vi_lan0", Interface: "eth0", VRID: 51, Priority: prio, Preempt: preempt,
			VIPs: []vrrp.VIP{{Prefix: netip.PrefixFrom(vip0, 24), Label: "eth0:vip"}}},
		{Name: "vi_lan1", Interface: "eth1", VRID: 52, Priority: prio, Preempt: preempt,
			VIPs: []vrrp.VIP{{Prefix: netip.PrefixFrom(vip1, 24)}}},
	}}
}

// simLab is two firewalls on two LANs in an in-memory network.
type simLab struct {
	net      *vrrptest.Network
	fw1, fw2 *vrrptest.Node
}

func newSimLab() *simLab {
	n := vrrptest.NewNetwork()
	return &simLab{
		net: n,
		fw1: n.Node("fw1").Attach("eth0", "lan0", netip.MustParseAddr("192.168.0.1")).Attach("eth1", "lan1", netip.MustParseAddr("192.168.1.1")),
		fw2: n.Node("fw2").Attach("eth0", "lan0", netip.MustParseAddr("192.168.0.2")).Attach("eth1", "lan1", netip.MustParseAddr("192.168.1.2")),
	}
}

// running is a Group started by start.
type running struct {
	*vrrp.Group
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, valid once done is closed
}

func newRunning(g *vrrp.Group, ctx context.Context) *running {
	ctx, cancel := context.WithCancel(ctx)
	r := &running{Group: g, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = g.Run(ctx)
		close(r.done)
	}()
	return r
}

// stop stops the group gracefully and returns Run's error.
func (r *running) stop() error {
	r.cancel()
	<-r.done
	return r.err
}

// kill stops it as SIGKILL would.
func (r *running) kill() error {
	r.Kill()
	<-r.done
	return r.err
}

func start(t *testing.T, nd *vrrptest.Node, cfg vrrp.Config, hooks vrrp.Callbacks) *running {
	t.Helper()
	opts := nd.Options()
	opts.Callbacks = hooks
	g, err := vrrp.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	r := newRunning(g, t.Context())
	t.Cleanup(func() { _ = r.stop() })
	<-g.Ready()
	return r
}

// waitFor polls cond every 10 ms of (fake) time until it holds or the
// deadline passes, and returns how long it took.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) <= within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("not within %v: %s", within, what)
	return 0
}

func groupState(g *vrrp.Group) vrrp.State { return g.Status().State }

func holdsBoth(nd *vrrptest.Node) bool {
	return slices.Equal(nd.VIPs(), []netip.Addr{vip0, vip1})
}

// elect starts fw1 (150) and fw2 (100) and waits for fw1 to be MASTER.
func elect(t *testing.T, lab *simLab, preempt bool) (fw1, fw2 *running) {
	t.Helper()
	fw1 = start(t, lab.fw1, pairConfig(150, preempt), vrrp.Callbacks{})
	fw2 = start(t, lab.fw2, pairConfig(100, preempt), vrrp.Callbacks{})
	waitFor(t, 5*time.Second, "fw1 MASTER", func() bool { return groupState(fw1.Group) == vrrp.StateMaster && holdsBoth(lab.fw1) })
	synctest.Wait()
	if s := groupState(fw2.Group); s != vrrp.StateBackup {
		t.Fatalf("fw2 %v, want BACKUP", s)
	}
	if v := lab.fw2.VIPs(); len(v) != 0 {
		t.Fatalf("fw2 holds %v", v)
	}
	return fw1, fw2
}

func TestEngineElection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		start0 := time.Now()
		fw1, fw2 := elect(t, lab, true)
		// Both start in BACKUP; fw1's Master_Down_Interval (3.414 s) runs out first.
		if took := time.Since(start0); took < vrrp.MasterDownInterval(time.Second, 150) || took > 4*time.Second {
			t.Errorf("election took %v", took)
		}
		// Stay stable for a while: adverts keep fw2 in BACKUP.
		time.Sleep(20 * time.Second)
		if groupState(fw1.Group) != vrrp.StateMaster || groupState(fw2.Group) != vrrp.StateBackup {
			t.Errorf("after 20 s: fw1 %v fw2 %v", groupState(fw1.Group), groupState(fw2.Group))
		}
		st := fw2.Status()
		for _, in := range st.Instances {
			if in.Counters.AdvertsReceived < 19 {
				t.Errorf("fw2 %s received %d adverts", in.Name, in.Counters.AdvertsReceived)
			}
			if in.State != vrrp.StateBackup {
				t.Errorf("fw2 %s %v", in.Name, in.State)
			}
		}
		if n := len(lab.fw1.GARPs()); n != 2*vrrp.DefaultGARPCount {
			t.Errorf("fw1 sent %d GARP rounds, want %d (5 per interface)", n, 2*vrrp.DefaultGARPCount)
		}
	})
}

func TestEngineCrashTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw1, fw2 := elect(t, lab, true)
		time.Sleep(500 * time.Millisecond) // mid-way between two adverts
		if err := fw1.kill(); !errors.Is(err, vrrp.ErrKilled) {
			t.Fatalf("Run after Kill: %v", err)
		}
		if !holdsBoth(lab.fw1) {
			t.Errorf("killed fw1 removed its VIPs: %v", lab.fw1.VIPs())
		}
		mdi := vrrp.MasterDownInterval(time.Second, 100)
		took := waitFor(t, mdi+time.Second, "fw2 takes over", func() bool { return holdsBoth(lab.fw2) })
		// The last advert left fw1 0.5 s before the kill.
		if took > mdi || took < mdi-time.Second {
			t.Errorf("takeover %v after the kill, want within Master_Down_Interval %v", took, mdi)
		}
		if groupState(fw2.Group) != vrrp.StateMaster {
			t.Errorf("fw2 %v", groupState(fw2.Group))
		}
	})
}

func TestEngineGracefulTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw1, fw2 := elect(t, lab, true)
		time.Sleep(300 * time.Millisecond)
		if err := fw1.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if v := lab.fw1.VIPs(); len(v) != 0 {
			t.Errorf("fw1 still holds %v after a graceful stop", v)
		}
		skew := vrrp.SkewTime(100)
		took := waitFor(t, skew+time.Second, "fw2 takes over", func() bool { return holdsBoth(lab.fw2) })
		if took > skew+10*time.Millisecond {
			t.Errorf("graceful takeover %v, want Skew_Time %v", took, skew)
		}
		for _, in := range fw1.Status().Instances {
			if in.Counters.PriorityZeroSent != 1 {
				t.Errorf("fw1 %s sent %d priority-0 adverts", in.Name, in.Counters.PriorityZeroSent)
			}
		}
		for _, in := range fw2.Status().Instances {
			if in.Counters.PriorityZeroReceived != 1 {
				t.Errorf("fw2 %s received %d priority-0 adverts", in.Name, in.Counters.PriorityZeroReceived)
			}
		}
	})
}

func TestEnginePreemption(t *testing.T) {
	for _, preempt := range []bool{true, false} {
		t.Run(fmt.Sprintf("preempt=%v", preempt), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				lab := newSimLab()
				fw2 := start(t, lab.fw2, pairConfig(100, preempt), vrrp.Callbacks{})
				waitFor(t, 5*time.Second, "fw2 MASTER alone", func() bool { return holdsBoth(lab.fw2) })
				fw1 := start(t, lab.fw1, pairConfig(150, preempt), vrrp.Callbacks{})
				if preempt {
					took := waitFor(t, 5*time.Second, "fw1 preempts", func() bool {
						return holdsBoth(lab.fw1) && len(lab.fw2.VIPs()) == 0
					})
					if mdi := vrrp.MasterDownInterval(time.Second, 150); took < mdi {
						t.Errorf("preempted after %v, before Master_Down_Interval %v", took, mdi)
					}
					synctest.Wait()
					if groupState(fw2.Group) != vrrp.StateBackup {
						t.Errorf("fw2 %v", groupState(fw2.Group))
					}
					return
				}
				time.Sleep(20 * time.Second)
				if groupState(fw1.Group) != vrrp.StateBackup || !holdsBoth(lab.fw2) || len(lab.fw1.VIPs()) != 0 {
					t.Errorf("without preemption: fw1 %v %v, fw2 %v %v",
						groupState(fw1.Group), lab.fw1.VIPs(), groupState(fw2.Group), lab.fw2.VIPs())
				}
			})
		})
	}
}

func TestEngineSplitBrainHeals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw1, fw2 := elect(t, lab, true)
		lab.net.Partition("lan0", true)
		lab.net.Partition("lan1", true)
		waitFor(t, 5*time.Second, "split brain", func() bool { return holdsBoth(lab.fw2) })
		if !holdsBoth(lab.fw1) {
			t.Fatalf("fw1 lost its VIPs during the partition")
		}
		garpsBefore := len(lab.fw1.GARPs())
		lab.net.Partition("lan0", false)
		lab.net.Partition("lan1", false)
		took := waitFor(t, 3*time.Second, "fw2 yields", func() bool { return len(lab.fw2.VIPs()) == 0 })
		if took > 1100*time.Millisecond {
			t.Errorf("healing took %v, want one advert interval", took)
		}
		synctest.Wait()
		if groupState(fw1.Group) != vrrp.StateMaster || groupState(fw2.Group) != vrrp.StateBackup || !holdsBoth(lab.fw1) {
			t.Errorf("after healing: fw1 %v fw2 %v", groupState(fw1.Group), groupState(fw2.Group))
		}
		// fw1 heard a lower-priority master and re-announced its VIPs.
		waitFor(t, 2*time.Second, "fw1 re-announces", func() bool { return len(lab.fw1.GARPs()) > garpsBefore })
	})
}

// Only fw1's eth0 link fails. fw1 goes FAULT and sends priority 0 on
// eth1; fw2's eth1 instance takes over in Skew_Time and takes eth0 with it
// at once, instead of waiting for eth0's own Master_Down_Interval.
func TestEngineGroupTakesOverAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw1, fw2 := elect(t, lab, true)
		time.Sleep(100 * time.Millisecond)
		lab.fw1.SetLink("eth0", false)
		took := waitFor(t, 5*time.Second, "fw2 owns both VIPs", func() bool { return holdsBoth(lab.fw2) })
		if skew := vrrp.SkewTime(100); took > skew+50*time.Millisecond {
			t.Errorf("link-down takeover %v, want about Skew_Time %v", took, skew)
		}
		waitFor(t, time.Second, "fw1 FAULT without VIPs", func() bool {
			return groupState(fw1.Group) == vrrp.StateFault && len(lab.fw1.VIPs()) == 0
		})
		st := fw1.Status()
		if st.Instances[0].State != vrrp.StateFault || st.Instances[1].State != vrrp.StateBackup {
			t.Errorf("fw1 instances %v %v, want FAULT BACKUP", st.Instances[0].State, st.Instances[1].State)
		}
		// Link back: fw1 is BACKUP, then preempts (priority 150).
		lab.fw1.SetLink("eth0", true)
		waitFor(t, 5*time.Second, "fw1 back as MASTER", func() bool { return holdsBoth(lab.fw1) && len(lab.fw2.VIPs()) == 0 })
		synctest.Wait()
		if groupState(fw2.Group) != vrrp.StateBackup {
			t.Errorf("fw2 %v", groupState(fw2.Group))
		}
	})
}

func TestEngineHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		var mu sync.Mutex
		var after []vrrp.Transition
		release := make(chan struct{})
		hookStarted := make(chan vrrp.Transition, 1)
		hooks := vrrp.Callbacks{
			BeforeMaster: func(ctx context.Context, tr vrrp.Transition) error {
				hookStarted <- tr
				select {
				case <-release:
					return errors.New("commit failed") // VIPs are added anyway
				case <-ctx.Done():
					return ctx.Err()
				}
			},
			AfterTransition: func(tr vrrp.Transition) {
				mu.Lock()
				after = append(after, tr)
				mu.Unlock()
			},
		}
		fw1 := start(t, lab.fw1, pairConfig(150, true), hooks)
		tr := <-hookStarted
		if tr.From != vrrp.StateBackup || tr.To != vrrp.StateMaster || tr.Reason != "vi_lan0: master down timer expired" {
			t.Errorf("BeforeMaster got %+v", tr)
		}
		// A slow commit: MASTER adverts keep flowing, no VIP yet, and a
		// backup that starts now stays BACKUP.
		fw2 := start(t, lab.fw2, pairConfig(100, true), vrrp.Callbacks{})
		time.Sleep(10 * time.Second)
		if v := lab.fw1.VIPs(); len(v) != 0 {
			t.Fatalf("VIPs %v added before BeforeMaster returned", v)
		}
		if groupState(fw1.Group) != vrrp.StateMaster || groupState(fw2.Group) != vrrp.StateBackup {
			t.Fatalf("fw1 %v fw2 %v while the hook runs", groupState(fw1.Group), groupState(fw2.Group))
		}
		close(release)
		waitFor(t, time.Second, "VIPs after the hook", func() bool { return holdsBoth(lab.fw1) })
		synctest.Wait()
		mu.Lock()
		if len(after) != 2 || after[0].To != vrrp.StateBackup || after[1].To != vrrp.StateMaster || !after[1].VIPsAdded {
			t.Errorf("AfterTransition calls %+v", after)
		}
		mu.Unlock()
		if len(lab.fw1.GARPs()) == 0 {
			t.Error("no GARP before AfterTransition(MASTER)")
		}
	})
}

// If the group leaves MASTER while BeforeMaster runs, the hook's context
// is cancelled and the VIPs are never added.
func TestEngineHookCancelledWhenLeavingMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		hookDone := make(chan error, 1)
		fw2 := start(t, lab.fw2, pairConfig(100, true), vrrp.Callbacks{
			BeforeMaster: func(ctx context.Context, _ vrrp.Transition) error {
				<-ctx.Done()
				hookDone <- ctx.Err()
				return ctx.Err()
			},
		})
		waitFor(t, 5*time.Second, "fw2 MASTER", func() bool { return groupState(fw2.Group) == vrrp.StateMaster })
		start(t, lab.fw1, pairConfig(150, true), vrrp.Callbacks{})
		waitFor(t, 5*time.Second, "fw1 MASTER", func() bool { return holdsBoth(lab.fw1) })
		if err := <-hookDone; !errors.Is(err, context.Canceled) {
			t.Errorf("hook ctx: %v", err)
		}
		synctest.Wait()
		for _, ev := range lab.fw2.VIPEvents() {
			if ev.Added {
				t.Errorf("fw2 added VIPs although it left MASTER during the hook: %+v", ev)
			}
		}
	})
}

func TestEngineVIPFailureGoesFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		lab.fw1.FailAddVIPs(errors.New("EPERM"))
		fw1 := start(t, lab.fw1, pairConfig(150, true), vrrp.Callbacks{})
		fw2 := start(t, lab.fw2, pairConfig(100, true), vrrp.Callbacks{})
		waitFor(t, 10*time.Second, "fw2 takes over from the failed fw1", func() bool { return holdsBoth(lab.fw2) })
		st := fw1.Status()
		if st.Instances[0].Counters.VIPFailures == 0 {
			t.Error("VIP failure not counted")
		}
		if groupState(fw1.Group) == vrrp.StateMaster {
			t.Error("fw1 claims MASTER without its VIPs")
		}
		// Once adding works again, fw1 (priority 150) comes back.
		lab.fw1.FailAddVIPs(nil)
		waitFor(t, 15*time.Second, "fw1 recovers", func() bool { return holdsBoth(lab.fw1) && len(lab.fw2.VIPs()) == 0 })
		_ = fw2
	})
}

func TestEngineRemovesLeftoverVIPs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		cfg := pairConfig(100, true)
		lab.fw2.SetVIPs("eth0", cfg.Instances[0].VIPs)
		lab.fw2.SetVIPs("eth1", cfg.Instances[1].VIPs)
		start(t, lab.fw1, pairConfig(150, true), vrrp.Callbacks{})
		start(t, lab.fw2, cfg, vrrp.Callbacks{})
		if v := lab.fw2.VIPs(); len(v) != 0 {
			t.Errorf("leftover VIPs %v still present when Ready", v)
		}
	})
}

func TestEngineUnicast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		uc := func(prio uint8, self, peer string) vrrp.Config {
			c := pairConfig(prio, true)
			c.Instances = c.Instances[:1]
			c.Instances[0].UnicastPeers = []netip.Addr{netip.MustParseAddr(peer)}
			c.Instances[0].UnicastSource = netip.MustParseAddr(self)
			return c
		}
		fw1 := start(t, lab.fw1, uc(150, "192.168.0.1", "192.168.0.2"), vrrp.Callbacks{})
		fw2 := start(t, lab.fw2, uc(100, "192.168.0.2", "192.168.0.1"), vrrp.Callbacks{})
		waitFor(t, 5*time.Second, "fw1 MASTER", func() bool { return groupState(fw1.Group) == vrrp.StateMaster })
		time.Sleep(5 * time.Second)
		if groupState(fw2.Group) != vrrp.StateBackup {
			t.Errorf("fw2 %v", groupState(fw2.Group))
		}
		if c := fw2.Status().Instances[0].Counters; c.AdvertsReceived < 4 || len(c.Discarded) != 0 {
			t.Errorf("fw2 counters %+v", c)
		}
	})
}

func TestEngineSetPriority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw1, _ := elect(t, lab, true)
		for _, name := range []string{"vi_lan0", "vi_lan1"} {
			if err := fw1.SetPriority(name, 50); err != nil {
				t.Fatal(err)
			}
		}
		if err := fw1.SetPriority("vi_lan0", 255); err == nil {
			t.Error("priority 255 accepted at runtime")
		}
		if err := fw1.SetPriority("nope", 10); err == nil {
			t.Error("unknown instance accepted")
		}
		// fw2 (100, preempt) now sees a lower-priority master and takes over.
		waitFor(t, 5*time.Second, "fw2 preempts", func() bool { return holdsBoth(lab.fw2) && len(lab.fw1.VIPs()) == 0 })
		if p := fw1.Status().Instances[0].Priority; p != 50 {
			t.Errorf("status priority %d", p)
		}
	})
}

// Bad packets are counted by reason on the interface (before the VRID is
// known) or on the instance, and never change the state.
func TestEngineDiscards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		cfg := pairConfig(100, true)
		cfg.Instances[0].AuthPassword = "secret12"
		fw2 := start(t, lab.fw2, cfg, vrrp.Callbacks{})
		peer := netip.MustParseAddr("192.168.0.9")
		good := vrrp.Advertisement{VRID: 51, Priority: 200, AuthType: vrrp.AuthSimple, AuthData: vrrp.SimplePassword("secret12"),
			AdvertInterval: 1, Addresses: []netip.Addr{vip0}}
		enc := func(a vrrp.Advertisement) []byte {
			b, err := a.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		meta := vrrp.RecvMeta{Src: peer, Dst: vrrp.GroupAddress, TTL: 255}
		with := func(f func(*vrrp.Advertisement)) []byte { a := good; f(&a); return enc(a) }
		bad := enc(good)
		bad[6]++
		lab.fw2.Inject("eth0", []byte{0x21, 0x33}, meta)
		lab.fw2.Inject("eth0", bad, meta)
		lab.fw2.Inject("eth0", with(func(a *vrrp.Advertisement) { a.VRID = 99 }), meta)
		lab.fw2.Inject("eth0", enc(good), vrrp.RecvMeta{Src: peer, Dst: vrrp.GroupAddress, TTL: 64})
		lab.fw2.Inject("eth0", with(func(a *vrrp.Advertisement) { a.AuthType = vrrp.AuthNone; a.AuthData = [8]byte{} }), meta)
		lab.fw2.Inject("eth0", with(func(a *vrrp.Advertisement) { a.AuthData = vrrp.SimplePassword("wrong") }), meta)
		lab.fw2.Inject("eth0", with(func(a *vrrp.Advertisement) { a.AdvertInterval = 2 }), meta)
		lab.fw2.Inject("eth0", enc(good), vrrp.RecvMeta{Src: netip.MustParseAddr("192.168.0.2"), Dst: vrrp.GroupAddress, TTL: 255})
		lab.fw2.Inject("eth0", enc(good), vrrp.RecvMeta{Src: peer, Dst: vrrp.GroupAddress, TTL: 255, IfIndex: 77})
		lab.fw2.Inject("eth0", with(func(a *vrrp.Advertisement) { a.Addresses = []netip.Addr{vip1} }), meta) // discarded (§7.1)
		synctest.Wait()
		st := fw2.Status()
		wantIface := map[string]uint64{"length": 1, "checksum": 1, "unknown_vrid": 1, "own_advert": 1, "wrong_interface": 1}
		wantInst := map[string]uint64{"ttl": 1, "auth_type": 1, "auth_failure": 1, "advert_interval": 1, "address_list": 1}
		if got := st.Interfaces[0].Counters.Discarded; !mapsEqual(got, wantIface) {
			t.Errorf("interface discards %v, want %v", got, wantIface)
		}
		in := st.Instances[0].Counters
		if !mapsEqual(in.Discarded, wantInst) {
			t.Errorf("instance discards %v, want %v", in.Discarded, wantInst)
		}
		if in.AdvertsReceived != 0 || in.AddressListMismatch != 1 {
			t.Errorf("received %d, mismatches %d; want 0, 1", in.AdvertsReceived, in.AddressListMismatch)
		}
		if len(vrrp.DiscardReasons()) != 15 {
			t.Errorf("DiscardReasons: %v", vrrp.DiscardReasons())
		}
	})
}

func mapsEqual(a, b map[string]uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestConfigValidate(t *testing.T) {
	good := pairConfig(100, true)
	if err := good.Validate(); err != nil {
		t.Fatalf("reference config: %v", err)
	}
	tests := map[string]func(*vrrp.Config){
		"no instances":     func(c *vrrp.Config) { c.Instances = nil },
		"duplicate name":   func(c *vrrp.Config) { c.Instances[1].Name = c.Instances[0].Name },
		"VRID 0":           func(c *vrrp.Config) { c.Instances[0].VRID = 0 },
		"duplicate VRID":   func(c *vrrp.Config) { c.Instances[1].Interface, c.Instances[1].VRID = "eth0", 51 },
		"fractional intvl": func(c *vrrp.Config) { c.Instances[0].AdvertInterval = 1500 * time.Millisecond },
		"no VIPs":          func(c *vrrp.Config) { c.Instances[0].VIPs = nil },
		"IPv6 VIP":         func(c *vrrp.Config) { c.Instances[0].VIPs[0].Prefix = netip.MustParsePrefix("2001:db8::1/128") },
		"bad label":        func(c *vrrp.Config) { c.Instances[0].VIPs[0].Label = "eth1:x" },
		"no interface":     func(c *vrrp.Config) { c.Instances[0].Interface = "" },
		"source no peers":  func(c *vrrp.Config) { c.Instances[0].UnicastSource = netip.MustParseAddr("10.0.0.1") },
	}
	for name, mod := range tests {
		t.Run(name, func(t *testing.T) {
			c := pairConfig(100, true)
			mod(&c)
			if err := c.Validate(); err == nil {
				t.Error("accepted")
			}
			if _, err := vrrp.New(c, vrrptest.NewNetwork().Node("x").Options()); err == nil {
				t.Error("New accepted")
			}
		})
	}
}

func TestEngineGARPRefreshStopsWhenLeavingMaster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		cfg := pairConfig(150, true)
		cfg.GARP = vrrp.GARPConfig{Count: 3, Spacing: 100 * time.Millisecond, Refresh: 10 * time.Second}
		fw1 := start(t, lab.fw1, cfg, vrrp.Callbacks{})
		waitFor(t, 5*time.Second, "fw1 MASTER", func() bool { return holdsBoth(lab.fw1) })
		time.Sleep(35 * time.Second)
		// 3 rounds in the burst, then one every 10 s: 3 more in 35 s; per interface.
		garps := lab.fw1.GARPs()
		if len(garps) != 2*(3+3) {
			t.Errorf("%d GARP rounds, want 12", len(garps))
		}
		if spread := garps[5].At.Sub(garps[0].At); spread != 200*time.Millisecond {
			t.Errorf("burst spread %v, want 2 x 100ms", spread)
		}
		// A better router appears: fw1 yields, GARP stops at once and for good.
		start(t, lab.fw2, pairConfig(200, true), vrrp.Callbacks{})
		waitFor(t, 5*time.Second, "fw1 yields", func() bool { return len(lab.fw1.VIPs()) == 0 })
		n := len(lab.fw1.GARPs())
		time.Sleep(30 * time.Second)
		if got := len(lab.fw1.GARPs()); got != n {
			t.Errorf("%d GARP rounds after leaving MASTER", got-n)
		}
		// Removal came after the last GARP.
		evs := lab.fw1.VIPEvents()
		last := evs[len(evs)-1]
		if last.Added || lab.fw1.GARPs()[n-1].At.After(last.At) {
			t.Errorf("GARP after VIP removal")
		}
		if groupState(fw1.Group) != vrrp.StateBackup {
			t.Errorf("fw1 %v", groupState(fw1.Group))
		}
	})
}

func TestEngineTrackedInterface(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		lab.fw1.Attach("eth2", "sync", netip.MustParseAddr("10.0.0.1"))
		cfg := pairConfig(150, true)
		for i := range cfg.Instances {
			cfg.Instances[i].TrackInterfaces = []string{"eth2"}
		}
		fw1 := start(t, lab.fw1, cfg, vrrp.Callbacks{})
		start(t, lab.fw2, pairConfig(100, true), vrrp.Callbacks{})
		waitFor(t, 5*time.Second, "fw1 MASTER", func() bool { return holdsBoth(lab.fw1) })
		lab.fw1.SetLink("eth2", false)
		took := waitFor(t, 2*time.Second, "fw2 takes over", func() bool { return holdsBoth(lab.fw2) && len(lab.fw1.VIPs()) == 0 })
		if took > vrrp.SkewTime(100)+50*time.Millisecond {
			t.Errorf("tracked link down: takeover in %v", took)
		}
		st := fw1.Status()
		if st.State != vrrp.StateFault || st.Instances[0].State != vrrp.StateFault || st.Instances[1].State != vrrp.StateFault {
			t.Errorf("fw1 %v %v %v, want all FAULT", st.State, st.Instances[0].State, st.Instances[1].State)
		}
		lab.fw1.SetLink("eth2", true)
		waitFor(t, 5*time.Second, "fw1 back", func() bool { return holdsBoth(lab.fw1) })
	})
}

// A link flap makes the engine re-open the socket (the interface may
// have been re-created with another index).
func TestEngineRedialsAfterLinkFlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw1 := start(t, lab.fw1, pairConfig(150, true), vrrp.Callbacks{})
		synctest.Wait()
		before := lab.fw1.Dials()
		lab.fw1.SetLink("eth1", false)
		waitFor(t, time.Second, "FAULT", func() bool { return groupState(fw1.Group) == vrrp.StateFault })
		lab.fw1.SetLink("eth1", true)
		waitFor(t, time.Second, "BACKUP", func() bool { return groupState(fw1.Group) != vrrp.StateFault })
		if got := lab.fw1.Dials(); got != before+1 {
			t.Errorf("%d dials after the flap, want %d", got, before+1)
		}
	})
}

// Kill while BeforeMaster runs: Run returns at once, the hook sees its
// context cancelled, and (synctest checks) no goroutine is left behind.
func TestEngineKillDuringHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		inHook := make(chan struct{})
		fw1 := start(t, lab.fw1, pairConfig(150, true), vrrp.Callbacks{
			BeforeMaster: func(ctx context.Context, _ vrrp.Transition) error {
				close(inHook)
				<-ctx.Done()
				return ctx.Err()
			},
		})
		<-inHook
		if err := fw1.kill(); !errors.Is(err, vrrp.ErrKilled) {
			t.Errorf("Run: %v", err)
		}
		if err := fw1.Run(t.Context()); err == nil {
			t.Error("second Run accepted")
		}
	})
}

func TestEngineSetPriorityBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		g, err := vrrp.New(pairConfig(100, true), lab.fw1.Options())
		if err != nil {
			t.Fatal(err)
		}
		if err := g.SetPriority("vi_lan1", 42); err != nil {
			t.Fatal(err)
		}
		if st := g.Status(); st.State != vrrp.StateInit || st.Instances[1].Priority != 42 {
			t.Fatalf("before Run: %v, priority %d", st.State, st.Instances[1].Priority)
		}
		r := newRunning(g, t.Context())
		<-g.Ready()
		synctest.Wait()
		if p := g.Status().Instances[1].Priority; p != 42 {
			t.Errorf("running priority %d, want 42", p)
		}
		if err := r.stop(); err != nil {
			t.Fatal(err)
		}
		if err := g.SetPriority("vi_lan1", 43); err == nil {
			t.Error("SetPriority after Run returned")
		}
	})
}

// The address owner (priority 255) goes MASTER at startup without waiting
// and, per RFC 3768 §7.1, discards every advert it receives.
func TestEngineAddressOwner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw2 := start(t, lab.fw2, pairConfig(100, true), vrrp.Callbacks{})
		waitFor(t, 5*time.Second, "fw2 MASTER alone", func() bool { return holdsBoth(lab.fw2) })
		owner := start(t, lab.fw1, pairConfig(255, true), vrrp.Callbacks{})
		took := waitFor(t, 2*time.Second, "owner MASTER", func() bool { return holdsBoth(lab.fw1) && len(lab.fw2.VIPs()) == 0 })
		if took > 100*time.Millisecond {
			t.Errorf("owner took %v to become MASTER, want at once", took)
		}
		time.Sleep(5 * time.Second)
		if groupState(owner.Group) != vrrp.StateMaster || groupState(fw2.Group) != vrrp.StateBackup {
			t.Errorf("owner %v, fw2 %v", groupState(owner.Group), groupState(fw2.Group))
		}
		// fw2 sends one last advert when it yields, from the instance that
		// heard the owner first; the other is dragged along silently.
		var discarded uint64
		for _, in := range owner.Status().Instances {
			discarded += in.Counters.Discarded["local_owner"]
		}
		if discarded == 0 {
			t.Errorf("owner did not count fw2's adverts as local_owner discards")
		}
	})
}

// With a preempt delay the better node tolerates the worse master for
// that long after first hearing it, then preempts after
// Master_Down_Interval.
func TestEnginePreemptDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		start(t, lab.fw2, pairConfig(100, true), vrrp.Callbacks{})
		waitFor(t, 5*time.Second, "fw2 MASTER alone", func() bool { return holdsBoth(lab.fw2) })
		cfg := pairConfig(150, true)
		for i := range cfg.Instances {
			cfg.Instances[i].PreemptDelay = 10 * time.Second
		}
		start(t, lab.fw1, cfg, vrrp.Callbacks{})
		took := waitFor(t, 20*time.Second, "fw1 preempts after the delay", func() bool { return holdsBoth(lab.fw1) })
		// First advert heard within 1 s, tolerated 10 s, then Master_Down_Interval.
		if low, high := 10*time.Second+vrrp.MasterDownInterval(time.Second, 150)-time.Second, 11*time.Second+vrrp.MasterDownInterval(time.Second, 150); took < low || took > high {
			t.Errorf("preempted after %v, want between %v and %v", took, low, high)
		}
	})
}

// TestEngineSetGARP: new GARP settings apply while the group runs (reload).
func TestEngineSetGARP(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		cfg := pairConfig(150, true)
		cfg.GARP = vrrp.GARPConfig{Count: 1, Spacing: 100 * time.Millisecond}
		fw1 := start(t, lab.fw1, cfg, vrrp.Callbacks{})
		waitFor(t, 5*time.Second, "fw1 MASTER", func() bool { return holdsBoth(lab.fw1) })
		time.Sleep(time.Second)
		if n := len(lab.fw1.GARPs()); n != 2 {
			t.Fatalf("%d GARP rounds with Count 1, want 2 (one per interface)", n)
		}
		// Turn on a 5 s refresh: it starts with the next MASTER epoch, and
		// the burst size applies to the next burst.
		fw1.SetGARP(vrrp.GARPConfig{Count: 2, Spacing: 100 * time.Millisecond, Refresh: 5 * time.Second})
		start(t, lab.fw2, pairConfig(200, true), vrrp.Callbacks{})
		waitFor(t, 5*time.Second, "fw1 yields", func() bool { return len(lab.fw1.VIPs()) == 0 })
		n := len(lab.fw1.GARPs())
		lab.net.Partition("lan0", true) // fw1 no longer hears fw2 on eth0...
		lab.net.Partition("lan1", true) // ...nor on eth1: it takes over again
		waitFor(t, 10*time.Second, "fw1 MASTER again", func() bool { return holdsBoth(lab.fw1) })
		time.Sleep(6 * time.Second)
		// New burst of 2 per interface, then one refresh per interface.
		if got := len(lab.fw1.GARPs()) - n; got != 2*2+2 {
			t.Errorf("%d GARP rounds after SetGARP, want 6", got)
		}
	})
}
