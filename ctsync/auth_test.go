package ctsync

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"
)

var (
	authAddrA = netip.MustParseAddr("10.0.0.1")
	authAddrB = netip.MustParseAddr("10.0.0.2")
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// authPair returns A and B authenticating over an in-memory link, and the
// raw ends underneath (to capture and inject datagrams).
func authPair(t *testing.T, clk *fakeClock, keysA, keysB [][]byte) (a, b Channel, rawA, rawB *MemChannel) {
	t.Helper()
	var n MemNetwork
	rawA, rawB = n.NewMemLink("auth", 1472)
	var err error
	a, err = NewAuthChannel(rawA, AuthConfig{Keys: keysA, Now: clk.now}, authAddrA, []netip.Addr{authAddrB})
	if err != nil {
		t.Fatal(err)
	}
	b, err = NewAuthChannel(rawB, AuthConfig{Keys: keysB, Now: clk.now}, authAddrB, []netip.Addr{authAddrA})
	if err != nil {
		t.Fatal(err)
	}
	return a, b, rawA, rawB
}

// recvOne returns the next datagram b accepts, or nil when none arrives
// within a short bound (everything queued was rejected).
func recvOne(t *testing.T, c Channel) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	buf := make([]byte, 65536)
	n, err := c.Recv(ctx, buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

func rejected(c Channel, reason string) uint64 {
	m, _ := c.(RejectCounter).Rejected()
	return m[reason]
}

func TestAuthRejectsForgedReplayedMutated(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	a, b, rawA, rawB := authPair(t, clk, [][]byte{testKey(1)}, [][]byte{testKey(1)})
	msg := forgedDatagram(t, 0, 42, 1)
	if err := a.Send(msg); err != nil {
		t.Fatal(err)
	}
	// Capture what went on the wire by letting B's raw end receive it.
	ctx := context.Background()
	wire := make([]byte, 2048)
	n, _ := rawB.Recv(ctx, wire)
	wire = wire[:n]
	if len(wire) != len(msg)+authTrailerLen || !bytes.Equal(wire[:len(msg)], msg) {
		t.Fatalf("wire form: %d bytes", len(wire))
	}
	inject := func(d []byte) { _ = rawA.Send(d) } // arrives at rawB
	inject(wire)
	if got := recvOne(t, b); !bytes.Equal(got, msg) {
		t.Fatalf("authentic datagram not accepted: %x", got)
	}
	// Replayed.
	inject(wire)
	if recvOne(t, b) != nil || rejected(b, ReasonAuthReplay) != 1 {
		t.Fatal("replay accepted")
	}
	// Every single-bit flip, anywhere; forged with another key;
	// unauthenticated; truncated. Then one authentic datagram: it must be
	// the first (and only) one accepted.
	for i := range len(wire) * 8 {
		m := bytes.Clone(wire)
		m[i/8] ^= 1 << (i % 8)
		inject(m)
	}
	x, _, _, _ := authPair(t, clk, [][]byte{testKey(9)}, [][]byte{testKey(9)})
	xa := x.(*authChannel)
	xa.inner = rawA
	_ = x.Send(msg)
	inject(msg)
	inject(wire[:10])
	marker := forgedDatagram(t, 0, 43, 2)
	_ = a.Send(marker)
	if got := recvOne(t, b); !bytes.Equal(got, marker) {
		t.Fatalf("accepted a mutated or forged datagram: %x", got)
	}
	// Reflected: A's own datagram sent back to A as if from B.
	_ = a.Send(msg)
	n, _ = rawB.Recv(ctx, wire[:cap(wire)])
	_ = rawB.Send(wire[:n]) // arrives at rawA
	if recvOne(t, a) != nil || rejected(a, ReasonAuthBadMAC) != 1 {
		t.Fatal("reflected datagram accepted")
	}
	m, last := b.(RejectCounter).Rejected()
	t.Logf("rejects %v last %q", m, last)
	if m[ReasonAuthBadMAC]+m[ReasonAuthUnknownKey]+m[ReasonAuthShort]+m[ReasonAuthStale] < uint64(len(wire)*8) {
		t.Fatalf("rejects not counted: %v", m)
	}
	// Fresh datagrams still flow.
	_ = a.Send(msg)
	if got := recvOne(t, b); !bytes.Equal(got, msg) {
		t.Fatal("authentic datagram after the attack not accepted")
	}
}

func TestAuthWindowAndClock(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	a, b, _, rawB := authPair(t, clk, [][]byte{testKey(1)}, [][]byte{testKey(1)})
	// Reordering within the window is accepted once each.
	var caps [][]byte
	for i := range 5 {
		_ = a.Send(forgedDatagram(t, 0, uint32(i), i))
		buf := make([]byte, 2048)
		n, _ := rawB.Recv(context.Background(), buf)
		caps = append(caps, buf[:n])
	}
	var n MemNetwork
	inA, inB := n.NewMemLink("x", 1472)
	bb := b.(*authChannel)
	bb.inner = inB
	for _, i := range []int{4, 0, 2, 1, 3, 2, 4} {
		_ = inA.Send(caps[i])
	}
	got := 0
	for recvOne(t, b) != nil {
		got++
	}
	if got != 5 || rejected(b, ReasonAuthReplay) != 2 {
		t.Fatalf("accepted %d of 5 reordered, %d replays", got, rejected(b, ReasonAuthReplay))
	}
	// A datagram from a sender whose clock is off by more than MaxSkew.
	clk.t = clk.t.Add(10 * time.Minute)
	_ = inA.Send(caps[0])
	if recvOne(t, b) != nil || rejected(b, ReasonAuthStale) != 1 {
		t.Fatal("stale datagram accepted")
	}
}

func TestAuthKeyRotation(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	old, nw := testKey(1), testKey(2)
	msg := forgedDatagram(t, 0, 1, 1)
	// A already signs with the new key, B still with the old one; both
	// accept both: traffic flows both ways.
	a, b, _, _ := authPair(t, clk, [][]byte{nw, old}, [][]byte{old, nw})
	_ = a.Send(msg)
	_ = b.Send(msg)
	if recvOne(t, b) == nil || recvOne(t, a) == nil {
		t.Fatal("rotation step: datagrams not accepted")
	}
	// A node that dropped the old key rejects it.
	a2, b2, _, _ := authPair(t, clk, [][]byte{nw}, [][]byte{old})
	_ = b2.Send(msg)
	if recvOne(t, a2) != nil || rejected(a2, ReasonAuthUnknownKey) != 1 {
		t.Fatal("retired key accepted")
	}
	for _, bad := range []AuthConfig{{}, {Keys: [][]byte{testKey(1)[:31]}}, {Keys: [][]byte{old, nw, testKey(3)}}, {Keys: [][]byte{old, old}}} {
		if bad.Validate() == nil {
			t.Errorf("accepted %d keys", len(bad.Keys))
		}
	}
}

// BenchmarkAuthDatagram: sign and verify one full sync datagram (1472
// bytes, about 20 states): the HMAC cost per datagram on each side.
func BenchmarkAuthDatagram(b *testing.B) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	var n MemNetwork
	rawA, rawB := n.NewMemLink("bench", 1472)
	a, _ := NewAuthChannel(rawA, AuthConfig{Keys: [][]byte{testKey(1)}, Now: clk.now}, authAddrA, []netip.Addr{authAddrB})
	bb, _ := NewAuthChannel(rawB, AuthConfig{Keys: [][]byte{testKey(1)}, Now: clk.now}, authAddrB, []netip.Addr{authAddrA})
	msg := bytes.Repeat([]byte{0x10}, a.MaxPayload())
	buf := make([]byte, 2048)
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		_ = a.Send(msg)
		if _, err := bb.Recv(ctx, buf); err != nil {
			b.Fatal(err)
		}
	}
}
