package ctsync

import (
	"fmt"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/testenv"
)

// TestPrivilegedQuietInjectKeepsOwnFlows: a BACKUP that injects the
// peer's table with its event socket out of the NEW and UPDATE groups
// (commitquiet.go) still replicates the flows of its own traffic created
// meanwhile: their events are missed, and the dump that follows the quiet
// writes finds and sends them. Every inject write of the answer to its
// resync request is made quiet here, while the peer sends a steady stream
// and the BACKUP's own flows appear one at a time. Once the answer is
// complete, the injector no longer goes quiet, whatever the backlog.
func TestPrivilegedQuietInjectKeepsOwnFlows(t *testing.T) {
	testenv.RequirePrivileged(t)
	a, b := nsPair(t, 1)
	na := startNSNode(t, a, Config{Channels: unicast(1, 0)}, ctnetlink.KernelOptions{})

	nb := startNSNodeWith(t, b, Config{Channels: unicast(1, 1), DirectInject: true}, ctnetlink.KernelOptions{},
		func(e *Engine) { e.quietInjectMin = 1 }) // every inject write out of the groups
	nb.e.RequestResync() // the stream below is (part of) its answer
	trafficA, trafficB := labKernel(t, a), labKernel(t, b)
	const peerFlows, ownFlows = 40000, 300
	peer := genFlows(peerFlows, 0, 0)
	own := genFlows(ownFlows, 100000, 0)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < len(peer); i += 500 {
			if _, err := trafficA.Commit(labCtx(t, 10*time.Second), peer[i:i+500]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	pace := time.NewTicker(3 * time.Millisecond) // spread over the peer's stream
	defer pace.Stop()
	for i := range own {
		<-pace.C
		if _, err := trafficB.Commit(labCtx(t, 10*time.Second), own[i:i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the peer's flows in the BACKUP's kernel", func() error {
		if n := nb.e.Stats().Injected; n < peerFlows {
			return fmt.Errorf("%d of %d injected", n, peerFlows)
		}
		return nil
	})
	if n := nb.e.Stats().QuietInjects; n == 0 {
		t.Fatal("no inject write was quiet")
	}
	waitFor(t, 20*time.Second, "the BACKUP's own flows at the peer", func() error {
		have := make(map[Key]bool)
		for _, f := range na.e.Entries(CacheExternal) {
			have[f.Key] = true
		}
		missing := 0
		for i := range own {
			if !have[own[i].Key] {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d own flows missing", missing, ownFlows)
		}
		return nil
	})
	quiet := nb.e.Stats().QuietInjects
	t.Logf("quiet inject writes: %d, resyncs: %d", quiet, nb.e.Stats().Resyncs)

	waitFor(t, 20*time.Second, "the answer complete", func() error {
		if ps := nb.e.PeerState(time.Now()); !ps.Complete {
			return fmt.Errorf("%s", ps.Reason)
		}
		return nil
	})
	burst := genFlows(20000, 200000, 0)
	if _, err := trafficA.Commit(labCtx(t, 10*time.Second), burst); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the burst in the BACKUP's kernel", func() error {
		if n := nb.e.Stats().Injected; n < peerFlows+uint64(len(burst)) {
			return fmt.Errorf("%d of %d injected", n, peerFlows+len(burst))
		}
		return nil
	})
	if n := nb.e.Stats().QuietInjects; n != quiet {
		t.Errorf("%d quiet inject writes in steady operation", n-quiet)
	}
}
