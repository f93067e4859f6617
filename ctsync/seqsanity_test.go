package ctsync

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// forgedFlow is a well-formed state for a connection no node has.
func forgedFlow(i int) Flow {
	return Flow{Key: Key{Tuple: Tuple{
		Src: netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), Dst: netip.MustParseAddr("198.51.100.80"),
		SrcPort: uint16(40000 + i), DstPort: 22, Proto: protoTCP}},
		Status: 0xe, Timeout: 432000, ProtoState: tcpEstablished, HasProtoState: true}
}

func forgedDatagram(t testing.TB, flags uint8, seq uint32, i int) []byte {
	t.Helper()
	f := forgedFlow(i)
	var w WireOptions
	b, err := w.AppendCT(nil, MsgCTNew, flags, seq, &f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// handshaken returns a pair past the HELLO handshake with some replicated
// flows on node 0.
func handshaken(t *testing.T, cfg SessionConfig) *simPair {
	t.Helper()
	p := newSimPair(t, cfg, 7)
	for i := range 50 {
		f := flowN(i)
		p.nodes[0].internal.Put(&f, p.now)
		p.nodes[0].s.Enqueue(f.Key, MsgCTNew)
	}
	for range 1000 {
		p.step(10 * time.Millisecond)
		if p.nodes[0].s.hello == helloDone && p.nodes[1].s.hello == helloDone && p.quiet() {
			break
		}
	}
	if d := cacheDiff(p.nodes[0].internal, p.nodes[1].external); d != "" {
		t.Fatalf("before the injection: %s", d)
	}
	return p
}

// replicates adds n fresh flows on node 0 and reports how long (simulated)
// until node 1 has them all, or an error after limit.
func (p *simPair) replicates(base, n int, limit time.Duration) (time.Duration, error) {
	start := p.now
	for i := range n {
		f := flowN(base + i)
		p.nodes[0].internal.Put(&f, p.now)
		p.nodes[0].s.Enqueue(f.Key, MsgCTNew)
	}
	for p.now.Sub(start) < limit {
		p.step(10 * time.Millisecond)
		missing := 0
		for i := range n {
			if !p.nodes[1].external.Has(flowN(base + i).Key) {
				missing++
			}
		}
		if missing == 0 {
			return p.now.Sub(start), nil
		}
	}
	return 0, fmt.Errorf("fresh flows not replicated within %v", limit)
}

// TestSeqFarAheadWhilePeerAlive: one message 5,000,000 ahead of the live
// sequence (plain and with HELLO) is dropped and counted; it moves nothing
// and replication goes on at once.
func TestSeqFarAheadWhilePeerAlive(t *testing.T) {
	for _, flags := range []uint8{0, FlagHello} {
		t.Run(fmt.Sprintf("flags=%#x", flags), func(t *testing.T) {
			p := handshaken(t, SessionConfig{MaxDatagram: 1472})
			rx := p.nodes[1]
			before := rx.s.lastRecv
			rx.deliver(p.now, forgedDatagram(t, flags, before+5_000_000, 1))
			if rx.external.Has(forgedFlow(1).Key) {
				t.Fatal("far-ahead state applied")
			}
			if rx.s.lastRecv != before || rx.s.Stats().SeqImplausible != 1 {
				t.Fatalf("session moved: lastRecv %d (was %d), implausible %d", rx.s.lastRecv, before, rx.s.Stats().SeqImplausible)
			}
			if d, err := p.replicates(1000, 20, time.Second); err != nil || d > 100*time.Millisecond {
				t.Fatalf("replication after the injection: %v %v", d, err)
			}
		})
	}
}

// TestSeqFarAheadWhilePeerSilent: injected while the peer is silent (link
// down), a far sequence is adopted; when the peer comes back its own
// stream is adopted again within a few seconds and both caches converge.
func TestSeqFarAheadWhilePeerSilent(t *testing.T) {
	p := handshaken(t, SessionConfig{MaxDatagram: 1472})
	p.net.loss = 1 // the link is down
	for range 500 {
		p.step(10 * time.Millisecond)
	}
	rx := p.nodes[1]
	rx.deliver(p.now, forgedDatagram(t, 0, rx.s.lastRecv+5_000_000, 2))
	if rx.s.Stats().SeqAdopted != 1 {
		t.Fatalf("far sequence after 5 s of silence not adopted: %+v", rx.s.Stats())
	}
	p.net.loss = 0
	d, err := p.replicates(2000, 20, 10*time.Second)
	if err != nil || d > 4*time.Second {
		t.Fatalf("replication after the peer came back: %v %v (stats %+v)", d, err, rx.s.Stats())
	}
	t.Logf("replication resumed after %v", d)
}

// TestSeqGenuineRestartFarSeed: the peer restarts with a sequence seed far
// from its old stream (days later). It is adopted after the old stream's
// silence, and the restarted peer gets this node's state again.
func TestSeqGenuineRestartFarSeed(t *testing.T) {
	p := handshaken(t, SessionConfig{MaxDatagram: 1472})
	for i := range 30 {
		f := flowN(500 + i)
		p.nodes[1].internal.Put(&f, p.now)
		p.nodes[1].s.Enqueue(f.Key, MsgCTNew)
	}
	for range 100 {
		p.step(10 * time.Millisecond)
	}
	// Node 0 restarts: empty external cache, new seed 10 days on.
	old := p.nodes[0]
	n := newSimNode(SessionConfig{MaxDatagram: 1472}, p.now.Add(240*time.Hour))
	n.internal = old.internal
	p.nodes[0] = n
	n.s.RequestResync()
	start := p.now
	for range 1000 {
		p.step(10 * time.Millisecond)
		if p.quiet() && cacheDiff(p.nodes[1].internal, n.external) == "" && cacheDiff(n.internal, p.nodes[1].external) == "" {
			break
		}
	}
	if d := cacheDiff(p.nodes[1].internal, n.external); d != "" {
		t.Fatalf("restarted node's external cache: %s", d)
	}
	if p.nodes[1].s.Stats().SeqAdopted != 1 {
		t.Fatalf("stats: %+v", p.nodes[1].s.Stats())
	}
	if el := p.now.Sub(start); el > 5*time.Second {
		t.Fatalf("recovery took %v", el)
	}
}

// TestSeqGenuineRestartNearSeed: a restart whose seed is within the window
// recovers at once, as in conntrackd (HELLO).
func TestSeqGenuineRestartNearSeed(t *testing.T) {
	p := handshaken(t, SessionConfig{MaxDatagram: 1472})
	n := newSimNode(SessionConfig{MaxDatagram: 1472}, p.now.Add(2*time.Second))
	n.internal = p.nodes[0].internal
	p.nodes[0] = n
	if _, err := p.replicates(3000, 10, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if st := p.nodes[1].s.Stats(); st.SeqAdopted != 0 || st.SeqImplausible != 0 {
		t.Fatalf("stats: %+v", st)
	}
}

// TestSeqRenackListBounded: a stream of gaps (forged or real) keeps at most
// renackMax open gaps and asks for a resync once instead.
func TestSeqRenackListBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := NewSession(SessionConfig{}, now)
	seq := uint32(1000)
	for range renackMax + 1000 {
		s.Receive(now, &Message{Type: MsgCtl, Flags: FlagAlive, Seq: seq})
		seq += 3
	}
	if len(s.renacks) > renackMax || s.Stats().RenackOverflow == 0 {
		t.Fatalf("%d open gaps, overflow %d", len(s.renacks), s.Stats().RenackOverflow)
	}
	resyncs := 0
	for _, c := range s.txCtl {
		if c.flags&FlagResync != 0 {
			resyncs++
		}
	}
	if resyncs != 1 {
		t.Fatalf("%d RESYNC requests queued, want 1 (rate-limited)", resyncs)
	}
}

// TestSeqRandomInjectionNeverStalls: random sequence numbers injected
// among the live stream at random times never stop replication for more
// than a few seconds (simulated).
func TestSeqRandomInjectionNeverStalls(t *testing.T) {
	p := handshaken(t, SessionConfig{MaxDatagram: 1472})
	r := rand.New(rand.NewPCG(5, 6))
	for round := range 20 {
		rx := p.nodes[1]
		flags := []uint8{0, FlagHello, FlagHelloBack}[r.IntN(3)]
		rx.deliver(p.now, forgedDatagram(t, flags, r.Uint32(), 3+round))
		if d, err := p.replicates(10000+round*10, 10, 5*time.Second); err != nil {
			t.Fatalf("round %d: %v after %v", round, err, d)
		}
	}
}

// TestSeqInWindowJump: a spoofed message 60,000 ahead (inside the window,
// so it is taken as a gap: an unkeyed link cannot tell it from the peer)
// makes the peer's real stream look old; once nothing advances the
// session for a few seconds the real stream is adopted again.
func TestSeqInWindowJump(t *testing.T) {
	p := handshaken(t, SessionConfig{MaxDatagram: 1472})
	rx := p.nodes[1]
	rx.deliver(p.now, forgedDatagram(t, 0, rx.s.lastRecv+60_000, 4))
	d, err := p.replicates(4000, 20, 10*time.Second)
	if err != nil || d > 4*time.Second {
		t.Fatalf("replication after an in-window jump: %v %v (stats %+v)", d, err, rx.s.Stats())
	}
	t.Logf("replication resumed after %v", d)
}
