package ctsync

import (
	"context"
	"testing"

	"github.com/fwpair/fwpair/ctsync/ctsynctest"
)

// TestInjectQueueOrderAcrossChunks: the injector decodes and writes the
// queue a chunk at a time; a key created, deleted and created again across
// a chunk boundary ends as its last state, a key updated in a later chunk
// as its update, and every other queued state is in the kernel as it was
// received. With a kernel that filters the own events, the internal cache
// records the same states, flagged injected, although each chunk is
// recorded while the next is written (injectRecorder).
func TestInjectQueueOrderAcrossChunks(t *testing.T) {
	for _, recording := range []bool{false, true} {
		t.Run(map[bool]string{false: "echo", true: "recorded"}[recording], func(t *testing.T) {
			testInjectQueueOrder(t, recording)
		})
	}
}

func testInjectQueueOrder(t *testing.T, recording bool) {
	fake := ctsynctest.NewKernel()
	var k Kernel = fake
	if recording {
		k = &ctsynctest.RecordingKernel{Kernel: fake}
	}
	var net MemNetwork
	_, y := net.NewMemLink("inject", 1472)
	e, err := New(Config{DirectInject: true}, Options{Kernel: k, Channels: []Channel{y}})
	if err != nil {
		t.Fatal(err)
	}
	var o WireOptions
	var q injectQueue
	push := func(f *Flow, t MsgType) {
		b, err := o.AppendCT(nil, t, 0, 1, f)
		if err != nil {
			panic(err)
		}
		m, _, err := NextMessage(b)
		if err != nil {
			panic(err)
		}
		q.push(m.Payload, t == MsgCTDel)
	}
	n := keepInjectMem + 100 // several chunks, more than the queue keeps
	want := map[Key]Flow{}
	f0, f1 := flowN(0), flowN(1)
	for i := range n {
		switch i {
		case 5: // key 1 created here, updated two chunks later
			f1.Timeout = 100
			push(&f1, MsgCTNew)
		case 2*injectChunk + 5:
			f1.Timeout = 333
			push(&f1, MsgCTUpd)
			want[f1.Key] = f1
		case injectChunk - 2: // key 0 created, deleted and created again
			f0.Timeout = 111
			push(&f0, MsgCTNew)
		case injectChunk - 1:
			push(&f0, MsgCTDel)
		case injectChunk:
			f0.Timeout = 222
			push(&f0, MsgCTNew)
			want[f0.Key] = f0
		default:
			f := flowN(i + 10)
			push(&f, MsgCTNew)
			want[f.Key] = f
		}
	}
	e.inject(context.Background(), &q, false)
	got := fake.Snapshot()
	if len(got) != len(want) {
		t.Fatalf("kernel holds %d entries, want %d", len(got), len(want))
	}
	for key, f := range want {
		if g, ok := got[key]; !ok || g.Timeout != f.Timeout {
			t.Fatalf("%v: kernel holds %+v (present %v), want timeout %d", key, g, ok, f.Timeout)
		}
	}
	if recording {
		e.mu.Lock()
		defer e.mu.Unlock()
		if n := e.internal.Len(); n != len(want) {
			t.Fatalf("internal cache holds %d entries, want %d", n, len(want))
		}
		for key, f := range want {
			g, ok := e.internal.Get(key)
			if !ok || g.Timeout != f.Timeout || !e.isInjectedLocked(&key) {
				t.Fatalf("%v: internal cache holds %+v (present %v, injected %v), want timeout %d",
					key, g, ok, e.isInjectedLocked(&key), f.Timeout)
			}
		}
	}
	if r := q.emptied(); r.len() != 0 || cap(r.items) != 0 {
		t.Errorf("a queue of %d states kept its memory (cap %d) past keepInjectMem %d", n, cap(r.items), keepInjectMem)
	}
}
