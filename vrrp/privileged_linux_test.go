package vrrp_test

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fwpair/fwpair/testenv"
	"github.com/fwpair/fwpair/testenv/refdaemons"
	"github.com/fwpair/fwpair/vrrp"
	"github.com/vishvananda/netlink"
)

// Privileged tests: real raw sockets, rtnetlink and AF_PACKET in the
// reference lab (testenv), two Groups in this test process (one per
// firewall namespace), and keepalived as a peer.

const labAuth = "secret12"

// labConfig is the reference pair's VRRP config with priority prio.
func labConfig(prio uint8, preempt bool, password string) vrrp.Config {
	cfg := pairConfig(prio, preempt)
	for i := range cfg.Instances {
		cfg.Instances[i].AuthPassword = password
	}
	return cfg
}

func testLogger(t *testing.T, node string) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", node)
}

// startInNS starts a Group whose adapters work in ns. Construction styles
// differ on purpose: fw1 passes the namespace path, fw2 calls New from a
// goroutine locked into the namespace. Both must behave the same.
func startInNS(t *testing.T, name string, ns *testenv.NS, cfg vrrp.Config, mods ...func(*vrrp.Options)) *running {
	t.Helper()
	opts := vrrp.Options{Logger: testLogger(t, name)}
	for _, m := range mods {
		m(&opts)
	}
	var (
		g   *vrrp.Group
		err error
	)
	if name == "fw1" {
		opts.NetNS = "/run/netns/" + ns.Name
		g, err = vrrp.New(cfg, opts)
	} else {
		err = ns.Do(func() error {
			var err error
			g, err = vrrp.New(cfg, opts)
			return err
		})
	}
	if err != nil {
		t.Fatalf("%s: New: %v", name, err)
	}
	r := newRunning(g, context.Background())
	t.Cleanup(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: Run did not return", name)
		}
	})
	select {
	case <-g.Ready():
	case <-r.done:
		t.Fatalf("%s: Run: %v", name, r.err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not ready", name)
	}
	return r
}

// eventually polls cond every 10 ms until it is true or within passes,
// and returns the time it took.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, error)) time.Duration {
	t.Helper()
	start := time.Now()
	var lastErr error
	for time.Since(start) <= within {
		ok, err := cond()
		if ok {
			return time.Since(start)
		}
		lastErr = err
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("not within %v: %s (last error: %v)", within, what, lastErr)
	return 0
}

