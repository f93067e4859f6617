package ctsync

import (
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
