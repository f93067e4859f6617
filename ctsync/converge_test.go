package ctsync

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

// TestConvergeReturningNode: a BACKUP (direct inject) that comes back with
// old kernel entries ends up with exactly the MASTER's table: what the
// MASTER no longer has is removed, what it has is kept; nothing is removed
// when the peer never answers or when the node becomes MASTER first.
func TestConvergeReturningNode(t *testing.T) {
	flow := func(i int) Flow { return ctnetlinktest.TCP("192.168.0.10", "192.168.1.20", uint16(30000+i), 443) }
	for _, tc := range []struct {
		name        string
		master      int // flows on the MASTER: 0..master-1
		noPeer      bool
		takeover    bool
		wantRemoved int
	}{
		{"stale entries removed", 10, false, false, 5},
		{"peer table empty", 0, false, false, 10},
		{"peer never answers", 10, true, false, 0},
		{"becomes MASTER first", 10, false, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var net MemNetwork
				la, lb := net.NewMemLink("sync0", 1472)
				ka, kb := ctsynctest.NewKernel(), ctsynctest.NewKernel()
				for i := range tc.master {
					ka.Create(flow(i))
				}
				// The returning node's leftovers: flows 5..14, of which the
				// MASTER still has 5..9 (if any) and closed 10..14.
				kb.SetSilent(true)
				for i := 5; i < 15; i++ {
					f := flow(i)
					f.Mark = 1 // an older state
					kb.Create(f)
				}
				kb.SetSilent(false)
				if !tc.noPeer {
					a := runEngine(t, Config{}, ka, []Channel{la})
					a.SetMaster(true)
				}
				b := runEngine(t, Config{DirectInject: true}, kb, []Channel{lb})
				if tc.takeover {
					b.SetMaster(true)
				}
				time.Sleep(30 * time.Second)
				synctest.Wait()
				got := kb.Snapshot()
				if n := int(b.Stats().Converged); n != tc.wantRemoved {
					t.Errorf("removed %d entries, want %d", n, tc.wantRemoved)
				}
				switch {
				case tc.noPeer || tc.takeover:
					for i := 5; i < 15; i++ {
						if _, ok := got[flow(i).Key]; !ok {
							t.Errorf("entry %d removed from the kernel", i)
						}
					}
				default:
					if err := sameAs(mapValues(got), ka.Snapshot()); err != nil {
						t.Errorf("BACKUP's kernel differs from the MASTER's: %v", err)
					}
					if n := b.Status().InternalEntries; n != tc.master {
						t.Errorf("internal cache %d entries, want %d", n, tc.master)
					}
				}
			})
		})
	}
}

// TestConvergeRoundCountsStatesDuringItsWalk: a RESYNC request's
// convergence round fills its set of unconfirmed keys in chunks (the walk
// yields to the hot paths); the peer's states that arrive while it does
// confirm their keys even when the walk has not reached them yet, so none
// of them is deleted when the round closes. The states are sent between
// the first two chunks, for every entry: without the early set, the keys
// walked after them would stay unconfirmed.
func TestConvergeRoundCountsStatesDuringItsWalk(t *testing.T) {
	const n = 5 * walkChunk
	k := ctsynctest.NewKernel()
	k.SetSilent(true)
	var flows []Flow
	for i := range n {
		f := walkFlow(i)
		flows = append(flows, f)
		k.Create(f)
	}
	k.SetSilent(false)
	var net MemNetwork
	x, y := net.NewMemLink("peer", 1472)
	e, err := New(Config{DirectInject: true, NoStartupResync: true}, Options{Kernel: k, Channels: []Channel{y}})
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePeer{t: t, ch: x, seq: 1000}
	var armed atomic.Bool
	e.walkYield = func(int) {
		if !armed.CompareAndSwap(true, false) {
			return
		}
		p.sendFlows(MsgCTUpd, flows...)
		deadline := time.Now().Add(20 * time.Second)
		for e.Stats().Applied < n && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	runBuilt(t, e)
	armed.Store(true)
	e.RequestResync()
	if armed.Load() {
		t.Fatal("the round's walk did not yield")
	}
	if got := e.Stats().Applied; got < n {
		t.Fatalf("%d states applied during the walk, want %d", got, n)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r := e.converge
	if r == nil || r.building {
		t.Fatalf("round %+v: want one built", r)
	}
	if len(r.pending) != 0 {
		t.Errorf("%d keys unconfirmed after the peer sent every state, want 0", len(r.pending))
	}
}