// consistently checks that cond stays true for the whole duration: the
// way to test that something does NOT happen (a takeover, a preemption).
func consistently(t *testing.T, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	start := time.Now()
	for time.Since(start) <= d {
		if ok, err := cond(); !ok {
			t.Fatalf("after %v: not %s (err %v)", time.Since(start), what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holders is a condition: fw n holds both VIPs and the other none.
func holders(lab *testenv.Lab, n int) func() (bool, error) {
	return func() (bool, error) {
		eth0, eth1, err := lab.VIPHolders()
		return slices.Equal(eth0, []int{n}) && slices.Equal(eth1, []int{n}), err
	}
}

// fwHoldsBoth: fw n holds both VIPs, whatever the other holds.
func fwHoldsBoth(lab *testenv.Lab, n int) func() (bool, error) {
	return func() (bool, error) {
		eth0, eth1, err := lab.VIPHolders()
		return slices.Contains(eth0, n) && slices.Contains(eth1, n), err
	}
}

func state(r *running, s vrrp.State) func() (bool, error) {
	return func() (bool, error) { return r.Status().State == s, nil }
}

// pingThrough checks that the client reaches the server through the VIPs
// (its default route is 192.168.0.100, the server's 192.168.1.100), which
// proves the new master's GARP updated both neighbours. Bounded: at most
// 10 single pings.
func pingThrough(t *testing.T, lab *testenv.Lab) {
	t.Helper()
	var out string
	var err error
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		out, err = lab.Client.Run(ctx, "ping", "-n", "-c", "1", "-W", "1", testenv.ServerAddr.Addr().String())
		cancel()
		if err == nil {
			return
		}
	}
	t.Fatalf("client cannot reach the server through the VIPs: %v\n%s", err, out)
}

// checkVIPLabel checks that the VIP is on ifname with its prefix length
// and label.
func checkVIPLabel(t *testing.T, ns *testenv.NS, ifname string, vip netip.Prefix, label string) {
	t.Helper()
	h := ns.Handle()
	link, err := h.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ones, _ := a.Mask.Size()
		if ip, _ := netip.AddrFromSlice(a.IP.To4()); ip == vip.Addr() {
			if ones != vip.Bits() || a.Label != label {
				t.Errorf("VIP %v on %s: /%d label %q, want /%d %q", ip, ifname, ones, a.Label, vip.Bits(), label)
			}
			return
		}
	}
	t.Errorf("VIP %v not on %s", vip, ifname)
}

func TestPrivilegedPair(t *testing.T) {
	testenv.RequirePrivileged(t)
	t.Parallel()
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwv"})
	mdi100 := vrrp.MasterDownInterval(time.Second, 100)
	mdi150 := vrrp.MasterDownInterval(time.Second, 150)
	skew100 := vrrp.SkewTime(100)
	const slack = 300 * time.Millisecond

	fw1 := startInNS(t, "fw1", lab.FW1, labConfig(150, true, ""))
	fw2 := startInNS(t, "fw2", lab.FW2, labConfig(100, true, ""))

	// Election: fw1 (150) wins, both VIPs on fw1 only.
	eventually(t, mdi150+2*time.Second, "fw1 elected with both VIPs", holders(lab, 1))
	eventually(t, time.Second, "fw2 BACKUP", state(fw2, vrrp.StateBackup))
	checkVIPLabel(t, lab.FW1, "eth0", testenv.VIP0, "eth0:vip")
	pingThrough(t, lab)

	// Crash: fw1 stops without priority 0 and leaves its VIPs (SIGKILL).
	if err := fw1.kill(); !errors.Is(err, vrrp.ErrKilled) {
		t.Fatalf("fw1 Run after Kill: %v", err)
	}
	crash := eventually(t, mdi100+slack, "fw2 takes over after the crash", fwHoldsBoth(lab, 2))
	t.Logf("MEASURED crash takeover: %v (Master_Down_Interval %v)", crash, mdi100)
	if ok, _ := fwHoldsBoth(lab, 1)(); !ok {
		t.Errorf("the killed fw1 removed its VIPs")
	}

	// Restart fw1 with preemption: it removes the leftover VIPs at start,
	// then takes the group back.
	fw1 = startInNS(t, "fw1", lab.FW1, labConfig(150, true, ""))
	if ok, _ := fwHoldsBoth(lab, 1)(); ok {
		t.Errorf("restarted fw1 still holds leftover VIPs when ready")
	}
	preempt := eventually(t, mdi150+2*time.Second, "fw1 preempts after restart", holders(lab, 1))
	t.Logf("MEASURED preemption after restart: %v", preempt)
	eventually(t, time.Second, "fw2 BACKUP", state(fw2, vrrp.StateBackup))
	pingThrough(t, lab)

	// Graceful stop: priority 0, fw2 takes over after Skew_Time.
	if err := fw1.stop(); err != nil {
		t.Fatalf("fw1 Run: %v", err)
	}
	graceful := eventually(t, skew100+slack, "fw2 takes over after the graceful stop", holders(lab, 2))
	t.Logf("MEASURED graceful takeover: %v (Skew_Time %v)", graceful, skew100)
	pingThrough(t, lab)

	// Restart without preemption: fw1 stays BACKUP although it is better.
	fw1 = startInNS(t, "fw1", lab.FW1, labConfig(150, false, ""))
	eventually(t, 2*time.Second, "fw1 BACKUP", state(fw1, vrrp.StateBackup))
	consistently(t, mdi150+time.Second, "without preemption fw1 stays BACKUP and fw2 keeps the VIPs", func() (bool, error) {
		ok, err := holders(lab, 2)()
		return ok && fw1.Status().State == vrrp.StateBackup, err
	})
	if err := fw1.stop(); err != nil {
		t.Fatal(err)
	}
	fw1 = startInNS(t, "fw1", lab.FW1, labConfig(150, true, ""))
	eventually(t, mdi150+2*time.Second, "fw1 preempts again", holders(lab, 1))

	// eth0 link down on fw1: FAULT, priority 0 through eth1, and fw2 takes
	// over both VIPs (eth1's too) at once.
	if err := lab.LinkDown(lab.FW1, "eth0"); err != nil {
		t.Fatal(err)
	}
	linkDown := eventually(t, skew100+slack, "fw2 owns both VIPs after fw1 eth0 went down", fwHoldsBoth(lab, 2))
	t.Logf("MEASURED link-down takeover: %v (Skew_Time %v, plus link detection)", linkDown, skew100)
	eventually(t, time.Second, "fw1 FAULT without VIPs", func() (bool, error) {
		ok, err := holders(lab, 2)()
		return ok && fw1.Status().State == vrrp.StateFault, err
	})
	pingThrough(t, lab)
	if err := lab.LinkUp(lab.FW1, "eth0"); err != nil {
		t.Fatal(err)
	}
	eventually(t, mdi150+2*time.Second, "fw1 back after link up", holders(lab, 1))
	pingThrough(t, lab)

	// Counters: fw2 heard fw1 on both interfaces, nothing was discarded.
	for _, in := range fw2.Status().Instances {
		if in.Counters.AdvertsReceived == 0 || len(in.Counters.Discarded) != 0 {
			t.Errorf("fw2 %s counters %+v", in.Name, in.Counters)
		}
	}
}

// keepalived runs Debian's keepalived in a namespace with a config the
// test writes; its sync-group notify script appends each state to a file.
type keepalived struct {
	t   *testing.T
	dir string
	ka  *refdaemons.Keepalived
}

func startKeepalived(t *testing.T, ns *testenv.NS, prio uint8, password string) *keepalived {
	t.Helper()
	dir := t.TempDir()
	notify := filepath.Join(dir, "notify.sh")
	script := "#!/bin/sh\necho \"$3\" >> " + filepath.Join(dir, "states") + "\n"
	if err := os.WriteFile(notify, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := refdaemons.KeepalivedConf{
		RouterID: "fwv_keepalived",
		Group:    "G",
		Notify:   notify,
		Instances: []refdaemons.Instance{
			{Name: "VI_0", Interface: "eth0", VRID: 51, Priority: int(prio), AuthPass: password, VIP: testenv.VIP0},
			{Name: "VI_1", Interface: "eth1", VRID: 52, Priority: int(prio), AuthPass: password, VIP: testenv.VIP1},
		},
	}
	return launchKeepalived(t, ns, dir, conf.Render())
}

// launchKeepalived starts keepalived in ns with conf, whose sync-group
// notify script is dir/notify.sh, through the shared launcher
// (testenv/refdaemons).
func launchKeepalived(t *testing.T, ns *testenv.NS, dir, conf string) *keepalived {
	t.Helper()
	confPath := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "keepalived.log")
	ka, err := refdaemons.StartKeepalived(ns, dir, confPath, logPath)
	if err != nil {
		t.Fatal(err)
	}
	k := &keepalived{t: t, dir: dir, ka: ka}
	t.Cleanup(func() {
		k.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("keepalived log:\n%s", b)
		}
	})
	return k
}

// kill SIGKILLs keepalived's VRRP child, then the parent: no priority-0
// advert, VIPs left behind, as in a crash.
func (k *keepalived) kill() { k.ka.Kill() }

// lastState is the last group state keepalived's notify script wrote.
func (k *keepalived) lastState() string {
	b, _ := os.ReadFile(filepath.Join(k.dir, "states"))
	lines := strings.Fields(string(b))
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}

func (k *keepalived) inState(s string) func() (bool, error) {
	return func() (bool, error) { return k.lastState() == s, nil }
}

// authModes runs an interop test with and without simple-password
// authentication.
var authModes = []struct {
	name, password string
}{{"auth=none", ""}, {"auth=pass", labAuth}}

// keepalived 200 vs fwpair 100: we are BACKUP and hold nothing; when
// keepalived dies we take over.
func TestPrivilegedKeepalivedMasterFwpairBackup(t *testing.T) {
	testenv.RequirePrivileged(t)
	for _, mode := range authModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwv"})
			k := startKeepalived(t, lab.FW1, 200, mode.password)
			us := startInNS(t, "fw2", lab.FW2, labConfig(100, true, mode.password))

			eventually(t, 6*time.Second, "keepalived MASTER", k.inState("MASTER"))
			eventually(t, 2*time.Second, "keepalived holds both VIPs", holders(lab, 1))
			consistently(t, 2*time.Second, "fwpair stays BACKUP without VIPs against keepalived 200", func() (bool, error) {
				ok, err := holders(lab, 1)()
				return ok && us.Status().State == vrrp.StateBackup, err
			})
			for _, in := range us.Status().Instances {
				if in.Counters.AdvertsReceived == 0 || len(in.Counters.Discarded) != 0 || in.Counters.AddressListMismatch != 0 {
					t.Errorf("%s: counters %+v: keepalived's adverts not all accepted", in.Name, in.Counters)
				}
			}

			k.kill()
			mdi := vrrp.MasterDownInterval(time.Second, 100)
			took := eventually(t, mdi+300*time.Millisecond, "fwpair takes over from the killed keepalived", fwHoldsBoth(lab, 2))
			t.Logf("MEASURED takeover from killed keepalived (%s): %v", mode.name, took)
		})
	}
}

