package ctsync

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

func TestEngineRejectsInvalidStates(t *testing.T) {
	n, p := startWithFakePeer(t, Config{}, ctsynctest.NewKernel(), protoFilter(17))
	good := flowN(1)
	bad := map[string]Flow{}
	f := flowN(2)
	f.Proto = 19
	bad["invalid_proto"] = f
	f = flowN(3)
	f.Proto, f.ProtoState, f.HasProtoState, f.Timeout = protoUDP, 0, false, 263006
	bad["invalid_timeout"] = f
	f = flowN(5)
	f.Src = netip.MustParseAddr("0.0.0.0")
	bad["invalid_addr"] = f
	f = flowN(6)
	f.DstPort = 0
	bad["invalid_port"] = f
	f = flowN(7)
	f.ProtoState = 12
	bad["invalid_state"] = f
	f = flowN(8)
	f.Proto, f.ProtoState, f.HasProtoState, f.Timeout = protoUDP, 0, false, 30
	bad["filtered"] = f
	flows := []Flow{good}
	for _, f := range bad {
		flows = append(flows, f)
	}
	p.sendFlows(MsgCTNew, flows...)
	waitFor(t, 5*time.Second, "rejects counted", func() error {
		m := n.e.Stats().Malformed
		for r := range bad {
			if m[r] != 1 {
				return fmt.Errorf("%s: %d (%v)", r, m[r], m)
			}
		}
		return nil
	})
	ext := n.e.Entries(CacheExternal)
	if len(ext) != 1 || ext[0].Key != good.Key {
		t.Fatalf("external cache: %+v", ext)
	}
}

func TestEngineExternalCacheBounded(t *testing.T) {
	n, p := startWithFakePeer(t, Config{ExternalLimit: 100}, ctsynctest.NewKernel(), nil)
	var flows []Flow
	for i := range 300 {
		flows = append(flows, flowN(i))
	}
	p.sendFlows(MsgCTNew, flows...)
	waitFor(t, 5*time.Second, "external bound", func() error {
		if got := n.e.Stats().Malformed[ReasonExternalFull]; got != 200 {
			return fmt.Errorf("external_full %d", got)
		}
		return nil
	})
	if got := n.e.Status().ExternalEntries; got != 100 {
		t.Fatalf("external cache has %d entries, bound 100", got)
	}
	// Updates of entries already held still apply.
	f := flowN(5)
	f.Mark = 7
	p.sendFlows(MsgCTUpd, f)
	waitFor(t, 5*time.Second, "update applied", func() error {
		for _, g := range n.e.Entries(CacheExternal) {
			if g.Key == f.Key && g.Mark == 7 {
				return nil
			}
		}
		return fmt.Errorf("not yet")
	})
}

// gatedKernel holds every Commit while its gate is closed.
type gatedKernel struct {
	*ctsynctest.Kernel
	mu   sync.Mutex
	gate chan struct{}
}

func newGatedKernel() *gatedKernel {
	return &gatedKernel{Kernel: ctsynctest.NewKernel(), gate: make(chan struct{})}
}

// open lets commits through; hold stops the next ones.
func (k *gatedKernel) open() {
	k.mu.Lock()
	close(k.gate)
	k.mu.Unlock()
}

func (k *gatedKernel) hold() {
	k.mu.Lock()
	k.gate = make(chan struct{})
	k.mu.Unlock()
}

func (k *gatedKernel) Commit(ctx context.Context, flows []Flow) (CommitResult, error) {
	k.mu.Lock()
	g := k.gate
	k.mu.Unlock()
	select {
	case <-g:
	case <-ctx.Done():
		return CommitResult{}, ctx.Err()
	}
	return k.Kernel.Commit(ctx, flows)
}

// A burst faster than the kernel takes injected states is held back, not
// dropped: the receivers stop reading while the inject queue is near its
// bound, and every state reaches the kernel once it catches up.
func TestEngineInjectBackPressure(t *testing.T) {
	k := newGatedKernel()
	const limit, total = 200, 2000
	var net MemNetwork
	x, y := net.NewMemLink("peer", 1472)
	n := startWith(t, Config{DirectInject: true, InjectQueueLimit: limit, NoStartupResync: true}, k.Kernel, Options{Kernel: k, Channels: []Channel{y}})
	p := &fakePeer{t: t, ch: x, seq: 1000}
	var flows []Flow
	for i := range total {
		flows = append(flows, flowN(i))
	}
	p.sendFlows(MsgCTNew, flows...)
	// The first batch waits in the kernel, the queue fills to its high
	// water mark and the receiver stops there.
	waitFor(t, 5*time.Second, "receiver held back", func() error {
		n.e.mu.Lock()
		q := n.e.injectQ.len()
		n.e.mu.Unlock()
		if q < limit/2 {
			return fmt.Errorf("inject queue %d", q)
		}
		return nil
	})
	n.e.mu.Lock()
	q := n.e.injectQ.len()
	n.e.mu.Unlock()
	if q > limit {
		t.Fatalf("inject queue %d beyond its bound %d", q, limit)
	}
	if st := n.e.Stats(); st.Applied >= total {
		t.Fatalf("all %d states taken while the kernel was blocked", st.Applied)
	}
	k.open()
	waitFor(t, 10*time.Second, "every state in the kernel", func() error {
		if got := len(k.Snapshot()); got != total {
			return fmt.Errorf("kernel %d of %d", got, total)
		}
		return nil
	})
	if d := n.e.Stats().Malformed[ReasonInjectQueueFull]; d != 0 {
		t.Errorf("%d states dropped by the inject queue bound", d)
	}
}

