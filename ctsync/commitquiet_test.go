package ctsync

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// quietFakeKernel is a fakeKernel with CommitQuiet: the commit emits no
// events, and during runs inside the window (its changes emit none either,
// like traffic whose events the unsubscribed listener misses); then an
// EventGap is delivered, as LinuxKernel does.
type quietFakeKernel struct {
	*fakeKernel
	during func()
	quiet  int
}

func (k *quietFakeKernel) CommitQuiet(ctx context.Context, flows []Flow) (CommitResult, error) {
	k.mu.Lock()
	k.silent = true
	k.mu.Unlock()
	res, err := k.fakeKernel.Commit(ctx, flows)
	if k.during != nil {
		k.during()
	}
	k.mu.Lock()
	k.silent = false
	k.quiet++
	k.pending = append(k.pending, Event{Type: EventGap})
	select {
	case k.notify <- struct{}{}:
	default:
	}
	k.mu.Unlock()
	return res, err
}

// TestEngineQuietCommitReconciles: the engine commits through CommitQuiet
// and answers its EventGap with a dump that replicates what traffic did
// inside the window (a flow created and one updated while the listener was
// out of the groups reach the peer), without counting an overrun.
func TestEngineQuietCommitReconciles(t *testing.T) {
	_, la, lb := memPair(ModeFTFW)
	ka := newFakeKernel()
	kb := &quietFakeKernel{fakeKernel: newFakeKernel()}
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
	kb.during = func() {
		kb.Create(created) // silent: the window's missed NEW
		kb.Create(changed) // silent: the window's missed UPDATE
	}
	res, err := eb.Commit(context.Background())
	if err != nil || res.Created != 500 {
		t.Fatalf("Commit = %+v, %v", res, err)
	}
	if kb.quiet != 1 {
		t.Fatalf("CommitQuiet used %d times, want 1", kb.quiet)
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
