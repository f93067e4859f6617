package ctsync

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink/ctnetlinktest"
	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

func startExpNode(t *testing.T, cfg Config, k *ctsynctest.Kernel, xk *ctsynctest.ExpectKernel, links []Channel) *testNode {
	t.Helper()
	opts := Options{Kernel: k, Channels: links}
	if xk != nil {
		opts.Expect = xk
	}
	return startWith(t, cfg, k, opts)
}

func sameExpects(got, want map[Tuple]Expect) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d expectations, want %d", len(got), len(want))
	}
	for t, w := range want {
		g, ok := got[t]
		if !ok || g.Master != w.Master || g.Helper != w.Helper || g.Mask != w.Mask {
			return fmt.Errorf("expectation %v: got %+v want %+v", t, g, w)
		}
	}
	return nil
}

func TestEngineExpectations(t *testing.T) {
	for _, inject := range []bool{true, false} {
		for _, mode := range []Mode{ModeFTFW, ModeNotrack} {
			t.Run(fmt.Sprintf("%s/inject=%v", mode, inject), func(t *testing.T) {
				_, la, lb := memPair(mode)
				ka, kb := ctsynctest.NewKernel(), ctsynctest.NewKernel()
				xa, xb := ctsynctest.NewExpectKernel(ka), ctsynctest.NewExpectKernel(kb)
				a := startExpNode(t, Config{Mode: mode}, ka, xa, la)
				b := startExpNode(t, Config{Mode: mode, DirectInject: inject}, kb, xb, lb)
				const n = 20
				for i := range n {
					m := ctnetlinktest.FTPMaster(i)
					ka.Create(m)
				}
				// The helper sets expectations up on established masters.
				waitFor(t, 5*time.Second, "masters in the internal cache", func() error {
					if got := a.e.Status().InternalEntries; got != n {
						return fmt.Errorf("%d entries", got)
					}
					return nil
				})
				for i := range n {
					m := ctnetlinktest.FTPMaster(i)
					xa.Helper(ctnetlinktest.FTPExpect(&m, uint16(50000+i)))
				}
				// An expectation whose master is not replicated stays local.
				orphan := ctnetlinktest.FTPMaster(999)
				xa.Helper(ctnetlinktest.FTPExpect(&orphan, 60000))
				want := xa.Snapshot()
				delete(want, ctnetlinktest.FTPExpect(&orphan, 60000).Tuple)
				if !inject {
					waitFor(t, 5*time.Second, "held", func() error {
						if st := b.e.ExpectStats(); st.Held != n {
							return fmt.Errorf("%d held", st.Held)
						}
						return nil
					})
					if _, err := b.e.Commit(context.Background()); err != nil {
						t.Fatal(err)
					}
				}
				waitFor(t, 5*time.Second, "expectations on the peer", func() error { return sameExpects(xb.Snapshot(), want) })
				// A used expectation is deleted on the peer too.
				used := ctnetlinktest.FTPExpect(&[]Flow{ctnetlinktest.FTPMaster(3)}[0], 50003).Tuple
				xa.Use(used)
				delete(want, used)
				if !inject {
					// Commit emptied the cache; the EXP_DEL finds nothing.
					waitFor(t, 5*time.Second, "EXP_DEL received", func() error {
						if st := b.e.ExpectStats(); st.Received != n+1 || st.Held != 0 {
							return fmt.Errorf("%+v", st)
						}
						return nil
					})
				} else {
					waitFor(t, 5*time.Second, "deleted on the peer", func() error { return sameExpects(xb.Snapshot(), want) })
				}
				sa, sb := a.e.ExpectStats(), b.e.ExpectStats()
				if sa.Skipped != 1 || sa.EventsNew != n+1 || sa.EventsDestroy != 1 || sa.Local != n-1 {
					t.Errorf("sender stats: %+v", sa)
				}
				if sb.Failed != 0 || sb.Created != n || sb.Rejected != 0 || sb.EventsNew != 0 {
					t.Errorf("receiver stats: %+v", sb)
				}
				if st := b.e.Stats(); len(st.Malformed) != 0 {
					t.Errorf("malformed: %v", st.Malformed)
				}
				// Own writes are not echoed.
				if st := a.e.ExpectStats(); st.Received != 0 {
					t.Errorf("echoed to the sender: %+v", st)
				}
			})
		}
	}
}

// Without an ExpectKernel, received expectations are counted and dropped.
func TestEngineExpectationsOff(t *testing.T) {
	_, la, lb := memPair(ModeFTFW)
	ka, kb := ctsynctest.NewKernel(), ctsynctest.NewKernel()
	xa := ctsynctest.NewExpectKernel(ka)
	startExpNode(t, Config{}, ka, xa, la)
	b := startExpNode(t, Config{DirectInject: true}, kb, nil, lb)
	m := ctnetlinktest.FTPMaster(1)
	ka.Create(m)
	waitFor(t, 5*time.Second, "master replicated", func() error {
		if len(kb.Snapshot()) != 1 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	xa.Helper(ctnetlinktest.FTPExpect(&m, 50001))
	waitFor(t, 5*time.Second, "rejected", func() error {
		if got := b.e.Stats().Malformed["expectation"]; got != 1 {
			return fmt.Errorf("%d rejected", got)
		}
		return nil
	})
}

// The helper's NAT changes the master's sequence adjustment with no
// conntrack event: the master read that comes with the expectation's NEW
// event goes to the peer ahead of the expectation, and a later UPDATE
// event without CTA_SEQ_ADJ does not lose it.
func TestEngineExpectationCarriesMasterSeqAdj(t *testing.T) {
	_, la, lb := memPair(ModeFTFW)
	ka, kb := ctsynctest.NewKernel(), ctsynctest.NewKernel()
	xa, xb := ctsynctest.NewExpectKernel(ka), ctsynctest.NewExpectKernel(kb)
	a := startExpNode(t, Config{}, ka, xa, la)
	startExpNode(t, Config{DirectInject: true}, kb, xb, lb)
	m := ctnetlinktest.FTPMaster(1)
	ka.Create(m)
	waitFor(t, 5*time.Second, "master replicated", func() error {
		if _, ok := kb.Snapshot()[m.Key]; !ok {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	adj := m
	adj.HasSeqAdj, adj.SeqAdjOrig = true, SeqAdj{CorrectionPos: 1000, OffsetAfter: 1}
	x := ctnetlinktest.FTPExpect(&m, 50001)
	xa.HelperWithMaster(x, &adj)
	waitFor(t, 5*time.Second, "expectation and master's seqadj on the peer", func() error {
		if len(xb.Snapshot()) != 1 {
			return fmt.Errorf("no expectation")
		}
		if f := kb.Snapshot()[m.Key]; !f.HasSeqAdj || f.SeqAdjOrig != adj.SeqAdjOrig {
			return fmt.Errorf("master %+v", f)
		}
		return nil
	})
	// An UPDATE event without CTA_SEQ_ADJ (a TCP state change) keeps it.
	upd := m
	upd.Mark = 7
	ka.Create(upd)
	waitFor(t, 5*time.Second, "update applied", func() error {
		if f := kb.Snapshot()[m.Key]; f.Mark != 7 || !f.HasSeqAdj {
			return fmt.Errorf("master %+v", f)
		}
		return nil
	})
	a.e.mu.Lock()
	f, _ := a.e.internal.Get(m.Key)
	a.e.mu.Unlock()
	if !f.HasSeqAdj {
		t.Errorf("internal cache lost the seqadj: %+v", f)
	}
}
