package appliance

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fwpair/fwpair/ctsync"
	"github.com/fwpair/fwpair/vrrp/vrrptest"
)

func (f *fakeSync) AdoptPeer(context.Context) (ctsync.AdoptResult, error) {
	f.record("adopt", time.Now())
	return ctsync.AdoptResult{Adopted: 7}, nil
}

func (f *fakeSync) PeerState(now time.Time) ctsync.PeerState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.incomplete {
		return ctsync.PeerState{Reason: "the peer is still sending states", Asked: time.Unix(1, 0)}
	}
	return ctsync.PeerState{Complete: true, Asked: time.Unix(1, 0)}
}

func (f *fakeSync) setIncomplete(v bool) {
	f.mu.Lock()
	f.incomplete = v
	f.mu.Unlock()
}

func TestConfigReadyTimeout(t *testing.T) {
	link := "[sync]\n[[sync.link]]\ninterface = \"eth2\"\nlocal = \"10.0.0.1\"\npeer = \"10.0.0.2\"\n"
	cfg, err := ParseConfig("x.toml", []byte(link))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sync.ReadyTimeout != DefaultReadyTimeout {
		t.Errorf("default ready_timeout %v", cfg.Sync.ReadyTimeout)
	}
	cfg, err = ParseConfig("x.toml", []byte("[sync]\nready_timeout = \"0s\"\n"+strings.TrimPrefix(link, "[sync]\n")))
	if err != nil || cfg.Sync.ReadyTimeout != 0 {
		t.Errorf("ready_timeout 0s: %v, %v", cfg, err)
	}
	for _, tc := range []struct{ val, want string }{
		{`"2h"`, `x.toml:2: sync.ready_timeout: 2h0m0s is longer than 1h0m0s`},
		{`"-1s"`, `x.toml:2`},
		{`"soon"`, `is not a duration`},
		{`30`, `x.toml:2`},
	} {
		_, err := ParseConfig("x.toml", []byte("[sync]\nready_timeout = "+tc.val+"\n"+strings.TrimPrefix(link, "[sync]\n")))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ready_timeout = %s: %v, want %q", tc.val, err, tc.want)
		}
	}
}

// Failback before the state is there: the returning fw1 (150) does not
// preempt fw2 (100) while its resync is not answered, reports ready false,
// and preempts once it is.
func TestFailbackWaitsForPeerState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vrrptest.NewNetwork()
		fw2 := startSim(t, n, "fw2", 100, 2, 0, true)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := fw2.d.Status().VRRP.GroupState; got != "MASTER" {
			t.Fatalf("fw2 alone is %s", got)
		}
		node := n.Node("fw1").Attach("eth0", "lan0", netipAddr(192, 168, 0, 1)).Attach("eth1", "lan1", netipAddr(192, 168, 1, 1))
		fs := newFakeSync(0)
		fs.direct = true
		fs.setIncomplete(true)
		d, err := New(simConfig(t, "fw1", 150), simOptions(node, fs))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		time.Sleep(30 * time.Second)
		synctest.Wait()
		st := d.Status()
		if st.VRRP.GroupState != "BACKUP" || st.Ready || st.ReadyReason != "the peer is still sending states" {
			t.Fatalf("not ready fw1: %s, ready %v (%s)", st.VRRP.GroupState, st.Ready, st.ReadyReason)
		}
		if len(node.VIPs()) != 0 {
			t.Fatalf("fw1 took VIPs before it was ready")
		}
		fs.setIncomplete(false)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		st = d.Status()
		if st.VRRP.GroupState != "MASTER" || !st.Ready {
			t.Fatalf("ready fw1: %s, ready %v (%s)", st.VRRP.GroupState, st.Ready, st.ReadyReason)
		}
		cancel()
		<-done
		fw2.stop(t)
	})
}

// The bounded wait: a state that never completes (a conntrackd peer whose
// table churns, say) delays preemption by sync.ready_timeout at most.
func TestFailbackBoundedWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vrrptest.NewNetwork()
		fw2 := startSim(t, n, "fw2", 100, 2, 0, true)
		time.Sleep(5 * time.Second)
		node := n.Node("fw1").Attach("eth0", "lan0", netipAddr(192, 168, 0, 1)).Attach("eth1", "lan1", netipAddr(192, 168, 1, 1))
		fs := newFakeSync(0)
		fs.direct = true
		fs.setIncomplete(true)
		cfg := simConfig(t, "fw1", 150)
		cfg.Sync.ReadyTimeout = 10 * time.Second
		d, err := New(cfg, simOptions(node, fs))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- d.Run(ctx) }()
		for d.Status().VRRP == nil || d.Status().VRRP.GroupState != "MASTER" {
			if time.Since(start) > 30*time.Second {
				t.Fatal("never preempted")
			}
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(start)
		if took < 10*time.Second || took > 15*time.Second {
			t.Errorf("preempted after %v, want ready_timeout (10s) + at most Master_Down_Interval", took)
		}
		if st := d.Status(); !st.Ready || !strings.HasPrefix(st.ReadyReason, "sync.ready_timeout passed") {
			t.Errorf("ready %v (%s)", st.Ready, st.ReadyReason)
		}
		cancel()
		<-done
		fw2.stop(t)
	})
}

func netipAddr(a, b, c, d byte) netip.Addr { return netip.AddrFrom4([4]byte{a, b, c, d}) }
