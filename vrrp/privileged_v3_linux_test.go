package vrrp_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fwpair/fwpair/testenv"
	"github.com/fwpair/fwpair/vrrp"
)

// Privileged VRRPv3 interop with Debian's keepalived 2.2.7 in
// vrrp_version 3, both directions of takeover, at 50 ms and 1 s adverts.

// v3Intervals are the advert intervals the interop tests run at.
var v3Intervals = []time.Duration{50 * time.Millisecond, time.Second}

// testRTPriority is the SCHED_RR priority both stacks run their VRRP
// threads at in the v3 tests (fwpair's RealtimePriority, keepalived's
// vrrp_rt_priority): 50 ms adverts on a shared, loaded CI machine need it.
const testRTPriority = 50

func realtime(o *vrrp.Options) { o.RealtimePriority = testRTPriority }

// rtConf is keepalived's global_defs lines for vrrp_rt_priority rt. The
// default RLIMIT_RTTIME it sets (10 ms of CPU without sleeping) gets it
// killed while it sends its GARP bursts on a loaded machine: raise it.
func rtConf(rt int) string {
	if rt == 0 {
		return ""
	}
	return fmt.Sprintf("  vrrp_rt_priority %d\n  vrrp_rlimit_rttime 500000\n", rt)
}

func labConfigV3(prio uint8, interval time.Duration) vrrp.Config {
	cfg := labConfig(prio, true, "")
	for i := range cfg.Instances {
		cfg.Instances[i].Version = vrrp.Version3
		cfg.Instances[i].AdvertInterval = interval
	}
	return cfg
}

// startKeepalivedV3 runs keepalived with the lab's two instances in one
// sync group, in VRRPv3 at the given interval.
func startKeepalivedV3(t *testing.T, ns *testenv.NS, prio uint8, interval time.Duration) *keepalived {
	return startKeepalivedV3RT(t, ns, prio, interval, testRTPriority)
}

// startKeepalivedV3RT is startKeepalivedV3 with vrrp_rt_priority rt (0:
// none, normal scheduling).
func startKeepalivedV3RT(t *testing.T, ns *testenv.NS, prio uint8, interval time.Duration, rt int) *keepalived {
	t.Helper()
	dir := t.TempDir()
	notify := filepath.Join(dir, "notify.sh")
	script := "#!/bin/sh\necho \"$3\" >> " + filepath.Join(dir, "states") + "\n"
	if err := os.WriteFile(notify, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	instance := func(name, ifname string, vrid int, vip netip.Prefix) string {
		return fmt.Sprintf(`vrrp_instance %s {
  state BACKUP
  interface %s
  virtual_router_id %d
  priority %d
  advert_int %g
  virtual_ipaddress {
    %s dev %s
  }
}
`, name, ifname, vrid, prio, interval.Seconds(), vip, ifname)
	}
	conf := fmt.Sprintf(`global_defs {
  router_id fwv_keepalived_v3
  script_user root
  vrrp_version 3
%s}
vrrp_sync_group G {
  group {
    VI_0
    VI_1
  }
  notify %s
}
`, rtConf(rt), notify) + instance("VI_0", "eth0", 51, testenv.VIP0) + instance("VI_1", "eth1", 52, testenv.VIP1)
	return launchKeepalived(t, ns, dir, conf)
}

// Detection slack on a shared, loaded machine: keepalived's scheduling and
// ours, the link and the VIP installation.
func v3Slack(interval time.Duration) time.Duration { return 300*time.Millisecond + interval }

// keepalived v3 (200) is MASTER, fwpair v3 (100) BACKUP accepting every
// advert; keepalived crashes, fwpair takes over within Master_Down_Interval.
func TestPrivilegedKeepalivedV3MasterFwpairBackup(t *testing.T) {
	testenv.RequirePrivileged(t)
	for _, iv := range v3Intervals {
		t.Run(iv.String(), func(t *testing.T) {
			t.Parallel()
			lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwv"})
			k := startKeepalivedV3(t, lab.FW1, 200, iv)
			eventually(t, 6*time.Second, "keepalived MASTER", k.inState("MASTER"))
			eventually(t, 2*time.Second, "keepalived holds both VIPs", holders(lab, 1))
			us := startInNS(t, "fw2", lab.FW2, labConfigV3(100, iv), realtime)
			consistently(t, 2*time.Second, "fwpair stays BACKUP without VIPs against keepalived 200", func() (bool, error) {
				ok, err := holders(lab, 1)()
				return ok && us.Status().State == vrrp.StateBackup, err
			})
			for _, in := range us.Status().Instances {
				if in.Counters.AdvertsReceived == 0 || len(in.Counters.Discarded) != 0 || in.Counters.AddressListMismatch != 0 {
					t.Errorf("%s: counters %+v: keepalived's v3 adverts not all accepted", in.Name, in.Counters)
				}
			}

			k.kill()
			mdi := vrrp.MasterDownIntervalV3(iv, 100)
			took := eventually(t, mdi+v3Slack(iv), "fwpair takes over from the killed keepalived", fwHoldsBoth(lab, 2))
			t.Logf("MEASURED v3 %v: fwpair takeover from killed keepalived: %v (Master_Down_Interval %v)", iv, took, mdi)
			pingThrough(t, lab)
		})
	}
}

// fwpair v3 (100) is MASTER, keepalived v3 (50) BACKUP; fwpair crashes,
// keepalived takes over.
func TestPrivilegedKeepalivedV3BackupFwpairMaster(t *testing.T) {
	testenv.RequirePrivileged(t)
	for _, iv := range v3Intervals {
		t.Run(iv.String(), func(t *testing.T) {
			t.Parallel()
			lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwv"})
			us := startInNS(t, "fw1", lab.FW1, labConfigV3(100, iv), realtime)
			k := startKeepalivedV3(t, lab.FW2, 50, iv)

			eventually(t, 6*time.Second, "fwpair MASTER with both VIPs", holders(lab, 1))
			eventually(t, 6*time.Second, "keepalived BACKUP", k.inState("BACKUP"))
			consistently(t, 2*time.Second, "keepalived stays BACKUP and fwpair MASTER", func() (bool, error) {
				ok, err := holders(lab, 1)()
				return ok && k.lastState() == "BACKUP" && us.Status().State == vrrp.StateMaster, err
			})

			if err := us.kill(); !errors.Is(err, vrrp.ErrKilled) {
				t.Fatal(err)
			}
			// keepalived's own timing, not ours: allow it more slack.
			mdi := vrrp.MasterDownIntervalV3(iv, 50)
			took := eventually(t, mdi+time.Second, "keepalived takes over from the crashed fwpair", fwHoldsBoth(lab, 2))
			eventually(t, time.Second, "keepalived says MASTER", k.inState("MASTER"))
			t.Logf("MEASURED v3 %v: keepalived takeover from crashed fwpair: %v (Master_Down_Interval %v)", iv, took, mdi)
			pingThrough(t, lab)
		})
	}
}
