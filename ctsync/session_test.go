package ctsync

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"
)

// simNode is one side of a simulated pair: a session, the internal cache
// it replicates and the external cache it receives into.
type simNode struct {
	s        *Session
	internal *Cache
	external *Cache
	wire     WireOptions
	bad      int
}

func newSimNode(cfg SessionConfig, now time.Time) *simNode {
	return &simNode{s: NewSession(cfg, now), internal: NewCache(), external: NewCache(), wire: cfg.Wire}
}

func (n *simNode) lookup(ck *ckey) (Flow, bool) { return n.internal.Get(ck.key()) }

func (n *simNode) deliver(now time.Time, d []byte) {
	for rest := d; len(rest) > 0; {
		m, r, err := NextMessage(rest)
		rest = r
		if err != nil {
			n.bad++
			continue
		}
		res := n.s.Receive(now, &m)
		if res.SendAll {
			for _, k := range n.internal.Keys() {
				n.s.Enqueue(k, MsgCTUpd)
			}
		}
		if !res.Apply {
			continue
		}
		f, err := n.wire.DecodeFlow(m.Payload)
		if err != nil {
			n.bad++
			continue
		}
		if m.Type == MsgCTDel {
			n.external.Delete(f.Key)
		} else {
			n.external.Put(&f, now)
		}
	}
}

type inflight struct {
	at  time.Time
	to  int
	buf []byte
}

// simNet moves datagrams between two nodes with loss, duplication and
// reordering (random extra delay).
type simNet struct {
	r                    *rand.Rand
	loss, dup, reorder   float64
	q                    []inflight
	sent, dropped, duped int
	// decide, when set, replaces the random choices (fuzzing).
	decide func() (drop, dup bool, delay time.Duration)
}

func (sn *simNet) send(now time.Time, to int, d []byte) {
	sn.sent++
	if sn.decide != nil {
		drop, dup, delay := sn.decide()
		if drop {
			sn.dropped++
			return
		}
		for range 1 + btoi(dup) {
			sn.q = append(sn.q, inflight{at: now.Add(time.Millisecond + delay), to: to, buf: slices.Clone(d)})
		}
		return
	}
	if sn.r.Float64() < sn.loss {
		sn.dropped++
		return
	}
	copies := 1
	if sn.r.Float64() < sn.dup {
		copies = 2
		sn.duped++
	}
	for range copies {
		delay := time.Millisecond
		if sn.r.Float64() < sn.reorder {
			delay += time.Duration(sn.r.IntN(50)) * time.Millisecond
		}
		sn.q = append(sn.q, inflight{at: now.Add(delay), to: to, buf: slices.Clone(d)})
	}
}

func (sn *simNet) due(now time.Time) []inflight {
	var out, keep []inflight
	for _, f := range sn.q {
		if !f.at.After(now) {
			out = append(out, f)
		} else {
			keep = append(keep, f)
		}
	}
	sn.q = keep
	return out
}

type simPair struct {
	now   time.Time
	nodes [2]*simNode
	net   *simNet
}

func newSimPair(t testing.TB, cfg SessionConfig, seed uint64) *simPair {
	now := time.Unix(1_700_000_000, 0)
	p := &simPair{now: now, net: &simNet{r: rand.New(rand.NewPCG(seed, seed+1))}}
	p.nodes[0] = newSimNode(cfg, now)
	p.nodes[1] = newSimNode(cfg, now.Add(-3*time.Second)) // different seq seeds
	return p
}

// step advances time by dt: delivers due datagrams, then polls both nodes.
func (p *simPair) step(dt time.Duration) {
	p.now = p.now.Add(dt)
	for _, f := range p.net.due(p.now) {
		p.nodes[f.to].deliver(p.now, f.buf)
	}
	for i, n := range p.nodes {
		dgs, _ := n.s.Poll(p.now, n.lookup, 512)
		for _, d := range dgs {
			p.net.send(p.now, 1-i, d)
		}
	}
}

func (p *simPair) quiet() bool {
	for _, n := range p.nodes {
		if tx, un := n.s.Pending(); tx+un > 0 {
			return false
		}
	}
	return len(p.net.q) == 0
}

