package vrrp_test

import (
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fwpair/fwpair/vrrp"
)

// pairConfigV3 is the reference pair in VRRPv3 with the given interval.
func pairConfigV3(prio uint8, interval time.Duration) vrrp.Config {
	cfg := pairConfig(prio, true)
	for i := range cfg.Instances {
		cfg.Instances[i].Version = vrrp.Version3
		cfg.Instances[i].AdvertInterval = interval
	}
	return cfg
}

// VRRPv3 at 50 ms: election, stability, and a crash taken over within
// the v3 Master_Down_Interval (~180 ms), not v2's 3.6 s.
func TestEngineV3CrashTakeover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const iv = 50 * time.Millisecond
		lab := newSimLab()
		fw1 := start(t, lab.fw1, pairConfigV3(150, iv), vrrp.Callbacks{})
		fw2 := start(t, lab.fw2, pairConfigV3(100, iv), vrrp.Callbacks{})
		took := waitFor(t, time.Second, "fw1 MASTER", func() bool { return groupState(fw1.Group) == vrrp.StateMaster && holdsBoth(lab.fw1) })
		if mdi := vrrp.MasterDownIntervalV3(iv, 150); took < mdi {
			t.Errorf("elected after %v, before Master_Down_Interval %v", took, mdi)
		}
		time.Sleep(5 * time.Second)
		if groupState(fw2.Group) != vrrp.StateBackup {
			t.Fatalf("fw2 %v after 5 s of adverts", groupState(fw2.Group))
		}
		for _, in := range fw2.Status().Instances {
			// 100 adverts in 5 s, all accepted.
			if in.Counters.AdvertsReceived < 95 || len(in.Counters.Discarded) != 0 {
				t.Errorf("fw2 %s counters %+v", in.Name, in.Counters)
			}
		}
		time.Sleep(iv / 2)
		if err := fw1.kill(); !errors.Is(err, vrrp.ErrKilled) {
			t.Fatal(err)
		}
		mdi := vrrp.MasterDownIntervalV3(iv, 100)
		took = waitFor(t, time.Second, "fw2 takes over", func() bool { return holdsBoth(lab.fw2) })
		if took > mdi || took < mdi-iv {
			t.Errorf("takeover %v after the kill, want within Master_Down_Interval %v", took, mdi)
		}
	})
}

// A v3 backup follows the master's interval: fw2 configured at 50 ms
// listens to fw1 advertising every second and does not take over between
// its adverts (which it would after 180 ms with its own interval).
func TestEngineV3FollowsMasterInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw1 := start(t, lab.fw1, pairConfigV3(150, time.Second), vrrp.Callbacks{})
		waitFor(t, 5*time.Second, "fw1 MASTER", func() bool { return groupState(fw1.Group) == vrrp.StateMaster })
		fw2 := start(t, lab.fw2, pairConfigV3(100, 50*time.Millisecond), vrrp.Callbacks{})
		time.Sleep(10 * time.Second)
		if s := groupState(fw2.Group); s != vrrp.StateBackup {
			t.Fatalf("fw2 %v, want BACKUP following fw1's 1 s adverts", s)
		}
		if s := groupState(fw1.Group); s != vrrp.StateMaster {
			t.Fatalf("fw1 %v", s)
		}
	})
}

// v2 and v3 instances do not talk to each other: each discards the
// other's adverts as a version mismatch, counted, and both become MASTER
// (the misconfiguration is visible in the counters, not silent).
func TestEngineV2V3Mismatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lab := newSimLab()
		fw1 := start(t, lab.fw1, pairConfigV3(150, time.Second), vrrp.Callbacks{})
		fw2 := start(t, lab.fw2, pairConfig(100, true), vrrp.Callbacks{})
		waitFor(t, 10*time.Second, "both MASTER", func() bool {
			return groupState(fw1.Group) == vrrp.StateMaster && groupState(fw2.Group) == vrrp.StateMaster
		})
		time.Sleep(3 * time.Second)
		for _, r := range []*running{fw1, fw2} {
			for _, in := range r.Status().Instances {
				if in.Counters.AdvertsReceived != 0 || in.Counters.Discarded["version"] == 0 {
					t.Errorf("%s counters %+v, want version discards only", in.Name, in.Counters)
				}
			}
		}
	})
}

func TestConfigV3Validate(t *testing.T) {
	good := pairConfigV3(100, 50*time.Millisecond)
	if err := good.Validate(); err != nil {
		t.Fatalf("valid v3 config: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*vrrp.InstanceConfig)
	}{
		{"5ms", func(in *vrrp.InstanceConfig) { in.AdvertInterval = 5 * time.Millisecond }},
		{"15ms", func(in *vrrp.InstanceConfig) { in.AdvertInterval = 15 * time.Millisecond }},
		{"41s", func(in *vrrp.InstanceConfig) { in.AdvertInterval = 41 * time.Second }},
		{"password", func(in *vrrp.InstanceConfig) { in.AuthPassword = "secret" }},
		{"version 4", func(in *vrrp.InstanceConfig) { in.Version = 4 }},
		{"v2 with 50ms", func(in *vrrp.InstanceConfig) { in.Version = vrrp.Version2 }},
	} {
		cfg := pairConfigV3(100, 50*time.Millisecond)
		tc.mod(&cfg.Instances[0])
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestConfigV3IPv6Validate(t *testing.T) {
	v6 := func(prefixes ...string) vrrp.Config {
		cfg := pairConfigV3(100, 50*time.Millisecond)
		cfg.Instances = cfg.Instances[:1]
		cfg.Instances[0].VIPs = nil
		for _, p := range prefixes {
			cfg.Instances[0].VIPs = append(cfg.Instances[0].VIPs, vrrp.VIP{Prefix: netip.MustParsePrefix(p)})
		}
		return cfg
	}
	if err := v6("fe80::51/64", "fd00::100/64").Validate(); err != nil {
		t.Fatalf("valid IPv6 instance: %v", err)
	}
	// A v4 and a v6 instance may share interface and VRID (separate spaces).
	both := pairConfigV3(100, 50*time.Millisecond)
	both.Instances = append(both.Instances, v6("fe80::51/64").Instances[0])
	both.Instances[2].Name = "vi_lan0_v6"
	if err := both.Validate(); err != nil {
		t.Fatalf("v4 and v6 on one interface and VRID: %v", err)
	}
	for name, cfg := range map[string]vrrp.Config{
		"global first":   v6("fd00::100/64", "fe80::51/64"),
		"mixed families": v6("fe80::51/64", "192.168.0.100/24"),
		"v2 with IPv6": func() vrrp.Config {
			c := v6("fe80::51/64")
			c.Instances[0].Version = vrrp.Version2
			c.Instances[0].AdvertInterval = time.Second
			return c
		}(),
		"label on IPv6": func() vrrp.Config {
			c := v6("fe80::51/64")
			c.Instances[0].VIPs[0].Label = "eth0:v6"
			return c
		}(),
		"IPv4 unicast peer": func() vrrp.Config {
			c := v6("fe80::51/64")
			c.Instances[0].UnicastPeers = []netip.Addr{netip.MustParseAddr("192.168.0.2")}
			return c
		}(),
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
