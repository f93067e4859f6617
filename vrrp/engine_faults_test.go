package vrrp_test

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fwpair/fwpair/vrrp"
)

// Issue 11, case 1, with the engines: only lan0 between the nodes is cut
// for 30 s. fw2 keeps hearing fw1 on lan1, so it never becomes MASTER,
// never holds a VIP nor sends a GARP, and reports the partial partition
// until lan0 heals.
func TestEnginePartialPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw1, fw2 := elect(t, lab, true)
		garps := len(lab.fw2.GARPs())
		lab.net.Partition("lan0", true)
		waitFor(t, 10*time.Second, "fw2 reports the partial partition", func() bool { return fw2.Status().Partition != "" })
		end := time.Now().Add(30 * time.Second)
		for time.Now().Before(end) {
			if len(lab.fw2.VIPs()) != 0 || groupState(fw2.Group) != vrrp.StateBackup {
				t.Fatalf("fw2 %v with VIPs %v during a partial partition", groupState(fw2.Group), lab.fw2.VIPs())
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n := len(lab.fw2.GARPs()) - garps; n != 0 {
			t.Errorf("fw2 sent %d GARPs", n)
		}
		if !holdsBoth(lab.fw1) || groupState(fw1.Group) != vrrp.StateMaster {
			t.Errorf("fw1 %v, VIPs %v", groupState(fw1.Group), lab.fw1.VIPs())
		}
		st := fw2.Status()
		if st.Partitions != 1 || st.Partition != "vi_lan0 hears no master while vi_lan1 does" {
			t.Errorf("status partition %q, count %d", st.Partition, st.Partitions)
		}
		lab.net.Partition("lan0", false)
		waitFor(t, 2*time.Second, "partition report ends", func() bool { return fw2.Status().Partition == "" })
	})
}

// Issue 11, case 4: a priority-254 advert whose address list differs from
// ours must not take the MASTER down (RFC 3768 §7.1).
func TestEngineAddressListMismatchIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw1, _ := elect(t, lab, true)
		meta := vrrp.RecvMeta{Src: netip.MustParseAddr("192.168.0.66"), Dst: vrrp.GroupAddress, TTL: 255}
		b, err := (&vrrp.Advertisement{VRID: 51, Priority: 254, AdvertInterval: 1,
			Addresses: []netip.Addr{netip.MustParseAddr("192.168.0.200")}}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		for range 10 {
			lab.fw1.Inject("eth0", b, meta)
			time.Sleep(time.Second)
			if groupState(fw1.Group) != vrrp.StateMaster || !holdsBoth(lab.fw1) {
				t.Fatalf("fw1 %v with VIPs %v after a mismatching advert", groupState(fw1.Group), lab.fw1.VIPs())
			}
		}
		in := fw1.Status().Instances[0].Counters
		if in.AddressListMismatch != 10 || in.Discarded["address_list"] != 10 {
			t.Errorf("mismatch %d, discarded %v", in.AddressListMismatch, in.Discarded)
		}
	})
}

// A returning higher-priority node whose preemption is held obeys the
// lower-priority master, and preempts once released.
func TestEnginePreemptHold(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw2 := start(t, lab.fw2, pairConfig(100, true), vrrp.Callbacks{})
		waitFor(t, 5*time.Second, "fw2 MASTER alone", func() bool { return holdsBoth(lab.fw2) })
		opts := lab.fw1.Options()
		g, err := vrrp.New(pairConfig(150, true), opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.SetPreemptHold(true); err != nil {
			t.Fatal(err)
		}
		fw1 := newRunning(g, t.Context())
		t.Cleanup(func() { _ = fw1.stop() })
		<-g.Ready()
		time.Sleep(20 * time.Second)
		if groupState(fw1.Group) != vrrp.StateBackup || !holdsBoth(lab.fw2) || !fw1.Status().PreemptHeld {
			t.Fatalf("held fw1 %v, fw2 VIPs %v", groupState(fw1.Group), lab.fw2.VIPs())
		}
		released := time.Now()
		if err := g.SetPreemptHold(false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 6*time.Second, "fw1 preempts", func() bool { return holdsBoth(lab.fw1) && len(lab.fw2.VIPs()) == 0 })
		if d := time.Since(released); d > vrrp.MasterDownInterval(time.Second, 150)+time.Second {
			t.Errorf("preempted %v after release", d)
		}
		_ = fw2
	})
}