func cacheDiff(want, got *Cache) string {
	var missing, stale, wrong int
	var example string
	want.Range(func(f *Flow, _ time.Time) bool {
		g, ok := got.Get(f.Key)
		switch {
		case !ok:
			missing++
			if example == "" {
				example = fmt.Sprintf("missing %v", f.Key)
			}
		case !sameState(f, &g) || f.Timeout != g.Timeout:
			wrong++
			if example == "" {
				example = fmt.Sprintf("wrong %+v, want %+v", g, *f)
			}
		}
		return true
	})
	got.Range(func(f *Flow, _ time.Time) bool {
		if !want.Has(f.Key) {
			stale++
			if example == "" {
				example = fmt.Sprintf("stale %v", f.Key)
			}
		}
		return true
	})
	if missing+stale+wrong == 0 {
		return ""
	}
	return fmt.Sprintf("%d missing, %d stale, %d wrong (want %d, got %d entries); e.g. %s",
		missing, stale, wrong, want.Len(), got.Len(), example)
}

// TestFTFWConvergesUnderLoss: random creates, updates and deletes on both
// nodes under loss, duplication and reordering; after the network heals
// each node's external cache equals the peer's internal cache exactly.
func TestFTFWConvergesUnderLoss(t *testing.T) {
	cases := []struct {
		name               string
		loss, dup, reorder float64
		window, rsq        int
	}{
		{"clean", 0, 0, 0, 300, 0},
		{"loss10", 0.10, 0, 0, 300, 0},
		{"loss30-dup-reorder", 0.30, 0.10, 0.30, 300, 0},
		{"small-window", 0.10, 0.05, 0.2, 7, 0},
		// A resend queue smaller than the traffic: NACKs of dropped
		// entries are answered from the set of dropped keys.
		{"small-resend-queue", 0.20, 0.05, 0.2, 300, 40},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := newSimPair(t, SessionConfig{ACKWindow: c.window, ResendQueue: c.rsq, MaxDatagram: 1472}, uint64(i+10))
			// A clean HELLO handshake first: a duplicate of a HELLO message
			// delayed past the handshake looks like a peer restart (in
			// conntrackd too); on a real sync link that does not happen.
			for range 1000 {
				p.step(10 * time.Millisecond)
				if p.nodes[0].s.hello == helloDone && p.nodes[1].s.hello == helloDone && len(p.net.q) == 0 {
					break
				}
			}
			p.net.loss, p.net.dup, p.net.reorder = c.loss, c.dup, c.reorder
			r := rand.New(rand.NewPCG(uint64(i), 99))
			var keys [2][]Key
			for round := range 400 {
				for side, n := range p.nodes {
					for range 10 {
						switch op := r.IntN(10); {
						case op < 5 || len(keys[side]) == 0:
							f := randFlow(r)
							f.Zone = uint16(side)
							created := n.internal.Put(&f, p.now)
							if created {
								keys[side] = append(keys[side], f.Key)
							}
							n.s.Enqueue(f.Key, MsgCTNew)
						case op < 8:
							k := keys[side][r.IntN(len(keys[side]))]
							if f, ok := n.internal.Get(k); ok {
								f.Timeout = 1 + r.Uint32N(1000)
								f.Mark++
								n.internal.Put(&f, p.now)
								n.s.Enqueue(k, MsgCTUpd)
							}
						default:
							j := r.IntN(len(keys[side]))
							k := keys[side][j]
							keys[side] = slices.Delete(keys[side], j, j+1)
							n.internal.Delete(k)
							n.s.Enqueue(k, MsgCTDel)
						}
					}
				}
				p.step(time.Duration(1+r.IntN(20)) * time.Millisecond)
				_ = round
			}
			p.net.loss, p.net.dup, p.net.reorder = 0, 0, 0
			healed := false
			for range 20000 { // bounded: 200 s of simulated time
				p.step(10 * time.Millisecond)
				if p.quiet() && cacheDiff(p.nodes[0].internal, p.nodes[1].external) == "" &&
					cacheDiff(p.nodes[1].internal, p.nodes[0].external) == "" {
					healed = true
					break
				}
			}
			for side := range 2 {
				if d := cacheDiff(p.nodes[side].internal, p.nodes[1-side].external); d != "" {
					t.Errorf("node %d -> %d: %s", side, 1-side, d)
				}
				if p.nodes[side].bad != 0 {
					t.Errorf("node %d rejected %d messages", side, p.nodes[side].bad)
				}
			}
			if !healed {
				for i, n := range p.nodes {
					tx, un := n.s.Pending()
					t.Logf("node %d: tx %d unacked %d rsLive %d ctl %d keys %d lastRecv %d rxInit %v ackPending %v seq %d hello %d", i, tx, un, n.s.rsLive, len(n.s.txCtl), n.s.txKeys.len(), n.s.lastRecv, n.s.rxInit, n.s.ackPending, n.s.seq, n.s.hello)
					for j := n.s.rsHead; j < len(n.s.rs) && j < n.s.rsHead+5; j++ {
						t.Logf("  rs %+v", n.s.rs[j])
					}
				}
				t.Errorf("not quiet after heal")
			}
			st := p.nodes[0].s.Stats()
			st1 := p.nodes[1].s.Stats()
			st.ResendOverflow += st1.ResendOverflow
			t.Logf("sent %d datagrams, dropped %d, duplicated %d; node0: %+v", p.net.sent, p.net.dropped, p.net.duped, st)
			if c.loss > 0 && st.Retransmits == 0 {
				t.Errorf("no retransmission under loss")
			}
			if c.rsq != 0 && st.ResendOverflow == 0 {
				t.Errorf("resend queue never overflowed")
			}
		})
	}
}

