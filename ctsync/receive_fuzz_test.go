package ctsync

import (
	"context"
	"testing"

	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

// FuzzReceivePath: a datagram from the peer's address goes through the
// whole receive path of an engine (parser, FTFW session, validation,
// filter, bounds, external cache or direct inject into a faked kernel).
// Whatever it holds: no panic, the caches and the kernel hold only states
// that pass validation, the bounds hold, and a genuine message that
// follows the live stream is still applied unless the datagram itself
// moved the session within the plausible window (which an unkeyed link
// cannot tell from the peer).
func FuzzReceivePath(f *testing.F) {
	addWireSeeds(f)
	var o WireOptions
	fl := forgedFlow(1)
	b, _ := o.AppendCT(nil, MsgCTNew, 0, 1000+5_000_000, &fl)
	f.Add(b)
	fl.Proto = 19
	b, _ = o.AppendCT(nil, MsgCTNew, 0, 1001, &fl)
	f.Add(b)
	f.Add(AppendCtl(nil, FlagResync, 1001, 0, 0))
	f.Add(AppendCtl(nil, FlagNACK, 1001, 0, 0xffffffff))
	f.Fuzz(func(t *testing.T, d []byte) {
		for _, direct := range []bool{false, true} {
			k := ctsynctest.NewKernel()
			var net MemNetwork
			x, y := net.NewMemLink("fuzz", 1472)
			e, err := New(Config{DirectInject: direct, ExternalLimit: 64, InjectQueueLimit: 64}, Options{Kernel: k, Channels: []Channel{y}})
			if err != nil {
				t.Fatal(err)
			}
			// The live stream: one genuine state at seq 1000.
			g := flowN(1)
			prime, _ := o.AppendCT(nil, MsgCTNew, 0, 1000, &g)
			e.handleDatagram(0, prime)
			e.handleDatagram(0, d)
			lastBefore := e.sess.lastRecv
			next := flowN(2)
			follow, _ := o.AppendCT(nil, MsgCTNew, 0, 1001, &next)
			e.handleDatagram(0, follow)

			e.mu.Lock()
			q := e.injectQ
			e.injectQ = injectQueue{}
			ext := e.flowsLocked(e.external, nil)
			extHas := e.external.Has(next.Key)
			moved := lastBefore != 1000
			e.mu.Unlock()
			if q.len() > 64 || len(ext) > 64 {
				t.Fatalf("bounds: inject queue %d, external %d", q.len(), len(ext))
			}
			e.inject(context.Background(), &q, false)
			caps := DefaultMaxTimeouts()
			for _, f := range ext {
				if err := validateFlow(&f, &caps); err != nil {
					t.Fatalf("external cache holds an invalid state: %v", err)
				}
			}
			for _, f := range k.Snapshot() {
				if err := validateFlow(&f, &caps); err != nil {
					t.Fatalf("kernel holds an invalid state: %v", err)
				}
			}
			has := extHas || k.Snapshot()[next.Key].Key == next.Key
			if !moved && !has {
				t.Fatalf("the genuine message after the datagram was not applied (lastRecv %d)", lastBefore)
			}
			_ = x
			e.Close()
		}
	})
}
