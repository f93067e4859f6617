package ctsync

import (
	"fmt"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/testenv"
)

// TestPrivilegedDirectInjectConsistency: with the own-event filter on, a
// direct-inject BACKUP records what it injects itself, so the consistency
// check's view of the peer's table (digest.go) matches the MASTER's:
// after a burst with SNAT entries, and after updates the BACKUP applies by
// replacing its NAT entries (delete + create, whose own DESTROY events
// arrive after the new state is recorded), the digests match without any
// repair. Without the recording, the BACKUP's view is empty and never
// matches.
func TestPrivilegedDirectInjectConsistency(t *testing.T) {
	testenv.RequirePrivileged(t)
	a, b := nsPair(t, 1)
	const every = 150 * time.Millisecond
	na := startNSNode(t, a, Config{Channels: unicast(1, 0), ConsistencyInterval: every}, ctnetlink.KernelOptions{})
	nb := startNSNode(t, b, Config{Channels: unicast(1, 1), DirectInject: true, ConsistencyInterval: every}, ctnetlink.KernelOptions{})
	na.e.SetMaster(true) // the MASTER sends the digests
	traffic := labKernel(t, a)
	flows := append(genFlows(1500, 0, 0), ctnetlinktest.BenchFlows(500, ctnetlink.ProtoTCP, true)...)
	if _, err := traffic.Commit(labCtx(t, 10*time.Second), flows); err != nil {
		t.Fatal(err)
	}
	injected := func(mark uint32) func() error {
		return func() error {
			got, err := nb.k.Dump(labCtx(t, 10*time.Second))
			if err != nil {
				return err
			}
			n := 0
			for i := range got {
				if mark == 0 || got[i].Mark == mark {
					n++
				}
			}
			if n < len(flows) {
				return fmt.Errorf("%d of %d entries in b's kernel", n, len(flows))
			}
			return nil
		}
	}
	waitFor(t, 15*time.Second, "injected into b's kernel", injected(0))
	// An in-place mark change of every entry on a (written without the NAT
	// attributes, so a's NAT entries are updated, not replaced): b updates
	// its plain entries and replaces its NAT ones.
	upd := make([]Flow, len(flows))
	for i, f := range flows {
		f.SNAT, f.DNAT, f.Mark = NAT{}, NAT{}, 77
		upd[i] = f
	}
	if res, err := traffic.Commit(labCtx(t, 10*time.Second), upd); err != nil || res.Updated != len(upd) {
		t.Fatalf("update on a = %+v, %v", res, err)
	}
	waitFor(t, 15*time.Second, "updates injected", injected(77))
	// Digests taken while states are in flight may differ and trigger a
	// repair; once everything has arrived they must match, and keep
	// matching with nothing more to repair.
	settled := time.Now()
	clean := func(after time.Time) func() error {
		return func() error {
			if c := nb.e.Consistency(); !c.LastClean.After(after) {
				return fmt.Errorf("last clean %v, checks %d, repaired %d (a: %+v)", c.LastClean, c.Checks, c.Repaired, na.e.Consistency())
			}
			return nil
		}
	}
	waitFor(t, 15*time.Second, "a clean digest after the burst", clean(settled))
	before := nb.e.Consistency()
	checks := before.Checks
	waitFor(t, 15*time.Second, "three more digests", func() error {
		if c := nb.e.Consistency(); c.Checks < checks+3 {
			return fmt.Errorf("%d checks", c.Checks)
		}
		return nil
	})
	waitFor(t, 5*time.Second, "a clean digest at the end", clean(time.Now().Add(-every/2)))
	if c := nb.e.Consistency(); c.Repaired != before.Repaired {
		t.Errorf("repairs went on after the digests matched: %d, then %d", before.Repaired, c.Repaired)
	}
	if st := nb.e.Stats(); st.EventsOwn == 0 {
		t.Errorf("b stats: %+v (want the own DESTROY events of the replaces)", st)
	}
	t.Logf("b: %+v, inject failed %d", nb.e.Consistency(), nb.e.Stats().InjectFailed)
}
