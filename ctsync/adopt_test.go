package ctsync

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctnetlink"
	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

// tcpFlow is an established TCP flow number i of the client LAN.
func tcpFlow(i int, state uint8) Flow {
	var f Flow
	f.Proto = ctnetlink.ProtoTCP
	f.Src = netip.AddrFrom4([4]byte{192, 168, 0, 10})
	f.Dst = netip.AddrFrom4([4]byte{192, 168, 1, 10})
	f.SrcPort, f.DstPort = uint16(20000+i), 7000
	f.ProtoState, f.HasProtoState = state, true
	f.Timeout = 432000
	f.Status = 0x0e // SEEN_REPLY | ASSURED | CONFIRMED
	return f
}

// The split-brain heal: a (MASTER) holds b's states aside while b is
// MASTER too. AdoptPeer writes b's states over a's entries for the flows b holds, except
// where a's TCP state is further along, and only once per received state.
func TestEngineAdoptPeer(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			_, la, lb := memPair(ModeFTFW)
			ka, kb := ctsynctest.NewKernel(), ctsynctest.NewKernel()
			a := startNode(t, Config{DirectInject: direct}, ka, la, nil)
			startNode(t, Config{DirectInject: direct}, kb, lb, nil)
			a.e.SetMaster(true)
			const n = 10
			for i := range n {
				ka.Create(tcpFlow(i, 3)) // a's own view: ESTABLISHED
			}
			// b forwarded the same flows during the split; flow 0 closed on
			// a's side (FIN_WAIT), so a keeps its state there.
			ka.Create(tcpFlow(0, 4))
			for i := range n {
				kb.Create(tcpFlow(i, 3))
			}
			waitFor(t, 10*time.Second, "b's states held aside by a", func() error {
				if got := a.e.Status().ExternalEntries; got != n {
					return fmt.Errorf("%d external entries", got)
				}
				return nil
			})
			waitFor(t, 10*time.Second, "a's own FIN_WAIT in its internal cache", func() error {
				for _, f := range a.e.Entries(CacheInternal) {
					if f.Key == tcpFlow(0, 0).Key && f.ProtoState == 4 {
						return nil
					}
				}
				return fmt.Errorf("not yet")
			})
			commits := ka.Commits
			before := commits()
			res, err := a.e.AdoptPeer(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.Adopted != n-1 || res.Kept != 1 || len(res.Failed) != 0 {
				t.Fatalf("adopt %+v, want %d adopted and 1 kept", res, n-1)
			}
			if commits() == before {
				t.Error("nothing written to the kernel")
			}
			snap := ka.Snapshot()
			if got := snap[tcpFlow(0, 0).Key].ProtoState; got != 4 {
				t.Errorf("flow 0 state %d, want a's FIN_WAIT kept", got)
			}
			if len(snap) != n {
				t.Errorf("%d kernel entries, want %d", len(snap), n)
			}
			// The peer's backlog arriving after the adoption goes into the
			// kernel too, for AdoptWindow.
			late := tcpFlow(n+1, 3)
			kb.Create(late)
			waitFor(t, 5*time.Second, "late peer state injected", func() error {
				if _, ok := ka.Snapshot()[late.Key]; !ok {
					return fmt.Errorf("not in a's kernel")
				}
				return nil
			})
			// Nothing new arrived: a second heal signal adopts nothing more.
			if direct {
				res, err = a.e.AdoptPeer(context.Background())
				if err != nil || res.Adopted != 0 {
					t.Errorf("second adopt %+v, %v; want nothing", res, err)
				}
			}
		})
	}
}

func TestLaterTCPState(t *testing.T) {
	for _, tc := range []struct {
		a, b uint8
		want bool
	}{{4, 3, true}, {3, 3, false}, {3, 4, false}, {7, 3, true}, {9, 3, false}, {3, 0, false}} {
		if got := laterTCPState(tc.a, tc.b); got != tc.want {
			t.Errorf("laterTCPState(%d, %d) = %v", tc.a, tc.b, got)
		}
	}
}

// A returning node's readiness: complete only once the peer answered the
// startup resync request and went quiet.
func TestEnginePeerState(t *testing.T) {
	_, la, lb := memPair(ModeFTFW)
	ka, kb := ctsynctest.NewKernel(), ctsynctest.NewKernel()
	for i := range 500 {
		ka.Create(tcpFlow(i, 3))
	}
	startNode(t, Config{}, ka, la, nil)
	if ps := (&Engine{sess: NewSession(SessionConfig{}, time.Now())}).PeerState(time.Now()); ps.Complete {
		t.Fatal("complete before any request")
	}
	b := startNode(t, Config{DirectInject: true}, kb, lb, nil)
	if ps := b.e.PeerState(time.Now()); ps.Complete || ps.Asked.IsZero() {
		t.Fatalf("right after start: %+v", ps)
	}
	start := time.Now()
	waitFor(t, 10*time.Second, "peer state complete", func() error {
		if ps := b.e.PeerState(time.Now()); !ps.Complete {
			return fmt.Errorf("%s", ps.Reason)
		}
		return nil
	})
	if took := time.Since(start); took < QuietPeriod-100*time.Millisecond {
		t.Errorf("complete after %v, before the quiet period", took)
	}
	if got := len(kb.Snapshot()); got != 500 {
		t.Errorf("complete with %d of 500 states in the kernel", got)
	}
	// A new request makes it incomplete again until answered.
	b.e.RequestResync()
	if ps := b.e.PeerState(time.Now()); ps.Complete {
		t.Error("complete right after a new request")
	}
}

