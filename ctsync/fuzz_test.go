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