func flowN(i int) Flow {
	return Flow{Key: Key{Tuple: Tuple{
		Src: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Dst: netip.MustParseAddr("10.9.9.9"),
		SrcPort: uint16(1000 + i), DstPort: 80, Proto: 6}}, Status: 0xe, Timeout: 100, ProtoState: 3, HasProtoState: true}
}

func parseAll(t *testing.T, dgs [][]byte) []Message {
	t.Helper()
	var out []Message
	for _, d := range dgs {
		for rest := d; len(rest) > 0; {
			m, r, err := NextMessage(rest)
			if err != nil {
				t.Fatal(err)
			}
			rest = r
			out = append(out, m)
		}
	}
	return out
}

func TestFTFWSessionRules(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := NewSession(SessionConfig{ACKWindow: 3}, now)
	internal := NewCache()
	lookup := func(ck *ckey) (Flow, bool) { return internal.Get(ck.key()) }

	// Sequence seeded from unix time; first message says HELLO; ALIVE at once.
	msgs := parseAll(t, first(s.Poll(now, lookup, 0)))
	if len(msgs) != 1 || msgs[0].Seq != uint32(now.Unix()) || msgs[0].Flags != FlagAlive|FlagHello {
		t.Fatalf("first poll: %+v", msgs)
	}
	// Nothing more until 1 s of TX idleness.
	if dgs, next := s.Poll(now.Add(500*time.Millisecond), lookup, 0); len(dgs) != 0 || !next.Equal(now.Add(time.Second)) {
		t.Fatalf("early poll sent %d, next %v", len(dgs), next)
	}
	// Objects: one seq each, several per datagram, collapsed per key.
	for i := range 5 {
		f := flowN(i)
		internal.Put(&f, now)
		s.Enqueue(f.Key, MsgCTNew)
		s.Enqueue(f.Key, MsgCTUpd)
	}
	dgs, _ := s.Poll(now, lookup, 0)
	if len(dgs) != 1 {
		t.Fatalf("%d datagrams, want 1", len(dgs))
	}
	msgs = parseAll(t, dgs)
	if len(msgs) != 5 || msgs[0].Seq != uint32(now.Unix())+1 || msgs[4].Seq != uint32(now.Unix())+5 || msgs[0].Type != MsgCTNew {
		t.Fatalf("objects: %+v", msgs)
	}
	if _, un := s.Pending(); un != 5 {
		t.Fatalf("resend queue %d, want 5", un)
	}
	// Peer ACKs 2 of them, with HELLO_BACK: hello done.
	base := uint32(now.Unix())
	peer := uint32(5000)
	s.Receive(now, &Message{Type: MsgCtl, Flags: FlagACK | FlagHelloBack, Seq: peer, From: base + 1, To: base + 2})
	if _, un := s.Pending(); un != 3 {
		t.Fatalf("after ACK resend queue %d, want 3", un)
	}
	// Peer NACKs base+4: that object is rebuilt from the current state (now deleted → CT_DEL).
	internal.Delete(flowN(3).Key)
	s.Receive(now, &Message{Type: MsgCtl, Flags: FlagNACK, Seq: peer + 1, From: base + 4, To: base + 4})
	msgs = parseAll(t, first(s.Poll(now, lookup, 0)))
	if len(msgs) != 1 || msgs[0].Type != MsgCTDel || msgs[0].Seq != base+6 || msgs[0].Flags != 0 {
		t.Fatalf("retransmission: %+v", msgs)
	}
	// Receiver: in-order data, ACK every 3 messages (window).
	for i := range 3 {
		s.Receive(now, &Message{Type: MsgCTUpd, Seq: peer + 2 + uint32(i)})
	}
	msgs = parseAll(t, first(s.Poll(now, lookup, 0)))
	if len(msgs) != 1 || msgs[0].Flags != FlagACK || msgs[0].From != peer || msgs[0].To != peer+2 {
		t.Fatalf("window ACK: %+v", msgs)
	}
	// A gap: NACK [expected, seq-1], and the message is applied.
	if res := s.Receive(now, &Message{Type: MsgCTUpd, Seq: peer + 8}); !res.Apply {
		t.Fatal("message after a gap not applied")
	}
	msgs = parseAll(t, first(s.Poll(now, lookup, 0)))
	if len(msgs) != 2 || msgs[0].Flags != FlagACK || msgs[0].From != peer+3 || msgs[0].To != peer+4 ||
		msgs[1].Flags != FlagNACK || msgs[1].From != peer+5 || msgs[1].To != peer+7 {
		t.Fatalf("ACK+NACK: %+v", msgs)
	}
	// A duplicate (old seq) is dropped.
	if res := s.Receive(now, &Message{Type: MsgCTUpd, Seq: peer + 6}); res.Apply {
		t.Fatal("old message applied")
	}
	// Later: the pending ACK goes out, and the gap is NACKed again (a
	// lost NACK must not lose the states for good), three times in all.
	later := now.Add(2 * time.Second)
	msgs = parseAll(t, first(s.Poll(later, lookup, 0)))
	if len(msgs) != 2 || msgs[0].Flags != FlagACK || msgs[0].From != peer+8 || msgs[0].To != peer+8 ||
		msgs[1].Flags != FlagNACK || msgs[1].From != peer+5 || msgs[1].To != peer+7 {
		t.Fatalf("idle ACK and re-NACK: %+v", msgs)
	}
	for i := 1; i <= 2; i++ {
		msgs = parseAll(t, first(s.Poll(later.Add(time.Duration(i)*time.Second), lookup, 0)))
		if len(msgs) != 1 || msgs[0].Flags != FlagNACK || msgs[0].From != peer+5 {
			t.Fatalf("re-NACK %d: %+v", i+1, msgs)
		}
	}
	later = later.Add(2 * time.Second)
	msgs = parseAll(t, first(s.Poll(later.Add(time.Second), lookup, 0)))
	if len(msgs) != 1 || msgs[0].Flags != FlagAlive {
		t.Fatalf("idle ALIVE: %+v", msgs)
	}
	if st := s.Stats(); st.Renacks != 3 {
		t.Errorf("renacks %d, want 3", st.Renacks)
	}
	// Peer restart: HELLO with an older seq is accepted, the resend queue
	// is flushed (its content queued again), and our next message carries
	// HELLO_BACK once.
	s.Receive(later, &Message{Type: MsgCtl, Flags: FlagAlive | FlagHello, Seq: 10})
	if tx, un := s.Pending(); un != 0 || tx == 0 {
		t.Fatalf("resend queue not flushed to TX on HELLO: tx %d, unacked %d", tx, un)
	}
	parseAll(t, first(s.Poll(later, lookup, 0)))
	if res := s.Receive(later, &Message{Type: MsgCTNew, Flags: FlagHello, Seq: 11}); !res.Apply {
		t.Fatal("post-HELLO message not applied")
	}
	s.RequestResync()
	s.RequestResync()
	msgs = parseAll(t, first(s.Poll(later, lookup, 0)))
	if len(msgs) != 3 || msgs[0].Flags != FlagACK|FlagHelloBack || msgs[1].Flags != FlagResync || msgs[2].Flags != FlagResync {
		t.Fatalf("HELLO_BACK: %+v", msgs)
	}
	if res := s.Receive(later, &Message{Type: MsgCtl, Flags: FlagResync, Seq: 12}); !res.SendAll {
		t.Fatal("RESYNC not reported")
	}
}