// TestEngineAnswerKeysDroppedUnpolled: the keys of a resync answer are
// tracked only until the answer is complete, on a node nobody asks
// PeerState (no preemption hold configured) too. Before, such a node kept
// them, and added the key of every later new flow the peer sent, up to
// the external cache's limit (about 70 B each: 70 MB at a million).
func TestEngineAnswerKeysDroppedUnpolled(t *testing.T) {
	_, la, lb := memPair(ModeFTFW)
	ka, kb := ctsynctest.NewKernel(), ctsynctest.NewKernel()
	for i := range 200 {
		ka.Create(tcpFlow(i, 3))
	}
	startNode(t, Config{}, ka, la, nil)
	b := startNode(t, Config{DirectInject: true}, kb, lb, nil)
	tracked := func() (int, bool) {
		b.e.mu.Lock()
		defer b.e.mu.Unlock()
		return len(b.e.answerSeen), b.e.answerSeen != nil
	}
	waitFor(t, 10*time.Second, "the answer's keys dropped", func() error {
		if n, on := tracked(); on {
			return fmt.Errorf("%d keys still tracked", n)
		}
		return nil
	})
	for i := 200; i < 300; i++ {
		ka.Create(tcpFlow(i, 3))
	}
	waitFor(t, 10*time.Second, "later flows replicated", func() error {
		if n := len(kb.Snapshot()); n != 300 {
			return fmt.Errorf("%d of 300", n)
		}
		return nil
	})
	if n, on := tracked(); on {
		t.Errorf("%d keys tracked after the answer was complete", n)
	}
}

// Updates of flows already received (a refresh of long-lived flows, a
// busy connection) do not hold readiness back: only flows the answer has
// not brought yet do.
func TestEnginePeerStateIgnoresUpdates(t *testing.T) {
	_, la, lb := memPair(ModeFTFW)
	ka, kb := ctsynctest.NewKernel(), ctsynctest.NewKernel()
	for i := range 50 {
		ka.Create(tcpFlow(i, 3))
	}
	startNode(t, Config{}, ka, la, nil)
	b := startNode(t, Config{DirectInject: true}, kb, lb, nil)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(300 * time.Millisecond):
			}
			f := tcpFlow(0, 3)
			f.Mark = uint32(i + 1)
			ka.Create(f)
		}
	}()
	defer func() { close(stop); <-done }()
	waitFor(t, 10*time.Second, "peer state complete despite updates", func() error {
		if ps := b.e.PeerState(time.Now()); !ps.Complete {
			return fmt.Errorf("%s", ps.Reason)
		}
		return nil
	})
}

// TestAdoptPeerKeepsInternalWithOwnEventFilter: on a MASTER whose kernel
// filters the daemon's own NEW and UPDATE events (the Linux adapter's
// default), adopting the peer's states replaces NAT entries in the kernel
// (delete and create): the own DESTROY of the replace, read after the
// write, must not take the flows out of the internal cache, or the MASTER
// stops sending them and its consistency digest disowns them while its
// kernel forwards them. Both modes.
func TestAdoptPeerKeepsInternalWithOwnEventFilter(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			_, la, lb := memPair(ModeFTFW)
			ka := &ctsynctest.RecordingKernel{Kernel: ctsynctest.NewKernel()}
			kb := ctsynctest.NewKernel()
			a := runEngine(t, Config{DirectInject: direct}, ka, la)
			startNode(t, Config{DirectInject: direct}, kb, lb, nil)
			a.SetMaster(true)
			const n = 5
			masq := func(i int) Flow {
				f := tcpFlow(i, 3)
				f.SNAT = NAT{Addr: netip.MustParseAddr("192.168.1.100"), Port: uint16(40000 + i)}
				return f
			}
			for i := range n {
				ka.Create(masq(i))
				kb.Create(masq(i))
			}
			waitFor(t, 10*time.Second, "a's flows in its internal cache and b's held aside", func() error {
				if st := a.Status(); st.InternalEntries != n || st.ExternalEntries != n {
					return fmt.Errorf("internal %d, external %d", st.InternalEntries, st.ExternalEntries)
				}
				return nil
			})
			destroyed := a.Stats().EventsDestroy
			if _, err := a.AdoptPeer(t.Context()); err != nil {
				t.Fatal(err)
			}
			ka.Release() // the replaces' own DESTROY events, after the write
			waitFor(t, 5*time.Second, "the replaces' DESTROY events read", func() error {
				if got := a.Stats().EventsDestroy - destroyed; got < n {
					return fmt.Errorf("%d of %d", got, n)
				}
				return nil
			})
			waitFor(t, time.Second, "adopted flows still in a's internal cache", func() error {
				if got := a.Status().InternalEntries; got != n {
					return fmt.Errorf("%d of %d", got, n)
				}
				return nil
			})
		})
	}
}
