package ctsync

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

// TestEngineQuietCommitReconciles: the engine commits through CommitQuiet
// and answers its EventGap with a dump that replicates what traffic did
// inside the window (a flow created and one updated while the listener was
// out of the groups reach the peer), without counting an overrun.
func TestEngineQuietCommitReconciles(t *testing.T) {
	_, la, lb := memPair(ModeFTFW)
	ka := ctsynctest.NewKernel()
	kb := &ctsynctest.QuietKernel{Kernel: ctsynctest.NewKernel()}
	a := startNode(t, Config{}, ka, la, nil)
	cfg := Config{OverrunResyncDelay: 20 * time.Millisecond}
	eb, err := New(cfg, Options{Kernel: kb, Channels: lb})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eb.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		eb.Close()
	})
	select {
	case <-eb.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("engine b not ready")
	}

	r := rand.New(rand.NewPCG(7, 8))
	for range 500 {
		ka.Create(randFlow(r))
	}
	waitFor(t, 10*time.Second, "replication to b", func() error { return sameAs(eb.Entries(CacheExternal), ka.Snapshot()) })

	// b's own flow, replicated to a before the commit.
	own := randFlow(r)
	kb.Create(own)
	waitFor(t, 5*time.Second, "b's flow at a", func() error {
		for _, f := range a.e.Entries(CacheExternal) {
			if f.Key == own.Key {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
	created := randFlow(r)
	changed := own
	changed.Mark ^= 0x5a5a
	kb.During = func() {
		kb.Create(created) // silent: the window's missed NEW
		kb.Create(changed) // silent: the window's missed UPDATE
	}
	res, err := eb.Commit(context.Background())
	if err != nil || res.Created != 500 {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	if kb.Quiet() != 1 {
		t.Fatalf("CommitQuiet used %d times, want 1", kb.Quiet())
	}
	waitFor(t, 10*time.Second, "the window's traffic at a", func() error {
		var gotNew, gotUpd bool
		for _, f := range a.e.Entries(CacheExternal) {
			gotNew = gotNew || f.Key == created.Key
			gotUpd = gotUpd || (f.Key == changed.Key && f.Mark == changed.Mark)
		}
		if !gotNew || !gotUpd {
			return fmt.Errorf("created %v, update %v", gotNew, gotUpd)
		}
		return nil
	})
	if st := eb.Stats(); st.Overruns != 0 || st.Resyncs == 0 {
		t.Errorf("stats %+v: want a resync and no overrun counted", st)
	}
}

// TestEngineRecordsInjected: with a kernel that filters its own NEW/UPDATE
// events, the injector records what it wrote in the internal cache
// (flagged injected, digest.go's BACKUP view), and the own DESTROY of a
// replace read after that does not remove the new state.
func TestEngineRecordsInjected(t *testing.T) {
	k := &ctsynctest.RecordingKernel{Kernel: ctsynctest.NewKernel()}
	var net MemNetwork
	x, y := net.NewMemLink("peer", 1472)
	e, err := New(Config{DirectInject: true, NoStartupResync: true}, Options{Kernel: k, Channels: []Channel{y}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		e.Close()
	})
	p := &fakePeer{t: t, ch: x, seq: 1000}
	f := flowN(1)
	f.Mark = 1
	internal := func(mark uint32) func() error {
		return func() error {
			e.mu.Lock()
			defer e.mu.Unlock()
			c, ok := e.internal.Get(f.Key)
			if !ok || c.Mark != mark || !e.isInjectedLocked(&f.Key) {
				return fmt.Errorf("internal entry %v (mark %d), injected %v; want mark %d", ok, c.Mark, e.isInjectedLocked(&f.Key), mark)
			}
			return nil
		}
	}
	p.sendFlows(MsgCTNew, f)
	waitFor(t, 5*time.Second, "injected entry recorded", internal(1))
	f.Mark = 2
	p.sendFlows(MsgCTUpd, f)
	waitFor(t, 5*time.Second, "replaced entry recorded", internal(2))
	k.Release()
	waitFor(t, 5*time.Second, "own DESTROY read", func() error {
		if st := e.Stats(); st.EventsDestroy != 1 {
			return fmt.Errorf("%d DESTROY events", st.EventsDestroy)
		}
		return nil
	})
	if err := internal(2)(); err != nil {
		t.Errorf("after the replace's own DESTROY: %v", err)
	}
	if st := e.Stats(); st.EventsNew+st.EventsUpdate != 0 || st.Injected != 2 {
		t.Errorf("stats %+v: want no NEW/UPDATE event, 2 injected", st)
	}
}
