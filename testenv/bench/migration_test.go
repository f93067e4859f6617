package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fwpair/fwpair/importer"
	"github.com/fwpair/fwpair/testenv"
)

// migrationSessions is the number of live TCP sessions carried through
// the migration.
const migrationSessions = 50

// TestPrivilegedMigration is docs/migrating.md, run: a keepalived +
// conntrackd pair (the bench's reference stack) carries live sessions
// through a strict ruleset; fw2 is converted with fwpairctl import and
// runs fwpaird; the pair fails over to fw2 and back; then fw1 is
// converted too (its connection table emptied, as after a reboot, so its
// state can only come from fw2's fwpaird). Every session must survive
// every step.
func TestPrivilegedMigration(t *testing.T) {
	testenv.RequirePrivileged(t)
	dir := t.TempDir()
	bin, err := testenv.Binaries(dir)
	if err != nil {
		t.Fatal(err)
	}
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwmig"})
	ref, err := newReference(lab, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ref.close)
	for n := 1; n <= 2; n++ {
		if err := ref.start(n); err != nil {
			t.Fatal(err)
		}
	}
	watch, err := newVIPWatch(lab)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(watch.close)
	holds := func(n int, timeout time.Duration) {
		t.Helper()
		if err := poll(timeout, 10*time.Millisecond, fmt.Sprintf("VIPs on fw%d", n), func() (bool, error) {
			both, _, err := watch.holds(n)
			if !both || err != nil {
				return false, err
			}
			_, other, err := watch.holds(3 - n)
			return !other, err
		}); err != nil {
			t.Fatalf("%v\n%s\n%s", err, ref.diag(1), ref.diag(2))
		}
	}
	if err := poll(30*time.Second, 20*time.Millisecond, "reference election", ref.ready); err != nil {
		t.Fatalf("%v\n%s\n%s", err, ref.diag(1), ref.diag(2))
	}
	holds(1, 10*time.Second)

	echo, err := testenv.StartEchoServer(lab.Server, netip.AddrPortFrom(testenv.ServerAddr.Addr(), testenv.EchoPort))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(echo.Close)
	ss, err := testenv.OpenSessions(lab.Client, netip.AddrPortFrom(testenv.ServerAddr.Addr(), testenv.EchoPort), migrationSessions, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ss.Close)
	kept := func(step string, since time.Time) {
		t.Helper()
		v := ss.WaitKept(since, 20*time.Second)
		t.Logf("%s: %v", step, v)
		if v.Kept != v.Total {
			t.Fatalf("%s: sessions lost: %v\n%s\n%s", step, v, ref.diag(1), ref.diag(2))
		}
		ss.ResetStalls()
	}
	kept("keepalived + conntrackd on both nodes", time.Now())
	if c, _, ok := waitSynced(ref, 2, migrationSessions, 20*time.Second, 5*time.Second); !ok {
		t.Fatalf("fw2's conntrackd holds %d of %d sessions", c, migrationSessions)
	}

	// 1. Convert fw2: import its configuration, stop keepalived and
	// conntrackd there, start fwpaird with the result.
	fw2 := convert(t, ref, 2, bin, dir)
	if _, err := fw2.WaitGroupState("BACKUP", 20*time.Second); err != nil {
		t.Fatalf("fwpaird on fw2: %v\n%s", err, fw2.LogTail(30))
	}
	waitExternal(t, fw2, migrationSessions)
	kept("fw2 runs fwpaird, fw1 still MASTER", time.Now())

	// 2. Fail over to fw2: stop keepalived on fw1 (conntrackd stays, as
	// during a maintenance of the VRRP side).
	at := time.Now()
	if err := ref.nodes[0].ka.Signal(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := fw2.WaitTransition("MASTER", at, 20*time.Second); err != nil {
		t.Fatalf("fw2 did not take over: %v\n%s", err, fw2.LogTail(30))
	}
	holds(2, 10*time.Second)
	kept("failover to fw2 (fwpaird)", time.Now())

	// 3. Fail back to fw1: keepalived again (priority 150 preempts), its
	// notify script commits what fw2's fwpaird sent to conntrackd.
	if c, _, ok := waitSynced(ref, 1, migrationSessions, 20*time.Second, 5*time.Second); !ok {
		t.Fatalf("fw1's conntrackd holds %d of %d sessions from fw2's fwpaird", c, migrationSessions)
	}
	at = time.Now()
	if err := ref.startKeepalived(1); err != nil {
		t.Fatal(err)
	}
	if _, err := fw2.WaitTransition("BACKUP", at, 20*time.Second); err != nil {
		t.Fatalf("fw2 did not step down: %v\n%s", err, fw2.LogTail(30))
	}
	holds(1, 10*time.Second)
	kept("failback to fw1 (keepalived + conntrackd)", time.Now())

	// 4. Convert fw1: hand over to fw2 first, then replace fw1's stack.
	at = time.Now()
	if err := ref.nodes[0].ka.Signal(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := fw2.WaitTransition("MASTER", at, 20*time.Second); err != nil {
		t.Fatalf("fw2 did not take over: %v\n%s", err, fw2.LogTail(30))
	}
	holds(2, 10*time.Second)
	kept("fw2 MASTER before fw1's conversion", time.Now())
	if err := ref.nodes[0].ctd.Signal(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// As after a reboot: fw1 knows no connection of its own any more.
	if out, err := lab.FW1.Run(context.Background(), "conntrack", "-F"); err != nil {
		t.Fatalf("conntrack -F: %v %s", err, out)
	}
	at = time.Now()
	fw1 := convert(t, ref, 1, bin, dir)
	if _, err := fw1.WaitTransition("MASTER", at, 30*time.Second); err != nil {
		t.Fatalf("fwpaird on fw1 did not take over: %v\n%s", err, fw1.LogTail(30))
	}
	holds(1, 10*time.Second)
	kept("fw1 converted and MASTER again: fwpaird on both nodes", time.Now())
	if st, err := fw2.Status(context.Background()); err != nil || st.VRRP.GroupState != "BACKUP" {
		t.Errorf("fw2: %+v %v", st.VRRP, err)
	}
}

// convert imports node n's keepalived.conf and conntrackd.conf, stops
// what still runs of its reference stack and starts fwpaird.
func convert(t *testing.T, ref *refStack, n int, bin, dir string) *testenv.Daemon {
	t.Helper()
	nd := ref.nodes[n-1]
	res, err := importer.Import(importer.Input{Keepalived: nd.kaConf, Conntrackd: nd.ctdConf})
	if err != nil {
		t.Fatalf("import fw%d: %v", n, err)
	}
	for _, p := range res.Problems() {
		t.Logf("fw%d import: %s", n, p)
	}
	cfg := filepath.Join(dir, fmt.Sprintf("fw%d.toml", n))
	if err := os.WriteFile(cfg, res.TOML, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := nd.ka.Signal(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := nd.ctd.Signal(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	d, err := testenv.StartDaemon(ref.lab.FW(n), bin, fmt.Sprintf("fw%d", n), cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.Running() {
			d.Kill()
		}
	})
	return d
}

// waitExternal waits until d's external cache holds want entries.
func waitExternal(t *testing.T, d *testenv.Daemon, want int) {
	t.Helper()
	got := 0
	err := poll(20*time.Second, 20*time.Millisecond, "fwpaird's external cache", func() (bool, error) {
		st, err := d.Status(context.Background())
		if err != nil || st.Sync == nil {
			return false, nil
		}
		got = st.Sync.ExternalEntries
		return got >= want, nil
	})
	if err != nil {
		t.Fatalf("%v: %d of %d\n%s", err, got, want, d.LogTail(30))
	}
}