// keepalived 50 vs fwpair 100: keepalived is BACKUP (says its notify
// script); when we crash it takes over.
func TestPrivilegedKeepalivedBackupFwpairMaster(t *testing.T) {
	testenv.RequirePrivileged(t)
	for _, mode := range authModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwv"})
			us := startInNS(t, "fw1", lab.FW1, labConfig(100, true, mode.password))
			k := startKeepalived(t, lab.FW2, 50, mode.password)

			eventually(t, 6*time.Second, "fwpair MASTER with both VIPs", holders(lab, 1))
			eventually(t, 6*time.Second, "keepalived BACKUP", k.inState("BACKUP"))
			consistently(t, 2*time.Second, "keepalived stays BACKUP and fwpair MASTER", func() (bool, error) {
				ok, err := holders(lab, 1)()
				return ok && k.lastState() == "BACKUP" && us.Status().State == vrrp.StateMaster, err
			})

			if err := us.kill(); !errors.Is(err, vrrp.ErrKilled) {
				t.Fatal(err)
			}
			// keepalived's own timing, not ours: allow it a second of slack.
			mdi := vrrp.MasterDownInterval(time.Second, 50)
			took := eventually(t, mdi+time.Second, "keepalived takes over from the crashed fwpair", fwHoldsBoth(lab, 2))
			eventually(t, time.Second, "keepalived says MASTER", k.inState("MASTER"))
			t.Logf("MEASURED keepalived takeover from crashed fwpair (%s): %v", mode.name, took)
		})
	}
}

