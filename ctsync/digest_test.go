package ctsync

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

// consistencyPair starts a MASTER a and a BACKUP b (direct inject or not)
// with the consistency check at period, linked through net, and 1,000 TCP
// flows (mark i) in a's kernel.
func consistencyPair(t *testing.T, period time.Duration, direct bool) (net *MemNetwork, a, b *Engine, ka, kb *ctsynctest.Kernel, flows []Flow) {
	net = new(MemNetwork)
	la, lb := net.NewMemLink("sync0", 1472)
	ka, kb = ctsynctest.NewKernel(), ctsynctest.NewKernel()
	a = runEngine(t, Config{ConsistencyInterval: period}, ka, []Channel{la})
	b = runEngine(t, Config{ConsistencyInterval: period, DirectInject: direct}, kb, []Channel{lb})
	a.SetMaster(true)
	for i := range 1000 {
		f := ctnetlinktest.TCP(fmt.Sprintf("192.168.0.%d", 1+i%200), "192.168.1.20", uint16(20000+i), 443)
		f.Mark = uint32(i)
		flows = append(flows, f)
		ka.Create(f)
	}
	return net, a, b, ka, kb, flows
}

// TestConsistencyCheckRepairs: with the consistency check on, an entry
// deleted on the BACKUP, an entry with a stale state and an extra entry
// the MASTER does not have are found and repaired without a resync, in
// both modes; the time it takes is logged (simulated time, 2 s period).
func TestConsistencyCheckRepairs(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const period = 2 * time.Second
				_, a, b, _, kb, flows := consistencyPair(t, period, direct)
				view := func() map[Key]Flow {
					out := map[Key]Flow{}
					b.mu.Lock()
					defer b.mu.Unlock()
					b.viewLocked(false, func(from *Cache, k *ckey, c *centry) { out[k.key()] = from.flowOf(k, c) })
					return out
				}
				for deadline := time.Now().Add(time.Minute); len(view()) != len(flows); {
					if time.Now().After(deadline) {
						t.Fatalf("view has %d entries, want %d", len(view()), len(flows))
					}
					time.Sleep(100 * time.Millisecond)
				}
				time.Sleep(3 * period)
				if st := b.Consistency(); st.LastClean.IsZero() || st.Repaired != 0 {
					t.Fatalf("in sync, yet: %+v", st)
				}

				// Break the BACKUP's view behind the sync's back.
				gone, changed := flows[10], flows[20]
				changed.Mark = 99999
				extra := ctnetlinktest.TCP("192.168.0.250", "192.168.1.20", 1, 443)
				broken := time.Now()
				if direct {
					kb.SetSilent(true)
					kb.Remove(gone.Key)
					kb.SetSilent(false)
					b.mu.Lock()
					b.internal.Delete(gone.Key)
					b.mu.Unlock()
					kb.Commit(t.Context(), []Flow{changed, extra})
				} else {
					b.mu.Lock()
					b.external.Delete(gone.Key)
					b.external.Put(&changed, time.Now())
					b.external.Put(&extra, time.Now())
					b.mu.Unlock()
				}
				repaired := func() error {
					v := view()
					if _, ok := v[gone.Key]; !ok {
						return fmt.Errorf("deleted entry not back")
					}
					if v[changed.Key].Mark != flows[20].Mark {
						return fmt.Errorf("stale entry not corrected")
					}
					if _, ok := v[extra.Key]; ok {
						return fmt.Errorf("extra entry not removed")
					}
					return nil
				}
				var err error
				for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
					if err = repaired(); err == nil || time.Now().After(deadline) {
						break
					}
				}
				if err != nil {
					t.Fatalf("not repaired within a minute: %v (%+v)", err, b.Consistency())
				}
				took := time.Since(broken)
				st := b.Consistency()
				t.Logf("direct=%v: repaired in %v (period %v): %+v; MASTER re-sent %d states", direct, took, period, st, a.Consistency().Resent)
				if st.Repaired < 3 {
					t.Errorf("repaired count %d, want at least 3", st.Repaired)
				}
				if direct {
					if _, ok := kb.Snapshot()[gone.Key]; !ok {
						t.Error("deleted entry not back in the BACKUP's kernel")
					}
				}
				time.Sleep(3 * period)
				if st2 := b.Consistency(); !st2.LastClean.After(broken) {
					t.Errorf("no clean check after the repair: %+v", st2)
				}
			})
		})
	}
}

// BenchmarkDigest100k measures a full walk of a 100,000-entry table, the
// cost the incremental sums (cache_digest.go) avoid at every digest.
func BenchmarkDigest100k(b *testing.B) {
	e := &Engine{internal: NewCache(), external: NewCache()}
	now := time.Now()
	for i := range 100000 {
		f := ctnetlinktest.TCP(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), "192.168.1.20", uint16(1024+i%60000), 443)
		e.internal.Put(&f, now)
	}
	b.ResetTimer()
	for b.Loop() {
		e.digestLocked(true)
	}
}

// TestConsistencyCheckDeletesOnlyOnEvidence: the BACKUP deletes an extra
// entry only after the MASTER has served its latest repair request and
// everything re-sent has arrived. Repair requests are lost for a while,
// then the MASTER's states (and the ACKs) are: through both, none of the
// 1,000 live entries may leave the BACKUP's view; once the link is clean
// again the extra is removed. Both modes.
func TestConsistencyCheckDeletesOnlyOnEvidence(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const period = 2 * time.Second
				net, _, b, _, kb, flows := consistencyPair(t, period, direct)
				live := func() (n int, extra bool) {
					b.mu.Lock()
					defer b.mu.Unlock()
					b.viewLocked(false, func(_ *Cache, k *ckey, _ *centry) {
						if k.sport == 1 {
							extra = true
						} else {
							n++
						}
					})
					return n, extra
				}
				for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
					if n, _ := live(); n == len(flows) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("flows not replicated within a minute")
					}
				}
				time.Sleep(2 * period)

				// An extra entry on the BACKUP: its bucket differs from
				// now on, and a repair is asked for.
				extra := ctnetlinktest.TCP("192.168.0.250", "192.168.1.20", 1, 443)
				if direct {
					kb.Commit(t.Context(), []Flow{extra})
				} else {
					b.mu.Lock()
					b.external.Put(&extra, time.Now())
					b.mu.Unlock()
				}
				isRepair := func(p []byte) bool {
					return len(p) > headerLen && p[0] == ProtocolVersion<<4|msgDigestType && p[headerLen] == kindRepair
				}
				isState := func(p []byte) bool {
					return len(p) >= headerLen && p[0]>>4 == ProtocolVersion && p[0]&0x0f != msgDigestType
				}
				watch := func(what string, d time.Duration) {
					t.Helper()
					for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
						if n, _ := live(); n != len(flows) {
							t.Fatalf("%s: %d of %d live entries left in the BACKUP's view", what, n, len(flows))
						}
					}
				}
				// 1. Every repair request is lost.
				net.SetDrop(isRepair)
				watch("repair requests lost", 6*period)
				// 2. Requests arrive, but nothing the MASTER re-sends
				// does, nor any ACK: the MASTER is never settled.
				net.SetDrop(isState)
				watch("re-sent states lost", 6*period)
				// 3. A clean link: the repair completes and the extra goes.
				net.SetDrop(nil)
				for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
					n, x := live()
					if n != len(flows) {
						t.Fatalf("after the repair: %d of %d live entries left", n, len(flows))
					}
					if !x {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("extra entry not removed within a minute of a clean link: %+v", b.Consistency())
					}
				}
			})
		})
	}
}
