package ctsync

// The harness of the engine tests: engines on ctsynctest's fake kernel
// joined by in-memory links, a fake peer that speaks FTFW on the raw end
// of a link, and polling with a deadline. The fakes themselves (kernel,
// expectation table) are in ctsynctest, shared with the packages above.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

// testNode is an engine running on a fake kernel.
type testNode struct {
	e      *Engine
	k      *ctsynctest.Kernel
	cancel context.CancelFunc
	done   chan error
}

func startNode(t *testing.T, cfg Config, k *ctsynctest.Kernel, links []Channel, filter interface{ Accept(*Flow) bool }) *testNode {
	t.Helper()
	return startWith(t, cfg, k, Options{Kernel: k, Channels: links, Filter: filter})
}

// startWith runs an engine with opts (whose Kernel is k) until the test
// ends, once it is ready.
func startWith(t *testing.T, cfg Config, k *ctsynctest.Kernel, opts Options) *testNode {
	t.Helper()
	e, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &testNode{e: e, k: k, cancel: cancel, done: make(chan error, 1)}
	go func() { n.done <- e.Run(ctx) }()
	t.Cleanup(n.stop)
	select {
	case <-e.Ready():
	case err := <-n.done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		// Generous: the initial resync of a 100,000-entry table runs
		// interleaved with the events of the same entries (walk.go), a
		// few seconds under -race on a loaded 2-core host.
		t.Fatal("engine not ready")
	}
	return n
}

func (n *testNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	<-n.done
	n.e.Close()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for wait := 5 * time.Millisecond; time.Now().Before(deadline); wait = min(2*wait, 200*time.Millisecond) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(wait)
	}
	t.Fatalf("%s: not within %v: %v", what, d, err)
}

// sameAs compares a cache listing with a kernel table (state and key).
func sameAs(got []Flow, want map[Key]Flow) error {
	seen := 0
	for i := range got {
		w, ok := want[got[i].Key]
		if !ok {
			return fmt.Errorf("stale entry %v (%d entries, want %d)", got[i].Key, len(got), len(want))
		}
		if !sameState(&got[i], &w) {
			return fmt.Errorf("entry %v: got %+v want %+v", got[i].Key, got[i], w)
		}
		seen++
	}
	if seen != len(want) {
		return fmt.Errorf("%d entries, want %d", seen, len(want))
	}
	return nil
}

func memPair(mode Mode) (*MemNetwork, []Channel, []Channel) {
	var n MemNetwork
	a, b := n.NewMemLink("sync0", 1472)
	return &n, []Channel{a}, []Channel{b}
}

// fakePeer speaks for the peer on the raw end of an in-memory link, with
// its own FTFW sequence.
type fakePeer struct {
	t   *testing.T
	ch  *MemChannel
	seq uint32
	w   WireOptions
}

func (p *fakePeer) next() uint32 { p.seq++; return p.seq }

func (p *fakePeer) sendFlows(t MsgType, flows ...Flow) {
	p.t.Helper()
	var d []byte
	for i := range flows {
		var err error
		d, err = p.w.AppendCT(d, t, 0, p.next(), &flows[i])
		if err != nil {
			p.t.Fatal(err)
		}
		if len(d) > 1300 {
			_ = p.ch.Send(d)
			d = nil
		}
	}
	if len(d) > 0 {
		_ = p.ch.Send(d)
	}
}

func startWithFakePeer(t *testing.T, cfg Config, k *ctsynctest.Kernel, filter interface{ Accept(*Flow) bool }) (*testNode, *fakePeer) {
	t.Helper()
	var net MemNetwork
	x, y := net.NewMemLink("peer", 1472)
	cfg.NoStartupResync = true
	n := startNode(t, cfg, k, []Channel{y}, filter)
	return n, &fakePeer{t: t, ch: x, seq: 1000}
}