// Unicast adverts with authentication between two fwpair nodes: election,
// then a graceful hand-over.
func TestPrivilegedUnicast(t *testing.T) {
	testenv.RequirePrivileged(t)
	t.Parallel()
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwv"})
	unicast := func(prio uint8, self int) vrrp.Config {
		cfg := labConfig(prio, true, labAuth)
		for i := range cfg.Instances {
			peer := testenv.FWAddrs[1-self][i].Addr()
			cfg.Instances[i].UnicastPeers = []netip.Addr{peer}
			cfg.Instances[i].UnicastSource = testenv.FWAddrs[self][i].Addr()
		}
		return cfg
	}
	fw1 := startInNS(t, "fw1", lab.FW1, unicast(150, 0))
	fw2 := startInNS(t, "fw2", lab.FW2, unicast(100, 1))
	eventually(t, 6*time.Second, "fw1 elected over unicast", holders(lab, 1))
	consistently(t, 1500*time.Millisecond, "fw2 BACKUP", state(fw2, vrrp.StateBackup))
	for _, in := range fw2.Status().Instances {
		if !in.Unicast || in.Counters.AdvertsReceived == 0 || len(in.Counters.Discarded) != 0 {
			t.Errorf("fw2 %s: unicast %v counters %+v", in.Name, in.Unicast, in.Counters)
		}
	}
	if err := fw1.stop(); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, vrrp.SkewTime(100)+300*time.Millisecond, "fw2 takes over", holders(lab, 2))
	t.Logf("MEASURED unicast graceful takeover: %v", took)
	pingThrough(t, lab)
}
