package appliance

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fwpair/fwpair/appliance/api"
	"github.com/fwpair/fwpair/vrrp"
	"github.com/fwpair/fwpair/vrrp/vrrptest"
)

// fakeSync is an in-memory sync engine that records what the daemon asks
// of it and when (under synctest, time is the bubble's fake clock).
type fakeSync struct {
	commitTook time.Duration
	resyncTook time.Duration
	direct     bool
	ready      chan struct{}

	mu    sync.Mutex
	calls []call
	// incomplete, while set, makes PeerState report a missing state
	// (faults_test.go).
	incomplete bool
}

type call struct {
	name     string
	start    time.Time
	finished time.Time
}

func newFakeSync(commitTook time.Duration) *fakeSync {
	return &fakeSync{commitTook: commitTook, ready: make(chan struct{})}
}

func (f *fakeSync) record(name string, start time.Time) {
	f.mu.Lock()
	f.calls = append(f.calls, call{name, start, time.Now()})
	f.mu.Unlock()
}

func (f *fakeSync) callsNamed(name string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.name == name {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeSync) names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.name)
	}
	return out
}

func (f *fakeSync) Run(ctx context.Context) error {
	close(f.ready)
	<-ctx.Done()
	return nil
}
func (f *fakeSync) Ready() <-chan struct{} { return f.ready }
func (f *fakeSync) Commit(ctx context.Context) (api.CommitResult, error) {
	start := time.Now()
	select {
	case <-time.After(f.commitTook):
	case <-ctx.Done():
		return api.CommitResult{}, ctx.Err()
	}
	f.record("commit", start)
	return api.CommitResult{Created: 1000, Seconds: f.commitTook.Seconds()}, nil
}
func (f *fakeSync) Resync(ctx context.Context) error {
	start := time.Now()
	select {
	case <-time.After(f.resyncTook):
	case <-ctx.Done():
		f.record("resync cancelled", start)
		return ctx.Err()
	}
	f.record("resync", start)
	return nil
}
func (f *fakeSync) Flush(which string) error {
	f.record("flush "+which, time.Now())
	return nil
}
func (f *fakeSync) BulkSend() error                        { f.record("bulk", time.Now()); return nil }
func (f *fakeSync) RequestResync() error                   { f.record("request-resync", time.Now()); return nil }
func (f *fakeSync) SchedulePurge(time.Duration)            { f.record("purge", time.Now()) }
func (f *fakeSync) DirectInject() bool                     { return f.direct }
func (f *fakeSync) SetFilter(FilterConfig) error           { f.record("filter", time.Now()); return nil }
func (f *fakeSync) SetAuthKeys([][]byte) error             { f.record("auth", time.Now()); return nil }
func (f *fakeSync) SetMaster(master bool)                  { f.record(fmt.Sprintf("master=%v", master), time.Now()) }
func (f *fakeSync) Status() api.SyncStatus                 { return api.SyncStatus{Mode: "ftfw"} }
func (f *fakeSync) Stats() map[string]uint64               { return map[string]uint64{"x": 1} }
func (f *fakeSync) Cache(string) ([]api.CacheEntry, error) { return nil, nil }
func (f *fakeSync) Close() error                           { return nil }

