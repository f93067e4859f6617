package appliance

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fwpair/fwpair/testenv"
)

// leakChildEnv marks the re-executed test binary that runs inside the
// test's namespace.
const leakChildEnv = "FWPAIR_LEAK_CHILD"

// TestDaemonStartStopLeaks starts and stops a real daemon (VRRP raw
// sockets, ctnetlink, UDP sync channel, control socket, metrics server)
// in-process, several times, and checks that goroutines and file
// descriptors come back to their baseline: every task and socket has an
// owner that closes it. The whole test process must live in the
// namespace (the engines open sockets from their own goroutines), so the
// test re-executes itself there with ip netns exec.
func TestDaemonStartStopLeaks(t *testing.T) {
	if os.Getenv(leakChildEnv) == "1" {
		startStopInProcess(t)
		return
	}
	testenv.RequirePrivileged(t)
	ns := testenv.NewNS(t, "leak")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The interfaces of etc/node1.toml: eth0 and eth1 for VRRP, eth2 the
	// sync link to a peer address that nothing answers on.
	for _, c := range [][]string{
		{"link", "add", "eth0", "type", "veth", "peer", "name", "p0"},
		{"link", "add", "eth1", "type", "veth", "peer", "name", "p1"},
		{"link", "add", "eth2", "type", "veth", "peer", "name", "p2"},
		{"addr", "add", "192.168.0.1/24", "dev", "eth0"},
		{"addr", "add", "192.168.1.1/24", "dev", "eth1"},
		{"addr", "add", "10.0.0.1/30", "dev", "eth2"},
		{"addr", "add", "10.0.0.2/30", "dev", "p2"},
	} {
		if out, err := ns.Run(ctx, "ip", c...); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(c, " "), err, out)
		}
	}
	for _, l := range []string{"eth0", "eth1", "eth2", "p0", "p1", "p2"} {
		if out, err := ns.Run(ctx, "ip", "link", "set", l, "up"); err != nil {
			t.Fatalf("link %s up: %v: %s", l, err, out)
		}
	}
	cmd := ns.Cmd(ctx, os.Args[0], "-test.run=^TestDaemonStartStopLeaks$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), leakChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("in %s:\n%s", ns.Name, out)
	if err != nil {
		t.Fatalf("in-namespace run failed: %v", err)
	}
}

// startStopInProcess is the part that runs inside the namespace.
func startStopInProcess(t *testing.T) {
	const runs = 3
	// No garbage collection while counting: the finalizer of a leaked
	// socket would close it and hide the leak.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	baseGoroutines := runtime.NumGoroutine()
	baseFDs := openFDs(t)
	for i := range runs {
		cfg, err := LoadConfig("../etc/node1.toml")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Metrics.Listen = "127.0.0.1:0"
		// Alone in its namespace the node has no peer whose state it could
		// wait for: readiness is then just every engine up.
		cfg.Sync.ReadyTimeout = 0
		d, err := New(cfg, Options{
			Socket:   filepath.Join(t.TempDir(), "fwpair.sock"),
			Registry: prometheus.NewRegistry(),
			Gatherer: prometheus.NewRegistry(),
		})
		if err != nil {
			t.Fatalf("run %d: New: %v", i, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		// The first run goes as far as MASTER (commit, VIPs, follow-ups),
		// the others stop as soon as every engine is up.
		want := func() bool { return d.readyForTakeover() }
		if i == 0 {
			want = func() bool { return d.Status().VRRP.GroupState == "MASTER" }
		}
		if !poll(15*time.Second, want) {
			cancel()
			t.Fatalf("run %d: daemon never got there: %+v (Run: %v)", i, d.Status().VRRP, drain(done))
		}
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: Run: %v", i, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("run %d: Run did not return 20s after its context ended", i)
		}
	}
	var g, fds int
	if !poll(10*time.Second, func() bool {
		g, fds = runtime.NumGoroutine(), openFDs(t)
		return g <= baseGoroutines && fds <= baseFDs
	}) {
		buf := make([]byte, 1<<20)
		t.Errorf("after %d start/stop runs: %d goroutines (baseline %d), %d fds (baseline %d)\n%s\n%s",
			runs, g, baseGoroutines, fds, baseFDs, fdTargets(t), buf[:runtime.Stack(buf, true)])
	}
	t.Logf("%d start/stop runs: %d goroutines (baseline %d), %d fds (baseline %d)", runs, g, baseGoroutines, fds, baseFDs)
}

func drain(done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-time.After(20 * time.Second):
		return nil
	}
}

// poll checks cond every 50 ms until it holds or within has passed.
func poll(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func fdTargets(t *testing.T) string {
	ents, _ := os.ReadDir("/proc/self/fd")
	var b strings.Builder
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		b.WriteString(e.Name() + " -> " + target + "\n")
	}
	return b.String()
}
