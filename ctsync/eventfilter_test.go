package ctsync

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

// TestOverrunResyncKeepsInjected: a direct-inject BACKUP whose kernel
// filters its own events resyncs from its kernel after an overrun (the
// dump shows the injected entries with the kernel's own status bits):
// the injected entries stay flagged (the consistency check's view of the
// peer's table) and none is sent back to the MASTER as this node's own.
func TestOverrunResyncKeepsInjected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var net MemNetwork
		la, lb := net.NewMemLink("sync0", 1472)
		ka := ctsynctest.NewKernel()
		kb := &ctsynctest.RecordingKernel{Kernel: ctsynctest.NewKernel()}
		// No start-up RESYNC: b's answer to it would send its whole
		// internal cache, a bulk this test does not look at.
		a := runEngine(t, Config{NoStartupResync: true}, ka, []Channel{la})
		b := runEngine(t, Config{DirectInject: true, NoStartupResync: true}, kb, []Channel{lb})
		a.SetMaster(true)
		const n = 200
		for i := range n {
			ka.Create(ctnetlinktest.TCP(fmt.Sprintf("192.168.0.%d", 1+i), "192.168.1.20", uint16(30000+i), 443))
		}
		injected := func() int {
			b.mu.Lock()
			defer b.mu.Unlock()
			c := 0
			b.viewLocked(false, func(*Cache, *ckey, *centry) { c++ })
			return c
		}
		for deadline := time.Now().Add(time.Minute); injected() != n; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d injected", injected(), n)
			}
		}
		// The kernel keeps its own status bits on what was written.
		kb.SetSilent(true)
		for _, f := range kb.Snapshot() {
			f.Status |= 1 << 3 // IPS_CONFIRMED
			kb.Kernel.Commit(t.Context(), []Flow{f})
		}
		kb.SetSilent(false)
		b.mu.Lock()
		sentBefore := b.sess.Stats().DataSent
		b.mu.Unlock()
		if _, err := b.resync(t.Context(), true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := injected(); got != n {
			t.Errorf("after the resync %d of %d entries are flagged injected", got, n)
		}
		b.mu.Lock()
		echoed := b.sess.Stats().DataSent - sentBefore
		b.mu.Unlock()
		if echoed != 0 {
			t.Errorf("%d injected entries sent back to the MASTER", echoed)
		}
	})
}