func TestFTFWResendQueueBound(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := NewSession(SessionConfig{ResendQueue: 10}, now)
	internal := NewCache()
	for i := range 25 {
		f := flowN(i)
		internal.Put(&f, now)
		s.Enqueue(f.Key, MsgCTNew)
	}
	s.Poll(now, func(ck *ckey) (Flow, bool) { return internal.Get(ck.key()) }, 0)
	if _, un := s.Pending(); un != 10 {
		t.Fatalf("resend queue holds %d, want 10", un)
	}
	if st := s.Stats(); st.ResendOverflow != 15 {
		t.Errorf("overflow %d, want 15", st.ResendOverflow)
	}
	base := uint32(now.Unix())
	// A NACK reaching into dropped entries queues their current state again.
	if res := s.Receive(now, &Message{Type: MsgCtl, Flags: FlagNACK, Seq: 1, From: base, To: base + 2}); res.SendAll {
		t.Fatal("NACK of remembered keys asked for a full resend")
	}
	if tx, _ := s.Pending(); tx != 15 {
		t.Fatalf("%d states queued again, want the 15 dropped ones", tx)
	}
}

func TestNotrackSession(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := NewSession(SessionConfig{Mode: ModeNotrack}, now)
	internal := NewCache()
	f := flowN(1)
	internal.Put(&f, now)
	s.Enqueue(f.Key, MsgCTNew)
	msgs := parseAll(t, first(s.Poll(now, func(ck *ckey) (Flow, bool) { return internal.Get(ck.key()) }, 0)))
	if len(msgs) != 1 || msgs[0].Flags != 0 || msgs[0].Type != MsgCTNew {
		t.Fatalf("notrack send: %+v", msgs)
	}
	if tx, un := s.Pending(); tx+un != 0 {
		t.Fatalf("notrack keeps %d/%d", tx, un)
	}
	if res := s.Receive(now, &Message{Type: MsgCTUpd, Seq: 5}); !res.Apply {
		t.Fatal("not applied")
	}
	if res := s.Receive(now, &Message{Type: MsgCTUpd, Seq: 3}); !res.Apply {
		t.Fatal("notrack drops old seq")
	}
	if res := s.Receive(now, &Message{Type: MsgCtl, Flags: FlagACK, Seq: 6}); res.Reject != ReasonUnexpectedCtl {
		t.Fatal("ACK accepted in NOTRACK")
	}
	if res := s.Receive(now, &Message{Type: MsgCtl, Flags: FlagResync, Seq: 7}); !res.SendAll {
		t.Fatal("RESYNC ignored")
	}
	msgs = parseAll(t, first(s.Poll(now.Add(time.Second), nil, 0)))
	if len(msgs) != 1 || msgs[0].Flags != FlagAlive {
		t.Fatalf("notrack alive: %+v", msgs)
	}
}