func simConfig(t *testing.T, node string, prio int) *Config {
	t.Helper()
	cfg, err := LoadConfig("../etc/node1.toml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node = node
	for i := range cfg.VRRP.Instances {
		cfg.VRRP.Instances[i].Priority = uint8(prio)
	}
	return cfg
}

// simOptions wires a daemon to an in-memory VRRP node and a fake sync
// engine, without a control socket.
func simOptions(node *vrrptest.Node, fs *fakeSync) Options {
	return Options{
		noControl: true,
		Logger:    slog.New(slog.DiscardHandler),
		newSync:   func(*SyncConfig, ownAddrs, *slog.Logger) (syncEngine, error) { return fs, nil },
		newVRRP: func(c vrrp.Config, o vrrp.Options) (vrrpGroup, error) {
			fake := node.Options()
			o.Dialer, o.Addresser, o.Announcer, o.Links = fake.Dialer, fake.Addresser, fake.Announcer, fake.Links
			return vrrp.New(c, o)
		},
	}
}

// simNode is one daemon on the in-memory VRRP network with a fake sync.
type simNode struct {
	d      *Daemon
	sync   *fakeSync
	net    *vrrptest.Node
	cancel context.CancelFunc
	done   chan error
}

func startSim(t *testing.T, n *vrrptest.Network, name string, prio int, lastOctet byte, commitTook time.Duration, direct bool) *simNode {
	t.Helper()
	node := n.Node(name).
		Attach("eth0", "lan0", netip.AddrFrom4([4]byte{192, 168, 0, lastOctet})).
		Attach("eth1", "lan1", netip.AddrFrom4([4]byte{192, 168, 1, lastOctet}))
	return runSim(t, node, name, prio, commitTook, direct)
}

// runSim starts a daemon on an existing in-memory node (also a restart).
func runSim(t *testing.T, node *vrrptest.Node, name string, prio int, commitTook time.Duration, direct bool) *simNode {
	t.Helper()
	fs := newFakeSync(commitTook)
	fs.direct = direct
	d, err := New(simConfig(t, name, prio), simOptions(node, fs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sn := &simNode{d: d, sync: fs, net: node, cancel: cancel, done: make(chan error, 1)}
	go func() { sn.done <- d.Run(ctx) }()
	return sn
}

func (s *simNode) stop(t *testing.T) {
	s.cancel()
	if err := <-s.done; err != nil {
		t.Errorf("%s: Run: %v", s.d.config().Node, err)
	}
}

func firstAdd(n *vrrptest.Node, after time.Time) (time.Time, bool) {
	for _, e := range n.VIPEvents() {
		if e.Added && !e.At.Before(after) {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// TestMasterTransitionOrder checks the heart of the product: the commit
// finishes before any VIP is added, and the follow-up (flush, resync,
// bulk) comes after; a BACKUP transition schedules the purge and asks for
// a resync.
func TestMasterTransitionOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vrrptest.NewNetwork()
		const commitTook = 300 * time.Millisecond
		fw1 := startSim(t, n, "fw1", 150, 1, commitTook, false)
		fw2 := startSim(t, n, "fw2", 100, 2, commitTook, false)

		time.Sleep(5 * time.Second) // fake time: the election settles
		synctest.Wait()
		if got := fw1.d.Status().VRRP.GroupState; got != "MASTER" {
			t.Fatalf("fw1 is %s, want MASTER", got)
		}
		if got := fw2.d.Status().VRRP.GroupState; got != "BACKUP" {
			t.Fatalf("fw2 is %s, want BACKUP", got)
		}
		commits := fw1.sync.callsNamed("commit")
		if len(commits) != 1 {
			t.Fatalf("fw1 commits: %v", fw1.sync.names())
		}
		added, ok := firstAdd(fw1.net, time.Time{})
		if !ok {
			t.Fatal("fw1 never added its VIPs")
		}
		if added.Before(commits[0].finished) {
			t.Errorf("VIPs added at %v, before the commit finished at %v", added, commits[0].finished)
		}
		if len(fw2.net.VIPs()) != 0 {
			t.Errorf("fw2 holds VIPs as BACKUP: %v", fw2.net.VIPs())
		}
		if got := fw2.sync.names(); !slices.Equal(got, []string{"master=false"}) {
			t.Errorf("fw2 starting as BACKUP should only keep injecting, called %v", got)
		}
		want := []string{"master=false", "master=true", "commit", "flush external", "resync", "bulk"}
		if got := fw1.sync.names(); !slices.Equal(got, want) {
			t.Errorf("fw1 sync calls %v, want %v", got, want)
		}
		last := fw1.d.Status().LastTransition
		if last == nil || last.To != "MASTER" || last.CommitEntries != 1000 || last.CommitSeconds < commitTook.Seconds() || last.VIPsSeconds < last.CommitSeconds {
			t.Errorf("fw1 last transition: %+v", last)
		}

		// Graceful stop of fw1: fw2 takes over after Skew_Time, committing
		// first.
		stopAt := time.Now()
		fw1.stop(t)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if got := fw2.d.Status().VRRP.GroupState; got != "MASTER" {
			t.Fatalf("fw2 is %s after fw1 stopped, want MASTER", got)
		}
		commits = fw2.sync.callsNamed("commit")
		added, ok = firstAdd(fw2.net, stopAt)
		if len(commits) != 1 || !ok || added.Before(commits[0].finished) {
			t.Errorf("fw2 takeover: commits %v, VIPs added at %v (ok=%v)", commits, added, ok)
		}
		if took := added.Sub(stopAt); took > time.Second+commitTook {
			t.Errorf("graceful takeover took %v", took)
		}
		if len(fw1.net.VIPs()) != 0 {
			t.Errorf("fw1 kept VIPs after a graceful stop: %v", fw1.net.VIPs())
		}

		// fw1 comes back and preempts: fw2 leaves MASTER, schedules the
		// purge of what it owned and asks fw1 for its state.
		fw1 = runSim(t, fw1.net, "fw1", 150, commitTook, false)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := fw1.d.Status().VRRP.GroupState; got != "MASTER" {
			t.Fatalf("restarted fw1 is %s, want MASTER (preempt)", got)
		}
		names := fw2.sync.names()
		if !slices.Contains(names, "purge") || !slices.Contains(names, "request-resync") {
			t.Errorf("fw2 back to BACKUP did not purge and request a resync: %v", names)
		}
		if len(fw2.net.VIPs()) != 0 {
			t.Errorf("fw2 kept VIPs as BACKUP: %v", fw2.net.VIPs())
		}
		fw1.stop(t)
		fw2.stop(t)
	})
}

// TestDirectInjectSkipsCommit: with direct inject the states are already
// in the kernel, so nothing delays the VIPs.
func TestDirectInjectSkipsCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := vrrptest.NewNetwork()
		fw1 := startSim(t, n, "fw1", 150, 1, time.Second, true)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if len(fw1.sync.callsNamed("commit")) != 0 {
			t.Errorf("direct inject committed: %v", fw1.sync.names())
		}
		if got := fw1.sync.names(); !slices.Equal(got, []string{"master=false", "master=true", "resync", "bulk"}) {
			t.Errorf("calls %v", got)
		}
		fw1.stop(t)
	})
}