// A burst faster than the peer's kernel takes it: the receiver holds back
// its reading (inject queue bound) and so its ACKs, the sender waits for
// them within its send window instead of overflowing its resend queue, and
// every state arrives without a bulk send.
func TestEngineFlowControlSlowReceiver(t *testing.T) {
	_, la, lb := memPair(ModeFTFW)
	ka := ctsynctest.NewKernel()
	kb := newGatedKernel()
	a := startNode(t, Config{ResendQueueSize: 2000, NoStartupResync: true}, ka, la, nil)
	b := startWith(t, Config{DirectInject: true, InjectQueueLimit: 200, NoStartupResync: true}, kb.Kernel, Options{Kernel: kb, Channels: lb})
	// The peer acknowledges: an ALIVE exchange sets the window going.
	ka.Create(flowN(0))
	waitFor(t, 5*time.Second, "first state acknowledged", func() error {
		if st := a.e.Stats(); st.ACKsReceived == 0 {
			return fmt.Errorf("no ACK yet")
		}
		return nil
	})
	kb.open() // let the first one in, then hold the kernel again
	waitFor(t, 5*time.Second, "first state injected", func() error {
		if len(kb.Snapshot()) != 1 {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	kb.hold()
	const total = 20000
	var flows []Flow
	for i := 1; i < total; i++ {
		f := flowN(i)
		f.Src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		flows = append(flows, f)
	}
	ka.CreateBatch(flows)
	// The receiver stops reading; the sender fills its window (or, without
	// flow control, overflows its resend queue).
	waitFor(t, 5*time.Second, "sender window full", func() error {
		a.e.mu.Lock()
		_, unacked := a.e.sess.Pending()
		a.e.mu.Unlock()
		if st := a.e.Stats(); unacked < 2000 && st.ResendOverflow == 0 {
			return fmt.Errorf("%d un-ACKed", unacked)
		}
		return nil
	})
	kb.open()
	waitFor(t, 30*time.Second, "every state in the peer's kernel", func() error {
		if got := len(kb.Snapshot()); got != total {
			return fmt.Errorf("%d of %d", got, total)
		}
		return nil
	})
	sa, sb := a.e.Stats(), b.e.Stats()
	t.Logf("sender: window waits %d, retransmits %d, overflow %d, bulk sends %d; receiver: lost %d, dropped %d",
		sa.WindowWaits, sa.Retransmits, sa.ResendOverflow, sa.BulkSends, sb.Lost, sb.Malformed[ReasonInjectQueueFull])
	if sa.ResendOverflow != 0 || sa.BulkSends != 0 {
		t.Errorf("resend queue overflowed %d times, %d bulk sends: the sender overran its peer", sa.ResendOverflow, sa.BulkSends)
	}
}

// NOTRACK cannot recover what the sync socket would drop, so there the
// inject queue's bound drops instead: every state is either in the kernel
// or counted, and a resync is scheduled.
func TestEngineInjectQueueBoundedNotrack(t *testing.T) {
	k := ctsynctest.NewKernel()
	n, p := startWithFakePeer(t, Config{Mode: ModeNotrack, DirectInject: true, InjectQueueLimit: 50}, k, nil)
	var flows []Flow
	for i := range 2000 {
		flows = append(flows, flowN(i))
	}
	p.sendFlows(MsgCTNew, flows...)
	waitFor(t, 5*time.Second, "inject", func() error {
		st := n.e.Stats()
		if got := len(k.Snapshot()); st.Applied != 2000 || uint64(got)+st.Malformed[ReasonInjectQueueFull] != 2000 {
			return fmt.Errorf("applied %d, kernel %d + dropped %d != 2000", st.Applied, got, st.Malformed[ReasonInjectQueueFull])
		}
		return nil
	})
	st := n.e.Stats()
	if st.Malformed[ReasonInjectQueueFull] == 0 {
		t.Fatal("the bound never dropped anything")
	}
	n.e.mu.Lock()
	due := n.e.lossResync
	n.e.mu.Unlock()
	if !due {
		t.Error("states dropped but no resync scheduled")
	}
	t.Logf("kernel %d, dropped %d", len(k.Snapshot()), st.Malformed[ReasonInjectQueueFull])
}

// TestEngineResyncFloodDoesNotStall: a flood of RESYNC requests against a
// 100,000-entry internal cache is answered by at most a few rate-limited
// bulk sends, and the engine lock is never held long enough to stall
// status (or event intake) for more than a fraction of a second.
func TestEngineResyncFloodDoesNotStall(t *testing.T) {
	k := ctsynctest.NewKernel()
	for i := range 100_000 {
		f := flowN(i)
		f.Src = netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		f.SrcPort = uint16(1000 + i%60000)
		k.Create(f)
	}
	n, p := startWithFakePeer(t, Config{}, k, nil)
	if got := n.e.Status().InternalEntries; got != 100_000 {
		t.Fatalf("internal cache %d", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			var d []byte
			for range 91 {
				d = AppendCtl(d, FlagResync, p.next(), 0, 0)
			}
			_ = p.ch.Send(d)
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var worst time.Duration
	for ctx.Err() == nil {
		start := time.Now()
		n.e.Status()
		worst = max(worst, time.Since(start))
		time.Sleep(time.Millisecond)
	}
	st := n.e.Stats()
	t.Logf("RESYNC requests received %d, bulk sends %d, worst status latency %v", st.ResyncRequestsReceived, st.BulkSends, worst)
	if st.BulkSends > 4 {
		t.Errorf("%d bulk sends in 2 s: not rate-limited", st.BulkSends)
	}
	if worst > 500*time.Millisecond {
		t.Errorf("engine lock held %v", worst)
	}
}