func first[A, B any](a A, _ B) A { return a }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A drained TX queue gives its memory back: after a bulk send of
// 200,000 states the session holds no more than before it (a Go map
// never shrinks, so the per-key hint map must be replaced).
func TestSessionQueueMemoryReturned(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := NewSession(SessionConfig{Mode: ModeNotrack}, now)
	absent := func(*ckey) (Flow, bool) { return Flow{}, false } // every state goes out as CT_DEL
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	const n = 200_000
	for i := range n {
		s.Enqueue(Key{Tuple: Tuple{
			Src: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), Dst: netip.MustParseAddr("10.9.9.9"),
			SrcPort: 1000, DstPort: 80, Proto: 6}}, MsgCTUpd)
	}
	queued := heap()
	for i := 0; ; i++ {
		if tx, _ := s.Pending(); tx == 0 {
			break
		}
		if i > n {
			t.Fatal("the queue does not drain")
		}
		s.Poll(now, absent, 4096)
	}
	after := heap()
	runtime.KeepAlive(s)
	t.Logf("heap: %d before, %d queued, %d drained", before, queued, after)
	if queued < before+n*40 {
		t.Fatalf("queueing %d keys grew the heap by only %d bytes: the test measures nothing", n, queued-before)
	}
	if after > before+(queued-before)/10 {
		t.Errorf("the drained session still holds %d of the %d bytes the queue took", after-before, queued-before)
	}
}

