package ctsync

import (
	"fmt"
	"testing"
	"time"

	"github.com/fwpair/fwpair/testenv"
)

// A fwpair node whose peer is conntrackd 1.4.7 (a pair migrated one node
// at a time) must see its startup resync answered in full: PeerState
// becomes Complete once conntrackd's flows are in the cache and it went
// quiet, so the appliance's preemption hold does not fall back to the
// bounded wait.
func TestPrivilegedConntrackdPeerState(t *testing.T) {
	testenv.RequirePrivileged(t)
	lab := testenv.NewLab(t, testenv.LabOptions{Prefix: "fwc"})
	theirs := conntrackdSideFlows()
	ctd := startConntrackd(t, lab.FW2, "FTFW", syncAddr2, syncAddr1)
	if _, err := labKernel(t, lab.FW2).Commit(labCtx(t, 10*time.Second), theirs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "conntrackd's internal cache", func() error {
		out, err := ctd.run(t, "-i")
		if err != nil {
			return err
		}
		for i := range theirs {
			if findLine(out, flowPattern(&theirs[i])) == "" {
				return fmt.Errorf("no %q", flowPattern(&theirs[i]))
			}
		}
		return nil
	})
	start := time.Now()
	n1 := startLabNode(t, lab.FW1, syncAddr1, syncAddr2, Config{}, nil)
	waitFor(t, 20*time.Second, "resync answered by conntrackd", func() error {
		if ps := n1.e.PeerState(time.Now()); !ps.Complete {
			return fmt.Errorf("%s", ps.Reason)
		}
		return nil
	})
	if err := containsAll(n1.e.Entries(CacheExternal), theirs); err != nil {
		t.Errorf("complete without every conntrackd flow: %v", err)
	}
	t.Logf("peer state complete %v after start", time.Since(start).Round(time.Millisecond))
}
