package appliance

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fwpair/fwpair/vrrp/vrrptest"
)

// recordHooks makes the daemon's transition hook a fake that takes took
// (fake time) and records "hook <FROM>-><TO>" in fs's call log, so that
// steps and hooks are checked as one sequence.
func recordHooks(d *Daemon, fs *fakeSync, took time.Duration) {
	d.cfg.Hooks.OnTransition = "/usr/local/sbin/fw-notify"
	d.cfg.Hooks.Timeout = 10 * time.Second
	d.runHook = func(ctx context.Context, _ *slog.Logger, command string, timeout time.Duration, _, from, to, _ string) {
		if command == "" {
			return
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		select {
		case <-time.After(took):
			fs.record("hook "+from+"->"+to, start)
		case <-ctx.Done():
			fs.record("hook "+from+"->"+to+" killed", start)
		}
	}
}

func setGroupPriority(t *testing.T, d *Daemon, prio uint8) {
	t.Helper()
	for _, in := range d.config().VRRP.Instances {
		if err := d.vrrp.SetPriority(in.Name, prio); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFollowUpsFlap flaps fw1 MASTER→BACKUP→MASTER while its first
// MASTER follow-up is still resyncing, and checks the exact sequence of
// sync steps and hooks: every follow-up runs after the previous one, the
// superseded MASTER's resync is cancelled and its bulk send skipped, each
// hook runs once in transition order, and the hook of the stop runs to
// completion.
func TestFollowUpsFlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vrrptest.NewNetwork()
		fw1 := startSimWith(t, n, "fw1", 150, 1, func(d *Daemon, fs *fakeSync) {
			fs.resyncTook = 20 * time.Second // still running when fw1 leaves MASTER
			recordHooks(d, fs, 500*time.Millisecond)
		})
		time.Sleep(5 * time.Second) // fw1 alone: MASTER, its resync runs
		synctest.Wait()
		fw2 := startSimWith(t, n, "fw2", 100, 2, func(*Daemon, *fakeSync) {})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if got := fw1.d.Status().VRRP.GroupState; got != "MASTER" {
			t.Fatalf("fw1 is %s, want MASTER", got)
		}

		// fw2 outranks fw1 and preempts it; then falls back below it and
		// fw1 preempts back.
		setGroupPriority(t, fw2.d, 200)
		if !waitState(fw1.d, "BACKUP", 10*time.Second) {
			t.Fatalf("fw1 did not leave MASTER: %s", fw1.d.Status().VRRP.GroupState)
		}
		setGroupPriority(t, fw2.d, 50)
		if !waitState(fw1.d, "MASTER", 10*time.Second) {
			t.Fatalf("fw1 did not preempt back: %s", fw1.d.Status().VRRP.GroupState)
		}
		time.Sleep(30 * time.Second) // the second MASTER follow-up completes
		synctest.Wait()
		fw1.stop(t)
		fw2.stop(t)

		want := []string{
			"master=false", "hook INIT->BACKUP",
			"master=true", "commit", "flush external",
			// fw1 becomes BACKUP during the resync: cancelled, bulk skipped.
			"master=false", "resync cancelled", "hook BACKUP->MASTER",
			"purge", "request-resync", "hook MASTER->BACKUP",
			"master=true", "commit", "flush external", "resync", "bulk", "hook BACKUP->MASTER",
			// The stop: VIPs released by the engine, the hook not killed.
			"master=false", "hook MASTER->INIT",
		}
		t.Logf("fw1: %s", strings.Join(fw1.sync.names(), ", "))
		if got := fw1.sync.names(); !slices.Equal(got, want) {
			t.Errorf("fw1 steps and hooks:\n got %s\nwant %s", strings.Join(got, ", "), strings.Join(want, ", "))
		}
	})
}

// waitState polls d's group state in fake time.
func waitState(d *Daemon, state string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if d.Status().VRRP.GroupState == state {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// startSimWith is startSim with a hook to adjust the daemon and its fake
// sync engine before Run.
func startSimWith(t *testing.T, n *vrrptest.Network, name string, prio int, lastOctet byte, setup func(*Daemon, *fakeSync)) *simNode {
	t.Helper()
	node := n.Node(name).
		Attach("eth0", "lan0", netip.AddrFrom4([4]byte{192, 168, 0, lastOctet})).
		Attach("eth1", "lan1", netip.AddrFrom4([4]byte{192, 168, 1, lastOctet}))
	fs := newFakeSync(100 * time.Millisecond)
	d, err := New(simConfig(t, name, prio), simOptions(node, fs))
	if err != nil {
		t.Fatal(err)
	}
	setup(d, fs)
	ctx, cancel := context.WithCancel(context.Background())
	sn := &simNode{d: d, sync: fs, net: node, cancel: cancel, done: make(chan error, 1)}
	go func() { sn.done <- d.Run(ctx) }()
	return sn
}