// Flow control: once the peer acknowledges, the sender keeps at most its
// send window un-ACKed and waits for ACKs instead of overflowing its
// resend queue; a peer that stops acknowledging does not stall it for
// longer than windowStall.
func TestFTFWSendWindow(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	s := NewSession(SessionConfig{ResendQueue: 64, ACKWindow: 8}, now)
	if s.sendWindow != 64 {
		t.Fatalf("send window %d, want the resend queue's 64", s.sendWindow)
	}
	// A resend queue smaller than a few ACK windows would throttle the
	// sender to a window per second (the peer ACKs when idle): no window.
	if w := sendWindowFor(SessionConfig{Mode: ModeFTFW, ResendQueue: 500, ACKWindow: 300}); w != 0 {
		t.Errorf("send window %d with a 500-state resend queue and an ACK window of 300, want 0 (off)", w)
	}
	internal := NewCache()
	lookup := func(ck *ckey) (Flow, bool) { return internal.Get(ck.key()) }
	base := uint32(now.Unix())
	// The peer is alive and acknowledging (an ACK of nothing yet).
	s.Receive(now, &Message{Type: MsgCtl, Flags: FlagACK, Seq: 1, From: base - 1, To: base - 1})
	for i := range 200 {
		f := flowN(i)
		internal.Put(&f, now)
		s.Enqueue(f.Key, MsgCTNew)
	}
	countData := func(dgs [][]byte) int {
		n := 0
		for _, m := range parseAll(t, dgs) {
			if m.IsData() {
				n++
			}
		}
		return n
	}
	dgs, next := s.Poll(now, lookup, 0)
	if got := countData(dgs); got != 64 {
		t.Fatalf("sent %d states before any ACK of them, want the window of 64", got)
	}
	if !next.After(now) || next.After(now.Add(windowStall)) {
		t.Errorf("next poll %v after the window filled: want later than now (no busy loop), by the end of the wait at the latest", next.Sub(now))
	}
	if tx, _ := s.Pending(); tx != 136 {
		t.Fatalf("%d states waiting, want 136", tx)
	}
	// ACKs of another stream's numbers (a restarted peer's old stream, or
	// forged) neither open the window nor count as progress.
	s.Receive(now, &Message{Type: MsgCtl, Flags: FlagACK, Seq: 2, From: base + 500_000, To: base + 1_000_000})
	s.Receive(now, &Message{Type: MsgCtl, Flags: FlagACK, Seq: 3, From: base - 900_000, To: base - 800_000})
	if got := countData(first(s.Poll(now, lookup, 0))); got != 0 {
		t.Fatalf("sent %d after ACKs of numbers never sent", got)
	}
	// An ACK of the first 64 opens the window again.
	at := now.Add(10 * time.Millisecond)
	s.Receive(at, &Message{Type: MsgCtl, Flags: FlagACK, Seq: 4, From: base, To: base + 63})
	if got := countData(first(s.Poll(at, lookup, 0))); got != 64 {
		t.Fatalf("sent %d after the ACK, want 64", got)
	}
	if st := s.Stats(); st.ResendOverflow != 0 || st.WindowWaits == 0 {
		t.Fatalf("overflow %d, window waits %d: want 0 and > 0", st.ResendOverflow, st.WindowWaits)
	}
	// The ACK of the first half of that window is lost, the second
	// half's arrives: the window counts from the newest ACK, so the lost
	// one's states (left in the resend queue) do not keep it closed.
	at = at.Add(10 * time.Millisecond)
	s.Receive(at, &Message{Type: MsgCtl, Flags: FlagACK, Seq: 5, From: base + 96, To: base + 127})
	if got := countData(first(s.Poll(at, lookup, 0))); got != 64 {
		t.Fatalf("sent %d after an ACK that followed a lost one, want 64", got)
	}
	// No ACK for windowStall: the rest goes out anyway (a gone peer or a
	// one-way link must not stop replication), overflowing as before.
	late := at.Add(windowStall)
	if got := countData(first(s.Poll(late, lookup, 0))); got != 8 {
		t.Fatalf("sent %d after the peer went quiet, want the remaining 8", got)
	}
	if st := s.Stats(); st.ResendOverflow == 0 {
		t.Error("a quiet peer's window was kept: nothing overflowed")
	}
}

