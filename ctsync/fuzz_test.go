package ctsync

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func addWireSeeds(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 7))
	var o WireOptions
	for i := range 32 {
		fl := randFlow(r)
		b, _ := o.AppendCT(nil, MsgType(i%3), 0, uint32(i), &fl)
		f.Add(b)
	}
	f.Add(AppendCtl(nil, FlagNACK, 1, 2, 3))
	f.Add(AppendCtl(nil, FlagAlive|FlagHello, 1, 0, 0))
}

// FuzzDecodeFlow: any payload that decodes re-encodes to a message that
// decodes to the same flow, and the encoding is a fixed point.
func FuzzDecodeFlow(f *testing.F) {
	addWireSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, o := range []WireOptions{{}, {LegacyNATv4: true, BigEndianPeer: true}} {
			m, _, err := NextMessage(b)
			p := b
			if err == nil && m.IsData() {
				p = m.Payload
			}
			fl, err := o.DecodeFlow(p)
			if err != nil {
				if ReasonOf(err) == 0 {
					t.Fatalf("error without reason: %v", err)
				}
				continue
			}
			enc, err := o.AppendCT(nil, MsgCTUpd, 0, 1, &fl)
			if err != nil {
				continue // e.g. mixed address families are not encodable
			}
			m2, rest, err := NextMessage(enc)
			if err != nil || len(rest) != 0 {
				t.Fatalf("re-encoded message does not parse: %v", err)
			}
			fl2, err := o.DecodeFlow(m2.Payload)
			if err != nil {
				t.Fatalf("re-encoded flow does not decode: %v", err)
			}
			enc2, _ := o.AppendCT(nil, MsgCTUpd, 0, 1, &fl2)
			if !bytes.Equal(enc, enc2) {
				t.Fatalf("encoding not a fixed point:\n%x\n%x", enc, enc2)
			}
			fl3, _ := o.DecodeFlow(enc2[8:])
			if diff := cmp.Diff(fl2, fl3, addrCmp); diff != "" {
				t.Fatalf("round trip (-want +got):\n%s", diff)
			}
		}
	})
}

// FuzzDatagram feeds arbitrary datagrams through the parser and a session
// in both modes: nothing panics and every message is accounted for.
func FuzzDatagram(f *testing.F) {
	addWireSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, mode := range []Mode{ModeFTFW, ModeNotrack} {
			s := NewSession(SessionConfig{Mode: mode, ACKWindow: 3, ResendQueue: 4}, time.Unix(100, 0))
			s.Enqueue(Key{}, MsgCTNew)
			now := time.Unix(100, 0)
			rest := b
			for i := 0; len(rest) > 0 && i < 1000; i++ {
				m, r, err := NextMessage(rest)
				rest = r
				if err != nil {
					if ReasonOf(err) == 0 {
						t.Fatal(err)
					}
					continue
				}
				s.Receive(now, &m)
				if m.IsData() {
					var o WireOptions
					_, _ = o.DecodeFlow(m.Payload)
				}
				now = now.Add(300 * time.Millisecond)
				dg, _ := s.Poll(now, func(*ckey) (Flow, bool) { return Flow{}, false }, 0)
				for _, d := range dg {
					if len(d) >= s.cfg.MaxDatagram {
						t.Fatalf("datagram of %d bytes", len(d))
					}
				}
			}
		}
	})
}

// FuzzFTFWConvergence drives the simulated network's loss, duplication and
// reordering from the fuzz input: whatever happens, once the network heals
// each node's external cache equals the peer's internal cache.
func FuzzFTFWConvergence(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0}, uint8(20))
	f.Add([]byte{1, 0, 2, 3, 1, 1, 0, 0, 5}, uint8(60))
	f.Add([]byte{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, uint8(90))
	f.Fuzz(func(t *testing.T, pattern []byte, ops uint8) {
		if len(pattern) == 0 {
			pattern = []byte{0}
		}
		p := newSimPair(t, SessionConfig{ACKWindow: 5, ResendQueue: 16}, 1)
		for range 300 { // clean handshake (see TestFTFWConvergesUnderLoss)
			p.step(10 * time.Millisecond)
			if p.nodes[0].s.hello == helloDone && p.nodes[1].s.hello == helloDone && len(p.net.q) == 0 {
				break
			}
		}
		i := 0
		p.net.decide = func() (drop, dup bool, delay time.Duration) {
			b := pattern[i%len(pattern)]
			i++
			return b&1 != 0, b&2 != 0, time.Duration(b>>2) * time.Millisecond
		}
		r := rand.New(rand.NewPCG(uint64(ops), 3))
		var keys []Key
		for n := range int(ops) {
			side := n % 2
			node := p.nodes[side]
			if len(keys) > 0 && r.IntN(3) == 0 {
				j := r.IntN(len(keys))
				k := keys[j]
				keys = append(keys[:j], keys[j+1:]...)
				if node.internal.Delete(k) {
					node.s.Enqueue(k, MsgCTDel)
				} else {
					p.nodes[1-side].internal.Delete(k)
					p.nodes[1-side].s.Enqueue(k, MsgCTDel)
				}
			} else {
				fl := randFlow(r)
				fl.Zone = uint16(side)
				node.internal.Put(&fl, p.now)
				node.s.Enqueue(fl.Key, MsgCTNew)
				keys = append(keys, fl.Key)
			}
			p.step(3 * time.Millisecond)
		}
		p.net.decide = nil
		for range 6000 { // bounded: 60 s of simulated time
			p.step(10 * time.Millisecond)
			// Not p.quiet(): when a full resend queue dropped an ACK for
			// good, the peer's un-ACKed entries stay pinned until its own
			// queue overflows (harmless, as in conntrackd).
			tx0, _ := p.nodes[0].s.Pending()
			tx1, _ := p.nodes[1].s.Pending()
			if tx0+tx1 == 0 && len(p.net.q) == 0 && cacheDiff(p.nodes[0].internal, p.nodes[1].external) == "" &&
				cacheDiff(p.nodes[1].internal, p.nodes[0].external) == "" {
				return
			}
		}
		for i, n := range p.nodes {
			tx, un := n.s.Pending()
			t.Logf("node %d: tx %d unacked %d rsLive %d lost %d overflow %v ovSeq %d seq %d lastRecv %d", i, tx, un, n.s.rsLive, len(n.s.lost), n.s.overflow, n.s.ovSeq, n.s.seq, n.s.lastRecv)
			for j := n.s.rsHead; j < len(n.s.rs); j++ {
				t.Logf("  rs %d dead %v ctl %v %+v", n.s.rs[j].seq, n.s.rs[j].dead, n.s.rs[j].ctl, n.s.rs[j].c)
			}
		}
		t.Fatalf("no convergence: %s / %s", cacheDiff(p.nodes[0].internal, p.nodes[1].external),
			cacheDiff(p.nodes[1].internal, p.nodes[0].external))
	})
}
