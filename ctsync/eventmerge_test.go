package ctsync

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

// TestEngineUpdateKeepsLabelsAndState: an UPDATE event without labels or
// protocol info (as the kernel sends for a mark or status change) does
// not strip them from what the peer receives.
func TestEngineUpdateKeepsLabelsAndState(t *testing.T) {
	_, la, lb := memPair(ModeFTFW)
	ka, kb := ctsynctest.NewKernel(), ctsynctest.NewKernel()
	startNode(t, Config{}, ka, la, nil)
	b := startNode(t, Config{}, kb, lb, nil)
	f := ctnetlinktest.TCP("192.168.0.10", "192.168.1.20", 40000, 443)
	f.Labels = []byte{2, 0, 0, 0, 0, 0, 0, 0x80}
	ka.Create(f)
	upd := f
	upd.Labels, upd.HasProtoState, upd.ProtoState, upd.Mark = nil, false, 0, 9
	ka.Create(upd)
	waitFor(t, 10*time.Second, "update on the peer", func() error {
		g, ok := flowMap(b.e.Entries(CacheExternal))[f.Key]
		switch {
		case !ok || g.Mark != 9:
			return fmt.Errorf("not yet: %+v", g)
		case !bytes.Equal(g.Labels, f.Labels):
			return fmt.Errorf("labels %x, want %x", g.Labels, f.Labels)
		case !g.HasProtoState || g.ProtoState != f.ProtoState:
			return fmt.Errorf("TCP state lost: %+v", g)
		}
		return nil
	})
}