// TestSessionQueueMarksInCache: with the internal cache keeping the TX
// queue's marks, a waiting key costs the queue its slice element only
// (no hint map entry), and every change still reaches the peer: once per
// key while it waits, as CT_NEW if it was ever queued new, after its slot
// was deleted and created again, after the queues were dropped, and for
// keys the cache does not hold.
func TestSessionQueueMarksInCache(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cache := NewCache()
	s := NewSession(SessionConfig{Mode: ModeNotrack}, now)
	s.marks = cache
	lookup := func(ck *ckey) (Flow, bool) { return cache.Get(ck.key()) }
	flow := func(i int) Flow {
		return Flow{Key: Key{Tuple: Tuple{
			Src: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Dst: netip.MustParseAddr("10.9.9.9"),
			SrcPort: 1000, DstPort: 80, Proto: 6}}, Timeout: 100}
	}
	// drain sends the queue and returns what went out, by key.
	drain := func() map[Key][]MsgType {
		t.Helper()
		out := map[Key][]MsgType{}
		for range 100 {
			ds, _ := s.Poll(now, lookup, 0)
			for _, d := range ds {
				for rest := d; len(rest) > 0; {
					m, r, err := NextMessage(rest)
					if err != nil {
						t.Fatal(err)
					}
					rest = r
					if m.Type != MsgCTNew && m.Type != MsgCTUpd && m.Type != MsgCTDel {
						continue
					}
					f, err := s.cfg.Wire.DecodeFlow(m.Payload)
					if err != nil {
						t.Fatal(err)
					}
					out[f.Key] = append(out[f.Key], m.Type)
				}
			}
			if tx, _ := s.Pending(); tx == 0 {
				return out
			}
		}
		t.Fatal("the queue does not drain")
		return nil
	}

	const n = 1000
	for i := range n {
		f := flow(i)
		cache.Put(&f, now)
		s.Enqueue(f.Key, MsgCTNew)
		f.Timeout = 200
		cache.Put(&f, now) // an update while it waits keeps the mark
		s.Enqueue(f.Key, MsgCTUpd)
	}
	if len(s.txHint) != 0 || s.txKeys.len() != n {
		t.Fatalf("%d cached keys queued twice: %d hint map entries, %d queue elements; want 0 and %d", n, len(s.txHint), s.txKeys.len(), n)
	}
	out := drain()
	for i := range n {
		if got := out[flow(i).Key]; !slices.Equal(got, []MsgType{MsgCTNew}) {
			t.Fatalf("key %d sent as %v, want one CT_NEW", i, got)
		}
	}

	f0, f1, f2 := flow(0), flow(1), flow(2)
	// Queued, dropped (a flush), changed: queued again.
	s.Enqueue(f1.Key, MsgCTUpd)
	s.DropQueues()
	f1.Timeout = 300
	cache.Put(&f1, now)
	s.Enqueue(f1.Key, MsgCTUpd)
	// Deleted and created again while waiting: still sent, as new.
	s.Enqueue(f0.Key, MsgCTUpd)
	cache.Delete(f0.Key)
	s.Enqueue(f0.Key, MsgCTDel)
	cache.Put(&f0, now)
	s.Enqueue(f0.Key, MsgCTNew)
	// Not in the cache: sent as a deletion.
	cache.Delete(f2.Key)
	s.Enqueue(f2.Key, MsgCTDel)
	out = drain()
	if got := out[f0.Key]; len(got) == 0 || !slices.Contains(got, MsgCTNew) {
		t.Errorf("re-created key sent as %v, want a CT_NEW", got)
	}
	if got := out[f1.Key]; !slices.Equal(got, []MsgType{MsgCTUpd}) {
		t.Errorf("key queued after DropQueues sent as %v, want one CT_UPD", got)
	}
	if got := out[f2.Key]; !slices.Equal(got, []MsgType{MsgCTDel}) {
		t.Errorf("deleted key sent as %v, want one CT_DEL", got)
	}
	if len(s.txHint) != 0 {
		t.Errorf("%d hint map entries left after draining", len(s.txHint))
	}
}
